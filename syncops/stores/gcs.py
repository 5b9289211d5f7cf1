"""Google Cloud Storage through google-cloud-storage: Application Default Credentials (anonymous
under ``STORAGE_EMULATOR_HOST`` unless credentials are configured), the library's ``DEFAULT_RETRY``
passed explicitly on every call (listing pages and conditional writes included), and
``ifGenerationMatch`` for conditional writes.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, BinaryIO

import google.auth
import requests
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.auth.credentials import AnonymousCredentials
from google.auth.exceptions import DefaultCredentialsError, RefreshError, TransportError
from google.cloud import storage
from google.cloud.storage.exceptions import DataCorruption as _DataCorruption
from google.cloud.storage.retry import DEFAULT_RETRY

from syncops.errors import (
    AccessDenied,
    BadInput,
    ConditionUnsupported,
    NotFound,
    PreconditionFailed,
    StoreError,
    Unavailable,
)
from syncops.stores.base import Blob, DatastoreUrl, Fetched, Head, ObjectInfo, PageTokens, UploadBody, spooled
from syncops.stores.gcs_credentials import configured_credentials
from syncops.stores.gcs_data import GcsDownloader, data_plane_enabled
from syncops.stores.settings import StoreSettings

LIST_PAGE_SIZE = 1000
#: Whole reads of an object whose body failed its checksum before the download fails.
BODY_ATTEMPTS = 3
#: Give up on a request after this long of retrying (the library's default is 120 s);
#: ``SYNCOPS_GCS_RETRY_TIMEOUT`` (seconds) overrides it, e.g. so tests of a persistent outage fail fast.
RETRY_TIMEOUT = 60.0


def _retry_timeout_from_environment() -> float:
    text = os.environ.get("SYNCOPS_GCS_RETRY_TIMEOUT", "").strip()
    if not text:
        return RETRY_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise BadInput(f"SYNCOPS_GCS_RETRY_TIMEOUT={text!r}: expected a number of seconds above 0")
    return seconds


RETRY: Retry = DEFAULT_RETRY.with_timeout(_retry_timeout_from_environment())

_BUCKET_METADATA_SWITCH = "DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA"

_PERMISSIONS = {
    "get": "storage.objects.get",
    "download": "storage.objects.get",
    "head": "storage.objects.get",
    "put": "storage.objects.create (and storage.objects.delete to replace)",
    "upload": "storage.objects.create (and storage.objects.delete to replace)",
    "list": "storage.objects.list",
    "delete": "storage.objects.delete",
}


class _TimedBlob(storage.Blob):
    """A blob that keeps the download's ``Last-Modified`` header: the object's time comes with its
    bytes, so reading the lock costs one request, not a media GET plus a metadata GET."""

    last_modified: datetime | None = None

    def _extract_headers_from_download(self, response: Any) -> None:
        super()._extract_headers_from_download(response)
        header = response.headers.get("Last-Modified")
        try:
            self.last_modified = parsedate_to_datetime(header) if header else None
        except (TypeError, ValueError):
            self.last_modified = None


class GcsStore:
    def __init__(self, url: DatastoreUrl, *, concurrency: int = 32, settings: StoreSettings | None = None) -> None:
        self.url = url
        self._settings = settings or StoreSettings()
        self._emulator = os.environ.get("STORAGE_EMULATOR_HOST")
        # The library fetches bucket metadata in the background for trace attributes: one extra
        # request per bucket that needs storage.buckets.get, which least-privilege workloads lack.
        os.environ.setdefault(_BUCKET_METADATA_SWITCH, "true")
        self._source = "Application Default Credentials"
        try:
            self._client = self._make_client()
        except DefaultCredentialsError as exc:
            raise AccessDenied(
                f"no Google credentials for {url}: {exc} "
                "(run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS)"
            ) from None
        # Size the HTTP connection pool to the transfer pool, or threads queue for sockets.
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=max(10, concurrency + 4))
        http = self._client._http  # the library's own authorized session
        http.mount("https://", adapter)
        http.mount("http://", adapter)
        self._bucket = self._client.bucket(url.bucket)
        self._concurrency = concurrency
        self._lock = threading.Lock()
        self._data: GcsDownloader | None = None

    def _make_client(self) -> storage.Client:
        project = (
            self._settings.gcp_project or os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCLOUD_PROJECT")
        )
        configured = configured_credentials(self._settings)
        if configured is not None:  # given explicitly: used against an emulator too
            credentials, self._source, key_project = configured
            return storage.Client(project=project or key_project or "-", credentials=credentials)
        if self._emulator and not os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"):
            self._source = f"anonymous (emulator at {self._emulator})"
            return storage.Client(project=project or "syncops-local", credentials=AnonymousCredentials())
        credentials, detected_project = google.auth.default()
        if os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"):
            self._source = "the key file in GOOGLE_APPLICATION_CREDENTIALS"
        elif type(credentials).__module__.startswith("google.auth.compute_engine"):
            self._source = "the instance's service account (metadata server)"
        else:
            self._source = "Application Default Credentials (gcloud)"
        return storage.Client(project=project or detected_project or "-", credentials=credentials)

    def credential_source(self) -> str:
        return self._source

    def _translate(self, exc: Exception, operation: str, key: str | None) -> Exception:
        where = self.url.object_url(key) if key is not None else str(self.url)
        if isinstance(exc, gexc.NotFound):
            if key is None:
                return StoreError(f"{operation} {where}: bucket {self.url.bucket!r} does not exist")
            return NotFound(f"{where}: not found")
        if isinstance(exc, gexc.PreconditionFailed):
            return PreconditionFailed(f"{operation} {where}: precondition failed")
        if isinstance(exc, (gexc.Forbidden, gexc.Unauthorized, RefreshError, DefaultCredentialsError)):
            return AccessDenied(
                f"access denied: {operation} {where}; credentials from {self._source}; "
                f"the caller needs {_PERMISSIONS.get(operation, 'storage.objects.*')} on it"
            )
        if isinstance(exc, gexc.MethodNotImplemented):
            return ConditionUnsupported(f"{operation} {where}: {exc.message}")
        if isinstance(
            exc,
            (
                gexc.RetryError,
                gexc.ServerError,
                gexc.TooManyRequests,
                requests.exceptions.ConnectionError,
                requests.exceptions.Timeout,
                requests.exceptions.ChunkedEncodingError,
                TransportError,
                ConnectionError,
            ),
        ):
            return Unavailable(f"{operation} {where}: {exc} (after retries)")
        if isinstance(exc, gexc.GoogleAPICallError):
            return StoreError(f"{operation} {where} failed: {exc.code} {exc.message}")
        if isinstance(exc, ValueError) and "checksum" in str(exc).lower():
            return Unavailable(f"{operation} {where}: {exc}")
        return exc

    def _guard(self, operation: str, key: str | None, call: Any) -> Any:
        try:
            return call()
        except _DataCorruption:
            raise
        except Exception as exc:
            raise self._translate(exc, operation, key) from None

    # -- contract ------------------------------------------------------------------------------
    def get(self, key: str) -> Blob:
        blob = _TimedBlob(self.url.full_key(key), bucket=self._bucket)
        data = self._guard("get", key, lambda: blob.download_as_bytes(retry=RETRY))
        return Blob(data=data, token=str(blob.generation), last_modified=blob.last_modified)

    def put(
        self, key: str, data: bytes | Iterable[bytes], *, if_absent: bool = False, if_token: str | None = None
    ) -> str:
        blob = self._bucket.blob(self.url.full_key(key))
        generation: int | None = 0 if if_absent else (int(if_token) if if_token is not None else None)
        content_type = "application/json" if key.endswith(".json") else "application/octet-stream"
        if isinstance(data, bytes):
            self._guard(
                "put",
                key,
                lambda: blob.upload_from_string(
                    data, content_type=content_type, if_generation_match=generation, retry=RETRY
                ),
            )
            return str(blob.generation)
        # A stream of chunks is spooled to a seekable body the library can size and rewind to retry.
        body, size = spooled(data)
        with body:
            self._guard(
                "put",
                key,
                lambda: blob.upload_from_file(
                    body, size=size, content_type=content_type, if_generation_match=generation, retry=RETRY
                ),
            )
        return str(blob.generation)

    def list(self) -> Iterator[ObjectInfo]:
        prefix = f"{self.url.prefix}/" if self.url.prefix else ""
        tokens = PageTokens(f"gs://{self.url.bucket}/{prefix}")
        try:
            blobs = self._client.list_blobs(
                self._bucket,
                prefix=prefix or None,
                page_size=LIST_PAGE_SIZE,
                fields="items(name,size,updated),nextPageToken",
                retry=RETRY,
            )
            pages = iter(blobs.pages)
        except Exception as exc:
            raise self._translate(exc, "list", None) from None
        while True:
            try:
                page = next(pages, None)
            except Exception as exc:
                raise self._translate(exc, "list", None) from None
            if page is None:
                return
            # The iterator asks for the next page with whatever token this one gave (an empty or
            # repeated one included): check it before the next request is made.
            tokens.next(blobs.next_page_token is not None, blobs.next_page_token)
            for blob in page:
                if not isinstance(blob.name, str) or blob.updated is None:
                    raise Unavailable(
                        f"listing {tokens.where}: page {tokens.page} has an object without a name or modification "
                        "time; stopped rather than use an incomplete listing"
                    )
                if blob.name == prefix:
                    continue  # a console's folder object for the prefix itself, not data
                yield ObjectInfo(key=blob.name[len(prefix) :], size=int(blob.size or 0), last_modified=blob.updated)

    def download(
        self, key: str, out: BinaryIO, *, checked_by_caller: bool = False, size_hint: int | None = None
    ) -> Fetched:
        """Stream one object into ``out``; the library checks the body against the object's crc32c/md5
        and a mismatch is read again (BODY_ATTEMPTS reads), never kept."""
        if data_plane_enabled():
            downloader = self._downloader()
            name = self.url.full_key(key)
            if size_hint is not None and downloader.ranged.wanted(size_hint):
                size, generation = downloader.fetch_ranged(name, key, out, size_hint, check=not checked_by_caller)
            else:
                size, generation = downloader.fetch(name, key, out, check=not checked_by_caller)
            return Fetched(size=size, token=generation)
        blob = self._bucket.blob(self.url.full_key(key))
        start = out.tell()
        for attempt in range(BODY_ATTEMPTS):
            try:
                self._guard("download", key, lambda: blob.download_to_file(out, retry=RETRY))
                return Fetched(size=out.tell() - start, token=str(blob.generation))
            except _DataCorruption:
                out.seek(start)
                out.truncate()
                if attempt + 1 == BODY_ATTEMPTS:
                    raise Unavailable(
                        f"download {self.url.object_url(key)}: the body did not match the object's checksum "
                        f"in {BODY_ATTEMPTS} reads"
                    ) from None
        raise AssertionError("unreachable")

    def _downloader(self) -> GcsDownloader:
        """The media-download data plane (see stores/gcs_data.py), made on first use, on the client's
        credentials and endpoint."""
        with self._lock:
            if self._data is None:
                base_url = self._emulator or self._client._connection.API_BASE_URL
                if base_url and "://" not in base_url:
                    base_url = f"http://{base_url}"
                self._data = GcsDownloader(
                    self.url.bucket,
                    base_url=base_url,
                    credentials=self._client._credentials,
                    concurrency=self._concurrency,
                    where=self.url.object_url,
                    denied=lambda key: AccessDenied(
                        f"access denied: download {self.url.object_url(key)}; credentials from {self._source}; "
                        f"the caller needs {_PERMISSIONS['download']} on it"
                    ),
                )
            return self._data

    def head(self, key: str) -> Head:
        blob = self._guard("head", key, lambda: self._bucket.get_blob(self.url.full_key(key), retry=RETRY))
        if blob is None:
            raise NotFound(f"{self.url.object_url(key)}: not found")
        md5 = base64.b64decode(blob.md5_hash).hex() if blob.md5_hash else None
        return Head(size=int(blob.size or 0), token=str(blob.generation), md5=md5, last_modified=blob.updated)

    def delete(self, key: str, *, if_token: str) -> None:
        blob = self._bucket.blob(self.url.full_key(key))
        self._guard("delete", key, lambda: blob.delete(if_generation_match=int(if_token), retry=RETRY))

    def upload(self, key: str, body: UploadBody, *, if_absent: bool = False, if_token: str | None = None) -> str:
        blob = self._bucket.blob(self.url.full_key(key))
        generation: int | None = 0 if if_absent else (int(if_token) if if_token is not None else None)
        self._guard(
            "upload",
            key,
            lambda: blob.upload_from_file(
                body,
                size=body.size,
                content_type="application/octet-stream",
                if_generation_match=generation,
                retry=RETRY,
            ),
        )
        return str(blob.generation)

    def close(self) -> None:
        if self._data is not None:
            self._data.close()
        self._client.close()

    # -- server-side copy (seed) ---------------------------------------------------------------
    def can_copy_from(self, source: object) -> bool:
        """A bucket of the same service (the same emulator, or GCS itself), reached with the same settings:
        the destination's identity is the one that reads the source during a rewrite."""
        return (
            isinstance(source, GcsStore) and source._emulator == self._emulator and source._settings == self._settings
        )

    def copy_from(
        self, source: object, key: str, *, size: int, if_absent: bool = False, if_token: str | None = None
    ) -> str:
        """``rewrite`` from the source bucket, repeated with its rewrite token until GCS says it is done
        (a big object, or one that changes location or storage class, takes several calls); no byte
        passes through this machine. The generation condition travels on every call."""
        assert isinstance(source, GcsStore)
        target = self._bucket.blob(self.url.full_key(key))
        origin = source._bucket.blob(source.url.full_key(key))
        generation: int | None = 0 if if_absent else (int(if_token) if if_token is not None else None)
        token: str | None = None
        try:
            while True:
                token, _, _ = self._guard(
                    "copy",
                    key,
                    lambda resume=token: target.rewrite(
                        origin, token=resume, if_generation_match=generation, retry=RETRY
                    ),
                )
                if token is None:
                    return str(target.generation)
        except AccessDenied:
            raise AccessDenied(
                f"access denied: rewrite {source.url.object_url(key)} to {self.url.object_url(key)}; credentials "
                f"from {self._source}; the caller needs storage.objects.get on the source and "
                "storage.objects.create (and storage.objects.delete to replace) on the destination"
            ) from None
        except NotFound:
            raise NotFound(f"{source.url.object_url(key)}: not found") from None

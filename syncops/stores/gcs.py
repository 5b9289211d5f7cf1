"""Google Cloud Storage through google-cloud-storage: Application Default Credentials (anonymous
under ``STORAGE_EMULATOR_HOST`` unless credentials are configured), ``ifGenerationMatch`` for
conditional writes, and every call paced by :mod:`syncops.retry` (the library's own retries are off:
``retry=None`` on each call), so GCS backs off, honours ``Retry-After`` and counts attempts exactly
as S3 does. As Google documents, an upload is retried only when it is conditional (a generation
match makes it idempotent); an unconditional one gets one attempt. A resumable upload's ``308
Resume Incomplete`` answers are its protocol, handled inside the library, never seen here.

Reads of whole objects (the index, the lock, data) go through the media-download data plane
(stores/gcs_data.py), and the library is loaded and its client made on the first call that needs it
(a listing, a write, a head, a copy): a hydrate of an indexed datastore never imports it, which is a
fifth of that command's CPU for 1,000 small objects (google-cloud-storage, requests, google-api-core
and grpc take 0.2-0.3 s to import).
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from google.auth.exceptions import DefaultCredentialsError, RefreshError, TransportError

from syncops import environment, retry, timeouts
from syncops.errors import (
    AccessDenied,
    ConditionUnsupported,
    NotFound,
    PreconditionFailed,
    StoreError,
    Unavailable,
)
from syncops.stores.base import Blob, DatastoreUrl, Fetched, Head, ObjectInfo, PageTokens, UploadBody, spooled
from syncops.stores.gcs_credentials import configured_credentials
from syncops.stores.gcs_data import GcsDownloader, data_plane_enabled
from syncops.stores.httpconn import http_date
from syncops.stores.settings import StoreSettings

if TYPE_CHECKING:
    from google.cloud import storage

LIST_PAGE_SIZE = 1000
_DEFAULT_UNIVERSE = "googleapis.com"
#: Start no retry of a request after this long of retrying (besides the attempt budget);
#: ``SYNCOPS_GCS_RETRY_TIMEOUT`` (seconds) overrides it, e.g. so tests of a persistent outage fail fast.
RETRY_TIMEOUT = 60.0


def _retry_timeout_from_environment() -> float:
    return environment.number("SYNCOPS_GCS_RETRY_TIMEOUT", RETRY_TIMEOUT, minimum=0, above=True)


def decide(exc: Exception) -> retry.Decision:
    """The retry policy's view of one failed call: the HTTP status, the error's reason (e.g.
    ``rateLimitExceeded``) and ``Retry-After``, or the exception of a request that got no answer."""
    from google.api_core import exceptions as gexc

    if isinstance(exc, gexc.GoogleAPICallError) and isinstance(exc.code, int):
        headers = getattr(exc.response, "headers", None) or {}
        return retry.classify(exc.code, _reason(exc), retry_after=headers.get("Retry-After"))
    return retry.classify(None, exc=exc)


def _reason(exc: Any) -> str:
    """The JSON API's ``error.errors[].reason`` (e.g. ``rateLimitExceeded``): parsed by the library for
    metadata calls, left in the response body of media uploads and downloads."""
    errors = list(exc.errors or ())
    if not errors:
        try:
            errors = exc.response.json()["error"]["errors"]  # type: ignore[union-attr]
        except Exception:
            errors = []
    for error in errors if isinstance(errors, list) else ():
        if isinstance(error, dict) and isinstance(error.get("reason"), str):
            return str(error["reason"])
    return exc.reason or ""


_BUCKET_METADATA_SWITCH = "DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA"
#: The scopes google-cloud-storage asks for (``storage.Client.SCOPE``), applied the way it applies them,
#: so the data plane and the library share one credentials object and its token.
_SCOPES = (
    "https://www.googleapis.com/auth/cloud-platform",
    "https://www.googleapis.com/auth/devstorage.full_control",
    "https://www.googleapis.com/auth/devstorage.read_only",
    "https://www.googleapis.com/auth/devstorage.read_write",
)

_PERMISSIONS = {
    "get": "storage.objects.get",
    "download": "storage.objects.get",
    "head": "storage.objects.get",
    "put": "storage.objects.create (and storage.objects.delete to replace)",
    "upload": "storage.objects.create (and storage.objects.delete to replace)",
    "list": "storage.objects.list",
    "delete": "storage.objects.delete",
}


def _timed_adapter(*, pool_maxsize: int) -> Any:
    """A requests adapter that gives every request of the session syncops's connect and read timeouts
    (syncops/timeouts.py), whatever timeout the library passes per call (its default is 60 s for both)."""
    import requests

    class TimedAdapter(requests.adapters.HTTPAdapter):
        def __init__(self, **kwargs: Any) -> None:
            self._timeout = (timeouts.connect(), timeouts.read())
            super().__init__(**kwargs)

        def send(self, request: Any, stream: bool = False, timeout: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
            return super().send(request, stream=stream, timeout=self._timeout, **kwargs)

    return TimedAdapter(pool_connections=4, pool_maxsize=pool_maxsize)


class GcsStore:
    def __init__(self, url: DatastoreUrl, *, concurrency: int = 32, settings: StoreSettings | None = None) -> None:
        self.url = url
        self._settings = settings or StoreSettings()
        self._emulator = os.environ.get("STORAGE_EMULATOR_HOST")
        # The library fetches bucket metadata in the background for trace attributes: one extra
        # request per bucket that needs storage.buckets.get, which least-privilege workloads lack.
        os.environ.setdefault(_BUCKET_METADATA_SWITCH, "true")
        self._source = "Application Default Credentials"
        self._policy = retry.RetryPolicy(
            attempts=retry.attempts_from_environment(), deadline=_retry_timeout_from_environment()
        )
        try:
            self._credentials, self._project = self._find_credentials()
        except DefaultCredentialsError as exc:
            raise AccessDenied(
                f"no Google credentials for {url}: {exc} "
                "(run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS)"
            ) from None
        self._concurrency = concurrency
        self._lock = threading.RLock()  # the data plane may make the client to learn its endpoint
        self._library: tuple[storage.Client, storage.Bucket] | None = None
        self._data: GcsDownloader | None = None

    def _find_credentials(self) -> tuple[Any, str]:
        """The credentials (scoped as the library scopes them) and project, and where they came from."""
        import google.auth
        from google.auth.credentials import AnonymousCredentials, with_scopes_if_required

        project = (
            self._settings.gcp_project or os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCLOUD_PROJECT")
        )
        configured = configured_credentials(self._settings)
        if configured is not None:  # given explicitly: used against an emulator too
            credentials, self._source, key_project = configured
            return with_scopes_if_required(credentials, _SCOPES), project or key_project or "-"
        if self._emulator and not os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"):
            self._source = f"anonymous (emulator at {self._emulator})"
            return AnonymousCredentials(), project or "syncops-local"
        credentials, detected_project = google.auth.default()
        if os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"):
            self._source = "the key file in GOOGLE_APPLICATION_CREDENTIALS"
        elif type(credentials).__module__.startswith("google.auth.compute_engine"):
            self._source = "the instance's service account (metadata server)"
        else:
            self._source = "Application Default Credentials (gcloud)"
        return with_scopes_if_required(credentials, _SCOPES), project or detected_project or "-"

    def _made(self) -> tuple[storage.Client, storage.Bucket]:
        """The library's client and bucket, made on first use (see the module's docstring)."""
        with self._lock:
            if self._library is None:
                from google.cloud import storage

                client = storage.Client(project=self._project, credentials=self._credentials)
                # Size the HTTP connection pool to the transfer pool, or threads queue for sockets.
                adapter = _timed_adapter(pool_maxsize=max(10, self._concurrency + 4))
                http = client._http  # the library's own authorized session
                http.mount("https://", adapter)
                http.mount("http://", adapter)
                self._library = client, client.bucket(self.url.bucket)
            return self._library

    @property
    def _client(self) -> storage.Client:
        return self._made()[0]

    @property
    def _bucket(self) -> storage.Bucket:
        return self._made()[1]

    def credential_source(self) -> str:
        return self._source

    def _translate(self, exc: Exception, operation: str, key: str | None) -> Exception:
        import requests
        from google.api_core import exceptions as gexc

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

    def _guard(
        self,
        operation: str,
        key: str | None,
        call: Any,
        *,
        retriable: bool = True,
        rewind: Callable[[], object] | None = None,
    ) -> Any:
        """``call()`` paced by the retry policy (once only when not ``retriable``), its failure translated."""
        where = self.url.object_url(key) if key is not None else str(self.url)
        try:
            if not retriable:
                return call()
            return self._policy.call(call, decide, what=f"{operation} {where}", rewind=rewind)
        except Exception as exc:
            raise self._translate(exc, operation, key) from None

    # -- contract ------------------------------------------------------------------------------
    def get(self, key: str) -> Blob:
        """The whole object, its generation and its time (``Last-Modified``: the lock's age comes with its
        bytes), read through the data plane and checked against its crc32c/md5."""
        try:
            data, generation, modified = self._downloader().read(self.url.full_key(key), key)
        except AccessDenied:
            raise self._denied("get", key) from None
        return Blob(data=data, token=generation, last_modified=http_date(modified))

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
                    data, content_type=content_type, if_generation_match=generation, retry=None
                ),
                retriable=generation is not None,
            )
            return str(blob.generation)
        # A stream of chunks is spooled to a seekable body the library can size and rewind to retry.
        body, size = spooled(data)
        with body:
            self._guard(
                "put",
                key,
                lambda: blob.upload_from_file(
                    body, size=size, content_type=content_type, if_generation_match=generation, retry=None
                ),
                retriable=generation is not None,
                rewind=lambda: body.seek(0),
            )
        return str(blob.generation)

    def list(self) -> Iterator[ObjectInfo]:
        # One call per page (a fresh iterator from the page's token), so each page is paced and
        # retried on its own; a failed page of the library's iterator could not be asked for again.
        prefix = f"{self.url.prefix}/" if self.url.prefix else ""
        tokens = PageTokens(f"gs://{self.url.bucket}/{prefix}")

        def page(token: str | None) -> tuple[list[Any], str | None]:
            blobs = self._client.list_blobs(
                self._bucket,
                prefix=prefix or None,
                page_size=LIST_PAGE_SIZE,
                page_token=token,
                fields="items(name,size,updated),nextPageToken",
                retry=None,
            )
            first = next(blobs.pages, None)
            return (list(first) if first is not None else []), blobs.next_page_token

        token: str | None = None
        while True:
            items, following = self._guard("list", None, lambda asked=token: page(asked))
            # Checked before the next request is made: an empty or repeated token is a lie.
            token = tokens.next(following is not None, following)
            for blob in items:
                if not isinstance(blob.name, str) or blob.updated is None:
                    raise Unavailable(
                        f"listing {tokens.where}: page {tokens.page} has an object without a name or modification "
                        "time; stopped rather than use an incomplete listing"
                    )
                if blob.name == prefix:
                    continue  # a console's folder object for the prefix itself, not data
                yield ObjectInfo(key=blob.name[len(prefix) :], size=int(blob.size or 0), last_modified=blob.updated)
            del items
            if token is None:
                return

    def download(
        self, key: str, out: BinaryIO, *, checked_by_caller: bool = False, size_hint: int | None = None
    ) -> Fetched:
        """Stream one object into ``out``, checked against the object's crc32c/md5 (or by the caller's
        sha256). Through the media-download data plane (stores/gcs_data.py; parallel ranges for a large
        ``size_hint``), or, with ``SYNCOPS_GCS_DATA_PLANE=library``, through the library: there a failed
        request and a body that broke off or failed its checksum are retried whole, from byte 0 of
        ``out`` (its writer takes back the progress it reported), each on its budget
        (:class:`syncops.retry.Transfer`); a bad body is never kept."""
        if data_plane_enabled():
            downloader = self._downloader()
            name = self.url.full_key(key)
            if size_hint is not None and downloader.ranged.wanted(size_hint):
                size, generation = downloader.fetch_ranged(name, key, out, size_hint, check=not checked_by_caller)
            else:
                size, generation = downloader.fetch(name, key, out, check=not checked_by_caller)
            return Fetched(size=size, token=generation)
        from google.cloud.storage.exceptions import DataCorruption

        blob = self._bucket.blob(self.url.full_key(key))
        start = out.tell()
        transfer = retry.Transfer(self._policy, f"download {self.url.object_url(key)}")
        while True:
            try:
                blob.download_to_file(out, retry=None)
                return Fetched(size=out.tell() - start, token=str(blob.generation))
            except DataCorruption:
                decision, in_body = retry.BROKEN_BODY, True
                error: Exception = Unavailable(
                    f"download {self.url.object_url(key)}: the body did not match the object's checksum "
                    f"in {transfer.body_failures + 1} reads"
                )
            except Exception as exc:
                decision, in_body = decide(exc), out.tell() != start
                error = self._translate(exc, "download", key)
            if not transfer.again(decision, in_body=in_body):
                raise error from None
            out.seek(start)
            out.truncate()

    def _downloader(self) -> GcsDownloader:
        """The media-download data plane (see stores/gcs_data.py), made on first use, on the client's
        credentials and endpoint."""
        with self._lock:
            if self._data is None:
                self._data = GcsDownloader(
                    self.url.bucket,
                    base_url=self._data_base_url(),
                    credentials=self._credentials,
                    concurrency=self._concurrency,
                    policy=self._policy,
                    where=self.url.object_url,
                    denied=lambda key: self._denied("download", key),
                )
            return self._data

    def _denied(self, operation: str, key: str) -> AccessDenied:
        return AccessDenied(
            f"access denied: {operation} {self.url.object_url(key)}; credentials from {self._source}; "
            f"the caller needs {_PERMISSIONS[operation]} on it"
        )

    def _data_base_url(self) -> str:
        """The endpoint the library would use: the emulator, GCS itself, or (an endpoint override,
        mutual TLS, another universe) whatever the library's client works out."""
        if self._emulator:
            base = self._emulator
        elif (
            not os.environ.get("API_ENDPOINT_OVERRIDE")
            and os.environ.get("GOOGLE_API_USE_CLIENT_CERTIFICATE", "").strip().lower() != "true"
            and getattr(self._credentials, "universe_domain", _DEFAULT_UNIVERSE) == _DEFAULT_UNIVERSE
        ):
            base = "https://storage.googleapis.com"
        else:
            base = self._client._connection.API_BASE_URL
        return base if "://" in base else f"http://{base}"

    def head(self, key: str) -> Head:
        blob = self._guard("head", key, lambda: self._bucket.get_blob(self.url.full_key(key), retry=None))
        if blob is None:
            raise NotFound(f"{self.url.object_url(key)}: not found")
        md5 = base64.b64decode(blob.md5_hash).hex() if blob.md5_hash else None
        return Head(size=int(blob.size or 0), token=str(blob.generation), md5=md5, last_modified=blob.updated)

    def delete(self, key: str, *, if_token: str) -> None:
        blob = self._bucket.blob(self.url.full_key(key))
        self._guard("delete", key, lambda: blob.delete(if_generation_match=int(if_token), retry=None))

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
                retry=None,
            ),
            retriable=generation is not None,
            rewind=lambda: body.seek(0),
        )
        return str(blob.generation)

    def close(self) -> None:
        if self._data is not None:
            self._data.close()
        if self._library is not None:
            self._library[0].close()

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
                        origin, token=resume, if_generation_match=generation, retry=None
                    ),
                    retriable=generation is not None,
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

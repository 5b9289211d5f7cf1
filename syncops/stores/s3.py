"""S3 through boto3: the standard credential chain, botocore's ``standard`` retry mode on every call
(listing pages included), listings read page by page with every continuation token checked, and
``If-None-Match`` / ``If-Match`` on PutObject for conditional writes.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import random
import re
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime
from typing import Any, BinaryIO

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
from syncops.stores.s3_data import (
    Lazy,
    ObstoreDownloader,
    WrongRegion,
    data_plane_enabled,
    environment_credentials,
    session_credentials,
)
from syncops.stores.s3_session import ROLE_CHAIN_METHOD, new_session
from syncops.stores.settings import StoreSettings

#: Attempts per request (first try included) under botocore's standard retry mode; botocore's own
#: ``AWS_MAX_ATTEMPTS`` variable overrides it (tests lower it so a persistent failure fails fast).
MAX_ATTEMPTS = 6
#: Whole re-reads of an object whose body broke off mid-stream (botocore retries only the request).
BODY_ATTEMPTS = 4
LIST_PAGE_SIZE = 1000
#: Objects above this are uploaded in parts.
MULTIPART_THRESHOLD = 64 * 1024 * 1024
PART_SIZE = 16 * 1024 * 1024
PARTS_IN_FLIGHT = 4
#: CopyObject copies objects up to S3's limit of 5 GiB in one request; bigger ones are copied in parts.
COPY_OBJECT_LIMIT = 5 * 1024**3
#: Each UploadPartCopy copies this much (S3 allows 10,000 parts: objects up to 5 TiB).
COPY_PART_SIZE = 512 * 1024**2
#: An ETag that is the MD5 of the body: single-part uploads without SSE-KMS/SSE-C.
_PLAIN_ETAG = re.compile(r'"?[0-9a-f]{32}"?')

_DENIED_CODES = {
    "AccessDenied",
    "Forbidden",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "AllAccessDisabled",
    "AccountProblem",
    "401",
    "403",
}
_PERMISSIONS = {
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "ListObjectsV2": "s3:ListBucket",
    "DeleteObject": "s3:DeleteObject (granted on the lock object only)",
}
_CREDENTIAL_METHODS = {
    "env": "environment variables (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)",
    "shared-credentials-file": "the shared credentials file",
    "config-file": "the AWS config file",
    "iam-role": "the instance role (EC2 instance metadata)",
    "container-role": "the container role (ECS/EKS credentials endpoint)",
    "assume-role": "an assumed role (AWS config profile)",
    "assume-role-with-web-identity": "a web-identity role (AWS_WEB_IDENTITY_TOKEN_FILE)",
    "sso": "AWS SSO",
    "custom-process": "a credential_process",
    "explicit": "access keys given to syncops explicitly",
    ROLE_CHAIN_METHOD: "an assumed role chain (role ARNs given to syncops explicitly)",
}


@functools.cache
def _boto_errors() -> Any:
    """botocore's exception module, imported on first use: ~40 ms a hydrate through obstore never pays."""
    from botocore import exceptions

    return exceptions


@functools.cache
def _body_errors() -> tuple[type[Exception], ...]:
    """What a response body that broke off mid-stream raises (botocore retries only the request)."""
    bx = _boto_errors()
    return (bx.ResponseStreamingError, bx.ReadTimeoutError, bx.ConnectionError, _protocol_error(), ConnectionError)


@functools.cache
def _protocol_error() -> type[Exception]:
    """urllib3's error for a connection broken mid-response (urllib3 comes with botocore)."""
    from urllib3.exceptions import ProtocolError

    return ProtocolError


def max_attempts_from_environment() -> int:
    text = os.environ.get("AWS_MAX_ATTEMPTS", "").strip()
    if not text:
        return MAX_ATTEMPTS
    try:
        attempts = int(text)
    except ValueError:
        attempts = 0
    if attempts < 1:
        raise BadInput(f"AWS_MAX_ATTEMPTS={text!r}: expected a whole number of attempts, at least 1")
    return attempts


def endpoint_from_environment() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


class S3Store:
    """boto3 for the control plane (listings, conditional writes, error details), obstore for bytes.

    Neither SDK client is made before it is needed: a hydrate of an indexed datastore with
    credentials in the environment reads the index and the objects through obstore and never
    loads boto3, which costs more start-up time (~0.25 s) than a small hydrate spends moving data.
    """

    def __init__(
        self,
        url: DatastoreUrl,
        *,
        endpoint_url: str | None = None,
        concurrency: int = 32,
        settings: StoreSettings | None = None,
    ) -> None:
        self.url = url
        self.bucket = url.bucket
        self._settings = settings or StoreSettings()
        self._endpoint = endpoint_url or self._settings.aws_endpoint or endpoint_from_environment()
        self._concurrency = concurrency
        self._attempts = max_attempts_from_environment()
        self._boto_session: Lazy[Any] = Lazy(functools.partial(new_session, self._settings))
        self._boto_client: Lazy[Any] = Lazy(self._new_client)
        self._fast_downloads = data_plane_enabled()
        self._downloader: Lazy[ObstoreDownloader] = Lazy(self._new_downloader)

    @property
    def _session(self) -> Any:
        return self._boto_session.get()

    @property
    def _client(self) -> Any:
        return self._boto_client.get()

    #: Cleared when the bucket turns out to encrypt with KMS (ETags are then not MD5s).
    _etag_is_md5 = True

    def _region(self) -> str:
        from_env = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        return self._settings.aws_region or from_env or self._session.region_name or "us-east-1"

    def _new_client(self) -> Any:
        from botocore.config import Config

        config = Config(
            retries={"mode": "standard", "total_max_attempts": self._attempts},  # first try included
            max_pool_connections=max(10, self._concurrency + 4),
            connect_timeout=10,
            read_timeout=60,
            # A custom endpoint (SeaweedFS, MinIO, a proxy) rarely resolves bucket subdomains.
            s3={"addressing_style": "path"} if self._endpoint else None,
        )
        return self._session.client("s3", endpoint_url=self._endpoint, region_name=self._region(), config=config)

    def _new_downloader(self) -> ObstoreDownloader:
        # Keys in the environment are boto3's first choice only when no profile, keys or role were given.
        from_environment = None if self._settings.selects_aws_credentials else environment_credentials()
        credentials = from_environment or session_credentials(
            self._session, lambda: self._translate(_boto_errors().NoCredentialsError(), "GetObject", None)
        )
        endpoint = self._endpoint
        if endpoint is None:
            # boto3 may take an endpoint from the AWS config file: both clients must reach one server.
            configured = str(self._client.meta.endpoint_url)
            endpoint = None if ".amazonaws.com" in configured else configured
        return ObstoreDownloader(
            self.bucket,
            credentials=credentials,
            region=self._region(),
            endpoint=endpoint,
            attempts=self._attempts,
            body_attempts=BODY_ATTEMPTS,
            concurrency=self._concurrency,
            where=self.url.object_url,
            denied=self._denied,
        )

    # -- error translation ---------------------------------------------------------------------
    def credential_source(self) -> str:
        try:
            credentials = self._session.get_credentials()
        except _boto_errors().BotoCoreError:
            return "unreadable AWS configuration"
        if credentials is None:
            return "no credentials found (anonymous)"
        source = _CREDENTIAL_METHODS.get(credentials.method, credentials.method)
        profile = self._session.profile_name
        if credentials.method in ("shared-credentials-file", "config-file", "assume-role", "sso") and profile:
            source += f", profile {profile!r}"
        return source

    def _translate(self, exc: Exception, operation: str, key: str | None) -> Exception:
        where = self.url.object_url(key) if key is not None else f"s3://{self.bucket}/{self.url.prefix}"
        bx = _boto_errors()
        if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError)):
            return AccessDenied(
                f"access denied: {operation} {where}: no AWS credentials found "
                "(set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with an instance role)"
            )
        if isinstance(exc, bx.ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchKey", "NotFound") or (status == 404 and code != "NoSuchBucket"):
                return NotFound(f"{where}: not found")
            if code == "NoSuchBucket":
                return StoreError(f"{operation} {where}: bucket {self.bucket!r} does not exist")
            if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
                return PreconditionFailed(f"{operation} {where}: precondition failed ({code or status})")
            if code == "NotImplemented" or status == 501:
                return ConditionUnsupported(f"{operation} {where}: {code or status} {error.get('Message', '')}")
            if code in _DENIED_CODES or status in (401, 403):
                return self._denied(operation, key or "", code or str(status))
            if status is not None and (status >= 500 or status == 429) or "Throttl" in code or "SlowDown" in code:
                return Unavailable(f"{operation} {where}: {code or status} after {self._attempts} attempts")
            return StoreError(f"{operation} {where} failed: {code or status} {error.get('Message', '')}".rstrip())
        if isinstance(exc, (bx.BotoCoreError, *_body_errors())):
            return Unavailable(f"{operation} {where}: {exc} (after {self._attempts} attempts)")
        return exc

    def _call(self, operation: str, key: str | None, **kwargs: Any) -> Any:
        method = {"GetObject": self._client.get_object, "PutObject": self._client.put_object}[operation]
        failures = 0
        while True:
            try:
                return method(Bucket=self.bucket, **kwargs)
            except _protocol_error() as exc:
                # For GetObject (a streaming operation) botocore reads the body of an *error* answer
                # (a 404, a 503) outside its retry loop, so a connection broken in that body arrives
                # here raw, unretried. Retry it within the same budget; a 404 needs its body to be
                # told from other errors, so it is never guessed.
                failures += 1
                if operation != "GetObject" or failures >= self._attempts:
                    raise self._translate(exc, operation, key) from None
                time.sleep(random.random() * min(0.05 * 2**failures, 20.0))
            except Exception as exc:
                raise self._translate(exc, operation, key) from None

    # -- contract ------------------------------------------------------------------------------
    def get(self, key: str) -> Blob:
        buffer = io.BytesIO()
        fetched, modified = self._download(key, buffer)
        return Blob(data=buffer.getvalue(), token=fetched.token, last_modified=modified)

    def put(
        self, key: str, data: bytes | Iterable[bytes], *, if_absent: bool = False, if_token: str | None = None
    ) -> str:
        conditions = _conditions(if_absent, if_token)
        content_type = "application/json" if key.endswith(".json") else "application/octet-stream"
        if isinstance(data, bytes):
            response = self._call(
                "PutObject", key, Key=self.url.full_key(key), Body=data, ContentType=content_type, **conditions
            )
            return str(response["ETag"])
        # A stream of chunks is spooled to a seekable body: botocore needs its length and rewinds
        # it to retry.
        body, _ = spooled(data)
        with body:
            response = self._call(
                "PutObject", key, Key=self.url.full_key(key), Body=body, ContentType=content_type, **conditions
            )
        return str(response["ETag"])

    def list(self) -> Iterator[ObjectInfo]:
        # Pages are asked for one by one rather than through botocore's paginator, which ends
        # quietly when a page says "truncated" without a token (see PageTokens). Each page is one
        # client call, so the standard retry mode still covers every page.
        prefix = f"{self.url.prefix}/" if self.url.prefix else ""
        request: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": LIST_PAGE_SIZE}
        tokens = PageTokens(f"s3://{self.bucket}/{prefix}")
        while True:
            try:
                page = self._client.list_objects_v2(**request)
            except Exception as exc:
                raise self._translate(exc, "ListObjectsV2", None) from None
            token = tokens.next(page.get("IsTruncated") is True, page.get("NextContinuationToken"))
            contents = page.pop("Contents", ())
            del page  # only the entries are kept while they are consumed
            for item in contents:
                key, size, modified = item.get("Key"), item.get("Size"), item.get("LastModified")
                if not isinstance(key, str) or not isinstance(size, int) or not isinstance(modified, datetime):
                    raise Unavailable(
                        f"listing {tokens.where}: page {tokens.page} has an object without a key, size or "
                        "modification time; stopped rather than use an incomplete listing"
                    )
                if key == prefix:
                    continue  # a console's folder object for the prefix itself, not data
                yield ObjectInfo(key=key[len(prefix) :], size=size, last_modified=modified)
            if token is None:
                return
            request["ContinuationToken"] = token

    def _denied(self, operation: str, key: str, code: str = "") -> AccessDenied:
        where = self.url.object_url(key) if key else f"s3://{self.bucket}/{self.url.prefix}"
        permission = _PERMISSIONS.get(operation, f"s3:{operation}")
        return AccessDenied(
            f"access denied{f' ({code})' if code else ''}: {operation} {where}; credentials from "
            f"{self.credential_source()}; the caller needs {permission} on it"
        )

    def download(
        self, key: str, out: BinaryIO, *, checked_by_caller: bool = False, size_hint: int | None = None
    ) -> Fetched:
        """Stream one object into ``out``, checked against its ETag when that is the body's MD5 (unless the
        caller checks a sha256 itself: MD5 is a hash pass of its own, as costly as the sha256's).
        A large ``size_hint`` reads the object in parallel ranges (same bytes, in order)."""
        if checked_by_caller:
            written, etag, _ = self._fetch(key, out, size_hint)
            return Fetched(size=written, token=etag)
        return self._download(key, out, size_hint)[0]

    def _download(self, key: str, out: BinaryIO, size_hint: int | None = None) -> tuple[Fetched, datetime | None]:
        start = out.tell()
        for attempt in range(BODY_ATTEMPTS):
            checked = _Md5Writer(out)
            written, etag, modified = self._fetch(key, checked, size_hint)  # type: ignore[arg-type]
            if not self._etag_is_md5 or not _PLAIN_ETAG.fullmatch(etag) or checked.hexdigest() == etag.strip('"'):
                return Fetched(size=written, token=etag), modified
            if self._encrypted_with_kms(key):
                # SSE-KMS and SSE-C ETags are not MD5s of the data: nothing to check against.
                self._etag_is_md5 = False
                return Fetched(size=written, token=etag), modified
            out.seek(start)
            out.truncate()
            if attempt + 1 < BODY_ATTEMPTS:
                time.sleep(random.random() * 0.2 * 2**attempt)
        raise Unavailable(
            f"GetObject {self.url.object_url(key)}: the body did not match its ETag (MD5) in {BODY_ATTEMPTS} reads"
        )

    def _encrypted_with_kms(self, key: str) -> bool:
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=self.url.full_key(key))
        except Exception as exc:
            raise self._translate(exc, "HeadObject", key) from None
        return str(head.get("ServerSideEncryption", "")).startswith("aws:kms") or bool(head.get("SSECustomerAlgorithm"))

    def head(self, key: str) -> Head:
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=self.url.full_key(key))
        except Exception as exc:
            raise self._translate(exc, "HeadObject", key) from None
        etag = str(head["ETag"])
        kms = str(head.get("ServerSideEncryption", "")).startswith("aws:kms") or bool(head.get("SSECustomerAlgorithm"))
        md5 = etag.strip('"') if _PLAIN_ETAG.fullmatch(etag) and not kms else None
        return Head(size=int(head["ContentLength"]), token=etag, md5=md5, last_modified=head.get("LastModified"))

    def delete(self, key: str, *, if_token: str) -> None:
        """DeleteObject with ``If-Match``; a server that refuses the condition itself (501) gets the plain
        delete, which the caller's read of the object (swamp's release) has already vouched for."""
        try:
            try:
                self._client.delete_object(Bucket=self.bucket, Key=self.url.full_key(key), IfMatch=if_token)
            except Exception as exc:
                error = self._translate(exc, "DeleteObject", key)
                if not isinstance(error, ConditionUnsupported):
                    raise error from None
                self._client.delete_object(Bucket=self.bucket, Key=self.url.full_key(key))
        except Exception as exc:
            raise self._translate(exc, "DeleteObject", key) from None

    def _fetch(self, key: str, out: BinaryIO, size_hint: int | None = None) -> tuple[int, str, datetime | None]:
        """Stream one object into ``out``; returns the byte count, the ETag and LastModified."""
        start = out.tell()
        if self._fast_downloads:
            # Object bytes go through the Rust data plane (see stores/s3_data.py); same errors.
            try:
                downloader = self._downloader.get()
                if size_hint is not None and downloader.ranged.wanted(size_hint):
                    return downloader.fetch_ranged(self.url.full_key(key), key, out, size_hint)
                return downloader.fetch(self.url.full_key(key), key, out)
            except WrongRegion:
                self._fast_downloads = False  # boto3 follows the redirect, from now on for every object
                out.seek(start)
                out.truncate()
        for attempt in range(BODY_ATTEMPTS):
            response = self._call("GetObject", key, Key=self.url.full_key(key))
            try:
                written = 0
                for chunk in response["Body"].iter_chunks(1 << 20):
                    out.write(chunk)
                    written += len(chunk)
                return written, str(response["ETag"]), response.get("LastModified")
            except _body_errors() as exc:
                if attempt + 1 == BODY_ATTEMPTS:
                    raise self._translate(exc, "GetObject", key) from None
                out.seek(start)
                out.truncate()
                time.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    def upload(self, key: str, body: UploadBody, *, if_absent: bool = False, if_token: str | None = None) -> str:
        conditions = _conditions(if_absent, if_token)
        if body.size <= MULTIPART_THRESHOLD:
            response = self._call(
                "PutObject",
                key,
                Key=self.url.full_key(key),
                Body=body,
                ContentLength=body.size,
                ContentType="application/octet-stream",
                **conditions,
            )
            return str(response["ETag"])
        return self._multipart_upload(key, body, conditions)

    def _multipart_upload(self, key: str, body: UploadBody, conditions: dict[str, str]) -> str:
        """Parts read in order from ``body`` (so it hashes in one pass), up to PARTS_IN_FLIGHT sent at
        once; the condition travels on CompleteMultipartUpload, so a lost race leaves no object."""
        full_key = self.url.full_key(key)
        try:
            upload_id = self._client.create_multipart_upload(
                Bucket=self.bucket, Key=full_key, ContentType="application/octet-stream"
            )["UploadId"]
        except Exception as exc:
            raise self._translate(exc, "PutObject", key) from None
        try:
            etags: list[Future[Any]] = []
            with ThreadPoolExecutor(max_workers=PARTS_IN_FLIGHT, thread_name_prefix="syncops-part") as pool:
                while True:
                    in_flight = [f for f in etags if not f.done()]
                    if len(in_flight) >= PARTS_IN_FLIGHT:
                        wait(in_flight, return_when=FIRST_COMPLETED)
                    data = body.read(PART_SIZE)
                    if not data:
                        break
                    etags.append(
                        pool.submit(
                            self._client.upload_part,
                            Bucket=self.bucket,
                            Key=full_key,
                            UploadId=upload_id,
                            PartNumber=len(etags) + 1,
                            Body=data,
                        )
                    )
                parts = [{"ETag": f.result()["ETag"], "PartNumber": n} for n, f in enumerate(etags, start=1)]
            response = self._client.complete_multipart_upload(
                Bucket=self.bucket, Key=full_key, UploadId=upload_id, MultipartUpload={"Parts": parts}, **conditions
            )
            return str(response["ETag"])
        except BaseException as exc:
            try:
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=full_key, UploadId=upload_id)
            except Exception:
                pass  # the bucket's lifecycle rule aborts incomplete uploads
            if isinstance(exc, Exception):
                raise self._translate(exc, "PutObject", key) from None
            raise

    def close(self) -> None:
        client = self._boto_client.built()
        if client is not None:
            client.close()
        downloader = self._downloader.built()
        if downloader is not None:
            downloader.ranged.close()

    # -- server-side copy (seed) ---------------------------------------------------------------
    def can_copy_from(self, source: object) -> bool:
        """A bucket behind the same endpoint, reached with the same settings: CopyObject is signed by
        the destination's identity, which S3 also checks for read access to the source."""
        return isinstance(source, S3Store) and source._endpoint == self._endpoint and source._settings == self._settings

    def copy_from(
        self, source: object, key: str, *, size: int, if_absent: bool = False, if_token: str | None = None
    ) -> str:
        """CopyObject up to COPY_OBJECT_LIMIT (S3's 5 GiB), UploadPartCopy above it; the condition
        travels on CopyObject or on CompleteMultipartUpload, so a lost race leaves no object."""
        assert isinstance(source, S3Store)
        conditions = _conditions(if_absent, if_token)
        origin = {"Bucket": source.bucket, "Key": source.url.full_key(key)}
        try:
            if size <= COPY_OBJECT_LIMIT:
                response = self._client.copy_object(
                    Bucket=self.bucket, Key=self.url.full_key(key), CopySource=origin, **conditions
                )
                return str(response["CopyObjectResult"]["ETag"])
            return self._multipart_copy(source, key, origin, size, conditions)
        except Exception as exc:
            raise self._copy_error(exc, source, key) from None

    def _multipart_copy(
        self, source: S3Store, key: str, origin: dict[str, str], size: int, conditions: dict[str, str]
    ) -> str:
        """Parts of COPY_PART_SIZE copied server-side (PARTS_IN_FLIGHT at once); the source's content
        type and user metadata are carried over, as CopyObject would."""
        head = self._client.head_object(Bucket=source.bucket, Key=source.url.full_key(key))
        full_key = self.url.full_key(key)
        upload_id = self._client.create_multipart_upload(
            Bucket=self.bucket,
            Key=full_key,
            ContentType=head.get("ContentType", "application/octet-stream"),
            Metadata=head.get("Metadata", {}),
        )["UploadId"]
        ranges = [(start, min(start + COPY_PART_SIZE, size) - 1) for start in range(0, size, COPY_PART_SIZE)]
        try:
            with ThreadPoolExecutor(max_workers=PARTS_IN_FLIGHT, thread_name_prefix="syncops-copy-part") as pool:
                futures = [
                    pool.submit(
                        self._client.upload_part_copy,
                        Bucket=self.bucket,
                        Key=full_key,
                        UploadId=upload_id,
                        PartNumber=number,
                        CopySource=origin,
                        CopySourceRange=f"bytes={first}-{last}",
                    )
                    for number, (first, last) in enumerate(ranges, start=1)
                ]
                parts = [
                    {"ETag": f.result()["CopyPartResult"]["ETag"], "PartNumber": n}
                    for n, f in enumerate(futures, start=1)
                ]
            response = self._client.complete_multipart_upload(
                Bucket=self.bucket, Key=full_key, UploadId=upload_id, MultipartUpload={"Parts": parts}, **conditions
            )
            return str(response["ETag"])
        except BaseException:
            try:
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=full_key, UploadId=upload_id)
            except Exception:
                pass  # the bucket's lifecycle rule aborts incomplete uploads
            raise

    def _copy_error(self, exc: Exception, source: S3Store, key: str) -> Exception:
        """A copy names both ends: which source object was missing, or which identity could not copy."""
        error = self._translate(exc, "CopyObject", key)
        route = f"{source.url.object_url(key)} to {self.url.object_url(key)}"
        if isinstance(error, AccessDenied):
            return AccessDenied(
                f"access denied: CopyObject {route}; credentials from {self.credential_source()}; the caller "
                "needs s3:GetObject (and s3:ListBucket) on the source and s3:PutObject on the destination"
            )
        if isinstance(error, NotFound):
            return NotFound(f"{source.url.object_url(key)}: not found")
        if isinstance(error, (PreconditionFailed, ConditionUnsupported)):
            return error
        return type(error)(f"server-side copy of {route} failed: {error}")


def _conditions(if_absent: bool, if_token: str | None) -> dict[str, str]:
    """The PutObject / CompleteMultipartUpload headers of a create-only or on-version write."""
    conditions: dict[str, str] = {}
    if if_absent:
        conditions["IfNoneMatch"] = "*"
    if if_token is not None:
        conditions["IfMatch"] = if_token
    return conditions


class _Md5Writer:
    """Hashes what passes into ``out`` (rewinds restart the hash: each read is a whole new body)."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._start = out.tell()
        self._md5 = hashlib.md5()

    def write(self, chunk: bytes) -> int:
        self._md5.update(chunk)
        return self._out.write(chunk)

    def seek(self, offset: int, whence: int = 0) -> int:
        position = self._out.seek(offset, whence)
        if position == self._start:
            self._md5 = hashlib.md5()
        return position

    def landed(self, data: Any) -> None:
        """Bytes put in place by ``write_at`` (a ranged download), in order: hashed like written ones."""
        self._md5.update(data)
        self._out.landed(data)  # type: ignore[attr-defined]

    def hexdigest(self) -> str:
        return self._md5.hexdigest()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._out, name)

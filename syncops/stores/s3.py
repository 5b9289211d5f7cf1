"""S3 through boto3: the standard credential chain, :mod:`syncops.retry` pacing every call (hooked
into botocore's ``needs-retry`` event; listing pages included), listings read page by page with every
continuation token checked, and ``If-None-Match`` / ``If-Match`` on PutObject for conditional writes.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime
from typing import Any, BinaryIO, TypeVar

from syncops import retry, timeouts
from syncops.errors import (
    AccessDenied,
    BadInput,
    ConditionUnsupported,
    NotFound,
    PreconditionFailed,
    StoreError,
    Unavailable,
)
from syncops.stores.base import (
    Blob,
    DatastoreUrl,
    Fetched,
    Head,
    ObjectInfo,
    PageTokens,
    UploadBody,
    read_ahead,
    spooled,
)
from syncops.stores.httpconn import http_date
from syncops.stores.s3_data import (
    Lazy,
    ObstoreDownloader,
    WrongRegion,
    announce_version,
    data_plane_enabled,
    environment_credentials,
    session_credentials,
)
from syncops.stores.s3_fast import (
    FAST_PUT_LIMIT,
    LEAN_PAGE,
    ObstoreUploader,
    UnsendableKey,
    register_lean_listing,
)
from syncops.stores.s3_lean import Defer, LeanS3, Signer, usable
from syncops.stores.s3_session import ROLE_CHAIN_METHOD, new_session
from syncops.stores.settings import StoreSettings

T = TypeVar("T")

#: Attempts per request, first try included (see :mod:`syncops.retry`: ``SYNCOPS_MAX_ATTEMPTS`` or the
#: AWS SDKs' ``AWS_MAX_ATTEMPTS`` change it; tests lower it so a persistent failure fails fast).
MAX_ATTEMPTS = retry.MAX_ATTEMPTS
#: Whole re-reads of an object whose body broke off mid-stream or failed its ETag, per download.
BODY_ATTEMPTS = retry.BODY_ATTEMPTS
LIST_PAGE_SIZE = 1000
#: Objects above this are uploaded in parts.
MULTIPART_THRESHOLD = 64 * 1024 * 1024
PART_SIZE = 16 * 1024 * 1024
PARTS_IN_FLIGHT = 4
#: Part buffers of all multipart uploads of one store together: a push of many big files holds at most
#: ``UPLOAD_PART_BUFFERS * PART_SIZE`` (256 MiB) of parts, not ``PARTS_IN_FLIGHT + 1`` parts per file in
#: flight (32 files at once would have held 2.5 GiB).
UPLOAD_PART_BUFFERS = 16
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
    return retry.attempts_from_environment(aws=True)


#: Answers that send the request elsewhere: botocore's region redirector (also a ``needs-retry``
#: handler) decides about them, not the retry policy.
_REDIRECT_STATUSES = (301, 302, 307)
_REDIRECT_CODES = ("PermanentRedirect", "TemporaryRedirect", "AuthorizationHeaderMalformed")


def decide(exc: Exception) -> retry.Decision:
    """The retry policy's view of one failed boto3 call (status, S3 error code, Retry-After)."""
    bx = _boto_errors()
    if isinstance(exc, bx.ClientError):
        meta = exc.response.get("ResponseMetadata", {})
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return retry.classify(
            meta.get("HTTPStatusCode"), code, retry_after=meta.get("HTTPHeaders", {}).get("retry-after")
        )
    return retry.classify(None, exc=exc)


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
        self._policy = retry.RetryPolicy(attempts=self._attempts)
        self._boto_session: Lazy[Any] = Lazy(functools.partial(new_session, self._settings))
        self._boto_client: Lazy[Any] = Lazy(self._new_client)
        self._fast_downloads = data_plane_enabled()
        self._downloader: Lazy[ObstoreDownloader] = Lazy(self._new_downloader)
        self._fast_uploads = self._fast_downloads
        self._uploader: Lazy[ObstoreUploader] = Lazy(self._new_uploader)
        self._upload_slots = threading.BoundedSemaphore(UPLOAD_PART_BUFFERS)
        self._lean: Lazy[LeanS3 | None] = Lazy(self._new_lean)
        self._lean_enabled = True  # off once boto3 had to take a request over (stores/s3_lean.py)

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
            retries={"mode": "standard", "total_max_attempts": 1},  # syncops.retry decides (see _needs_retry)
            max_pool_connections=max(10, self._concurrency + 4),
            connect_timeout=timeouts.connect(),
            read_timeout=timeouts.read(),
            # A custom endpoint (SeaweedFS, MinIO, a proxy) rarely resolves bucket subdomains.
            s3={"addressing_style": "path"} if self._endpoint else None,
        )
        client = self._session.client("s3", endpoint_url=self._endpoint, region_name=self._region(), config=config)
        client.meta.events.register_first("needs-retry.s3", self._needs_retry, unique_id="syncops-retry")
        register_lean_listing(client)
        return client

    def _needs_retry(
        self, response: Any, attempts: int, caught_exception: Exception | None, operation: Any, **kwargs: Any
    ) -> float | None:
        """botocore's ``needs-retry`` handler: :mod:`syncops.retry` decides whether and when a request is
        sent again. botocore's own retries are down to one attempt, so this is the only one that says yes.

        Registered first on ``needs-retry.s3``, so it runs after botocore's ``needs-retry.s3.*`` handler
        that turns a ``200 OK`` carrying an ``<Error>`` (CompleteMultipartUpload, CopyObject,
        UploadPartCopy) into a 500, and before the region redirector: it answers None (no opinion,
        ``first_non_none_response`` moves on) for redirects, for everything it will not retry, and for
        GetObject, which :meth:`_fetch` retries whole (request and body on one budget). When it does
        retry it waits here, through :func:`syncops.retry.pause`, and tells botocore to wait 0 more.
        """
        if operation.name == "GetObject":
            return None
        if response is not None and operation.name == "CompleteMultipartUpload":
            if response[1].get("Error", {}).get("Code") in _RESTART_CODES:
                return None  # the whole upload is started over (_restarted_multipart_upload)
        if response is not None:
            http_response, parsed = response
            status = http_response.status_code
            error = parsed.get("Error", {})
            code = str(error.get("Code", ""))
            if status < 300 or status in _REDIRECT_STATUSES or code in _REDIRECT_CODES:
                return None
            headers = parsed.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            decision = retry.classify(status, code, retry_after=headers.get("retry-after"))
        else:
            decision = retry.classify(None, exc=caught_exception)
        wait = self._policy.delay(attempts, decision)
        if wait is None:
            return None
        path = kwargs.get("request_dict", {}).get("url_path", "")
        retry.pause(retry.Pause(f"{operation.name} {path}", attempts, decision, wait))
        return 0

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

    def _new_lean(self) -> LeanS3 | None:
        """Listings and streamed PUTs without boto3 when this store's setup is one that path handles
        exactly as boto3 would (see stores/s3_lean.py); None otherwise."""
        keys = None if self._settings.selects_aws_credentials else environment_credentials()
        region = self._settings.aws_region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if keys is None or self._endpoint is None or not usable(self._endpoint, region, keys_from_environment=True):
            self._lean_enabled = False
            return None
        given = keys()
        return LeanS3(
            self._endpoint,
            self.bucket,
            signer=Signer(given["access_key_id"], given["secret_access_key"], given["token"], str(region)),
            policy=self._policy,
            page_size=LIST_PAGE_SIZE,
            where=self._where,
            refused=self._lean_refused,
            cafile=os.environ.get("AWS_CA_BUNDLE") or None,
        )

    def _where(self, key: str) -> str:
        return self.url.object_url(key) if key else f"s3://{self.bucket}/{self.url.prefix}"

    def _lean_refused(self, operation: str, key: str, status: int, code: str, region: str) -> Exception | None:
        """Our error for an answer to a request of stores/s3_lean.py, read as :meth:`_translate` reads
        boto3's; None for any other, which boto3 then sends again."""
        return self._answer_error(operation, key, self._where(key), status, code, message="", region=region)

    def _lean_client(self) -> LeanS3 | None:
        return self._lean.get() if self._lean_enabled else None

    def _leanly(self, request: Callable[[LeanS3], T]) -> T | None:
        """``request`` through stores/s3_lean.py when this store goes that way; None when boto3 must send
        it: not that way, or an answer that path leaves to boto3 (then every later request is boto3's)."""
        lean = self._lean_client()
        if lean is None:
            return None
        try:
            return request(lean)
        except Defer:
            self._lean_enabled = False
            return None

    def _new_uploader(self) -> ObstoreUploader:
        return ObstoreUploader(
            self._downloader.get().client, attempts=self._attempts, where=self.url.object_url, denied=self._denied
        )

    def _fast_put(self, key: str, data: bytes | UploadBody, if_absent: bool, if_token: str | None) -> str | None:
        """A small write through obstore (see stores/s3_fast.py); None when it belongs to boto3: a bucket in
        another region, a key obstore will not send as given, or both conditions at once."""
        if not self._fast_uploads or (if_absent and if_token is not None):
            return None
        uploader, full_key = self._uploader.get(), self.url.full_key(key)
        try:
            if isinstance(data, bytes):
                kind = "application/json" if key.endswith(".json") else "application/octet-stream"
                return uploader.put(full_key, key, data, if_absent=if_absent, if_token=if_token, content_type=kind)
            return uploader.upload(full_key, key, data, if_absent=if_absent, if_token=if_token)
        except WrongRegion:
            self._fast_uploads = False  # boto3 follows the redirect, from now on for every object
        except UnsendableKey:
            pass
        return None

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
        """Our error type for a boto3 failure that the retry policy gave up on (or never retried)."""
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
            headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            region = headers.get("x-amz-bucket-region") or error.get("Region") or ""
            message = str(error.get("Message", ""))
            known = self._answer_error(operation, key or "", where, status, code, message=message, region=region)
            if known is not None:
                return known
            if decide(exc).retriable:
                return Unavailable(f"{operation} {where}: {code or status} after {self._attempts} attempts")
            return StoreError(f"{operation} {where} failed: {code or status} {message}".rstrip())
        if isinstance(exc, (bx.BotoCoreError, *_body_errors())):
            return Unavailable(f"{operation} {where}: {exc} (after {self._attempts} attempts)")
        return exc

    def _moved(self, status: int | None, code: str, region: str) -> str | None:
        """The message for a bucket that answered from another region (301 PermanentRedirect, 307, or a
        signature for the wrong region) when botocore's redirector could not follow it: it follows
        only for AWS's own endpoints, so this is a custom endpoint or a proxy in front of S3."""
        if status not in _REDIRECT_STATUSES and code not in _REDIRECT_CODES:
            return None
        answer = f"{status or ''} {code if code != str(status) else ''}".strip()
        if region:
            return (
                f"{answer}: bucket {self.bucket!r} is in region {region!r}, not {self._region()!r}; "
                f"set AWS_REGION={region} (or the stack's region), or use that region's endpoint"
            )
        return f"{answer}: the endpoint sent the request elsewhere (bucket {self.bucket!r} in another region?)"

    def _answer_error(
        self, operation: str, key: str, where: str, status: int | None, code: str, *, message: str, region: str
    ) -> Exception | None:
        """Our error for an S3 error answer whose meaning is certain, from boto3 or from stores/s3_lean.py
        alike (``region``: the bucket's region when the answer names one); None for the others (the
        caller's: retriable, or unknown)."""
        if code in ("NoSuchKey", "NotFound") or (status == 404 and code != "NoSuchBucket"):
            return NotFound(f"{where}: not found")
        if code == "NoSuchBucket":
            return StoreError(f"{operation} {where}: bucket {self.bucket!r} does not exist")
        if code == "PreconditionFailed" or status == 412:
            return PreconditionFailed(f"{operation} {where}: precondition failed ({code or status})")
        if code in ("ConditionalRequestConflict", "OperationAborted"):
            # 409: another conditional write to this key was in flight on every attempt. Not a
            # lost race (that is 412): nothing says another writer's object is there to adopt.
            return Unavailable(
                f"{operation} {where}: {status} {code}: another conditional write to this key was still in "
                f"flight after {self._attempts} attempts"
            )
        moved = self._moved(status, code, region)
        if moved is not None:
            # botocore re-sends a redirected request once, to the region S3 named, and only for AWS's own
            # endpoints; still redirected, the configured endpoint or region is wrong for this bucket: a
            # setting to fix, not a retry.
            return BadInput(f"{operation} {where}: {moved}")
        if code == "NotImplemented" or status == 501:
            return ConditionUnsupported(f"{operation} {where}: {code or status} {message}".rstrip())
        if code in _DENIED_CODES or status in (401, 403):
            return self._denied(operation, key, code or str(status))
        return None

    def _put_object(self, key: str, **kwargs: Any) -> str:
        """One PutObject through boto3 (retried by :meth:`_needs_retry`): its ETag, or our error type."""
        try:
            response = self._client.put_object(Bucket=self.bucket, Key=self.url.full_key(key), **kwargs)
        except Exception as exc:
            raise self._translate(exc, "PutObject", key) from None
        return str(response["ETag"])

    # -- contract ------------------------------------------------------------------------------
    def get(self, key: str) -> Blob:
        got = self._leanly(lambda lean: lean.get(self.url.full_key(key), key))
        if got is not None:
            data, etag, stamp = got
            stated = self._stated_md5(etag)
            if stated is None or hashlib.md5(data).hexdigest() == stated:
                return Blob(data=data, token=etag, last_modified=http_date(stamp))
            # Bytes that do not match their ETag: read again below, on the budget and KMS check of every
            # download.
        buffer = io.BytesIO()
        fetched, modified = self._download(key, buffer)
        return Blob(data=buffer.getvalue(), token=fetched.token, last_modified=modified)

    def put(
        self, key: str, data: bytes | Iterable[bytes], *, if_absent: bool = False, if_token: str | None = None
    ) -> str:
        conditions = _conditions(if_absent, if_token)
        content_type = "application/json" if key.endswith(".json") else "application/octet-stream"
        if isinstance(data, bytes) and self._lean_client() is None:
            if len(data) <= FAST_PUT_LIMIT:
                token = self._fast_put(key, data, if_absent, if_token)
                if token is not None:
                    return token
            return self._put_object(key, Body=data, ContentType=content_type, **conditions)
        # A stream of chunks (bytes too, for stores/s3_lean.py) as a seekable body: both paths need its
        # length and rewind it to retry.
        body, size = spooled(data)
        with body:
            sent = self._leanly(
                lambda client: client.put(
                    self.url.full_key(key), key, body, size, conditions=conditions, content_type=content_type
                )
            )
            if sent is not None:
                return sent
            body.seek(0)
            return self._put_object(key, Body=body, ContentType=content_type, **conditions)

    def list(self) -> Iterator[ObjectInfo]:
        prefix = f"{self.url.prefix}/" if self.url.prefix else ""
        tokens = PageTokens(f"s3://{self.bucket}/{prefix}")
        for page, contents in read_ahead(self._listing_pages(prefix, tokens), name="syncops-list"):
            for key, size, modified in contents:
                if not isinstance(key, str) or not isinstance(size, int) or not isinstance(modified, datetime):
                    raise Unavailable(
                        f"listing {tokens.where}: page {page} has an object without a key, size or "
                        "modification time; stopped rather than use an incomplete listing"
                    )
                if key == prefix:
                    continue  # a console's folder object for the prefix itself, not data
                yield ObjectInfo(key=key[len(prefix) :], size=size, last_modified=modified)

    def _listing_pages(self, prefix: str, tokens: PageTokens) -> Iterator[tuple[int, Sequence[tuple[Any, Any, Any]]]]:
        """Each page's number and objects as (key, size, last modified), the pages asked for one by one
        rather than through botocore's paginator, which ends quietly when a page says "truncated"
        without a token (see PageTokens). Each page is one client call, so the retry policy covers
        every page. :meth:`list` reads them one page ahead (``read_ahead``)."""
        request: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": LIST_PAGE_SIZE}
        while True:
            lean = self._leanly(lambda client: client.page(prefix, request.get("ContinuationToken")))
            if lean is None:
                try:
                    page = self._client.list_objects_v2(**request)
                except Exception as exc:
                    raise self._translate(exc, "ListObjectsV2", None) from None
                lean = page.get(LEAN_PAGE)
            if lean is not None:  # parsed by stores/s3_fast.py, not by botocore
                token = tokens.next(lean.truncated, lean.token)
                contents: Sequence[tuple[Any, Any, Any]] = lean.objects
            else:
                token = tokens.next(page.get("IsTruncated") is True, page.get("NextContinuationToken"))
                contents = [(i.get("Key"), i.get("Size"), i.get("LastModified")) for i in page.pop("Contents", ())]
            page = lean = None  # only the objects are kept while they are consumed
            yield tokens.page, contents
            if token is None:
                return
            request["ContinuationToken"] = token

    def _denied(self, operation: str, key: str, code: str = "") -> AccessDenied:
        where = self._where(key)
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
            written, etag, _ = self._fetch(key, out, size_hint=size_hint)
            return Fetched(size=written, token=etag)
        return self._download(key, out, size_hint)[0]

    def _download(self, key: str, out: BinaryIO, size_hint: int | None = None) -> tuple[Fetched, datetime | None]:
        """:meth:`_fetch` with the body checked against the ETag when that is its MD5; a mismatch is a
        broken body, read again on the same budget as one cut off mid-stream."""
        checked = _Md5Writer(out, etag_is_md5=self._etag_is_md5)

        def matches(etag: str) -> bool:
            stated = self._stated_md5(etag)
            if stated is None or checked.hexdigest() == stated:
                return True
            if self._encrypted_with_kms(key):
                # SSE-KMS and SSE-C ETags are not MD5s of the data: nothing to check against.
                self._etag_is_md5 = False
                return True
            return False

        written, etag, modified = self._fetch(key, checked, check=matches, size_hint=size_hint)  # type: ignore[arg-type]
        return Fetched(size=written, token=etag), modified

    def _stated_md5(self, etag: str) -> str | None:
        """The MD5 (hex) an ETag states of its body; None when it states none (a multipart upload's, or
        any in a bucket found to encrypt with KMS)."""
        return etag.strip('"') if self._etag_is_md5 and _PLAIN_ETAG.fullmatch(etag) else None

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

    def _fetch(
        self, key: str, out: BinaryIO, *, check: Callable[[str], bool] | None = None, size_hint: int | None = None
    ) -> tuple[int, str, datetime | None]:
        """Stream one object into ``out``; returns the byte count, the ETag and LastModified.

        One :class:`syncops.retry.Transfer` covers the whole GET: a failed request (no answer, a 503,
        an error body that broke off) and a body that broke off or failed ``check`` (given the ETag)
        are each retried on their budget, always from byte 0 of ``out`` (its writer takes back the
        progress it reported). A large ``size_hint`` reads the object in parallel ranges first."""
        start = out.tell()
        if self._fast_downloads:
            # Object bytes go through the Rust data plane (see stores/s3_data.py); same errors.
            try:
                downloader = self._downloader.get()
                full_key = self.url.full_key(key)
                if size_hint is not None and downloader.ranged.wanted(size_hint):
                    written, etag, modified = downloader.fetch_ranged(full_key, key, out, size_hint)
                    if check is None or check(etag):
                        return written, etag, modified
                    out.seek(start)  # the parts' bytes failed the ETag: read again whole, checked
                    out.truncate()
                return downloader.fetch(full_key, key, out, check=check)
            except WrongRegion:
                self._fast_downloads = False  # boto3 follows the redirect, from now on for every object
                out.seek(start)
                out.truncate()
        transfer = retry.Transfer(self._policy, f"GetObject {self.url.object_url(key)}")
        while True:
            in_body = False
            try:
                response = self._client.get_object(Bucket=self.bucket, Key=self.url.full_key(key))
                in_body = True
                announce_version(out, str(response["ETag"]))
                written = 0
                for chunk in response["Body"].iter_chunks(1 << 20):
                    out.write(chunk)
                    written += len(chunk)
                etag = str(response["ETag"])
                if check is None or check(etag):
                    return written, etag, response.get("LastModified")
                decision = retry.BROKEN_BODY
                error: Exception = Unavailable(
                    f"GetObject {self.url.object_url(key)}: the body did not match its ETag (MD5) in "
                    f"{transfer.body_failures + 1} reads"
                )
            except StoreError:
                raise  # from check(): a HEAD that failed
            except Exception as exc:
                decision = decide(exc)
                error = self._translate(exc, "GetObject", key)
            if not transfer.again(decision, in_body=in_body):
                raise error from None
            out.seek(start)
            out.truncate()

    def upload(self, key: str, body: UploadBody, *, if_absent: bool = False, if_token: str | None = None) -> str:
        if body.size <= FAST_PUT_LIMIT:
            token = self._fast_put(key, body, if_absent, if_token)
            if token is not None:
                return token
            body.seek(0)  # boto3 sends it again from the start (HashingReader hashes each byte once)
        conditions = _conditions(if_absent, if_token)
        if body.size <= MULTIPART_THRESHOLD:
            return self._put_object(
                key, Body=body, ContentLength=body.size, ContentType="application/octet-stream", **conditions
            )
        return self._restarted_multipart_upload(key, body, conditions)

    def _restarted_multipart_upload(self, key: str, body: UploadBody, conditions: dict[str, str]) -> str:
        """A multipart upload, begun again from its first part when S3 answers the conditional
        CompleteMultipartUpload with ``409 ConditionalRequestConflict``: S3 documents that such an
        upload must be started over (CreateMultipartUpload, every part again), not completed again."""
        start = body.tell()

        def attempt(again: bool) -> str:
            if again:
                body.seek(start)
            return self._multipart_upload(key, body, conditions)

        return self._restarting(f"multipart upload {self.url.object_url(key)}", attempt)

    def _restarting(self, what: str, attempt: Callable[[bool], str]) -> str:
        """``attempt(again)`` until it completes, begun anew (``again`` True) after each conditional
        completion S3 answered with 409, as the retry policy's budget and backoff allow."""
        failures = 0
        while True:
            try:
                return attempt(failures > 0)
            except _ConflictingComplete as conflict:
                failures += 1
                wait = self._policy.delay(failures, conflict.decision)
                if wait is None:
                    raise conflict.error from None
                retry.pause(retry.Pause(what, failures, conflict.decision, wait))

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
        slots = self._upload_slots
        try:
            etags: list[Future[Any]] = []
            with ThreadPoolExecutor(max_workers=PARTS_IN_FLIGHT, thread_name_prefix="syncops-part") as pool:
                while True:
                    in_flight = [f for f in etags if not f.done()]
                    if len(in_flight) >= PARTS_IN_FLIGHT:
                        wait(in_flight, return_when=FIRST_COMPLETED)
                    # A buffer of the store's shared budget, given back when the part's request ends
                    # (whatever its outcome): waiting for one never deadlocks, as every part held
                    # finishes on its own.
                    slots.acquire()
                    try:
                        data = body.read(PART_SIZE)
                        if not data:
                            slots.release()
                            break
                        part = pool.submit(
                            self._client.upload_part,
                            Bucket=self.bucket,
                            Key=full_key,
                            UploadId=upload_id,
                            PartNumber=len(etags) + 1,
                            Body=data,
                        )
                    except BaseException:
                        slots.release()
                        raise
                    del data
                    part.add_done_callback(lambda _: slots.release())
                    etags.append(part)
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
                error = self._translate(exc, "PutObject", key)
                if isinstance(exc, _boto_errors().ClientError) and _is_complete_conflict(exc):
                    raise _ConflictingComplete(decide(exc), error) from None
                raise error from None
            raise

    def close(self) -> None:
        client = self._boto_client.built()
        if client is not None:
            client.close()
        downloader = self._downloader.built()
        if downloader is not None:
            downloader.ranged.close()
        lean = self._lean.built()
        if lean is not None:
            lean.close()

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
                # Quoted as HeadObject and PutObject give it (SeaweedFS leaves the copy's bare), so the
                # token compares equal to a later read's and serves as an If-Match.
                return _quoted(str(response["CopyObjectResult"]["ETag"]))
            return self._restarting(
                f"multipart copy to {self.url.object_url(key)}",
                lambda again: self._multipart_copy(source, key, origin, size, conditions),
            )
        except _ConflictingComplete as conflict:
            raise self._copy_error(conflict.error, source, key) from None
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
        except BaseException as exc:
            try:
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=full_key, UploadId=upload_id)
            except Exception:
                pass  # the bucket's lifecycle rule aborts incomplete uploads
            if isinstance(exc, _boto_errors().ClientError) and _is_complete_conflict(exc):
                raise _ConflictingComplete(decide(exc), exc) from None
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


#: Answers to a conditional CompleteMultipartUpload after which S3 wants the upload started over.
_RESTART_CODES = ("ConditionalRequestConflict",)


def _is_complete_conflict(exc: Any) -> bool:
    code = exc.response.get("Error", {}).get("Code")
    return exc.operation_name == "CompleteMultipartUpload" and code in _RESTART_CODES


class _ConflictingComplete(Exception):
    def __init__(self, decision: retry.Decision, error: Exception) -> None:
        super().__init__(str(error))
        self.decision = decision
        self.error = error


def _conditions(if_absent: bool, if_token: str | None) -> dict[str, str]:
    """The PutObject / CompleteMultipartUpload headers of a create-only or on-version write."""
    conditions: dict[str, str] = {}
    if if_absent:
        conditions["IfNoneMatch"] = "*"
    if if_token is not None:
        conditions["IfMatch"] = if_token
    return conditions


def _quoted(etag: str) -> str:
    """An ETag in the quoted form S3 sends in headers."""
    return etag if etag.startswith(('"', 'W/"')) else f'"{etag}"'


class _Md5Writer:
    """Hashes what passes into ``out`` (rewinds restart the hash: each read is a whole new body), unless
    told before the bytes that their ETag is no MD5 (a multipart upload's, ``"…-N"``): nothing to check,
    so no MD5 pass (about 1.9 s of CPU per GiB here)."""

    def __init__(self, out: BinaryIO, etag_is_md5: bool = True) -> None:
        self._out = out
        self._start = out.tell()
        self._enabled = etag_is_md5
        self._md5: Any = hashlib.md5() if etag_is_md5 else None

    def expect_version(self, etag: str) -> None:
        """The ETag of the body about to be written (see ``s3_data.announce_version``)."""
        self._md5 = hashlib.md5() if self._enabled and _PLAIN_ETAG.fullmatch(etag) else None

    def write(self, chunk: bytes) -> int:
        if self._md5 is not None:
            self._md5.update(chunk)
        return self._out.write(chunk)

    def seek(self, offset: int, whence: int = 0) -> int:
        position = self._out.seek(offset, whence)
        if position == self._start and self._enabled:
            self._md5 = hashlib.md5()
        return position

    def landed(self, data: Any) -> None:
        """Bytes put in place by ``write_at`` (a ranged download), in order: hashed like written ones."""
        if self._md5 is not None:
            self._md5.update(data)
        self._out.landed(data)  # type: ignore[attr-defined]

    def hexdigest(self) -> str:
        return "" if self._md5 is None else str(self._md5.hexdigest())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._out, name)

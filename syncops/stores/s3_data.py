"""The S3 data plane: object downloads through obstore (Rust ``object_store``), not boto3.

Why a second client: a boto3 ``get_object`` costs about 2 ms of Python CPU per call, so a hydrate of
thousands of small files is CPU-bound on the SDK, far behind s5cmd. obstore signs, sends and reads
in Rust with the GIL released, so the transfer threads only write bytes to disk. boto3 stays the
control plane (index reads, conditional writes, listings, error messages): this module only moves
object bytes, with the same credentials (boto3's standard chain, refreshed through a provider
callback), the same endpoint, the same retry budget and the same error types.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, BinaryIO, Generic, TypeVar

from syncops import retry, timeouts
from syncops.errors import AccessDenied, ConditionUnsupported, NotFound, PreconditionFailed, StoreError, Unavailable
from syncops.stores.ranged import ObjectChanged, Part, RangedReader

#: Objects up to this size are read in one call; larger ones are streamed in chunks of this size.
WHOLE_READ_LIMIT = 1 << 20
#: How long credentials handed to the Rust client are trusted before boto3 is asked again.
CREDENTIAL_TTL = timedelta(minutes=15)

_STATUS = re.compile(r"status code: (\d{3})")
_STATUS_416 = "status code: 416"
_NOT_PARTIAL = "non-partial response when range requested"  # object_store's answer to a 200 for a range
_WRONG_REGION_CODES = ("PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException")


_FATAL = retry.Decision(retry.Verdict.FATAL)


class WrongRegion(StoreError):
    """The data plane was sent to the wrong region; boto3's region redirects know better."""


#: Builds the message of a denied request: (operation, key, S3 error code) -> AccessDenied.
DenyMessage = Callable[[str, str, str], AccessDenied]
#: Gives the current credentials as obstore's provider callback wants them (raises AccessDenied).
CredentialProvider = Callable[[], dict[str, Any]]

T = TypeVar("T")

_ERROR_CODE = re.compile(r"<Code>([^<]{1,64})</Code>")
#: The kind of an HTTP failure in obstore's debug text (``Timeout``, ``Connect``, ``Request``, ...).
_HTTP_KIND = re.compile(r"HttpError \{\s*kind: (\w+)")
#: rustls's verdict on a refused certificate, inside obstore's debug text: the innermost name of
#: ``InvalidCertificate(UnknownIssuer)`` or ``InvalidCertificate(Other(OtherError(CaUsedAsEndEntity)))``.
_CERTIFICATE = re.compile(r"InvalidCertificate\((?:\s*\w+\()*\s*(\w+)")


def environment_credentials() -> CredentialProvider | None:
    """Static keys from the environment, without loading botocore, or None when there are none.

    Environment variables are the first source of the standard AWS chain (an ``AWS_PROFILE`` does not
    outrank them), so using them directly gives the credentials boto3 would use, ~0.25 s sooner.
    """
    key = os.environ.get("AWS_ACCESS_KEY_ID")
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        return None
    token = os.environ.get("AWS_SESSION_TOKEN") or os.environ.get("AWS_SECURITY_TOKEN") or None

    def provide() -> dict[str, Any]:
        return {
            "access_key_id": key,
            "secret_access_key": secret,
            "token": token,
            "expires_at": datetime.now(timezone.utc) + CREDENTIAL_TTL,
        }

    return provide


def session_credentials(session: Any, missing: Callable[[], Exception]) -> CredentialProvider:
    """Credentials from boto3's whole chain (profiles, SSO, roles), refreshed as boto3 refreshes them.

    ``missing`` builds the error raised when the chain finds nothing at all.
    """
    credentials = session.get_credentials()
    if credentials is None:
        raise missing()

    def provide() -> dict[str, Any]:
        frozen = credentials.get_frozen_credentials()
        return {
            "access_key_id": frozen.access_key,
            "secret_access_key": frozen.secret_key,
            "token": frozen.token,
            "expires_at": datetime.now(timezone.utc) + CREDENTIAL_TTL,
        }

    return provide


def translate(
    exc: Exception, operation: str, where: str, key: str, *, denied: DenyMessage, attempts: int
) -> tuple[Exception, retry.Decision]:
    """Our error type for a failed obstore request (``GetObject`` or ``PutObject``), and the retry
    policy's verdict on it: the one reading of obstore's errors for downloads and uploads alike."""
    from obstore import exceptions as oe

    text = str(exc).strip()
    coded = _ERROR_CODE.search(text)
    code = coded.group(1) if coded else ""
    found = _STATUS.search(text)
    status = int(found.group(1)) if found else None
    writing = operation != "GetObject"
    if code == "NoSuchBucket":
        return StoreError(f"{operation} {where}: the bucket does not exist"), _FATAL
    if not isinstance(exc, (oe.BaseError, OSError)):
        return exc, _FATAL
    decision = retry.classify(status, code)
    if code in ("ConditionalRequestConflict", "OperationAborted"):
        # 409: another conditional write to this key was in flight on every attempt. Not a lost race
        # (that is 412): nothing says another writer's object is there to adopt.
        message = f"another conditional write to this key was still in flight after {attempts} attempts"
        return Unavailable(f"{operation} {where}: {status or 409} {code}: {message}"), decision
    if decision.retriable and code:
        # A documented "try again" (SlowDown, InternalError), whatever exception type obstore chose.
        return Unavailable(f"{operation} {where}: {code} (after {attempts} attempts)"), decision
    if isinstance(exc, (oe.PermissionDeniedError, oe.UnauthenticatedError, PermissionError)) or status in (401, 403):
        return denied(operation, key, code), _FATAL
    if isinstance(exc, (oe.AlreadyExistsError, oe.PreconditionError, oe.NotModifiedError)) or status == 412:
        return PreconditionFailed(f"{operation} {where}: precondition failed ({code or status or 412})"), _FATAL
    if isinstance(exc, (oe.NotFoundError, FileNotFoundError)):
        # For an If-Match write: the object is gone (AWS answers 404 NoSuchKey), so is its version.
        return NotFound(f"{where}: not found"), _FATAL
    if writing and (code == "NotImplemented" or status == 501):
        return ConditionUnsupported(f"{operation} {where}: {code or status} (the condition is not supported)"), _FATAL
    summary = text.split("\n", 1)[0] if text else type(exc).__name__
    kind = _HTTP_KIND.search(text)
    if kind is not None and kind.group(1) == "Timeout":
        summary += f" (timed out: no answer within {timeouts.read():g} s, SYNCOPS_READ_TIMEOUT)"
    refused = _CERTIFICATE.search(text)
    if refused is not None:
        # obstore's first line says only "error sending request"; the reason is deep in its debug text.
        why = refused.group(1)
        summary += f" (TLS: the server's certificate was not accepted: {why}; AWS_CA_BUNDLE names the CAs to trust)"
    if status in (301, 307) or "redirect" in text.lower() or any(name in text for name in _WRONG_REGION_CODES):
        # The bucket lives in another region than the one configured (a 301 without Location reads
        # "Received redirect without LOCATION"); boto3 follows S3's region redirects, this client
        # does not: the caller falls back to boto3, which follows or names the bucket's region.
        return WrongRegion(f"{operation} {where}: {summary}"), _FATAL
    # No status: a reset, a timeout, a body that broke off (the classifier calls that transient).
    if decision.retriable:
        return Unavailable(f"{operation} {where}: {summary} (after {attempts} attempts)"), decision
    return StoreError(f"{operation} {where} failed: {summary}"), decision


class ObstoreDownloader:
    """Downloads of one bucket's objects; created on the first download (lazy import of obstore)."""

    def __init__(
        self,
        bucket: str,
        *,
        credentials: CredentialProvider,
        region: str,
        endpoint: str | None,
        attempts: int,
        body_attempts: int,
        concurrency: int,
        where: Callable[[str], str],
        denied: DenyMessage,
    ) -> None:
        from obstore.store import S3Store as RustS3Store

        self._bucket = bucket
        self._where = where
        self._denied = denied
        self._attempts = attempts
        self._policy = retry.RetryPolicy(attempts=attempts, body_attempts=body_attempts)
        config: dict[str, Any] = {"region": region}
        client: dict[str, Any] = {
            # One idle connection kept per transfer thread, so none waits for a socket.
            "pool_max_idle_per_host": str(max(10, concurrency + 4)),
            "connect_timeout": timedelta(seconds=timeouts.connect()),
            # A stalled connection fails after this long without a byte; a big object may take longer whole.
            "read_timeout": timedelta(seconds=timeouts.read()),
            "timeout": timedelta(hours=24),
        }
        # What botocore honours for its connections, honoured here too: a private CA and a proxy.
        ca_bundle = os.environ.get("AWS_CA_BUNDLE")
        if ca_bundle:
            try:
                with open(ca_bundle, "rb") as pem:
                    client["root_certificate"] = pem.read()
            except OSError as exc:
                raise StoreError(f"AWS_CA_BUNDLE={ca_bundle!r}: cannot read it ({exc.strerror or exc})") from None
        secure = not (endpoint or "").startswith("http://")
        proxy = _environment("HTTPS_PROXY" if secure else "HTTP_PROXY")
        if proxy:
            client["proxy_url"] = proxy
            excluded = _environment("NO_PROXY")
            if excluded:
                client["proxy_excludes"] = excluded
        if endpoint:
            config["endpoint"] = endpoint
            # A custom endpoint (SeaweedFS, MinIO, a proxy) rarely resolves bucket subdomains.
            config["virtual_hosted_style_request"] = False
            client["allow_http"] = endpoint.startswith("http://")
        own_retries = {"max_retries": 0}  # off: fetch() retries whole, on syncops.retry's budget
        try:
            self._store = RustS3Store(
                bucket,
                config=config,  # type: ignore[arg-type]
                client_options=client,  # type: ignore[arg-type]
                retry_config=own_retries,  # type: ignore[arg-type]
                credential_provider=credentials,  # type: ignore[arg-type]
            )
        except (ValueError, TypeError) as exc:
            raise StoreError(f"cannot set up S3 downloads for bucket {bucket!r}: {exc}") from None
        self.ranged = RangedReader(name="syncops-s3-part")

    @property
    def client(self) -> Any:
        """The obstore S3 client, shared with the uploads (one connection pool, one credential cache)."""
        return self._store

    def _translate(self, exc: Exception, key: str) -> tuple[Exception, retry.Decision]:
        return translate(exc, "GetObject", self._where(key), key, denied=self._denied, attempts=self._attempts)

    def fetch(
        self, path: str, key: str, out: BinaryIO, *, check: Callable[[str], bool] | None = None
    ) -> tuple[int, str, datetime | None]:
        """Stream object ``path`` into ``out``, retrying transient failures within the budget.

        Returns the byte count, the ETag (quoted as S3 and boto3 give it) and the LastModified time.
        ``check`` (given the ETag) says whether the bytes that landed are right; False reads them again.

        The Rust client's own retries are off, so that every retry is a whole GET from byte 0
        (never a ranged resume that could splice two versions of an object replaced meanwhile) and
        :class:`syncops.retry.Transfer` budgets it exactly as on the boto3 path.
        """
        import obstore

        start = out.tell()
        transfer = retry.Transfer(self._policy, f"GetObject {self._where(key)}")
        while True:
            in_body = False
            try:
                result = obstore.get(self._store, path)
                in_body = True
                etag = str(result.meta.get("e_tag") or "")
                announce_version(out, etag)
                modified = result.meta.get("last_modified")
                if result.meta["size"] <= WHOLE_READ_LIMIT:
                    written = _write(out, result.bytes())
                else:
                    written = 0
                    for chunk in result.stream(min_chunk_size=WHOLE_READ_LIMIT):
                        written += _write(out, chunk)
                if check is None or check(etag):
                    return written, etag, modified
                decision = retry.BROKEN_BODY
                error: Exception = Unavailable(
                    f"GetObject {self._where(key)}: the body did not match its ETag (MD5) in "
                    f"{transfer.body_failures + 1} reads"
                )
            except _LocalWriteError as exc:
                raise exc.cause from None  # the disk, not the network: the caller reports it
            except StoreError:
                raise  # from check(): a HEAD that failed
            except Exception as exc:
                error, decision = self._translate(exc, key)
                if not decision.retriable:
                    raise error from None
            if not transfer.again(decision, in_body=in_body):
                raise error from None
            out.seek(start)
            out.truncate()

    def fetch_ranged(self, path: str, key: str, out: BinaryIO, size: int) -> tuple[int, str, datetime | None]:
        """Like :meth:`fetch`, for an object expected to be ``size`` bytes: in parallel ranged GETs
        (see :mod:`syncops.stores.ranged`), one request per part and no probe (the first part's answer
        gives the ETag that pins the rest). An object replaced meanwhile, or not ``size`` bytes after
        all, is read again with :meth:`fetch` from byte 0: one whole GET, one version by construction.
        """
        start = out.tell()

        def get_range(lo: int, hi: int, pin: str | None) -> Part:
            part = self._get_part(path, key, lo, hi, pin)
            if lo == 0:  # the first part is fetched, and returned, before any byte is handed to ``out``
                announce_version(out, part.token)
            return part

        try:
            first = self.ranged.read(get_range, size, out)
        except ObjectChanged:
            out.seek(start)
            out.truncate()
            return self.fetch(path, key, out)
        return size, first.token, first.modified

    def _get_part(self, path: str, key: str, start: int, end: int, pin: str | None) -> Part:
        """Bytes ``[start, end)`` of ``path`` (of ETag ``pin``), a transient failure retried within the budget."""
        import obstore
        from obstore.exceptions import PreconditionError

        options: dict[str, Any] = {"range": (start, end)}
        if pin is not None:
            options["if_match"] = pin

        def get() -> Part:
            try:
                result = obstore.get(self._store, path, options=options)  # type: ignore[arg-type]
                data = result.bytes()
            except PreconditionError:
                raise ObjectChanged(f"{key}: the ETag changed between parts") from None
            except Exception as exc:
                text = str(exc)
                if _STATUS_416 in text:
                    raise ObjectChanged(f"{key}: a range is past the object's end now") from None
                if _NOT_PARTIAL in text:
                    raise ObjectChanged(f"{key}: the server ignored the Range header") from None  # read whole
                raise
            meta = result.meta
            return Part(data, int(meta["size"]), str(meta.get("e_tag") or ""), meta.get("last_modified"))

        try:
            return self._policy.call(
                get, lambda exc: self._translate(exc, key)[1], what=f"GetObject {self._where(key)} [{start}, {end})"
            )
        except Exception as exc:
            raise self._translate(exc, key)[0] from None  # an ObjectChanged comes back as it is


def announce_version(out: BinaryIO, token: str) -> None:
    """Tell a writer that asks for it (``expect_version``) the version token (S3 ETag) of the bytes about
    to arrive, before the first of them: an ETag that is no MD5 of the body spares it an MD5 pass."""
    expect = getattr(out, "expect_version", None)
    if expect is not None:
        expect(token)


class _LocalWriteError(Exception):
    def __init__(self, cause: OSError) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _write(out: BinaryIO, data: Any) -> int:
    try:
        out.write(data)
    except OSError as exc:
        raise _LocalWriteError(exc) from None
    return len(data)


class Lazy(Generic[T]):
    """Build a value once, on first use, from any thread (SDK clients cost ~0.1 s to make)."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None
        self._lock = threading.Lock()

    def built(self) -> T | None:
        """The value if it was built, without building it."""
        return self._value

    def get(self) -> T:
        value = self._value
        if value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._build()
                value = self._value
        return value


def data_plane_enabled() -> bool:
    """``SYNCOPS_S3_DATA_PLANE=boto3`` falls back to boto3 for downloads and small uploads (e.g. to compare)."""
    return os.environ.get("SYNCOPS_S3_DATA_PLANE", "obstore").strip().lower() != "boto3"


def _environment(name: str) -> str | None:
    return os.environ.get(name) or os.environ.get(name.lower()) or None

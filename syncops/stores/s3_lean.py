"""S3 without an SDK for what discovery sends: GETs of control objects (the index), ListObjectsV2 pages
and conditional PUTs of control objects, signed here (Signature V4) and sent on keep-alive
``http.client`` connections (:mod:`syncops.stores.httpconn`).

Why: a discovery of 100,000 objects through a boto3 client peaked at 64 MB, most of it botocore
itself (its credential chain ~14 MB, the client with the S3 model and endpoint rules ~15 MB), for
requests that are one signed GET each and one PUT; and the obstore client that fetches the index
first (its runtime, connection pool and TLS roots) cost another ~11 MB. This path needs none of
them, and takes only what it does exactly as boto3 would:

* keys from the environment (boto3's first source; a profile, role or keys in settings go to boto3),
  a region from the settings or the environment, and an endpoint given explicitly (``--endpoint-url``,
  ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``, the settings): path-style requests, as the boto3
  client is configured for such endpoints. AWS's own endpoints (region redirects, FIPS, dual-stack,
  config-file settings) and a proxy setting stay with boto3 (:func:`usable`). An ``https`` endpoint
  is verified against ``AWS_CA_BUNDLE`` when it is set (as boto3 verifies it), else against the
  system's CAs; a certificate they do not accept is handed to boto3 (below), which checks it
  against its own bundle (certifi's, or a ``ca_bundle`` of the config file) and reports it.
* Every listing page goes through :class:`syncops.stores.base.PageTokens` like boto3's, and every
  request through the same retry policy (:mod:`syncops.retry`). The answers whose reading is certain
  are read here with the store's own messages (``refused``): a denial, a missing bucket or object, a
  redirect naming the bucket's region (for an explicit endpoint botocore follows none: the setting is
  wrong), and for a PUT a refused condition (412) or a condition the server does not support (501).
  A 200 that is no listing (an ``<Error>`` inside it, a body cut short) is retried, as botocore
  retries it. Any other answer — another 3xx or 4xx, a TLS failure — is not interpreted here:
  :class:`Defer` hands the request to boto3, which sends it again and follows, reports or names it
  as it always has.
* A PUT's body is hashed (``x-amz-content-sha256``, so the server checks every byte) and then
  streamed from its file; a retry sends it again from the start. A GET's body is checked against
  its ETag by the store, as on the other paths.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import BinaryIO, TypeVar
from urllib.parse import quote, urlsplit

from syncops import retry
from syncops.errors import Unavailable
from syncops.stores.httpconn import Connections, describe, transport_decision
from syncops.stores.s3_fast import ListingPage, parse_listing_page

T = TypeVar("T")

#: What every request says it is.
USER_AGENT = "syncops"
#: Environment settings boto3 honours and this path does not: proxies.
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
#: ``SYNCOPS_S3_LEAN=off`` sends discovery's requests through boto3 always (e.g. to compare).
SWITCH = "SYNCOPS_S3_LEAN"
#: Bytes read from a body file per send (``http.client``'s default is 8 KiB).
BLOCK = 1 << 20

#: ``refused(operation, key, status, code, region)``: the store's error for an answer whose reading is
#: certain, or None (``region``: the bucket's region when the answer names one, as a redirect does).
Refused = Callable[[str, str, int, str, str], "Exception | None"]


@dataclass(frozen=True)
class _Request:
    """One request of this path: what it is (for messages and the store's wording) and what is sent."""

    operation: str  # the S3 API name: GetObject, ListObjectsV2, PutObject
    key: str  # the datastore key it concerns ("" for a listing)
    method: str
    path: str  # the path as signed, not yet encoded
    query: dict[str, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)  # more headers to sign
    upload: tuple[BinaryIO, int, str] | None = None  # body, its size, its sha256

    @property
    def target(self) -> str:
        return _encode(self.path, safe="/-_.~") + (f"?{_query_string(self.query)}" if self.query else "")


class Defer(Exception):
    """An answer this path does not interpret (a redirect, another 4xx, a TLS failure): boto3 asks again."""


def usable(endpoint: str | None, region: str | None, keys_from_environment: bool) -> bool:
    """Whether discovery's requests may go this way (see the module's docstring); False: boto3."""
    if os.environ.get(SWITCH, "").strip().lower() in ("off", "0", "false", "no", "boto3"):
        return False
    if not endpoint or not region or not keys_from_environment:
        return False
    if any(os.environ.get(name) for name in PROXY_VARIABLES):
        return False
    parts = urlsplit(endpoint)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.query


def _encode(text: str, safe: str = "-_.~") -> str:
    """Signature V4's URI encoding: every byte but the unreserved characters (and ``safe``), as %XX."""
    return quote(text, safe=safe)


def _query_string(query: dict[str, str]) -> str:
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(query.items()))


class Signer:
    """Signature V4 headers for S3 requests, with one set of static credentials."""

    def __init__(self, access_key: str, secret_key: str, token: str | None, region: str) -> None:
        self._access_key = access_key
        self._secret = secret_key.encode()
        self._token = token
        self._region = region
        self._day = ""
        self._key = b""

    def _signing_key(self, day: str) -> bytes:
        if day != self._day:
            key = hmac.new(b"AWS4" + self._secret, day.encode(), hashlib.sha256).digest()
            for part in (self._region, "s3", "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._day, self._key = day, key
        return self._key

    def headers(
        self,
        method: str,
        host: str,
        path: str,
        query: dict[str, str],
        now: datetime,
        *,
        payload: str,
        extra: dict[str, str] | None = None,
    ) -> dict[str, str]:
        """The headers that sign ``method host path?query`` with payload hash ``payload`` at ``now``:
        host, dates, token, authorization, and ``extra`` (signed too; names in lower case)."""
        stamp = now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        day = stamp[:8]
        signed = {**(extra or {}), "host": host, "x-amz-content-sha256": payload, "x-amz-date": stamp}
        if self._token:
            signed["x-amz-security-token"] = self._token
        names = sorted(signed)
        canonical = "\n".join(
            [
                method,
                _encode(path, safe="/-_.~"),
                _query_string(query),
                *(f"{name}:{' '.join(signed[name].split())}" for name in names),
                "",
                ";".join(names),
                payload,
            ]
        )
        scope = f"{day}/{self._region}/s3/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self._signing_key(day), to_sign.encode(), hashlib.sha256).hexdigest()
        authorization = (
            f"AWS4-HMAC-SHA256 Credential={self._access_key}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}"
        )
        return {**signed, "authorization": authorization}


class LeanS3:
    """Listing pages and PUTs of one bucket at an explicit endpoint (path-style), signed here."""

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        *,
        signer: Signer,
        policy: retry.RetryPolicy,
        page_size: int,
        where: Callable[[str], str],
        refused: Refused,
        cafile: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        parts = urlsplit(endpoint)
        self._host = parts.netloc.rpartition("@")[2]  # never a user:password of the URL on the wire
        #: The endpoint as messages name it (a user:password masked, as everywhere in syncops's output).
        self._shown = f"{parts.scheme}://{'***@' if '@' in parts.netloc else ''}{self._host}"
        self._bucket_path = f"{parts.path.rstrip('/')}/{bucket}"
        self._signer = signer
        self._policy = policy
        self._page_size = page_size
        self._where = where
        self._refused = refused
        self._clock = clock
        self._connections = Connections(f"{parts.scheme}://{self._host}", keep=2, cafile=cafile)

    def page(self, prefix: str, token: str | None) -> ListingPage:
        """One page of the listing under ``prefix`` (after ``token``), retried within the policy:
        :class:`Unavailable` when the retries run out, :class:`Defer` for an answer left to boto3."""
        query = {"list-type": "2", "prefix": prefix, "max-keys": str(self._page_size), "encoding-type": "url"}
        if token is not None:
            query["continuation-token"] = token
        return self._call(_Request("ListObjectsV2", "", "GET", self._bucket_path, query), _listing)[1]

    def get(self, full_key: str, key: str) -> tuple[bytes, str, str | None]:
        """Object ``full_key`` whole: its bytes, ETag and ``Last-Modified`` header."""
        headers, body = self._call(_Request("GetObject", key, "GET", f"{self._bucket_path}/{full_key}"), bytes)
        return body, headers.get("etag") or "", headers.get("last-modified")

    def put(
        self, full_key: str, key: str, body: BinaryIO, size: int, *, conditions: dict[str, str], content_type: str
    ) -> str:
        """PUT ``size`` bytes of ``body`` (a file at its start) at ``full_key`` under ``conditions``
        (``IfNoneMatch`` / ``IfMatch``, as for boto3); the new ETag."""
        digest = hashlib.sha256()
        for block in iter(lambda: body.read(BLOCK), b""):
            digest.update(block)
        body.seek(0)
        extra = {"content-type": content_type}
        if "IfNoneMatch" in conditions:
            extra["if-none-match"] = conditions["IfNoneMatch"]
        if "IfMatch" in conditions:
            extra["if-match"] = conditions["IfMatch"]
        path = f"{self._bucket_path}/{full_key}"
        request = _Request("PutObject", key, "PUT", path, extra=extra, upload=(body, size, digest.hexdigest()))
        headers, _ = self._call(request, bytes)
        return headers.get("etag") or ""

    def _call(self, request: _Request, read: Callable[[bytes], T]) -> tuple[http.client.HTTPMessage, T]:
        """``request``, retried within the policy; ``read`` turns a 2xx body into the result (raising
        :class:`_Transient` for a body that is no answer: it is retried too)."""

        def judge(exc: Exception) -> retry.Decision:
            return exc.decision if isinstance(exc, _Transient) else retry.Decision(retry.Verdict.FATAL)

        def rewind() -> None:
            if request.upload is not None:
                request.upload[0].seek(0)

        where = f"{request.operation} {self._where(request.key)}"
        try:
            return self._policy.call(lambda: self._send(request, read), judge, what=where, rewind=rewind)
        except _Transient as exc:
            # The store words an answer it knows (a 409 that persists); any other gets the generic line.
            known = self._refused(request.operation, request.key, exc.status, exc.code, "") if exc.status else None
            raise known or Unavailable(f"{where}: {exc} after {self._policy.attempts} attempts") from None

    def _send(self, request: _Request, read: Callable[[bytes], T]) -> tuple[http.client.HTTPMessage, T]:
        """One request: the answer's headers and ``read`` of its body when it is a 2xx; our error,
        :class:`_Transient` (for the retry policy) or :class:`Defer` otherwise."""
        body, size, payload = request.upload if request.upload is not None else (None, 0, _EMPTY_SHA256)
        headers = self._signer.headers(
            request.method, self._host, request.path, request.query, self._clock(), payload=payload, extra=request.extra
        )
        headers["user-agent"] = USER_AGENT
        if request.upload is not None:
            headers["content-length"] = str(size)
        conn = self._connections.take()
        conn.blocksize = BLOCK
        try:
            conn.request(request.method, request.target, body=body, headers=headers)
            response = conn.getresponse()
            status = response.status
            if status >= 300:
                retry_after = response.getheader("Retry-After")
                answer = response.read(64 * 1024)
                conn.close()
            else:
                answer = response.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            decision = transport_decision(exc)
            if not decision.retriable:
                raise Defer(describe(exc)) from None
            raise _Transient(decision, f"{describe(exc)} ({self._shown})") from None
        if status < 300:
            self._connections.give(conn)
            return response.headers, read(answer)
        code = _code(answer)
        decision = retry.classify(status, code, retry_after=retry_after)
        if decision.retriable:
            raise _Transient(decision, f"{status} {code}".strip(), status, code)
        region = response.getheader("x-amz-bucket-region") or _element(answer, "Region")
        error = self._refused(request.operation, request.key, status, code, region)
        raise error if error is not None else Defer(f"HTTP {status} {code}".strip())

    def close(self) -> None:
        self._connections.clear()


#: ``SHA-256("")``: the payload hash of a request without a body.
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class _Transient(Exception):
    """A failed request the retry policy may cure: its verdict, and the answer's status and code (0 and
    "" when there was no answer)."""

    def __init__(self, decision: retry.Decision, text: str, status: int = 0, code: str = "") -> None:
        super().__init__(text)
        self.decision = decision
        self.status = status
        self.code = code


def _listing(body: bytes) -> ListingPage:
    """A 200's body as a listing page; an ``<Error>`` inside the 200 (S3 sends ``InternalError`` so) or a
    body that is not XML (cut short) is a failed request, retried as botocore retries them."""
    try:
        return parse_listing_page(body)
    except (SyntaxError, ValueError):
        code = _code(body)
        text = f"200 {code}" if code else "a listing page that is not well-formed XML"
        raise _Transient(retry.classify(500, code), text, 200, code) from None


def _element(body: bytes, name: str) -> str:
    """The text of the first ``<name>`` element of an S3 error document (empty when there is none)."""
    start = body.find(f"<{name}>".encode())
    end = body.find(f"</{name}>".encode(), start)
    return body[start + len(name) + 2 : end].decode("utf-8", "replace").strip() if start >= 0 and end > start else ""


def _code(body: bytes) -> str:
    return _element(body, "Code")

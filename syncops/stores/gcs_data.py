"""The GCS data plane: object downloads as plain JSON-API media GETs on keep-alive connections of our own.

Why not google-cloud-storage for the bytes: a ``Blob.download_to_file`` costs about 4–5 ms of Python
per object here (blob objects, resumable-media, a requests session), so a hydrate of 1,000 small
objects was 6× rclone. Why not urllib3 either: its pool, retry and response objects cost 0.45 ms of
CPU per small GET here against 0.15 ms for the standard library's ``http.client`` on the same
connection, and with 1,000 objects on two shared cores that CPU is the wall time. So one
``GET /download/storage/v1/b/B/o/NAME?alt=media`` is sent on an ``http.client`` connection taken from
a small LIFO pool (:mod:`syncops.stores.httpconn`), with google-auth's credentials applied to it.
google-cloud-storage stays the control plane (index reads with their time, listings, conditional
writes, error details).

The checks stay: the body is checked against the ``x-goog-hash`` crc32c (md5 when no crc32c is
given) unless the caller checks a sha256 of its own; a mismatch is read again. Large objects are
read in parallel ranges (:mod:`syncops.stores.ranged`) pinned with ``ifGenerationMatch`` to the
generation of the first answer. Every connection opens within the connect timeout and waits at most
the read timeout for each answer and each piece of a body (:mod:`syncops.timeouts`).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import os
import threading
from collections.abc import Callable
from typing import Any, BinaryIO
from urllib.parse import quote, urlsplit

from syncops import retry, timeouts
from syncops.errors import AccessDenied, NotFound, StoreError, Unavailable
from syncops.stores.httpconn import Connections, describe, transport_decision
from syncops.stores.ranged import ObjectChanged, Part, RangedReader

CHUNK = 1 << 20
#: What every request says it is (the library's own requests carry its name the same way).
USER_AGENT = "syncops"


class _Transient(Exception):
    """A request that failed in a way the retry policy may cure: its verdict and the error to report."""

    def __init__(self, decision: retry.Decision, error: Exception) -> None:
        super().__init__(str(error))
        self.decision = decision
        self.error = error


class _RefreshTransport:
    """google-auth's transport for token refreshes (urllib3, the configured timeouts), made on the first
    refresh: anonymous credentials (an emulator) never load it."""

    def __init__(self) -> None:
        self._request: Any = None
        self._lock = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            if self._request is None:
                import urllib3
                from google.auth.transport.urllib3 import Request

                pool = urllib3.PoolManager(timeout=urllib3.Timeout(connect=timeouts.connect(), read=timeouts.read()))
                self._request = Request(pool)
        return self._request(*args, **kwargs)


class GcsDownloader:
    """Media downloads of one bucket's objects (made on the first download)."""

    def __init__(
        self,
        bucket: str,
        *,
        base_url: str,
        credentials: Any,
        concurrency: int,
        policy: retry.RetryPolicy,
        where: Callable[[str], str],
        denied: Callable[[str], AccessDenied],
    ) -> None:
        base = base_url.rstrip("/")
        self._base = base
        self._path = f"{urlsplit(base).path}/download/storage/v1/b/{quote(bucket, safe='')}/o/"
        self._where = where
        self._denied = denied
        self._policy = policy
        self._credentials = credentials
        self._refresh = _RefreshTransport()
        self._anonymous = type(credentials).__name__ == "AnonymousCredentials"
        self._connections = Connections(base, keep=max(10, concurrency + 4))
        self.ranged = RangedReader(name="syncops-gcs-part")

    def _target(self, name: str, generation: str | None = None) -> str:
        target = f"{self._path}{quote(name, safe='')}?alt=media"
        return f"{target}&ifGenerationMatch={generation}" if generation else target

    def _headers(self, target: str, extra: dict[str, str] | None, *, refresh: bool = False) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT}
        if extra:
            headers.update(extra)
        if not self._anonymous:
            from google.auth import exceptions as auth_errors

            try:
                if refresh:
                    self._credentials.refresh(self._refresh)
                self._credentials.before_request(self._refresh, "GET", f"{self._base}{target}", headers)
            except auth_errors.TransportError as exc:
                raise _Transient(retry.classify(None, exc=exc), Unavailable(f"token refresh: {exc}")) from None
            except auth_errors.GoogleAuthError:
                raise _AuthFailed from None
        return headers

    def _send(
        self, target: str, key: str, extra: dict[str, str] | None, *, refresh: bool = False
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        try:
            headers = self._headers(target, extra, refresh=refresh)
        except _AuthFailed:
            # Credentials that could not be refreshed (anonymous ones never can).
            raise self._denied(key) from None
        conn = self._connections.take()
        try:
            conn.request("GET", target, headers=headers)
            return conn, conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            error = Unavailable(
                f"download {self._where(key)}: {describe(exc)} (after {self._policy.attempts} attempts)"
            )
            raise _Transient(transport_decision(exc), error) from None

    def _request(
        self, target: str, key: str, headers: dict[str, str] | None = None
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """One GET whose status is 2xx (body not read): the connection and its answer; :class:`_Transient`
        for what the retry policy may cure, our errors otherwise."""
        conn, response = self._send(target, key, headers)
        status = response.status
        if status == 401 and not self._anonymous:
            # The token expired in flight or was revoked: one refresh, then the request once more.
            self._discard(conn, response)
            conn, response = self._send(target, key, headers, refresh=True)
            status = response.status
        if status < 300:
            return conn, response
        retry_after = response.getheader("Retry-After")
        self._discard(conn, response)
        if status == 404:
            raise NotFound(f"{self._where(key)}: not found")
        if status == 412:
            raise ObjectChanged(f"{key}: the generation changed between parts")
        if status == 416:
            raise ObjectChanged(f"{key}: a range is past the object's end now")
        if status in (401, 403):
            raise self._denied(key)
        decision = retry.classify(status, retry_after=retry_after)
        if not decision.retriable:
            raise StoreError(f"download {self._where(key)} failed: HTTP {status}")
        error = Unavailable(f"download {self._where(key)}: HTTP {status} (after {self._policy.attempts} attempts)")
        raise _Transient(decision, error)

    def _discard(self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse) -> None:
        self._connections.drain(conn, response)

    def fetch(self, name: str, key: str, out: BinaryIO, *, check: bool = True) -> tuple[int, str]:
        """Stream object ``name`` into ``out``; returns the byte count and the generation."""
        written, generation, _ = self._fetch(name, key, out, check=check)
        return written, generation

    def read(self, name: str, key: str) -> tuple[bytes, str, str]:
        """Object ``name`` whole, checked: its bytes, generation and ``Last-Modified`` header."""
        out = io.BytesIO()
        _, generation, modified = self._fetch(name, key, out, check=True)
        return out.getvalue(), generation, modified

    def _fetch(self, name: str, key: str, out: BinaryIO, *, check: bool) -> tuple[int, str, str]:
        """Stream object ``name`` into ``out``: the byte count, the generation and ``Last-Modified``.

        One :class:`syncops.retry.Transfer` covers it: a failed request and a body that broke off or
        failed its checksum are each retried on their budget, from byte 0 of ``out`` (its writer takes
        back the progress it reported)."""
        start = out.tell()
        transfer = retry.Transfer(self._policy, f"download {self._where(key)}")
        target = self._target(name)
        while True:
            in_body = False
            try:
                conn, response = self._request(target, key)
                in_body = True
                generation = response.getheader("x-goog-generation", "")
                modified = response.getheader("Last-Modified", "")
                # A gzip-stored object is served decompressed: its x-goog-hash is of the stored bytes.
                transcoded = response.getheader("x-goog-stored-content-encoding", "identity") != "identity"
                checksum = _Checksum(response.getheader("x-goog-hash", "")) if check and not transcoded else None
                written = 0
                try:
                    while True:
                        try:
                            chunk = response.read(CHUNK)
                        except (OSError, http.client.HTTPException) as exc:
                            raise _BodyBroke(exc) from None
                        if not chunk:
                            if response.length:  # http.client ends a short Content-Length body quietly
                                raise _BodyBroke(http.client.IncompleteRead(b"", response.length))
                            break
                        if checksum is not None:
                            checksum.update(chunk)
                        out.write(chunk)  # a local write error propagates as it is: not the network's
                        written += len(chunk)
                except BaseException:
                    conn.close()
                    raise
                self._connections.give(conn)
                if checksum is None or checksum.matches():
                    return written, generation, modified
                error: Exception = Unavailable(
                    f"download {self._where(key)}: the body did not match the object's checksum "
                    f"in {transfer.body_failures + 1} reads"
                )
                decision = retry.BROKEN_BODY
            except _Transient as failed:
                decision, error = failed.decision, failed.error
            except _BodyBroke as broke:  # the body broke off (or stalled)
                decision = transport_decision(broke.cause)
                error = Unavailable(f"download {self._where(key)}: {describe(broke.cause)}")
            if not transfer.again(decision, in_body=in_body):
                raise error from None
            out.seek(start)
            out.truncate()

    def fetch_ranged(self, name: str, key: str, out: BinaryIO, size: int, *, check: bool = True) -> tuple[int, str]:
        """Like :meth:`fetch` in parallel ranges of ``size`` expected bytes; a generation change (or a
        size other than ``size``) reads the object again whole with :meth:`fetch`."""
        start = out.tell()
        checked: Any = _ChecksumWriter(out) if check else out
        try:
            first = self.ranged.read(lambda lo, hi, pin: self._get_part(name, key, lo, hi, pin), size, checked)
        except ObjectChanged:
            out.seek(start)
            out.truncate()
            return self.fetch(name, key, out, check=check)
        if isinstance(checked, _ChecksumWriter) and not checked.matches(first.hashes):
            out.seek(start)
            out.truncate()
            return self.fetch(name, key, out, check=check)  # read again whole, checked as it streams
        return size, first.token

    def _get_part(self, name: str, key: str, start: int, end: int, pin: str | None) -> Part:
        """Bytes ``[start, end)`` of ``name`` (of generation ``pin``), a transient failure retried alone."""

        def get() -> Part:
            conn, response = self._request(self._target(name, pin), key, {"Range": f"bytes={start}-{end - 1}"})
            if response.status != 206:
                # The whole object instead of a range (a server without ranges, a transcoded object):
                # never read it into memory once per part; it is read again whole, streamed.
                conn.close()
                raise ObjectChanged(f"{key}: the server ignored the Range header")
            try:
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                error = Unavailable(f"download {self._where(key)}: {describe(exc)}")
                raise _Transient(transport_decision(exc), error) from None
            self._connections.give(conn)
            total = _total_size(response.getheader("Content-Range", ""))
            generation = response.getheader("x-goog-generation", "")
            return Part(data, total, generation, None, response.getheader("x-goog-hash", ""))

        def judge(exc: Exception) -> retry.Decision:
            return exc.decision if isinstance(exc, _Transient) else retry.Decision(retry.Verdict.FATAL)

        try:
            return self._policy.call(get, judge, what=f"download {self._where(key)} [{start}, {end})")
        except _Transient as failed:
            raise failed.error from None

    def close(self) -> None:
        self.ranged.close()
        self._connections.clear()


class _AuthFailed(Exception):
    """The credentials could not be applied or refreshed."""


class _BodyBroke(Exception):
    """Reading an answer's body failed (a reset, a stall, a connection closed early)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _total_size(content_range: str) -> int:
    """The whole object's size from ``Content-Range: bytes a-b/N`` (-1 when it does not say)."""
    total = content_range.rpartition("/")[2]
    return int(total) if total.isdigit() else -1


def _hashes(header: str) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        try:
            found[name] = base64.b64decode(value)
        except ValueError:
            continue
    return found


class _Checksum:
    """crc32c (or md5 when the server gives no crc32c) of a body, to compare with ``x-goog-hash``."""

    def __init__(self, header: str) -> None:
        import google_crc32c

        self._expected = _hashes(header)
        self._crc: Any = google_crc32c.Checksum() if "crc32c" in self._expected else None
        self._md5: Any = hashlib.md5() if self._crc is None and "md5" in self._expected else None

    def update(self, data: Any) -> None:
        if self._crc is not None:
            self._crc.update(data)
        elif self._md5 is not None:
            self._md5.update(data)

    def matches(self) -> bool:
        if self._crc is not None:
            return bool(self._crc.digest() == self._expected["crc32c"])
        if self._md5 is not None:
            return bool(self._md5.digest() == self._expected["md5"])
        return True  # nothing to check against


class _ChecksumWriter:
    """Computes the crc32c of what passes in order (written or landed), checked at the end."""

    def __init__(self, out: BinaryIO) -> None:
        import google_crc32c

        self._out = out
        self._crc = google_crc32c.Checksum()

    def write(self, data: Any) -> int:
        self._crc.update(data)
        return self._out.write(data)

    def landed(self, data: Any) -> None:
        self._crc.update(data)
        self._out.landed(data)  # type: ignore[attr-defined]

    def matches(self, header: str) -> bool:
        expected = _hashes(header).get("crc32c")
        return expected is None or bool(self._crc.digest() == expected)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._out, name)


def data_plane_enabled() -> bool:
    """``SYNCOPS_GCS_DATA_PLANE=library`` downloads through google-cloud-storage instead (e.g. to compare)."""
    return os.environ.get("SYNCOPS_GCS_DATA_PLANE", "http").strip().lower() != "library"

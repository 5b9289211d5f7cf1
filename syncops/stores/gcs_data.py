"""The GCS data plane: object downloads as plain JSON-API media GETs on one shared urllib3 pool.

Why not google-cloud-storage for the bytes: a ``Blob.download_to_file`` costs about 4–5 ms of Python
per object here (blob objects, resumable-media, a requests session), so a hydrate of 1,000 small
objects was 6× rclone. One ``GET /download/storage/v1/b/B/o/NAME?alt=media`` through urllib3, with
google-auth's credentials on it, costs under 1 ms. google-cloud-storage stays the control plane
(index reads with their time, listings, conditional writes, error details).

The checks stay: the body is checked against the ``x-goog-hash`` crc32c (md5 when no crc32c is
given) unless the caller checks a sha256 of its own; a mismatch is read again. Large objects are
read in parallel ranges (:mod:`syncops.stores.ranged`) pinned with ``ifGenerationMatch`` to the
generation of the first answer.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from typing import Any, BinaryIO
from urllib.parse import quote

from syncops import retry, timeouts
from syncops.errors import AccessDenied, NotFound, StoreError, Unavailable
from syncops.stores.ranged import ObjectChanged, Part, RangedReader

CHUNK = 1 << 20


class _Transient(Exception):
    """A request that failed in a way the retry policy may cure: its verdict and the error to report."""

    def __init__(self, decision: retry.Decision, error: Exception) -> None:
        super().__init__(str(error))
        self.decision = decision
        self.error = error


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
        import urllib3
        from google.auth.transport.urllib3 import AuthorizedHttp

        self._prefix = f"{base_url.rstrip('/')}/download/storage/v1/b/{quote(bucket, safe='')}/o/"
        self._where = where
        self._denied = denied
        self._policy = policy
        pool = urllib3.PoolManager(
            maxsize=max(10, concurrency + 4),
            timeout=urllib3.Timeout(connect=timeouts.connect(), read=timeouts.read()),
            retries=False,
        )
        self._http = AuthorizedHttp(credentials, http=pool)
        self.ranged = RangedReader(name="syncops-gcs-part")

    def _url(self, name: str, generation: str | None = None) -> str:
        url = f"{self._prefix}{quote(name, safe='')}?alt=media"
        return f"{url}&ifGenerationMatch={generation}" if generation else url

    def _request(self, url: str, key: str, headers: dict[str, str] | None = None) -> Any:
        """One GET whose status is 2xx (body not read); :class:`_Transient` for what the retry policy may
        cure, our errors otherwise."""
        import urllib3
        from google.auth import exceptions as auth_errors

        try:
            response = self._http.request("GET", url, headers=headers, preload_content=False)
        except (urllib3.exceptions.HTTPError, auth_errors.TransportError) as exc:
            error = Unavailable(f"download {self._where(key)}: {exc} (after {self._policy.attempts} attempts)")
            raise _Transient(retry.classify(None, exc=exc), error) from None
        except auth_errors.GoogleAuthError:
            # A 401 the credentials could not be refreshed for (anonymous ones never can).
            raise self._denied(key) from None
        status = response.status
        if status < 300:
            return response
        response.drain_conn()
        response.release_conn()
        if status == 404:
            raise NotFound(f"{self._where(key)}: not found")
        if status == 412:
            raise ObjectChanged(f"{key}: the generation changed between parts")
        if status == 416:
            raise ObjectChanged(f"{key}: a range is past the object's end now")
        if status in (401, 403):
            raise self._denied(key)
        decision = retry.classify(status, retry_after=response.headers.get("Retry-After"))
        if not decision.retriable:
            raise StoreError(f"download {self._where(key)} failed: HTTP {status}")
        error = Unavailable(f"download {self._where(key)}: HTTP {status} (after {self._policy.attempts} attempts)")
        raise _Transient(decision, error)

    def fetch(self, name: str, key: str, out: BinaryIO, *, check: bool = True) -> tuple[int, str]:
        """Stream object ``name`` into ``out``; returns the byte count and the generation.

        One :class:`syncops.retry.Transfer` covers it: a failed request and a body that broke off or
        failed its checksum are each retried on their budget, from byte 0 of ``out`` (its writer takes
        back the progress it reported)."""
        import urllib3

        start = out.tell()
        transfer = retry.Transfer(self._policy, f"download {self._where(key)}")
        while True:
            in_body = False
            try:
                response = self._request(self._url(name), key)
                in_body = True
                generation = response.headers.get("x-goog-generation", "")
                # A gzip-stored object is served decompressed: its x-goog-hash is of the stored bytes.
                transcoded = response.headers.get("x-goog-stored-content-encoding", "identity") != "identity"
                checksum = _Checksum(response.headers.get("x-goog-hash", "")) if check and not transcoded else None
                written = 0
                try:
                    for chunk in response.stream(CHUNK):
                        if checksum is not None:
                            checksum.update(chunk)
                        out.write(chunk)
                        written += len(chunk)
                finally:
                    response.release_conn()
                if checksum is None or checksum.matches():
                    return written, generation
                error: Exception = Unavailable(
                    f"download {self._where(key)}: the body did not match the object's checksum "
                    f"in {transfer.body_failures + 1} reads"
                )
                decision = retry.BROKEN_BODY
            except _Transient as failed:
                decision, error = failed.decision, failed.error
            except urllib3.exceptions.HTTPError as exc:  # the body broke off
                decision, error = retry.classify(None, exc=exc), Unavailable(f"download {self._where(key)}: {exc}")
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
        import urllib3

        def get() -> Part:
            response = self._request(self._url(name, pin), key, {"Range": f"bytes={start}-{end - 1}"})
            if response.status != 206:
                # The whole object instead of a range (a server without ranges, a transcoded object):
                # never read it into memory once per part; it is read again whole, streamed.
                response.close()
                response.release_conn()
                raise ObjectChanged(f"{key}: the server ignored the Range header")
            try:
                data = response.read()
            except urllib3.exceptions.HTTPError as exc:
                error = Unavailable(f"download {self._where(key)}: {exc}")
                raise _Transient(retry.classify(None, exc=exc), error) from None
            finally:
                response.release_conn()
            total = _total_size(response.headers.get("Content-Range", ""))
            generation = response.headers.get("x-goog-generation", "")
            return Part(data, total, generation, None, response.headers.get("x-goog-hash", ""))

        def judge(exc: Exception) -> retry.Decision:
            return exc.decision if isinstance(exc, _Transient) else retry.Decision(retry.Verdict.FATAL)

        try:
            return self._policy.call(get, judge, what=f"download {self._where(key)} [{start}, {end})")
        except _Transient as failed:
            raise failed.error from None

    def close(self) -> None:
        self.ranged.close()
        self._http.http.clear()


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

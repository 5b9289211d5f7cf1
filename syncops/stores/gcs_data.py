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
import random
import time
from collections.abc import Callable
from typing import Any, BinaryIO
from urllib.parse import quote

from syncops.errors import AccessDenied, NotFound, StoreError, Unavailable
from syncops.stores.ranged import ObjectChanged, Part, RangedReader

#: Requests of one object (or part) before a transient failure (5xx, 429, reset, timeout) is final.
ATTEMPTS = 6
#: Whole reads of an object whose body failed its checksum before the download fails.
BODY_ATTEMPTS = 3
CHUNK = 1 << 20

_TRANSIENT = {408, 429, 500, 502, 503, 504}


class GcsDownloader:
    """Media downloads of one bucket's objects (made on the first download)."""

    def __init__(
        self,
        bucket: str,
        *,
        base_url: str,
        credentials: Any,
        concurrency: int,
        where: Callable[[str], str],
        denied: Callable[[str], AccessDenied],
    ) -> None:
        import urllib3
        from google.auth.transport.urllib3 import AuthorizedHttp

        self._prefix = f"{base_url.rstrip('/')}/download/storage/v1/b/{quote(bucket, safe='')}/o/"
        self._where = where
        self._denied = denied
        pool = urllib3.PoolManager(
            maxsize=max(10, concurrency + 4),
            timeout=urllib3.Timeout(connect=10, read=60),
            retries=False,
        )
        self._http = AuthorizedHttp(credentials, http=pool)
        self.ranged = RangedReader(name="syncops-gcs-part")

    def _url(self, name: str, generation: str | None = None) -> str:
        url = f"{self._prefix}{quote(name, safe='')}?alt=media"
        return f"{url}&ifGenerationMatch={generation}" if generation else url

    def _request(self, url: str, key: str, headers: dict[str, str] | None = None) -> Any:
        """One GET whose status is 2xx (body not read), transient failures retried; our errors otherwise."""
        import urllib3
        from google.auth import exceptions as auth_errors

        failures = 0
        while True:
            wait = min(5.0, 0.1 * 2**failures)
            try:
                response = self._http.request("GET", url, headers=headers, preload_content=False)
            except (urllib3.exceptions.HTTPError, auth_errors.TransportError) as exc:
                error: Exception = Unavailable(f"download {self._where(key)}: {exc} (after {ATTEMPTS} attempts)")
            except auth_errors.GoogleAuthError:
                # A 401 the credentials could not be refreshed for (anonymous ones never can).
                raise self._denied(key) from None
            else:
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
                if status not in _TRANSIENT:
                    raise StoreError(f"download {self._where(key)} failed: HTTP {status}")
                error = Unavailable(f"download {self._where(key)}: HTTP {status} (after {ATTEMPTS} attempts)")
                retry_after = response.headers.get("Retry-After", "")
                if retry_after.isdigit():
                    wait = min(30.0, float(retry_after))
            failures += 1
            if failures >= ATTEMPTS:
                raise error
            time.sleep(random.uniform(0, wait))

    def fetch(self, name: str, key: str, out: BinaryIO, *, check: bool = True) -> tuple[int, str]:
        """Stream object ``name`` into ``out``; returns the byte count and the generation."""
        import urllib3

        start = out.tell()
        for attempt in range(BODY_ATTEMPTS):
            response = self._request(self._url(name), key)
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
            except urllib3.exceptions.HTTPError as exc:
                broken: str = str(exc)
            else:
                if checksum is None or checksum.matches():
                    return written, generation
                broken = "the body did not match the object's checksum"
            finally:
                response.release_conn()
            out.seek(start)
            out.truncate()
            if attempt + 1 == BODY_ATTEMPTS:
                raise Unavailable(f"download {self._where(key)}: {broken} (in {BODY_ATTEMPTS} reads)")
            time.sleep(random.uniform(0, 0.2 * 2**attempt))
        raise AssertionError("unreachable")

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
        import urllib3

        for attempt in range(ATTEMPTS):
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
                if attempt + 1 == ATTEMPTS:
                    raise Unavailable(f"download {self._where(key)}: {exc} (after {ATTEMPTS} attempts)") from None
                time.sleep(random.uniform(0, min(5.0, 0.1 * 2**attempt)))
                continue
            finally:
                response.release_conn()
            total = _total_size(response.headers.get("Content-Range", ""))
            generation = response.headers.get("x-goog-generation", "")
            return Part(data, total, generation, None, response.headers.get("x-goog-hash", ""))
        raise AssertionError("unreachable")

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

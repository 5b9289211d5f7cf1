"""``file:///path``: a local directory acting as the bucket (the embedded default, no server).

Version tokens are the MD5 of the content, as an S3 ETag would be. Conditional writes are made
atomic across processes with an exclusive ``flock`` on the root's ``.datastore.lock`` (an internal
file, never data), so racing peers on one machine behave as they do against a real bucket.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from syncops.errors import AccessDenied, NotFound, PreconditionFailed, StoreError
from syncops.localfs import safe_join, walk_files, write_atomically
from syncops.stores.base import Blob, DatastoreUrl, ObjectInfo

_LOCK_NAME = ".datastore.lock"


class LocalStore:
    def __init__(self, url: DatastoreUrl) -> None:
        self.url = url
        self.root = Path(url.bucket)

    # -- helpers -------------------------------------------------------------------------------
    def _require_root(self) -> None:
        if not self.root.is_dir():
            raise StoreError(f"datastore directory {self.root} does not exist (or is not a directory)")

    def _translate(self, exc: OSError, operation: str, key: str) -> Exception:
        where = self.url.object_url(key) if key else str(self.url)
        if isinstance(exc, FileNotFoundError):
            return NotFound(f"{where}: not found")
        if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM):
            return AccessDenied(
                f"access denied: {operation} {where} (credentials: {self.credential_source()}; "
                "the user needs read/write permission on the directory)"
            )
        return StoreError(f"{operation} {where} failed: {exc.strerror or exc}")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.root / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- contract ------------------------------------------------------------------------------
    def get(self, key: str) -> Blob:
        self._require_root()
        try:
            data = safe_join(self.root, key).read_bytes()
        except IsADirectoryError:
            raise NotFound(f"{self.url.object_url(key)}: is a directory, not an object") from None
        except OSError as exc:
            raise self._translate(exc, "read", key) from None
        return Blob(data=data, token=hashlib.md5(data).hexdigest())

    def put(
        self, key: str, data: bytes | Iterable[bytes], *, if_absent: bool = False, if_token: str | None = None
    ) -> str:
        self._require_root()
        path = safe_join(self.root, key)

        def fill(out: BinaryIO) -> str:
            digest = hashlib.md5()
            for chunk in [data] if isinstance(data, bytes) else data:
                out.write(chunk)
                digest.update(chunk)
            return digest.hexdigest()

        try:
            if not if_absent and if_token is None:
                return write_atomically(path, fill)
            with self._locked():
                try:
                    current: bytes | None = path.read_bytes()
                except FileNotFoundError:
                    current = None
                if if_absent and current is not None:
                    raise PreconditionFailed(f"{self.url.object_url(key)} already exists")
                if if_token is not None and (current is None or hashlib.md5(current).hexdigest() != if_token):
                    raise PreconditionFailed(f"{self.url.object_url(key)} changed since it was read")
                return write_atomically(path, fill)
        except OSError as exc:
            raise self._translate(exc, "write", key) from None

    def list(self) -> Iterator[ObjectInfo]:
        self._require_root()
        try:
            for key, stat in walk_files(self.root):
                yield ObjectInfo(
                    key=key,
                    size=stat.st_size,
                    last_modified=datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc),
                )
        except OSError as exc:
            raise self._translate(exc, "list", "") from None

    def download(self, key: str, out: BinaryIO) -> int:
        self._require_root()
        try:
            with open(safe_join(self.root, key), "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
                return src.tell()
        except OSError as exc:
            raise self._translate(exc, "read", key) from None

    def upload(self, key: str, path: Path) -> None:
        self._require_root()
        target = safe_join(self.root, key)
        try:
            with open(path, "rb") as src:
                write_atomically(target, lambda out: shutil.copyfileobj(src, out, 1 << 20))
        except OSError as exc:
            raise self._translate(exc, "write", key) from None

    def credential_source(self) -> str:
        return f"local file permissions of uid {os.getuid()}"

    def close(self) -> None:
        pass

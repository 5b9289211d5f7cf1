"""``file:///path``: a local directory acting as the bucket (the embedded default, no server).

Version tokens are the MD5 of the content, as an S3 ETag would be. Conditional writes (and the
conditional delete that releases syncops's own lock) are made atomic across processes with an
exclusive ``flock`` on ``_control/syncops.flock`` (an internal file, never data), so racing peers on
one machine behave as they do against a real bucket. The flock file is deliberately not
``.datastore.lock``: that key is swamp's lock object, which on ``file://`` is an object like any other.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from syncops.errors import AccessDenied, NotFound, PreconditionFailed, StoreError
from syncops.localfs import (
    CHUNK,
    NotRegularFile,
    open_file_under,
    open_parent,
    safe_join,
    walk_files,
    write_under,
)
from syncops.stores.base import Blob, DatastoreUrl, Fetched, Head, ObjectInfo, UploadBody

#: The file the conditional operations flock; under ``_control/``, internal at the root.
FLOCK_KEY = "_control/syncops.flock"


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
        path = self.root / FLOCK_KEY
        path.parent.mkdir(exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- contract ------------------------------------------------------------------------------
    def _read(self, key: str, out: BinaryIO | None) -> tuple[bytes, int, str, datetime]:
        """Read ``key`` whole (``out`` None) or into ``out``; returns (bytes or b"", size, md5 token, mtime)."""
        self._require_root()
        digest = hashlib.md5()
        chunks: list[bytes] = []
        size = 0
        try:
            with open_file_under(self.root, key) as (fd, info):
                modified = datetime.fromtimestamp(info.st_mtime, tz=timezone.utc)
                while True:
                    data = os.read(fd, CHUNK)
                    if not data:
                        break
                    digest.update(data)
                    size += len(data)
                    if out is None:
                        chunks.append(data)
                    else:
                        out.write(data)
        except NotRegularFile:
            raise NotFound(f"{self.url.object_url(key)}: not a regular file, not an object") from None
        except (NotADirectoryError, IsADirectoryError):
            raise NotFound(f"{self.url.object_url(key)}: not found") from None
        except OSError as exc:
            if out is not None and not isinstance(exc, (FileNotFoundError, PermissionError)):
                raise  # the writing side (a full disk): reported as a local I/O failure
            raise self._translate(exc, "read", key) from None
        return b"".join(chunks), size, digest.hexdigest(), modified

    def get(self, key: str) -> Blob:
        data, _, token, modified = self._read(key, None)
        return Blob(data=data, token=token, last_modified=modified)

    def _write(self, key: str, chunks: Iterable[bytes], *, if_absent: bool = False, if_token: str | None = None) -> str:
        """Write ``key`` atomically, under the root's lock when a condition has to hold."""
        self._require_root()
        safe_join(self.root, key)  # a clear message for an unsafe key before anything is opened

        def fill(out: BinaryIO) -> str:
            digest = hashlib.md5()
            for chunk in chunks:
                out.write(chunk)
                digest.update(chunk)
            return digest.hexdigest()

        try:
            if not if_absent and if_token is None:
                return write_under(self.root, key, fill)[0]
            with self._locked():
                try:
                    current: str | None = self._read(key, None)[2] if if_token is not None else None
                    exists = if_token is not None or self._exists(key)
                except NotFound:
                    current, exists = None, False
                if if_absent and exists:
                    raise PreconditionFailed(f"{self.url.object_url(key)} already exists")
                if if_token is not None and current != if_token:
                    raise PreconditionFailed(f"{self.url.object_url(key)} changed since it was read")
                return write_under(self.root, key, fill)[0]
        except NotRegularFile as exc:
            raise StoreError(f"write {self.url.object_url(key)} failed: {exc.strerror}") from None
        except OSError as exc:
            raise self._translate(exc, "write", key) from None

    def _exists(self, key: str) -> bool:
        try:
            with open_parent(self.root, key) as (parent, name):
                os.stat(name, dir_fd=parent, follow_symlinks=False)
            return True
        except (FileNotFoundError, NotADirectoryError, NotRegularFile):
            return False

    def put(
        self, key: str, data: bytes | Iterable[bytes], *, if_absent: bool = False, if_token: str | None = None
    ) -> str:
        return self._write(key, [data] if isinstance(data, bytes) else data, if_absent=if_absent, if_token=if_token)

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

    def download(
        self, key: str, out: BinaryIO, *, checked_by_caller: bool = False, size_hint: int | None = None
    ) -> Fetched:
        _, size, token, _ = self._read(key, out)
        return Fetched(size=size, token=token)

    def head(self, key: str) -> Head:
        _, size, token, modified = self._read(key, None)
        return Head(size=size, token=token, md5=token, last_modified=modified)

    def delete(self, key: str, *, if_token: str) -> None:
        self._require_root()
        safe_join(self.root, key)
        try:
            with self._locked():
                if self._read(key, None)[2] != if_token:
                    raise PreconditionFailed(f"{self.url.object_url(key)} changed since it was read; not deleted")
                with open_parent(self.root, key) as (parent, name):
                    os.unlink(name, dir_fd=parent)
        except (NotADirectoryError, NotRegularFile):
            raise NotFound(f"{self.url.object_url(key)}: not found") from None
        except OSError as exc:
            raise self._translate(exc, "delete", key) from None

    def upload(self, key: str, body: UploadBody, *, if_absent: bool = False, if_token: str | None = None) -> str:
        def chunks() -> Iterator[bytes]:
            body.seek(0)
            while True:
                data = body.read(CHUNK)
                if not data:
                    return
                yield data

        return self._write(key, chunks(), if_absent=if_absent, if_token=if_token)

    def credential_source(self) -> str:
        return f"local file permissions of uid {os.getuid()}"

    def close(self) -> None:
        pass

    # -- server-side copy (seed) ---------------------------------------------------------------
    def can_copy_from(self, source: object) -> bool:
        """Never: copying between directories reads and writes every byte here anyway, so seed streams
        the object through :meth:`download` / :meth:`upload` (verified, create-only) instead."""
        return False

    def copy_from(
        self, source: object, key: str, *, size: int, if_absent: bool = False, if_token: str | None = None
    ) -> str:
        raise StoreError(f"{self.url.object_url(key)}: a file:// datastore has no server-side copy")

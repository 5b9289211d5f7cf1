"""Local files done safely: paths that cannot leave their root, and atomic writes.

Used by the local side of a sync (:mod:`syncops.workdir`) and by the ``file://`` backend. Two rules:

* **Nothing is resolved twice.** A path under a root is reached by opening each directory in turn
  with ``O_NOFOLLOW`` relative to the one before (``dir_fd``), so a directory swapped for a symlink
  between a check and a use can never lead outside the root; files are opened with ``O_NOFOLLOW``
  and ``O_NONBLOCK`` and checked with ``fstat`` to be regular files (a FIFO never hangs a read).
* **A file at its final path is always complete.** Bytes go to a file with no name in the same
  directory (``O_TMPFILE``; else a temp name), are fsynced, and only then get the final name. Files
  are created with mode 0666 under the process's umask, like any other tool's.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import itertools
import os
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, TypeVar

from syncops.errors import BadInput
from syncops.keys import escape_key, unsafe_reason

#: Temp files carry this suffix; walks skip them so a killed transfer is never taken for data.
PARTIAL_SUFFIX = ".syncops-partial"
#: Bytes per read when hashing or copying a file.
CHUNK = 1 << 20
#: The write buffer of a file being created. Small, so downloaded chunks (a MiB or more) go to the
#: kernel straight from the caller's buffer instead of being copied through it first, and so a small
#: file's buffer comes from the heap, not from an mmap/munmap pair per file.
WRITE_BUFFER = 64 * 1024

T = TypeVar("T")

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_temp_names = itertools.count()
#: Part of every temp name (not asked of the kernel per file; a clash after a fork is met by O_EXCL).
_PID = os.getpid()
#: Flags of a file created with no name (Linux ``O_TMPFILE``), named by a link through ``/proc`` once
#: whole; None where either is missing (then a named temp file and a rename).
_PROC_FD = "/proc/self/fd"
_UNNAMED_FLAGS = (
    os.O_RDWR | os.O_TMPFILE | os.O_CLOEXEC if hasattr(os, "O_TMPFILE") and os.path.isdir(_PROC_FD) else None
)


class NotRegularFile(OSError):
    """A path that should be a regular file is a symlink, a FIFO, a device or a directory."""


def safe_join(root: Path, key: str) -> Path:
    """The path of ``key`` under ``root``; refuses any key or symlink that would lead outside it.

    For messages and for callers that only look (``stat``); every read or write goes through
    :func:`open_parent`, which cannot be fooled by a swap after this check.
    """
    reason = unsafe_reason(key)
    if reason is not None:
        raise BadInput(f"unsafe key {escape_key(key)} ({reason}): not written")
    path = root.joinpath(*key.split("/"))
    real_root = os.path.realpath(root)
    real_parent = os.path.realpath(path.parent)
    if real_parent != real_root and not real_parent.startswith(real_root + os.sep):
        raise BadInput(f"key {escape_key(key)} leads outside {root} through a symlink: not written")
    if path.is_symlink():
        raise BadInput(f"key {escape_key(key)} is a symlink in {root}: not overwritten")
    return path


@contextmanager
def open_parent(root: Path, key: str, *, create: bool = False) -> Iterator[tuple[int, str]]:
    """The directory that holds ``key`` under ``root``, as an open descriptor, and the key's basename.

    Every directory on the way is opened with ``O_NOFOLLOW`` relative to its parent, so a symlink
    anywhere below ``root`` (there from the start, or swapped in while syncops runs) fails the open
    instead of being followed. ``create`` makes missing directories (mode 0777 under the umask).
    """
    reason = unsafe_reason(key)
    if reason is not None:
        raise BadInput(f"unsafe key {escape_key(key)} ({reason})")
    *directories, name = key.split("/")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for directory in directories:
            try:
                child = os.open(directory, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(directory, 0o777, dir_fd=fd)
                except FileExistsError:
                    pass
                child = os.open(directory, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    link = stat.S_ISLNK(os.stat(directory, dir_fd=fd, follow_symlinks=False).st_mode)
                    what = "a symlink (never followed)" if link else "not a directory"
                    raise NotRegularFile(exc.errno, f"{directory} is {what}") from None
                raise
            os.close(fd)
            fd = child
        yield fd, name
    finally:
        os.close(fd)


def open_regular(name: str, *, dir_fd: int | None = None) -> tuple[int, os.stat_result]:
    """Open a regular file for reading without following a symlink or blocking on a FIFO.

    Returns the descriptor and its ``fstat``; raises :class:`NotRegularFile` for anything else.
    """
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegularFile(exc.errno, "is a symlink", name) from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(errno.EINVAL, "is not a regular file", name)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd, info


@contextmanager
def open_file_under(root: Path, key: str) -> Iterator[tuple[int, os.stat_result]]:
    """``key`` under ``root`` opened for reading, safely (see :func:`open_parent`, :func:`open_regular`)."""
    with open_parent(root, key) as (parent, name):
        fd, info = open_regular(name, dir_fd=parent)
    try:
        yield fd, info
    finally:
        os.close(fd)


class HashingReader:
    """A file-like view of the first ``size`` bytes of a descriptor that hashes what is read.

    SDKs read an upload body more than once (to sign it, to send it, to retry); each byte position
    is hashed once, in order, so ``sha256`` is the digest of the bytes sent, computed in the same
    pass that reads them. A file that shrank under the reader fails the read rather than sending a
    short body; bytes appended after ``size`` are not part of the upload.
    """

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self._size = size
        self._pos = 0
        self._hashed = 0
        self._sha = hashlib.sha256()

    def read(self, count: int | None = -1) -> bytes:
        if count is None or count < 0:
            count = self._size - self._pos
        count = min(count, self._size - self._pos)
        if count <= 0:
            return b""
        data = os.pread(self._fd, count, self._pos)
        if not data:
            raise OSError(errno.EIO, "the file shrank while it was being uploaded")
        start, end = self._pos, self._pos + len(data)
        if start <= self._hashed < end:
            self._sha.update(memoryview(data)[self._hashed - start :])
            self._hashed = end
        self._pos = end
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        self._pos = max(0, min(self._size, base + offset))
        return self._pos

    def tell(self) -> int:
        return self._pos

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def __len__(self) -> int:
        return self._size

    @property
    def size(self) -> int:
        return self._size

    def sha256(self) -> str:
        """The digest of all ``size`` bytes; reads whatever the uploader did not (nothing, normally)."""
        while self._hashed < self._size:
            self.seek(self._hashed)
            self.read(CHUNK)
        return self._sha.hexdigest()


def file_digests(fd: int) -> tuple[str, str]:
    """sha256 and md5 of an open file's content (hex), in one pass."""
    sha, md5 = hashlib.sha256(), hashlib.md5()
    offset = 0
    while True:
        data = os.pread(fd, CHUNK, offset)
        if not data:
            return sha.hexdigest(), md5.hexdigest()
        sha.update(data)
        md5.update(data)
        offset += len(data)


def _create_temp(parent: int) -> tuple[int, str]:
    """A new temp file in directory ``parent``: a short name of its own (a key's basename may be near
    the 255-byte limit), no random generator, mode 0666 under the umask."""
    while True:
        name = f".{_PID}-{next(_temp_names)}{PARTIAL_SUFFIX}"
        try:
            fd = os.open(
                name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666, dir_fd=parent
            )
        except FileExistsError:
            continue
        return fd, name


def write_under(
    root: Path, key: str, fill: Callable[[BinaryIO], T], *, mtime_ns: int | None = None
) -> tuple[T, os.stat_result]:
    """Create ``key`` under ``root`` whole or not at all: a file with no name yet, fsync, then a name.

    The directory is reached through :func:`open_parent` (missing ones created), so no symlink can
    redirect the write. Where the filesystem has ``O_TMPFILE`` the file is written with no name at all
    and linked at the key's name only once it is whole (a crash leaves nothing behind; one directory
    change per file instead of a create and a rename, which 32 writers in one directory wait on).
    When that name is taken (an older copy, a symlink, a FIFO), or the filesystem has no ``O_TMPFILE``,
    a temp name beside it is renamed over it: a symlink or FIFO there is replaced, never written
    through; a directory there is refused (:class:`NotRegularFile`, EISDIR). No ``stat`` per file:
    the link or the rename itself decides. Returns ``fill``'s result and the stat of the file placed.
    """
    with open_parent(root, key, create=True) as (parent, name):
        fd, temp = _new_file(parent)
        try:
            with os.fdopen(fd, "wb", buffering=WRITE_BUFFER) as out:  # a size given: no isatty probe per file
                result = fill(out)
                out.flush()
                os.fsync(out.fileno())
                if mtime_ns is not None:
                    os.utime(out.fileno(), ns=(mtime_ns, mtime_ns))
                info = os.fstat(out.fileno())
                if temp is None:
                    try:
                        temp = _link_unnamed(out.fileno(), parent, name)
                    except _CannotLink:
                        copy, temp = _new_temp(parent)
                        try:
                            info = _copy_whole(out.fileno(), copy)
                        finally:
                            os.close(copy)
            if temp is not None:
                try:
                    os.replace(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
                except IsADirectoryError:
                    raise NotRegularFile(errno.EISDIR, "a directory of that name is in the way", key) from None
        except BaseException:
            if temp is not None:
                try:
                    os.unlink(temp, dir_fd=parent)
                except FileNotFoundError:
                    pass
            raise
        finally:
            if temp is not None:
                with _partials_lock:
                    _partials.discard((parent, temp))
    return result, info


def _new_file(parent: int) -> tuple[int, str | None]:
    """A new empty file in directory ``parent``: unnamed (``O_TMPFILE``) where the filesystem can, else
    a temp name registered in :data:`_partials`. Mode 0666 under the umask either way."""
    flags = _UNNAMED_FLAGS  # read once: another thread may turn unnamed files off meanwhile
    if flags is not None:
        try:
            return os.open(".", flags, 0o666, dir_fd=parent), None
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
    return _new_temp(parent)


def _new_temp(parent: int) -> tuple[int, str]:
    """A new empty file at a temp name in ``parent``, registered in :data:`_partials` (so the deadline's
    cleanup removes it)."""
    fd, temp = _create_temp(parent)
    with _partials_lock:
        _partials.add((parent, temp))
    return fd, temp


def _proc_cannot_link(exc: OSError, source: str) -> bool:
    """Whether a failed link of ``source`` (``/proc/self/fd/N``) is /proc's doing rather than the target
    directory's: the path does not resolve, or linking through it is refused or unsupported."""
    if exc.errno == errno.ENOENT:
        try:
            os.stat(source)
        except OSError:
            return True
        return False  # the source is there: the directory went away
    return exc.errno in (errno.EPERM, errno.EXDEV, errno.EINVAL, errno.EOPNOTSUPP)


class _CannotLink(Exception):
    """An unnamed file could not be given a name by a link."""


def _copy_whole(source: int, target: int) -> os.stat_result:
    """Copy the whole of file ``source`` into the empty file ``target``, its times too, and fsync it
    (an unnamed file that cannot be linked); returns the copy's stat."""
    offset = 0
    while data := os.pread(source, CHUNK, offset):
        view = memoryview(data)
        while view:
            view = view[os.write(target, view) :]
        offset += len(data)
    os.fsync(target)
    times = os.fstat(source)
    os.utime(target, ns=(times.st_atime_ns, times.st_mtime_ns))
    return os.fstat(target)


def _link_unnamed(fd: int, parent: int, name: str) -> str | None:
    """Give the unnamed file ``fd`` its name ``name`` in ``parent``; None when done. When the name is
    taken, the file is linked at a new temp name instead, returned for the caller to rename over it.
    No link is begun once the deadline's cleanup has started (see :func:`_linking`)."""
    global _UNNAMED_FLAGS
    source = f"{_PROC_FD}/{fd}"
    with _linking():
        try:
            os.link(source, name, dst_dir_fd=parent, follow_symlinks=True)
            return None
        except FileExistsError:
            pass
        except OSError as exc:
            if not _proc_cannot_link(exc, source):
                raise  # about the directory or the disk (full, read-only, no permission): as any write
            # Unnamed files can be made here but not linked (a /proc that does not allow it): this one
            # is copied to a temp name, and this process makes no more of them.
            _UNNAMED_FLAGS = None
            raise _CannotLink from exc
        while True:
            temp = f".{_PID}-{next(_temp_names)}{PARTIAL_SUFFIX}"
            try:
                os.link(source, temp, dst_dir_fd=parent, follow_symlinks=True)
            except FileExistsError:
                continue
            with _partials_lock:
                _partials.add((parent, temp))
            return temp


#: Temp files being written right now, as (directory descriptor, name): what a process that must stop
#: at once (the command deadline) removes first.
_partials: set[tuple[int, str]] = set()
_partials_lock = threading.Lock()
#: Links of unnamed files in progress (under :data:`_partials_lock`), and whether the cleanup has begun.
_links_in_flight = 0
_stopping = False
_links_settled = threading.Condition(_partials_lock)


@contextmanager
def _linking() -> Iterator[None]:
    """Count one link in progress; once the deadline's cleanup has begun, wait for the process to end
    instead. The lock is held only to count, not across the link: 32 writers linking files into
    different directories no longer queue behind one another (in a 2,000-file hydrate, that queue
    was the writers' largest wait)."""
    global _links_in_flight
    with _partials_lock:
        while _stopping:
            _links_settled.wait()
        _links_in_flight += 1
    try:
        yield
    finally:
        with _partials_lock:
            _links_in_flight -= 1
            if not _links_in_flight:
                _links_settled.notify_all()


#: How long the deadline's cleanup waits for links in progress (a hung mount must not keep the process).
LINKS_SETTLE_SECONDS = 5.0


def remove_partial_files() -> None:
    """Remove the temp files this process is writing; links already begun finish first (one system call
    each, their temp names registered; waited for :data:`LINKS_SETTLE_SECONDS` at most), and no new one
    begins. A writer whose temp file is gone has nothing to rename; a file named before that is whole.
    The lock is never released again, so call this only on the way out of the process."""
    global _stopping
    _partials_lock.acquire()
    _stopping = True
    _links_settled.wait_for(lambda: not _links_in_flight, timeout=LINKS_SETTLE_SECONDS)
    for parent, temp in _partials:
        try:
            os.unlink(temp, dir_fd=parent)
        except OSError:
            pass


def write_atomically(path: Path, fill: Callable[[BinaryIO], T], *, mtime: float | None = None) -> T:
    """Create ``path`` whole or not at all (see :func:`write_under`; ``path``'s directory is trusted)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ns = None if mtime is None else int(mtime * 1_000_000_000)
    return write_under(path.parent, path.name, fill, mtime_ns=ns)[0]


def fsync_directory(path: Path) -> None:
    """Make renames inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def walk_files(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Every regular file under ``root`` as (key, stat), sorted; symlinks and partial files skipped.

    Symlinks are never followed: a link to ``/etc`` inside a cache must not push ``/etc``.
    Keys are built from the names as found; callers classify them (internal, unsafe).
    """
    stack = [("", str(root))]
    while stack:
        rel, directory = stack.pop()
        try:
            with os.scandir(directory) as scan:
                children = sorted(scan, key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            continue
        subdirs = []
        for child in children:
            key = f"{rel}{child.name}"
            try:
                if child.is_symlink():
                    continue
                if child.is_dir(follow_symlinks=False):
                    subdirs.append((key + "/", child.path))
                elif child.is_file(follow_symlinks=False) and not child.name.endswith(PARTIAL_SUFFIX):
                    yield key, child.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # vanished between the listing and the look
        stack.extend(reversed(subdirs))

"""Local files done safely: paths that cannot leave their root, and atomic writes.

Used by hydrate (the cache directory), push (walking it) and the ``file://`` backend. A file at
its final path is always complete: bytes go to a temp file in the same directory, are fsynced,
and only then renamed into place.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, TypeVar

from syncops.errors import BadInput
from syncops.keys import escape_key, unsafe_reason
from syncops.stores.base import DatastoreUrl

#: Temp files carry this suffix; walks skip them so a killed transfer is never taken for data.
PARTIAL_SUFFIX = ".syncops-partial"

T = TypeVar("T")


def safe_join(root: Path, key: str) -> Path:
    """The path of ``key`` under ``root``; refuses any key or symlink that would lead outside it."""
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


def refuse_overlap(url: DatastoreUrl, directory: Path) -> None:
    """A ``file://`` datastore and a local directory must not contain each other.

    Hydrating into the datastore's own root would replace its index with the local copy, and a
    cache inside the root would turn the hydrated copies into data of the datastore.
    """
    if url.scheme != "file":
        return
    root = os.path.realpath(url.bucket)
    local = os.path.realpath(directory)
    if local == root or local.startswith(root + os.sep) or root.startswith(local + os.sep):
        raise BadInput(f"{directory} and the datastore {url} overlap: use a directory outside the datastore")


def write_atomically(path: Path, fill: Callable[[BinaryIO], T], *, mtime: float | None = None) -> T:
    """Create ``path`` whole or not at all: temp file beside it, fsync, optional mtime, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A short name of its own: a key's basename may already be near the 255-byte limit.
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=PARTIAL_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as out:
            result = fill(out)
            out.flush()
            os.fsync(out.fileno())
        if mtime is not None:
            os.utime(tmp_name, (mtime, mtime))
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    return result


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
        except FileNotFoundError:
            continue
        subdirs = []
        for child in children:
            key = f"{rel}{child.name}"
            if child.is_symlink():
                continue
            if child.is_dir(follow_symlinks=False):
                subdirs.append((key + "/", child.path))
            elif child.is_file(follow_symlinks=False) and not child.name.endswith(PARTIAL_SUFFIX):
                yield key, child.stat(follow_symlinks=False)
        stack.extend(reversed(subdirs))

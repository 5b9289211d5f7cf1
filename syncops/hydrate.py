"""Initial hydration (SPEC §3 "hydrate"): fill a local cache from the datastore.

Discovery first, so an unindexed bucket still hydrates. Then every entry whose local file is
missing or of another size is downloaded by a bounded pool, each into a temp file beside its final
path, fsynced and renamed, so a killed hydrate never leaves a partial file where data is expected
and a rerun fetches only what is missing. Hydrate never writes the remote index.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from syncops import index as idx
from syncops.discover import Discovery, discover
from syncops.errors import BadInput, NotFound, StoreError
from syncops.keys import INDEX_KEY, escape_key, unsafe_reason
from syncops.localfs import fsync_directory, refuse_overlap, safe_join, write_atomically
from syncops.progress import NoProgress, Progress
from syncops.report import Report
from syncops.stores.base import ObjectStore

DEFAULT_CONCURRENCY = 32
#: Bytes of one file written between data syncs while it downloads.
SYNC_EVERY = 16 * 1024 * 1024


@dataclass
class _Outcome:
    entry: idx.Entry
    written: int | None  # bytes downloaded; None when the object had vanished (stale)


class _CountingWriter:
    """Feeds the progress bar as bytes land, without a second buffer."""

    def __init__(self, out: BinaryIO, progress: Progress) -> None:
        self._out = out
        self._progress = progress
        self._unsynced = 0

    def write(self, chunk: bytes) -> int:
        self._progress.advance(len(chunk))
        written = self._out.write(chunk)
        self._unsynced += len(chunk)
        if self._unsynced >= SYNC_EVERY:
            # Start writeback of a big file while it still downloads, so the fsync before the
            # rename has little left to flush (disk and network overlap instead of adding up).
            self._out.flush()
            os.fdatasync(self._out.fileno())
            self._unsynced = 0
        return written

    def __getattr__(self, name: str) -> object:
        return getattr(self._out, name)


class _SafePaths:
    """:func:`safe_join` for one hydrate run, resolving each directory's realpath once.

    safe_join resolves the root and the parent directory (an lstat per path component) to refuse
    symlinks out of the target; per file, that was most of hydrate's system calls, and every call
    releases and retakes the GIL. The parent's realpath is the same for every key in a directory,
    so the full check runs for the first key of each directory; the others get the per-key checks
    (key safety, the file itself not a symlink), or the full check again when either fails.
    """

    def __init__(self, root: Path) -> None:
        self.root = root.absolute()  # and no getcwd per file
        self._checked: set[str] = set()

    def __call__(self, key: str) -> Path:
        directory = key.rpartition("/")[0]
        if directory in self._checked and unsafe_reason(key) is None:
            path = self.root.joinpath(*key.split("/"))
            if not path.is_symlink():
                return path
        path = safe_join(self.root, key)
        self._checked.add(directory)
        return path


def _plan(index: idx.Index, paths: _SafePaths, warnings: list[str]) -> tuple[list[idx.Entry], list[idx.Entry]]:
    """Split the index's data entries into (to download, already present with the same size)."""
    for key, kind in index.suspicious_entries():
        warnings.append(f"index entry {escape_key(key)} is {kind.value}, not data: not hydrated")
    wanted: list[idx.Entry] = []
    present: list[idx.Entry] = []
    for entry in index.data_entries():
        try:
            path = paths(entry.key)
        except BadInput as exc:
            warnings.append(str(exc))
            continue
        try:
            same = path.stat().st_size == entry.size and path.is_file()
        except OSError:  # missing, or a parent is a file: fetch, and let the write report it
            same = False
        (present if same else wanted).append(entry)
    return wanted, present


def _fetch(store: ObjectStore, paths: _SafePaths, entry: idx.Entry, progress: Progress) -> _Outcome:
    path = paths(entry.key)
    if path.is_dir():
        raise StoreError(f"cannot write {path}: a directory of that name exists (key {escape_key(entry.key)})")

    try:
        written = write_atomically(
            path,
            lambda out: store.download(entry.key, _CountingWriter(out, progress)),  # type: ignore[arg-type]
            mtime=entry.last_modified_epoch,
        )
    except NotFound:
        return _Outcome(entry, None)
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc.strerror or exc}") from None
    return _Outcome(entry, written)


def _run_pool(
    store: ObjectStore, paths: _SafePaths, entries: list[idx.Entry], concurrency: int, progress: Progress
) -> Iterator[_Outcome]:
    """Download with at most ``concurrency`` requests in flight; stop at the first hard failure.

    Submission is bounded too (twice the pool), so a million-entry index does not become a million
    futures at once.
    """
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="syncops-hydrate") as pool:
        pending: set[Future[_Outcome]] = set()
        queue = iter(entries)
        try:
            for entry in queue:
                pending.add(pool.submit(_fetch, store, paths, entry, progress))
                if len(pending) >= 2 * concurrency:
                    done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                    for future in done:
                        yield future.result()
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    yield future.result()
        except BaseException:
            for future in pending:
                future.cancel()
            raise


def hydrate(
    store: ObjectStore,
    target: Path,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Progress | None = None,
    discovery: Discovery | None = None,
) -> Report:
    """Discover, then download what is missing into ``target``; returns the command's report."""
    if concurrency < 1:
        raise BadInput(f"--concurrency must be at least 1, not {concurrency}")
    refuse_overlap(store.url, target)
    progress = progress or NoProgress()
    discovery = discovery or discover(store)
    warnings = list(discovery.warnings)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"cannot create target directory {target}: {exc.strerror or exc}") from None
    if not target.is_dir():
        raise BadInput(f"target {target} is not a directory")

    paths = _SafePaths(target)
    wanted, present = _plan(discovery.index, paths, warnings)
    pulled = stale = nbytes = 0
    local_entries: list[idx.Entry] = list(present)
    progress.start("hydrating", len(wanted), sum(e.size for e in wanted))
    try:
        for outcome in _run_pool(store, paths, wanted, concurrency, progress):
            entry = outcome.entry
            if outcome.written is None:
                stale += 1
                warnings.append(f"stale index entry {escape_key(entry.key)}: the object is gone")
                continue
            pulled += 1
            nbytes += outcome.written
            if outcome.written != entry.size:
                warnings.append(
                    f"{escape_key(entry.key)}: index says {entry.size} bytes, object has {outcome.written}; "
                    "run `syncops verify --repair`"
                )
                entry = idx.Entry(entry.key, outcome.written, entry.last_modified, sha256=None, extra=entry.extra)
            local_entries.append(entry)
    finally:
        progress.stop()

    _write_local_index(target, local_entries, discovery.index)
    return Report(
        url=str(store.url),
        status=discovery.status,
        entries=len(discovery.index),
        index_written=discovery.index_written,
        pulled=pulled,
        skipped=len(present),
        stale=stale,
        bytes=nbytes,
        warnings=warnings,
    )


def local_mtime_of(path: Path) -> str:
    return idx.timestamp_from_epoch(os.stat(path).st_mtime)


def _write_local_index(target: Path, entries: list[idx.Entry], remote: idx.Index) -> None:
    """The local copy: what is on disk now, with each file's ``localMtime``."""
    local = idx.Index(last_pulled=idx.now_timestamp(), extra=dict(remote.extra))
    for entry in entries:
        # Keys were checked by safe_join when planned and again when fetched; a plain join here
        # spares a realpath per file (measurable at thousands of files).
        mtime = local_mtime_of(target.joinpath(*entry.key.split("/")))
        local.entries[entry.key] = replace(entry, local_mtime=mtime, extra=dict(entry.extra))
    write_local_index(target, local)


def write_local_index(directory: Path, index: idx.Index) -> None:
    """Write ``directory/.datastore-index.json`` atomically (streamed, fsynced, renamed, dir synced)."""
    write_atomically(directory / INDEX_KEY, lambda out: out.writelines(idx.stream(index)))
    fsync_directory(directory)

"""push (SPEC §3): upload new or changed local files and publish the merged index.

Discovery first, so a bucket that holds data but no index keeps every remote entry. The index is
written with an optimistic-concurrency condition on the version that was read; on a lost race the
current index is re-read and merged again, so two peers pushing different files lose no entry.
push never deletes remote objects.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from syncops import index as idx
from syncops.discover import discover, entries_from_listing, read_index
from syncops.errors import BadInput, ConditionUnsupported, CorruptIndex, NotFound, PreconditionFailed, StoreError
from syncops.hydrate import DEFAULT_CONCURRENCY, write_local_index
from syncops.keys import INDEX_KEY, escape_key, select_data, unsafe_reason
from syncops.localfs import refuse_overlap, walk_files
from syncops.progress import NoProgress, Progress
from syncops.report import Report
from syncops.stores.base import ObjectStore

#: Lost index races to absorb before giving up (each one re-reads and re-merges).
MAX_INDEX_ATTEMPTS = 10


@dataclass(frozen=True)
class LocalFile:
    key: str
    size: int
    mtime: float


def scan_local(source: Path, warnings: list[str]) -> dict[str, LocalFile]:
    """The data files of a local directory, under the same rules a remote listing gets."""
    unsafe: list[str] = []
    files, _ = select_data(
        ((key, stat.st_size, stat) for key, stat in walk_files(source)),
        lambda key, size, stat: LocalFile(key, size, stat.st_mtime),
        unsafe,
    )
    warnings.extend(f"unsafe local name skipped: {escape_key(key)} ({unsafe_reason(key)})" for key in unsafe)
    return files


def read_local_index(source: Path, warnings: list[str]) -> idx.Index | None:
    path = source / INDEX_KEY
    try:
        return idx.parse(path.read_bytes(), where=str(path))
    except FileNotFoundError:
        return None
    except CorruptIndex as exc:
        warnings.append(f"local index ignored: {exc}")
        return None


def _millis(epoch: float) -> int:
    return int(epoch * 1000)


def is_changed(local: LocalFile, remote: idx.Entry | None, previous: idx.Entry | None) -> bool:
    """New, another size, or modified since the copy syncops last recorded (SPEC §3 "push")."""
    if remote is None or remote.size != local.size:
        return True
    reference = previous.local_mtime if previous is not None and previous.local_mtime else remote.last_modified
    return _millis(local.mtime) > _millis(idx.parse_timestamp(reference).timestamp())


def _current(store: ObjectStore) -> tuple[idx.Index, str | None]:
    """The index in force now and its version; when it is gone, the listing's (never an empty base).

    Merging into an empty index after someone removed the index would publish only this push's
    files and hide every other object from the next hydrate.
    """
    current = read_index(store)
    if current is not None:
        return current[0], current[1].token
    return idx.Index(entries=entries_from_listing(store.list()).entries), None


def _publish(
    store: ObjectStore, base: idx.Index, token: str | None, changes: dict[str, idx.Entry], warnings: list[str]
) -> idx.Index:
    """Write base ∪ changes under a version condition; on a lost race re-read, re-merge, retry."""
    for _ in range(MAX_INDEX_ATTEMPTS):
        merged = idx.merge(base, changes, last_pulled=idx.now_timestamp())
        try:
            store.put(INDEX_KEY, idx.stream(merged, with_local=False), if_absent=token is None, if_token=token)
            return merged
        except ConditionUnsupported:
            # No condition to lean on: merge into what is there right now, then write, so only a
            # writer landing in this very moment can be overwritten (verify finds that).
            warnings.append(
                "backend does not support conditional writes; index re-read, merged and written unconditionally "
                "(run `syncops verify` after concurrent pushes)"
            )
            merged = idx.merge(_current(store)[0], changes, last_pulled=idx.now_timestamp())
            store.put(INDEX_KEY, idx.stream(merged, with_local=False))
            return merged
        except (PreconditionFailed, NotFound):  # changed, or removed, since it was read
            base, token = _current(store)
    raise StoreError(
        f"{store.url.object_url(INDEX_KEY)}: lost {MAX_INDEX_ATTEMPTS} races to other writers; "
        "the objects are uploaded, run push again to publish the index"
    )


def push(
    store: ObjectStore,
    source: Path,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Progress | None = None,
) -> Report:
    refuse_overlap(store.url, source)
    if not source.is_dir():
        raise BadInput(f"{source} is not a directory")
    progress = progress or NoProgress()
    discovery = discover(store)
    warnings = list(discovery.warnings)
    previous = read_local_index(source, warnings)
    local = scan_local(source, warnings)
    remote = discovery.index
    changed = [
        f
        for key, f in sorted(local.items())
        if is_changed(f, remote.entries.get(key), previous.entries.get(key) if previous else None)
    ]

    def upload(file: LocalFile) -> idx.Entry | None:
        path = source.joinpath(*file.key.split("/"))
        try:
            store.upload(file.key, path)
        except (NotFound, FileNotFoundError):
            if path.exists():
                raise
            warnings.append(f"{escape_key(file.key)} vanished locally before its upload: not pushed")
            return None
        progress.advance(file.size)
        return idx.Entry(key=file.key, size=file.size, last_modified=idx.now_timestamp())

    progress.start("pushing", len(changed), sum(f.size for f in changed))
    try:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="syncops-push") as pool:
            uploaded = {e.key: e for e in pool.map(upload, changed) if e is not None}
    finally:
        progress.stop()

    published = remote
    index_written = discovery.index_written
    if uploaded:
        published = _publish(store, remote, discovery.token, uploaded, warnings)
        index_written = True
    _write_local_copy(source, published, local)
    return Report(
        url=str(store.url),
        status=discovery.status,
        entries=len(published),
        index_written=index_written,
        pushed=len(uploaded),
        bytes=sum(e.size for e in uploaded.values()),
        warnings=warnings,
    )


def _write_local_copy(source: Path, published: idx.Index, local: dict[str, LocalFile]) -> None:
    """The local index mirrors what was published, with ``localMtime`` for files present here."""
    copy = idx.Index(last_pulled=published.last_pulled or idx.now_timestamp(), extra=dict(published.extra))
    for key, entry in published.entries.items():
        here = local.get(key)
        mtime = idx.timestamp_from_epoch(here.mtime) if here and here.size == entry.size else None
        copy.entries[key] = replace(entry, local_mtime=mtime, extra=dict(entry.extra))
    write_local_index(source, copy)

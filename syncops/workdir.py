"""The local side of a sync: the base (the local index), the scan of the directory, and the survey
that hands both, with the remote index, to the pure planner of :mod:`syncops.plan`.

hydrate, push and status ask this module one question — "what is the plan for this directory?" —
and give it back what they did, so the base always records, per key, the remote version a local
file is a copy of (SPEC §3 "The sync model").
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from syncops import index as idx
from syncops.errors import CorruptIndex
from syncops.keys import INDEX_KEY, KeyKind, classify, escape_key, select_data, unsafe_reason
from syncops.localfs import (
    NotRegularFile,
    file_digests,
    fsync_directory,
    open_file_under,
    open_regular,
    walk_files,
    write_under,
)
from syncops.plan import Action, Change, LocalFile, Plan, keys_to_hash, plan
from syncops.report import Report
from syncops.stores.base import DatastoreUrl
from syncops.validate import check_local_overlap


class RemoteState(Protocol):
    """What the local side needs to know of a discovery outcome (:class:`syncops.discover.Discovery`)."""

    status: str
    index: idx.Index
    index_written: bool


#: Transfers in flight at once, by default (downloads or uploads).
DEFAULT_CONCURRENCY = 32
#: Exit code when conflicts were found (SPEC §4): reported after everything else is done.
CONFLICT_EXIT = 7
#: Top-level field of the base naming the datastore it is the base of.
DATASTORE_FIELD = "syncopsDatastore"
#: Top-level field of the base listing the files a push is uploading (key -> size and mtime), so a
#: push killed between its uploads and its index write is finished by the next one, not re-sent.
PENDING_FIELD = "syncopsPending"
#: The base is read whole; anything larger than this is not one syncops wrote for a sane datastore.
MAX_BASE_BYTES = 4 << 30


def refuse_overlap(url: DatastoreUrl, directory: Path) -> None:
    """A ``file://`` datastore and a local directory must not contain each other.

    Hydrating into the datastore's own root would replace its index with the local copy, and a
    cache inside the root would turn the hydrated copies into data of the datastore.
    """
    if url.scheme == "file":
        check_local_overlap(url.bucket, directory)


def read_base(
    directory: Path, url: DatastoreUrl, warnings: list[str]
) -> tuple[dict[str, idx.Entry], dict[str, LocalFile]]:
    """The base: the local index's data entries, or nothing (with a warning) when it cannot be trusted.

    A corrupt base, one of another datastore, or something that is not a regular file at its path
    (a FIFO, a directory, a symlink) makes the directory *unsynced*: every file is then compared with
    the remote by content, which never overwrites or re-transfers anything wholesale.
    """
    where = directory / INDEX_KEY
    try:
        fd, info = open_regular(str(where))
    except FileNotFoundError:
        return {}, {}
    except (NotRegularFile, OSError) as exc:
        warnings.append(f"local index {where} ignored ({exc.strerror or exc}): files are compared by content")
        return {}, {}
    try:
        if info.st_size > MAX_BASE_BYTES:
            raise CorruptIndex(f"{where}: {info.st_size} bytes, larger than any index syncops writes")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read()
        base = idx.parse(data, where=str(where))
    except (CorruptIndex, RecursionError, OSError, MemoryError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        warnings.append(f"local index ignored: {reason}; files are compared by content")
        return {}, {}
    finally:
        os.close(fd)
    owner = base.extra.get(DATASTORE_FIELD)
    if owner is not None and owner != str(url):
        warnings.append(f"local index {where} belongs to {owner!r}, not {url}: ignored; files are compared by content")
        return {}, {}
    entries = {k: e for k, e in base.entries.items() if classify(k, e.size) is KeyKind.DATA}
    return entries, _pending(base.extra.get(PENDING_FIELD))


def _pending(raw: object) -> dict[str, LocalFile]:
    """The push journal of a base; anything malformed in it is ignored (it only spares uploads)."""
    if not isinstance(raw, dict):
        return {}
    pending = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            size, mtime = value.get("size"), value.get("mtimeNs")
            if type(size) is int and type(mtime) is int:
                pending[key] = LocalFile(size=size, mtime_ns=mtime)
    return pending


def scan(directory: Path, warnings: list[str]) -> dict[str, LocalFile]:
    """The data files of a directory, under the same rules a remote listing gets (no hashing)."""
    unsafe: list[str] = []
    files, _ = select_data(
        ((key, info.st_size, info) for key, info in walk_files(directory)),
        lambda key, size, info: LocalFile(size=size, mtime_ns=info.st_mtime_ns),
        unsafe,
    )
    warnings.extend(f"unsafe local name skipped: {escape_key(key)} ({unsafe_reason(key)})" for key in unsafe)
    return files


def local_digests(directory: Path, key: str) -> tuple[str, str]:
    """sha256 and md5 of a local file, read without following links (see :mod:`syncops.localfs`)."""
    with open_file_under(directory, key) as (fd, _):
        return file_digests(fd)


@dataclass
class Survey:
    """Everything a sync decides from: the three states, the digests it needed, and the plan."""

    directory: Path
    base: dict[str, idx.Entry]
    local: dict[str, LocalFile]
    remote: dict[str, idx.Entry]
    digests: dict[str, str]
    plan: Plan
    #: Files an interrupted push was uploading when it stopped (see PENDING_FIELD).
    pending: dict[str, LocalFile] = field(default_factory=dict)


def survey(url: DatastoreUrl, directory: Path, remote_index: idx.Index, warnings: list[str]) -> Survey:
    """Read the base, scan the directory, hash the files the planner asks for, and plan."""
    data, suspicious = remote_index.split()
    for key, kind in suspicious:
        warnings.append(f"index entry {escape_key(key)} is {kind.value}, not data: not synced")
    remote = {e.key: e for e in data}
    for entry in remote.values():
        if entry.sha256 is not None and entry.content_sha256 is None:
            warnings.append(
                f"index entry {escape_key(entry.key)} has a malformed sha256 {entry.sha256[:80]!r}: "
                "its content is checked by size only"
            )
    exists = directory.is_dir()
    base, pending = read_base(directory, url, warnings) if exists else ({}, {})
    local = scan(directory, warnings) if exists else {}
    digests: dict[str, str] = {}
    for key in keys_to_hash(base, local, remote):
        try:
            digests[key] = local_digests(directory, key)[0]
        except (FileNotFoundError, NotRegularFile, NotADirectoryError):
            local.pop(key, None)  # gone or replaced since the scan: not a file to sync
    return Survey(directory, base, local, remote, digests, plan(base, local, remote, digests), pending)


class BaseUpdate:
    """The next base: the current one with what this run synced recorded, key by key."""

    def __init__(self, current: Survey) -> None:
        self._entries = dict(current.base)

    def record(self, remote: idx.Entry, *, version: str | None, sha256: str | None, mtime_ns: int) -> None:
        """``remote`` is now what the local file holds (fetched, uploaded or found identical)."""
        self._entries[remote.key] = replace(
            remote,
            local_mtime=idx.timestamp_from_millis(mtime_ns // 1_000_000),
            sha256=sha256 or remote.content_sha256,
            version=version,
            extra=dict(remote.extra),
        )

    def adopt(self, seen: Survey, key: str) -> None:
        """The local file already holds the remote content: record it, keeping the version token and
        digest of the base when the remote entry is the one the base knew."""
        previous = seen.base.get(key)
        known = previous if previous is not None and seen.plan.decisions[key].remote is None else None
        self.record(
            seen.remote[key],
            version=known.version if known else None,
            sha256=seen.digests.get(key) or (known.content_sha256 if known else None),
            mtime_ns=seen.local[key].mtime_ns,
        )

    def forget(self, key: str) -> None:
        self._entries.pop(key, None)

    def entries(self) -> Iterable[idx.Entry]:
        return self._entries.values()


def write_base(
    directory: Path,
    url: DatastoreUrl,
    entries: Iterable[idx.Entry],
    remote_index: idx.Index,
    pending: Mapping[str, LocalFile] | None = None,
) -> None:
    """Write ``directory/.datastore-index.json`` atomically: a valid v1 index naming its datastore
    (and, while a push uploads, the files it is sending)."""
    extra = {k: v for k, v in remote_index.extra.items() if k not in (DATASTORE_FIELD, PENDING_FIELD)}
    extra[DATASTORE_FIELD] = str(url)
    if pending:
        extra[PENDING_FIELD] = {k: {"size": f.size, "mtimeNs": f.mtime_ns} for k, f in sorted(pending.items())}
    base = idx.Index(entries={e.key: e for e in entries}, last_pulled=idx.now_timestamp(), extra=extra)
    # A FIFO or symlink at the base's path is replaced (never written through); a directory there is a
    # local I/O failure (exit 4): a hydrate promises a valid local index.
    write_under(directory, INDEX_KEY, lambda out: out.writelines(idx.stream(base)))
    fsync_directory(directory)


def plan_report(url: DatastoreUrl, remote: RemoteState, seen: Survey, warnings: list[str]) -> Report:
    """The plan of both directions as a report (status, ``--dry-run``): what would move, nothing moved."""
    plan = seen.plan
    return Report(
        url=str(url),
        status=remote.status,
        entries=len(remote.index),
        index_written=remote.index_written,
        dry_run=True,
        to_fetch=plan.keys("hydrate", Action.FETCH),
        to_upload=plan.keys("push", Action.UPLOAD),
        local_changes=plan.keys("hydrate", Action.KEEP_LOCAL),
        conflicts=[plan.decisions[k].conflict() for k in plan.keys("hydrate", Action.CONFLICT)],
        stale=sum(1 for d in plan.decisions.values() if d.remote is Change.DELETED),
        warnings=warnings,
        exit_code=CONFLICT_EXIT if plan.keys("hydrate", Action.CONFLICT) else 0,
    )

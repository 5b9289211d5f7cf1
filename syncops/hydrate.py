"""hydrate (SPEC §3): bring a local directory up to date with the datastore.

Discovery first, so an unindexed bucket still hydrates. The planner (:mod:`syncops.plan`) compares
the base, the local files and the remote index: what changed only remotely is downloaded, what
changed only locally is kept and reported, what changed on both sides is a conflict (kept, exit 7).
Each download streams into a new file beside its final path (unnamed, or a temp name), is checked
against the entry's sha256 while it streams (and against the store's own checksum), fsynced and only
then named, so a wrong or partial body never reaches the final path. hydrate never writes the remote index.
"""

from __future__ import annotations

import errno
import functools
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from syncops import index as idx
from syncops.discover import Discovery, discover
from syncops.errors import BadInput, NotFound, StoreError, Unavailable
from syncops.keys import escape_key
from syncops.localfs import NotRegularFile, open_parent, write_under
from syncops.plan import Action
from syncops.progress import NoProgress, Progress
from syncops.report import Report
from syncops.stores.base import ObjectStore
from syncops.transfer import HashingWriter, bounded
from syncops.workdir import (
    CONFLICT_EXIT,
    DEFAULT_CONCURRENCY,
    BaseUpdate,
    plan_report,
    refuse_overlap,
    survey,
    write_base,
)

#: Bytes of one file written between data syncs while it downloads.
SYNC_EVERY = 16 * 1024 * 1024
#: Whole downloads of one object whose bytes do not match its sha256 before that key fails.
CONTENT_ATTEMPTS = 3
#: Exit code of a hydrate that finished but could not bring every key (SPEC §4: 4).
KEY_FAILURE_EXIT = 4
#: This many keys failing on the network in a row, none brought in between, means the server (not one
#: object) is failing: hydrate stops with that error instead of trying every remaining key.
OUTAGE = 3

#: errnos that say "this filesystem cannot hold this key", never "the disk is broken".
_KEY_ERRNOS = {errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ELOOP, errno.EILSEQ, errno.EINVAL}


class ContentMismatch(Exception):
    """The bytes read do not hash to the entry's sha256."""


@dataclass
class Fetched:
    entry: idx.Entry
    written: int | None  # None when the object had vanished (stale)
    token: str = ""
    sha256: str = ""
    mtime_ns: int = 0
    problem: str | None = None  # why this key could not be brought (the other keys go on)
    unavailable: Unavailable | None = None  # the network failure behind ``problem``, if that is what it was


def _mtime_ns(entry: idx.Entry) -> int | None:
    """The local mtime a hydrated file gets: the entry's ``lastModified``, exact to the millisecond."""
    try:
        ns = idx.millis_of(entry.last_modified) * 1_000_000
    except (ValueError, OverflowError):
        return None
    return ns if 0 <= ns < 2**63 else None


def _fetch(store: ObjectStore, target: Path, entry: idx.Entry, progress: Progress) -> Fetched:
    """Download one entry to its path, verified; per-key trouble comes back as ``problem``."""
    expected = entry.content_sha256
    for _ in range(CONTENT_ATTEMPTS):
        writer: HashingWriter | None = None

        def fill(out: BinaryIO) -> tuple[int, str, str]:
            nonlocal writer
            writer = HashingWriter(out, progress, sync_every=SYNC_EVERY)
            got = store.download(
                entry.key,
                writer,  # type: ignore[arg-type]
                checked_by_caller=expected is not None,
                size_hint=entry.size,
            )
            digest = writer.hexdigest()
            if expected is not None and digest != expected:
                raise ContentMismatch
            return got.size, got.token, digest

        try:
            (size, token, digest), info = write_under(target, entry.key, fill, mtime_ns=_mtime_ns(entry))
        except ContentMismatch:
            if writer is not None:
                writer.restart()
            continue
        except NotFound:
            return Fetched(entry, None)
        except Unavailable as exc:
            # This object's requests failed after their retries (a stalled or failing GET): the other
            # keys go on, unless the whole server is gone (see OUTAGE).
            return Fetched(entry, 0, problem=str(exc), unavailable=exc)
        except NotRegularFile as exc:
            return Fetched(entry, 0, problem=f"cannot hold {escape_key(entry.key)} here: {exc.strerror}")
        except OSError as exc:
            if exc.errno in _KEY_ERRNOS:
                reason = exc.strerror or str(exc)
                return Fetched(entry, 0, problem=f"cannot hold {escape_key(entry.key)} here: {reason}")
            raise StoreError(f"cannot write {target / entry.key}: {exc.strerror or exc}") from None
        return Fetched(entry, size, token, digest, info.st_mtime_ns)
    return Fetched(
        entry,
        0,
        problem=(
            f"{escape_key(entry.key)}: the downloaded bytes do not match the index's sha256 in "
            f"{CONTENT_ATTEMPTS} downloads; nothing written"
        ),
    )


def _set_aside(target: Path, key: str) -> str:
    """Rename the local file of a conflicting key to ``<name>.conflict-<UTC timestamp>`` (kept, not lost)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    with open_parent(target, key) as (parent, name):
        candidate = f"{name}.conflict-{stamp}"
        number = 1
        while True:
            try:
                os.stat(candidate, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                break
            number += 1
            candidate = f"{name}.conflict-{stamp}-{number}"
        os.rename(name, candidate, src_dir_fd=parent, dst_dir_fd=parent)
    return key.rpartition("/")[0] + ("/" if "/" in key else "") + candidate


def hydrate(
    store: ObjectStore,
    target: Path,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Progress | None = None,
    discovery: Discovery | None = None,
    force: bool = False,
    dry_run: bool = False,
) -> Report:
    """Discover, then bring ``target`` up to date by the three-way plan; returns the command's report."""
    if concurrency < 1:
        raise BadInput(f"--concurrency must be at least 1, not {concurrency}")
    refuse_overlap(store.url, target)
    progress = progress or NoProgress()
    discovery = discovery or discover(store, publish=not dry_run)
    warnings = list(discovery.warnings)
    if dry_run:
        if target.exists() and not target.is_dir():
            raise BadInput(f"target {target} is not a directory")
        seen = survey(store.url, target, discovery.index, warnings)
        report = plan_report(store.url, discovery, seen, warnings)
        report.to_upload = None  # one direction: hydrate's
        return report
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"cannot create target directory {target}: {exc.strerror or exc}") from None
    if not target.is_dir():
        raise BadInput(f"target {target} is not a directory")

    seen = survey(store.url, target, discovery.index, warnings)
    plan = seen.plan
    base = BaseUpdate(seen)
    conflicts = plan.keys("hydrate", Action.CONFLICT)
    fetch = plan.keys("hydrate", Action.FETCH)
    if force:
        for key in conflicts:
            warnings.append(f"{escape_key(key)}: conflict, remote taken; local file kept as {_set_aside(target, key)}")
        fetch = sorted([*fetch, *conflicts])
        conflicts = []
    for key in plan.keys("hydrate", Action.ADOPT):
        base.adopt(seen, key)
    for key in plan.keys("hydrate", Action.FORGET):
        base.forget(key)

    wanted = [seen.remote[k] for k in fetch]
    pulled = stale = nbytes = 0
    problems: list[dict[str, str]] = []
    failing: list[Unavailable] = []  # network failures since the last key brought
    progress.start("hydrating", len(wanted), sum(e.size for e in wanted))
    try:
        fetch_one = functools.partial(_fetch, store, target, progress=progress)
        for outcome in bounded(fetch_one, wanted, concurrency, "syncops-hydrate"):
            entry = outcome.entry
            if outcome.problem is not None:
                problems.append({"kind": "not-hydrated", "key": entry.key, "detail": outcome.problem})
                if outcome.unavailable is not None:
                    failing.append(outcome.unavailable)
                    if len(failing) >= OUTAGE:
                        break
                continue
            failing.clear()
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
                entry = idx.Entry(entry.key, outcome.written, entry.last_modified, extra=entry.extra)
            base.record(entry, version=outcome.token, sha256=outcome.sha256, mtime_ns=outcome.mtime_ns)
    finally:
        progress.stop()

    if len(failing) >= OUTAGE:
        raise failing[-1]  # like any failure of the whole run: no base written (the rerun adopts what is here)
    write_base(target, store.url, base.entries(), discovery.index)
    conflict_items = [plan.decisions[k].conflict() for k in conflicts]
    return Report(
        url=str(store.url),
        status=discovery.status,
        entries=len(discovery.index),
        index_written=discovery.index_written,
        pulled=pulled,
        skipped=len(seen.remote) - len(wanted),
        stale=stale,
        bytes=nbytes,
        local_changes=plan.keys("hydrate", Action.KEEP_LOCAL),
        conflicts=conflict_items,
        problems=problems,
        warnings=warnings,
        exit_code=KEY_FAILURE_EXIT if problems else (CONFLICT_EXIT if conflict_items else 0),
    )

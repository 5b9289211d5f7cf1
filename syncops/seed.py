"""seed (SPEC §3): copy one datastore's data into another and publish the destination's index.

The source is read exactly as every other command reads a datastore — its index, or when it has none
its listing filtered in memory (internal files, namespaces and unsafe keys dropped) — and is **never
written**. The destination is planned before anything moves:

* a key absent there is copied **create-only**, so a writer that creates it meanwhile is never
  overwritten (its copy loses with 412 and the key is listed as a conflict);
* a key already there with the same content (size plus MD5, the S3 ETag a copy preserves, or the
  sha256 both indexes record) is not copied again: a killed seed run again copies only the rest;
* a key there with other content, or whose destination index entry says other content, is a
  **conflict**: without ``--force`` nothing at all is written and the conflicts are listed (exit 7);
  with ``--force`` the source's object is copied over the version that was read.

Same provider (S3 → S3 behind one endpoint, GCS → GCS): the copy is server-side and no object byte
passes through this machine. Across providers: each object streams through a temp file (constant
memory), checked against the source entry's sha256 while it streams, with at most ``concurrency``
transfers at once. The destination's index is published last: the destination's own entries (its
index, or its listing when it has none, so nothing already there is hidden) merged with the seeded
ones, create-only or on the version read, re-read and re-merged on a lost race.
"""

from __future__ import annotations

import fnmatch
import os
import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from syncops import index as idx
from syncops import indexview
from syncops.discover import discover, entries_from_listing
from syncops.errors import BadInput, ConditionUnsupported, CorruptIndex, NotFound, PreconditionFailed, StoreError
from syncops.keys import INDEX_KEY, escape_key
from syncops.localfs import HashingReader
from syncops.progress import NoProgress, Progress
from syncops.report import Report
from syncops.stores.base import DatastoreUrl, Head, ObjectStore
from syncops.transfer import HashingWriter, bounded
from syncops.validate import paths_overlap
from syncops.workdir import CONFLICT_EXIT, DEFAULT_CONCURRENCY

#: Exit code of a seed that finished but could not copy some keys (bytes that never matched their sha256).
KEY_FAILURE_EXIT = 4
#: Whole streamed copies of one object whose bytes do not match the source entry's sha256 before that key fails.
CONTENT_ATTEMPTS = 3
#: Lost index races to absorb before giving up (each one re-reads and re-merges).
MAX_INDEX_ATTEMPTS = 10

SEEDED = "seeded"
UNCHANGED = "unchanged"
EMPTY = "empty"
CONFLICTS = "conflicts"
PLANNED = "planned"

SERVER_SIDE = "server-side"
STREAMED = "streamed"


class ContentMismatch(Exception):
    """The streamed bytes do not hash to the source entry's sha256."""


def refuse_nesting(source: DatastoreUrl, destination: DatastoreUrl) -> None:
    """SRC and DST must be two datastores, neither inside the other: seeding a datastore into itself or
    into its own subtree would copy its copies (and publish an index over data it is reading)."""
    if source.scheme != destination.scheme:
        return
    if source.scheme == "file":
        nested = paths_overlap(os.path.realpath(source.bucket), os.path.realpath(destination.bucket))
    else:
        a, b = source.prefix, destination.prefix
        nested = source.bucket == destination.bucket and (
            a == b or not a or not b or a.startswith(b + "/") or b.startswith(a + "/")
        )
    if nested:
        raise BadInput(
            f"{source} and {destination} are the same datastore or one is inside the other: seed copies between two"
        )


def select(entries: Iterable[idx.Entry], include: Sequence[str], exclude: Sequence[str]) -> list[idx.Entry]:
    """The entries whose key matches an ``include`` pattern (all when none is given) and no ``exclude``
    pattern. Patterns are shell globs matched against the whole key (``*`` also matches ``/``)."""
    chosen = []
    for entry in entries:
        if include and not any(fnmatch.fnmatchcase(entry.key, pattern) for pattern in include):
            continue
        if any(fnmatch.fnmatchcase(entry.key, pattern) for pattern in exclude):
            continue
        chosen.append(entry)
    return chosen


def describe(entry: idx.Entry) -> str:
    """What an index entry says of its content: size and sha256 (shortened) when known."""
    digest = entry.content_sha256
    return f"{entry.size} bytes" + (f", sha256 {digest[:12]}…" if digest else "")


def same_entry(a: idx.Entry, b: idx.Entry) -> bool:
    """Two index entries name the same content: equal size, and equal sha256 when both have one."""
    if a.size != b.size:
        return False
    sha_a, sha_b = a.content_sha256, b.content_sha256
    return sha_a is None or sha_b is None or sha_a == sha_b


def same_object(
    source: Head, destination: Head, same_provider: bool, entry: idx.Entry, known: idx.Entry | None
) -> bool:
    """The destination object already holds the source object's bytes.

    Only real evidence counts: the MD5 of both (a plain S3 ETag, GCS ``md5Hash``, a ``file://`` digest),
    the ETag a same-provider S3 copy preserves, or the sha256 both indexes record for the key. A size
    match alone is never taken for identity.
    """
    if source.size != destination.size:
        return False
    if source.md5 is not None and destination.md5 is not None:
        return source.md5 == destination.md5
    if same_provider and source.token.startswith('"') and source.token == destination.token:
        return True
    digest = entry.content_sha256
    return digest is not None and known is not None and known.content_sha256 == digest


@dataclass
class _Work:
    entry: idx.Entry
    if_absent: bool = True
    if_token: str | None = None


@dataclass
class _Copied:
    work: _Work
    token: str | None = None  # None: nothing written (see the other fields)
    sha256: str | None = None
    size: int = 0
    stale: bool = False  # the source object vanished after the source index was read
    lost_race: bool = False  # the destination changed between the plan and the copy
    present: bool = False  # the destination already held these bytes when the copy came (not copied)
    problem: str | None = None


@dataclass
class SeedPlan:
    """What a seed will do, decided before anything is written."""

    work: list[_Work] = field(default_factory=list)
    present: list[idx.Entry] = field(default_factory=list)
    conflicts: list[dict[str, str]] = field(default_factory=list)


class _Copier:
    """Copies one planned key: server-side when the destination can, else streamed and verified."""

    def __init__(self, source: ObjectStore, destination: ObjectStore, progress: Progress) -> None:
        self.source = source
        self.destination = destination
        self.progress = progress
        self.server_side = destination.can_copy_from(source)

    def __call__(self, work: _Work) -> _Copied:
        entry = work.entry
        try:
            if self.server_side:
                token = self.destination.copy_from(
                    self.source, entry.key, size=entry.size, if_absent=work.if_absent, if_token=work.if_token
                )
                self.progress.advance(entry.size)
                return _Copied(work, token, entry.content_sha256, entry.size)
            return self._stream(work)
        except NotFound:
            return _Copied(work, stale=True)
        except PreconditionFailed:
            return self._lost_race(work)

    def _lost_race(self, work: _Work) -> _Copied:
        """The destination changed since the plan. Another seed of the same source copying the same key
        leaves the same bytes: that is taken as present; anything else is a conflict."""
        entry = work.entry
        try:
            src, dst = self.source.head(entry.key), self.destination.head(entry.key)
        except NotFound:
            return _Copied(work, lost_race=True)
        if same_object(src, dst, self.server_side, entry, None):
            return _Copied(work, dst.token, entry.content_sha256, dst.size, present=True)
        return _Copied(work, lost_race=True)

    def _stream(self, work: _Work) -> _Copied:
        entry = work.entry
        expected = entry.content_sha256
        for _ in range(CONTENT_ATTEMPTS):
            # A temp file, not memory: a big object costs disk for the time of its copy, never RAM.
            with tempfile.TemporaryFile(prefix="syncops-seed-") as spool:
                writer = HashingWriter(spool, self.progress)  # type: ignore[arg-type]
                fetched = self.source.download(entry.key, writer)  # type: ignore[arg-type]
                digest = writer.hexdigest()
                if expected is not None and digest != expected:
                    writer.restart()
                    continue
                spool.flush()
                body = HashingReader(spool.fileno(), fetched.size)
                token = self.destination.upload(entry.key, body, if_absent=work.if_absent, if_token=work.if_token)
                return _Copied(work, token, digest, fetched.size)
        return _Copied(
            work,
            problem=(
                f"{escape_key(entry.key)}: the bytes read from the source do not match its index's sha256 in "
                f"{CONTENT_ATTEMPTS} reads; not copied"
            ),
        )


@dataclass
class _Destination:
    """The destination as found: its index (or None) with its version, and its data objects' sizes."""

    index: idx.Index | None
    token: str | None
    listing: dict[str, idx.Entry]
    warnings: list[str]

    @property
    def base(self) -> idx.Index:
        """What the published index starts from: the index, or the listing (nothing there is hidden)."""
        if self.index is not None:
            return self.index
        return idx.Index(entries=dict(self.listing))


def _read_destination(store: ObjectStore, force: bool) -> _Destination:
    warnings: list[str] = []
    view = indexview.read(store, tolerant=True)
    if view.uses_swamp_layout:
        raise BadInput(
            f"{store.url} keeps swamp's index shards (_index/_meta.json); seed publishes a monolithic index "
            "only: seed into a datastore without _index/"
        )
    if view.problem is not None:
        if not force:
            raise CorruptIndex(f"{view.problem}; `seed --force` replaces it with the seeded index")
        warnings.append(f"destination index is corrupt ({view.problem}); replaced, --force")
    listing = entries_from_listing(store.list())
    return _Destination(view.index, view.monolith_token, listing.entries, warnings)


def _heads(
    source: ObjectStore, destination: ObjectStore, keys: list[str], concurrency: int
) -> dict[str, tuple[Head | None, Head | None]]:
    """HEAD both sides of every key that is present at the destination with the right size."""

    def both(key: str) -> tuple[Head | None, Head | None]:
        try:
            src: Head | None = source.head(key)
        except NotFound:
            src = None
        try:
            dst: Head | None = destination.head(key)
        except NotFound:
            dst = None
        return src, dst

    if not keys:
        return {}
    with ThreadPoolExecutor(max_workers=min(concurrency, len(keys)), thread_name_prefix="syncops-seed-head") as pool:
        return dict(zip(keys, pool.map(both, keys), strict=True))


def plan(
    source: ObjectStore,
    destination: ObjectStore,
    entries: list[idx.Entry],
    found: _Destination,
    *,
    force: bool,
    concurrency: int,
) -> SeedPlan:
    """Sort every source entry into copy, already present, or conflict (copied over, with ``force``)."""
    same_provider = destination.can_copy_from(source)
    known = found.index.entries if found.index is not None else {}
    result = SeedPlan()
    to_compare: list[idx.Entry] = []
    for entry in entries:
        listed = found.listing.get(entry.key)
        indexed = known.get(entry.key)
        if listed is None:
            if indexed is not None and not same_entry(indexed, entry) and not force:
                result.conflicts.append(_conflict(entry, indexed, None, "the destination index lists other content"))
            else:
                result.work.append(_Work(entry))
        elif listed.size != entry.size:
            if force:
                to_compare.append(entry)  # for its version token: overwrite exactly what was read
            else:
                result.conflicts.append(_conflict(entry, indexed, listed.size, "another object is there"))
        else:
            to_compare.append(entry)

    heads = _heads(source, destination, [e.key for e in to_compare], concurrency)
    for entry in to_compare:
        src_head, dst_head = heads[entry.key]
        indexed = known.get(entry.key)
        if dst_head is None:  # removed since the listing
            result.work.append(_Work(entry))
            continue
        identical = src_head is not None and same_object(src_head, dst_head, same_provider, entry, indexed)
        index_agrees = indexed is None or same_entry(indexed, entry)
        if identical and index_agrees:
            result.present.append(entry)
        elif force:
            result.work.append(_Work(entry, if_absent=False, if_token=dst_head.token))
        else:
            why = (
                "the destination index lists other content"
                if identical
                else "another object is there"
                if src_head is None or src_head.md5 or dst_head.md5
                else "the contents cannot be compared (no MD5 on one side)"
            )
            result.conflicts.append(_conflict(entry, indexed, dst_head.size, why))
    result.conflicts.sort(key=lambda c: c["key"])
    return result


def _conflict(entry: idx.Entry, indexed: idx.Entry | None, size: int | None, why: str) -> dict[str, str]:
    """A conflict item: the key, what each side holds, and why the key was not copied."""
    if size is not None:
        there = f"object of {size} bytes" + (f", indexed as {describe(indexed)}" if indexed is not None else "")
    elif indexed is not None:
        there = f"indexed as {describe(indexed)}, no object"
    else:
        there = "absent"
    return {"key": entry.key, "source": describe(entry), "destination": there, "reason": why}


def _seeded_entry(entry: idx.Entry, sha256: str | None, size: int) -> idx.Entry:
    """The destination's entry for a copied key: the source's (``lastModified`` and unknown fields
    kept), with the sha256 of the bytes when they were read here, and nothing local."""
    return replace(
        entry,
        size=size,
        sha256=sha256 or entry.sha256,
        local_mtime=None,
        version=None,
        extra=dict(entry.extra),
    )


def _publish(
    destination: ObjectStore,
    found: _Destination,
    changes: dict[str, idx.Entry],
    force: bool,
    warnings: list[str],
) -> tuple[idx.Index, bool, list[dict[str, str]]]:
    """Merge the seeded entries into the destination's and write the index create-only or on the version
    read. Returns the index in force, whether it was written, and conflicts found on a lost race (then
    nothing is written)."""
    base, token = found.base, found.token
    if not changes:
        return base, False, []  # nothing seeded: the destination stays exactly as it was
    create_only = found.index is None and token is None
    for _ in range(MAX_INDEX_ATTEMPTS):
        merged = idx.merge(base, changes, last_pulled=idx.now_timestamp())
        if found.index is not None and _same_entries(base, merged):
            return base, False, []
        try:
            destination.put(INDEX_KEY, idx.stream(merged, with_local=False), if_absent=create_only, if_token=token)
            return merged, True, []
        except ConditionUnsupported:
            warnings.append("the destination does not support conditional writes; index written unconditionally")
            destination.put(INDEX_KEY, idx.stream(merged, with_local=False))
            return merged, True, []
        except (PreconditionFailed, NotFound):
            # Someone wrote the destination's index since it was read: take theirs, and check it agrees.
            found = _read_destination(destination, force)
            base, token = found.base, found.token
            create_only = found.index is None and token is None
            if found.index is not None and not force:
                disagree = [
                    _conflict(entry, found.index.entries[key], None, "the destination index changed meanwhile")
                    for key, entry in sorted(changes.items())
                    if key in found.index.entries and not same_entry(found.index.entries[key], entry)
                ]
                if disagree:
                    return found.index, False, disagree
    raise StoreError(
        f"{destination.url.object_url(INDEX_KEY)}: lost {MAX_INDEX_ATTEMPTS} races to other writers; "
        "the objects are copied, run seed again to publish the index"
    )


def _same_entries(a: idx.Index, b: idx.Index) -> bool:
    return a.entries.keys() == b.entries.keys() and all(
        a.entries[k].to_json(with_local=False) == b.entries[k].to_json(with_local=False) for k in a.entries
    )


def seed(
    source: ObjectStore,
    destination: ObjectStore,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    force: bool = False,
    dry_run: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Progress | None = None,
) -> Report:
    """Copy the source's data entries (narrowed by ``include`` / ``exclude``) into ``destination`` and
    publish its index; returns the command's report (exit 7 with conflicts listed, nothing written)."""
    if concurrency < 1:
        raise BadInput(f"--concurrency must be at least 1, not {concurrency}")
    refuse_nesting(source.url, destination.url)
    progress = progress or NoProgress()

    # The source first, read-only: a denied or corrupt source fails before the destination is touched.
    found_source = discover(source, publish=False)
    warnings = [f"source: {w}" for w in found_source.warnings]
    data, suspicious = found_source.index.split()
    for key, kind in suspicious:
        warnings.append(f"source index entry {escape_key(key)} is {kind.value}, not data: not seeded")
    entries = select(data, include, exclude)
    copy_mode = SERVER_SIDE if destination.can_copy_from(source) else STREAMED
    report = Report(
        url=str(destination.url),
        status=EMPTY,
        entries=0,
        source=str(source.url),
        copy_mode=copy_mode,
        index_written=False,
        copied=0,
        skipped=0,
        stale=0,
        bytes=0,
        warnings=warnings,
    )
    if not entries:
        if len(found_source.index):
            warnings.append("no source entry matches the --include/--exclude patterns: nothing to seed")
        return report

    found = _read_destination(destination, force)
    warnings.extend(f"destination: {w}" for w in found.warnings)
    report.entries = len(found.base)
    seeding = plan(source, destination, entries, found, force=force, concurrency=concurrency)
    report.skipped = len(seeding.present)
    report.conflicts = seeding.conflicts
    if dry_run:
        report.status = PLANNED
        report.dry_run = True
        report.to_copy = sorted(w.entry.key for w in seeding.work)
        report.exit_code = CONFLICT_EXIT if seeding.conflicts else 0
        return report
    if seeding.conflicts:
        # Nothing at all is written: a half-seeded destination mixing two datastores is worse than none.
        report.status = CONFLICTS
        report.exit_code = CONFLICT_EXIT
        return report

    # Keys already there and indexed alike keep their destination entry; unindexed ones get the source's.
    indexed = found.index.entries if found.index is not None else {}
    changes = {e.key: _seeded_entry(e, e.sha256, e.size) for e in seeding.present if e.key not in indexed}
    late_conflicts: list[dict[str, str]] = []
    problems: list[dict[str, str]] = []
    copier = _Copier(source, destination, progress)
    progress.start("seeding", len(seeding.work), sum(w.entry.size for w in seeding.work))
    try:
        for outcome in bounded(copier, seeding.work, concurrency, "syncops-seed"):
            entry = outcome.work.entry
            if outcome.problem is not None:
                problems.append({"kind": "not-seeded", "key": entry.key, "detail": outcome.problem})
            elif outcome.stale:
                report.stale = (report.stale or 0) + 1
                warnings.append(f"{escape_key(entry.key)}: listed by the source but gone from it; not seeded")
            elif outcome.lost_race:
                late_conflicts.append(
                    _conflict(entry, None, None, "the destination object was written by someone else meanwhile")
                    | {"destination": "written meanwhile"}
                )
            elif outcome.present:
                report.skipped = (report.skipped or 0) + 1
                changes[entry.key] = _seeded_entry(entry, outcome.sha256, outcome.size)
            else:
                report.copied = (report.copied or 0) + 1
                report.bytes = (report.bytes or 0) + outcome.size
                changes[entry.key] = _seeded_entry(entry, outcome.sha256, outcome.size)
    finally:
        progress.stop()

    published, written, race_conflicts = _publish(destination, found, changes, force, warnings)
    conflicts = sorted([*late_conflicts, *race_conflicts], key=lambda c: c["key"])
    report.entries = len(published)
    report.index_written = written
    report.conflicts = conflicts
    report.problems = problems
    report.status = SEEDED if written or report.copied else (CONFLICTS if race_conflicts else UNCHANGED)
    report.exit_code = KEY_FAILURE_EXIT if problems else (CONFLICT_EXIT if conflicts else 0)
    return report

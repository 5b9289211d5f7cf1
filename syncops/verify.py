"""verify (SPEC §3): compare the remote index with a listing, read-only unless ``--repair``.

A datastore whose index has drifted from its objects hydrates wrong: entries without objects come
down as "stale", objects without entries never come down at all, a size mismatch re-downloads on
every run, and an internal file or unsafe key in the index is something a crafted or buggy writer
put there. verify lists every such problem (kind and key) and exits 5; ``--repair`` publishes the
index rebuilt from the listing under the same conditions discovery uses, so it never overwrites a
concurrent writer's index.

On a datastore with swamp's shards, the index compared is the one in force (the monolith in
dual-write mode, the union of the listed shards in shard-first mode), and the shards are checked
against ``_meta.json`` and the listing.

Unlike the other commands, verify does not start with discovery: a missing index is a problem to
report, not something to fix silently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from syncops import index as idx
from syncops import indexview
from syncops import layout as lay
from syncops.discover import entries_from_listing, publish_index
from syncops.keys import INDEX_KEY, KeyKind, classify, in_namespace, unsafe_reason
from syncops.report import Report
from syncops.stores.base import ObjectInfo, ObjectStore

Describe = Callable[[str], str]

OK = "ok"
PROBLEMS = "problems"
REPAIRED = "repaired"

#: Problem kinds, as they appear in ``problems[].kind``.
MISSING_INDEX = "missing-index"
CORRUPT_INDEX = "corrupt-index"
MISSING_OBJECT = "missing-object"  # an index entry whose object is not in the listing
UNINDEXED_OBJECT = "unindexed-object"  # a data object the index does not list
SIZE_MISMATCH = "size-mismatch"
INTERNAL_ENTRY = "internal-entry"  # an internal file (or directory marker) listed as data
UNSAFE_ENTRY = "unsafe-entry"  # a key that must never become a local path
NAMESPACE_ENTRY = "namespace-entry"  # a key inside a subtree that is a datastore of its own
MALFORMED_SHA256 = "malformed-sha256"  # a sha256 field that is not 64 lowercase hex digits
MISSING_SHARD = "missing-shard"  # a partition _meta.json (version 2) lists, without its shard object

#: Exit code when problems were found and not repaired (SPEC §4).
PROBLEMS_EXIT = 5


class VerifyReport(Report):
    """The verify report; ``exit_code`` is what the CLI exits with after printing it."""


def _problem(kind: str, key: str, detail: str) -> dict[str, str]:
    return {"kind": kind, "key": key, "detail": detail}


def compare(index: idx.Index, listing: dict[str, idx.Entry], namespaces: list[str]) -> list[dict[str, str]]:
    """Every disagreement between an index and the data entries of a listing, sorted by key."""
    problems: list[dict[str, str]] = []
    roots = set(namespaces)
    for key in sorted(index.entries):
        entry = index.entries[key]
        kind = classify(key, entry.size)
        if kind is KeyKind.UNSAFE:
            problems.append(_problem(UNSAFE_ENTRY, key, f"unsafe key ({unsafe_reason(key)}): never hydrated"))
        elif kind is not KeyKind.DATA:
            problems.append(_problem(INTERNAL_ENTRY, key, f"{kind.value}, not data: never hydrated"))
        elif in_namespace(key, roots):
            problems.append(_problem(NAMESPACE_ENTRY, key, "inside a namespace subtree (a datastore of its own)"))
        elif key not in listing:
            problems.append(_problem(MISSING_OBJECT, key, "indexed, but no such object"))
        elif listing[key].size != entry.size:
            problems.append(
                _problem(SIZE_MISMATCH, key, f"index says {entry.size} bytes, object has {listing[key].size}")
            )
        elif entry.sha256 is not None and entry.content_sha256 is None or "sha256" in entry.extra:
            shown = entry.sha256 if entry.sha256 is not None else entry.extra.get("sha256")
            problems.append(_problem(MALFORMED_SHA256, key, f"sha256 is {str(shown)[:80]!r}, not a hex digest"))
    for key in sorted(listing):
        if key not in index.entries:
            problems.append(_problem(UNINDEXED_OBJECT, key, "object not in the index: never hydrated"))
    return problems


def _check_shards(
    view: indexview.View, shard_objects: set[str], describe: Describe
) -> tuple[list[dict[str, str]], list[str]]:
    """swamp's shards against ``_meta.json`` and the listing: (problems, warnings).

    Shard-first: a listed partition without its object is a problem (the index in force cannot be
    read whole); a shard object ``_meta.json`` does not list is not in force (a warning: swamp's
    writers leave such orphans, and they are harmless); an entry held by a shard that is not its
    partition is served, but a write moves it. Dual-write: the shards are copies; a missing one only
    sends swamp's scoped pulls to the monolith (a warning).
    """
    meta = view.layout.meta
    problems: list[dict[str, str]] = []
    warnings: list[str] = []
    if meta is None:
        return problems, warnings
    listed = {lay.shard_key(p) for p in meta.partitions}
    for key in sorted(listed - shard_objects):
        if meta.shard_first:
            problems.append(_problem(MISSING_SHARD, key, f"listed in {lay.META_KEY} (version 2), but no such object"))
        else:
            warnings.append(
                f"{describe(key)}: listed in {lay.META_KEY} but missing; swamp's scoped pulls use the monolith"
            )
    if meta.shard_first:
        for key in sorted(shard_objects - listed - {lay.META_KEY}):
            warnings.append(f"{describe(key)}: not listed in {lay.META_KEY}, so not in force (an orphan shard)")
        for key, shard, home in lay.misplaced_entries(view.layout):
            warnings.append(
                f"index entry {key!r} is held by shard {shard!r}, not its partition {home!r}; the next write moves it"
            )
    return problems, warnings


def verify(store: ObjectStore, *, repair: bool = False) -> VerifyReport:
    """Compare the index in force (wherever it lives) and swamp's shards with a listing; with
    ``repair`` publish the listing's index when they disagree.

    A corrupt index (a monolith that does not parse, a shard-first index with a listed shard
    missing) fails with :class:`CorruptIndex` (exit 6, like every other command) unless ``repair``
    is set, in which case it is replaced, conditional on the version that was read.
    """
    describe = store.url.object_url
    view = indexview.read(store, tolerant=repair)
    problems: list[dict[str, str]] = []
    if view.problem is not None:
        where = lay.META_KEY if view.mode is lay.Mode.SHARD_FIRST else INDEX_KEY
        problems.append(_problem(CORRUPT_INDEX, where, str(view.problem)))
    index = view.index

    shard_objects: set[str] = set()

    def watched() -> Iterator[ObjectInfo]:
        for obj in store.list():  # the one listing, streamed: shard objects are noted on the way
            if obj.key.startswith(lay.INDEX_DIR):
                shard_objects.add(obj.key)
            yield obj

    listing = entries_from_listing(watched())
    shard_problems, shard_warnings = _check_shards(view, shard_objects, describe)
    problems.extend(shard_problems)
    if index is not None:
        problems.extend(compare(index, listing.entries, listing.namespaces))
    elif view.problem is None and listing.entries:
        # No index and no data is the empty datastore discovery leaves alone: nothing to report.
        where = describe(INDEX_KEY)
        problems.append(_problem(MISSING_INDEX, INDEX_KEY, f"{where} does not exist; {len(listing.entries)} objects"))

    report = VerifyReport(
        url=str(store.url),
        status=OK if not problems else PROBLEMS,
        entries=len(index) if index is not None else 0,
        index_written=False,
        problems=problems,
        warnings=[*listing.warnings, *shard_warnings],
    )
    if not problems:
        return report
    if not repair:
        report.exit_code = PROBLEMS_EXIT
        return report

    rebuilt = idx.Index(entries=listing.entries, last_pulled=idx.now_timestamp())
    outcome = publish_index(store, view, rebuilt, report.warnings, REPAIRED)
    if not outcome.index_written:
        # Another peer published an index between our read and our create-only write; it was not
        # checked, so say so instead of claiming a repair.
        report.status = PROBLEMS
        report.entries = len(outcome.index)
        report.warnings.append("another writer published an index meanwhile; nothing written, run verify again")
        report.exit_code = PROBLEMS_EXIT
        return report
    report.status = REPAIRED
    report.entries = len(rebuilt)
    report.index_written = True
    return report

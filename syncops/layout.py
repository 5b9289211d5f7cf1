"""swamp's index shards (SPEC §2 "swamp's index shards"): partition keys, ``_index/_meta.json`` and
shard documents, which of them are in force, and which objects a write must produce. No I/O.

A datastore is in one of three layouts, told apart by ``_index/_meta.json``:

* **monolith** - no ``_index/``: ``.datastore-index.json`` is the index, and syncops keeps it that way;
* **dual-write** - ``_meta.json`` version 1 (or shards whose meta was lost): the monolith is the truth
  and the shards are copies of its entries, rewritten after it for the partitions a write touched;
* **shard-first** - ``_meta.json`` version 2: the union of the listed shards is the truth, the monolith
  is no longer updated, and a write rewrites its dirty shards and then ``_meta.json`` with
  ``commitSeq + 1``, conditionally: that write is the commit point.

Facts mirrored from swamp's ``s3_cache_sync.ts`` / ``gcs_cache_sync.ts`` (``partitionKeyFromPath``,
``writeShard``, ``writePartitionMeta``, ``writePartitionedIndex``, ``assembleIndexFromShards``,
``commitPushShardFirst``); docs/swamp-layout.md says which and where syncops departs from them.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from typing import Any, TypeGuard

from syncops import index as idx
from syncops.errors import BadInput, CorruptIndex
from syncops.index import _entry_from_json, _entry_text  # one definition of an entry, shared with the monolith
from syncops.keys import INDEX_KEY, KeyKind, classify, escape_key, unsafe_reason

INDEX_DIR = "_index/"
META_KEY = INDEX_DIR + "_meta.json"
#: Shards and the monolith share the entry format; shards carry only ``version`` and ``entries``.
SHARD_VERSION = 1
DUAL_WRITE_VERSION = 1
SHARD_FIRST_VERSION = 2
#: The partition of a path with no directory (``README.md``).
ROOT_PARTITION = "_root"
#: A partition with this name would be written over ``_index/_meta.json`` itself.
META_PARTITION = "_meta"

#: Per-model trees: the partition is the path minus its last three segments (name/version/raw),
#: or minus its file name for paths of four or five segments.
_PER_MODEL_DIRS = frozenset({"data", "outputs", "definitions-evaluated"})
#: Per-workflow tree: the partition is the tree plus the workflow id.
_PER_WORKFLOW_DIR = "workflow-runs"

Describe = Callable[[str], str]


def _same(key: str) -> str:
    return key


def partition_key(path: str) -> str | None:
    """The shard a data path belongs to, or None for a path no shard can hold.

    Mirrors swamp's ``partitionKeyFromPath`` (static method of ``S3CacheSyncService`` in
    ``s3_cache_sync.ts``, the version that reads ``_meta.json`` version 2). No partition: the empty
    path; a ``data/``, ``outputs/`` or ``definitions-evaluated/`` path of fewer than four segments; a
    ``workflow-runs/`` path of fewer than three; a path starting with ``/`` (swamp returns ``""``,
    which every one of its callers treats as no partition).
    """
    segments = path.split("/")
    if len(segments) == 1:
        return ROOT_PARTITION if path else None
    subdir = segments[0]
    if subdir in _PER_MODEL_DIRS:
        if len(segments) < 4:
            return None
        end = len(segments) - 3 if len(segments) >= 6 else len(segments) - 1
        return "--".join(segments[:end])
    if subdir == _PER_WORKFLOW_DIR:
        if len(segments) < 3:
            return None
        return f"{subdir}--{segments[1]}"
    return subdir or None


def shard_key(partition: str) -> str:
    """The object holding a partition's shard, relative to the datastore prefix."""
    return f"{INDEX_DIR}{partition}.json"


def _partition_problem(name: Any) -> str | None:
    """Why a partition name listed in ``_meta.json`` cannot name a shard object, or None."""
    if not isinstance(name, str):
        return f"partition {name!r} is not a string"
    reason = unsafe_reason(name)
    if reason is not None:
        return f"partition {escape_key(name)} is not a safe name ({reason})"
    if "/" in name:
        return f"partition {escape_key(name)} contains '/'"
    if name == META_PARTITION:
        return f"partition {escape_key(name)} would be {META_KEY} itself"
    return None


# -- _index/_meta.json -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Meta:
    """``_index/_meta.json``: version 1 (dual-write) or 2 (shard-first, with ``commitSeq``)."""

    version: int
    partitions: tuple[str, ...]
    commit_seq: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def shard_first(self) -> bool:
        return self.version == SHARD_FIRST_VERSION


def _is_int(value: Any) -> TypeGuard[int]:
    """A JSON integer: ``true`` is a bool in Python and an int too, but never a version or a count."""
    return isinstance(value, int) and not isinstance(value, bool)


def parse_meta(data: bytes | str, where: str = META_KEY) -> Meta:
    """Parse and validate ``_meta.json``; :class:`CorruptIndex` naming ``where`` on any defect.

    swamp's ``readPartitionMeta`` ignores a meta of another version; syncops refuses it instead,
    since writing a layout it does not know under the rules of an older one could lose entries.
    """
    raw = idx.load_object(data, where)
    version = raw.get("version")
    if not _is_int(version) or version not in (DUAL_WRITE_VERSION, SHARD_FIRST_VERSION):
        raise CorruptIndex(f"{where}: version is {version!r}, syncops reads versions 1 and 2")
    partitions = raw.get("partitions")
    if not isinstance(partitions, list):
        raise CorruptIndex(f"{where}: 'partitions' is missing or not a list")
    for name in partitions:
        problem = _partition_problem(name)
        if problem is not None:
            raise CorruptIndex(f"{where}: {problem}")
    known: tuple[str, ...] = ("version", "partitions")
    commit_seq: int | None = None
    if version == SHARD_FIRST_VERSION:
        found = raw.get("commitSeq")
        if not _is_int(found) or found < 0:
            raise CorruptIndex(f"{where}: version 2 needs 'commitSeq' as a count, found {found!r}")
        commit_seq = found
        known += ("commitSeq",)
    extra = {k: v for k, v in raw.items() if k not in known}
    return Meta(version=version, partitions=tuple(partitions), commit_seq=commit_seq, extra=extra)


def serialize_meta(meta: Meta) -> bytes:
    """``_meta.json`` as swamp's ``JSON.stringify(meta, null, 2)`` lays it out (no final newline).

    Fields in swamp's order (``version``, ``partitions``, ``commitSeq``), unknown ones after them
    sorted by name; partitions sorted and unique, as swamp writes them in version 2.
    """
    doc: dict[str, Any] = {"version": meta.version, "partitions": sorted(set(meta.partitions))}
    if meta.version == SHARD_FIRST_VERSION:
        doc["commitSeq"] = meta.commit_seq
    for name in sorted(meta.extra):
        if name not in doc:
            doc[name] = meta.extra[name]
    return json.dumps(doc, indent=2, ensure_ascii=False).encode("utf-8")


# -- _index/<partition>.json -----------------------------------------------------------------------


@dataclass
class Shard:
    """One partition's entries: ``{"version": 1, "entries": {...}}``, entries as in the monolith."""

    partition: str
    entries: dict[str, idx.Entry] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def parse_shard(data: bytes | str, partition: str, where: str | None = None) -> Shard:
    """Parse and validate a shard; :class:`CorruptIndex` naming the object on any defect."""
    where = where or shard_key(partition)
    raw = idx.load_object(data, where)
    version = raw.get("version")
    if not _is_int(version) or version != SHARD_VERSION:
        raise CorruptIndex(f"{where}: version is {version!r}, syncops reads shard version {SHARD_VERSION}")
    entries = raw.get("entries")
    if not isinstance(entries, dict):
        raise CorruptIndex(f"{where}: 'entries' is missing or not an object")
    extra = {k: v for k, v in raw.items() if k not in ("version", "entries")}
    parsed = {name: _entry_from_json(name, value, where) for name, value in entries.items()}
    return Shard(partition=partition, entries=parsed, extra=extra)


def iter_shard_serialized(shard: Shard) -> Iterator[str]:
    """A shard in the monolith's layout (``index.iter_serialized``): sorted, one entry a line.

    Entries keep every field they were read with (``localMtime`` and unknown ones included: issue 11's
    field fidelity), like the monolith syncops publishes; only the base's ``remoteVersion`` is left out.
    """
    yield f'{{\n  "version": {SHARD_VERSION}'
    for name in sorted(shard.extra):
        yield f",\n  {json.dumps(name)}: {json.dumps(shard.extra[name], sort_keys=True)}"
    yield ',\n  "entries": {'
    first = True
    for key in sorted(shard.entries):
        lead = "\n    " if first else ",\n    "
        yield lead + encode_basestring(key) + ": " + _entry_text(shard.entries[key], False)
        first = False
    yield "\n  }\n}\n" if not first else "}\n}\n"


def serialize_shard(shard: Shard) -> bytes:
    return "".join(iter_shard_serialized(shard)).encode("utf-8")


# -- the layout view -------------------------------------------------------------------------------


class Mode(enum.Enum):
    MONOLITH = "monolith"
    DUAL_WRITE = "dual-write"
    SHARD_FIRST = "shard-first"


@dataclass
class Layout:
    """What was read of a datastore's index objects.

    ``monolith``: the parsed ``.datastore-index.json``, None when absent. ``meta``: the parsed
    ``_meta.json``, None when absent. ``shards``: the shards read, by partition; a partition listed
    in a version-2 meta and missing here means its object is missing. ``shards_present``: shard
    objects exist under ``_index/`` (a listing found some) although ``_meta.json`` does not.
    """

    monolith: idx.Index | None = None
    meta: Meta | None = None
    shards: Mapping[str, Shard] = field(default_factory=dict)
    shards_present: bool = False

    @property
    def mode(self) -> Mode:
        if self.meta is not None:
            return Mode.SHARD_FIRST if self.meta.shard_first else Mode.DUAL_WRITE
        return Mode.DUAL_WRITE if self.shards_present or self.shards else Mode.MONOLITH


def objects_to_read(layout: Layout) -> list[str]:
    """The index objects whose contents decide the entries in force, once ``_meta.json`` is known."""
    if layout.meta is not None and layout.meta.shard_first:
        return [shard_key(p) for p in dict.fromkeys(layout.meta.partitions)]
    return [INDEX_KEY]


def _listed_shard(layout: Layout, partition: str, describe: Describe) -> Shard:
    shard = layout.shards.get(partition)
    if shard is None:
        raise CorruptIndex(
            f"{describe(shard_key(partition))}: listed in {describe(META_KEY)} (version 2) but missing; "
            "`swamp datastore migrate-index` rebuilds the shards"
        )
    return shard


def entries_in_force(layout: Layout, describe: Describe = _same) -> idx.Index | None:
    """The index the datastore holds now, or None when its index is absent (discovery's case).

    Monolith and dual-write: the monolith. Shard-first: the union of the shards ``_meta.json``
    lists, a later-listed shard winning a key held twice, as swamp's ``assembleIndexFromShards``
    merges them; a listed shard that is missing is :class:`CorruptIndex`.
    """
    if layout.mode is not Mode.SHARD_FIRST:
        return layout.monolith
    assert layout.meta is not None
    entries: dict[str, idx.Entry] = {}
    for partition in layout.meta.partitions:
        entries.update(_listed_shard(layout, partition, describe).entries)
    return idx.Index(entries=entries, last_pulled=None)


def misplaced_entries(layout: Layout) -> list[tuple[str, str, str | None]]:
    """Entries held by a shard that is not their partition's: ``(key, shard, partition)``.

    They are valid (an older swamp derived some partitions differently) but a write of such a
    key must remove the stale copy, or the union could keep serving it.
    """
    out = []
    for partition, shard in sorted(layout.shards.items()):
        for key in sorted(shard.entries):
            home = partition_key(key)
            if home != partition:
                out.append((key, partition, home))
    return out


# -- write plans -----------------------------------------------------------------------------------


class Kind(enum.Enum):
    INDEX = "index"
    SHARD = "shard"
    META = "meta"


@dataclass(frozen=True)
class Write:
    """One object a write must produce, in plan order.

    ``conditional``: the commit point, written only over the version that was read (S3
    ``If-Match`` / GCS ``ifGenerationMatch``; create-only when it was read as absent). The other
    objects are written plainly, as swamp writes them, under swamp's lock.
    """

    key: str
    data: bytes | Iterable[bytes]
    kind: Kind
    conditional: bool = False

    def body(self) -> bytes:
        return self.data if isinstance(self.data, bytes) else b"".join(self.data)


@dataclass
class WritePlan:
    """The writes, in the order they must happen, and what the datastore holds after them.

    ``index``: the entries in force after the writes, None when the shards given were not all the
    listed ones (a shard-first write needs only its dirty shards). ``meta``/``shards``: the new
    ``_meta.json`` and shard documents written. ``warnings``: things to tell the user.
    """

    mode: Mode
    writes: list[Write] = field(default_factory=list)
    index: idx.Index | None = None
    meta: Meta | None = None
    shards: dict[str, Shard] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _refuse_non_data(keys: Iterable[str]) -> None:
    for key in keys:
        kind = classify(key)
        if kind is not KeyKind.DATA:
            raise BadInput(f"{escape_key(key)}: not a data key ({kind.value}); it cannot be indexed")


def shard_home(key: str) -> str | None:
    """The shard a write puts ``key`` in: its partition, except a partition named like the meta."""
    partition = partition_key(key)
    return None if partition == META_PARTITION else partition


def _refuse_unshardable(keys: Iterable[str], describe: Describe) -> None:
    """A shard-first index cannot hold a key without a partition: refused, never dropped.

    BadInput (exit 2), not CorruptIndex: nothing read is broken; the key given is one this
    datastore's layout has no place for (swamp's own ``migrateMonolithToShards`` aborts on it).
    """
    homeless = sorted(k for k in keys if shard_home(k) is None)
    if homeless:
        shown = ", ".join(escape_key(k) for k in homeless[:10])
        more = f" and {len(homeless) - 10} more" if len(homeless) > 10 else ""
        raise BadInput(
            f"{describe(META_KEY)} is version 2 (shard-first) and {len(homeless)} key(s) have no shard "
            f"under swamp's partitioning (data/, outputs/ and definitions-evaluated/ need 4 segments, "
            f"workflow-runs/ 3; no partition may be named {META_PARTITION!r}): {shown}{more}; nothing written"
        )


def refuse_unwritable(layout: Layout, keys: Iterable[str], describe: Describe = _same) -> None:
    """:class:`BadInput` for keys this layout cannot index, before a single data object is uploaded.

    Every layout refuses keys that are not data; shard-first also refuses keys with no shard.
    :func:`plan_write` checks the same again, this lets push fail before its uploads.
    """
    keys = list(keys)
    _refuse_non_data(keys)
    if layout.mode is Mode.SHARD_FIRST:
        _refuse_unshardable(keys, describe)


def _monolith_write(index: idx.Index) -> Write:
    return Write(INDEX_KEY, idx.stream(index, with_local=False), Kind.INDEX, conditional=True)


def _dual_write_plan(layout: Layout, new_monolith: idx.Index, dirty: set[str], plan: WritePlan) -> WritePlan:
    """Monolith first (the truth, conditional), then its copies: dirty shards, then a v1 meta.

    As swamp's ``writePartitionedIndex``: a shard holds every monolith entry of its partition, and
    the meta lists every partition of the monolith; rewritten only when that list changes.
    """
    plan.writes.append(_monolith_write(new_monolith))
    grouped: dict[str, dict[str, idx.Entry]] = {}
    partitions: set[str] = set()
    for key, entry in new_monolith.entries.items():
        home = shard_home(key)
        if home is None:
            continue
        partitions.add(home)
        if home in dirty:
            grouped.setdefault(home, {})[key] = entry
    for partition in sorted(dirty):
        old = layout.shards.get(partition)
        shard = Shard(partition, grouped.get(partition, {}), dict(old.extra) if old else {})
        plan.shards[partition] = shard
        plan.writes.append(Write(shard_key(partition), serialize_shard(shard), Kind.SHARD))
    old_meta = layout.meta
    if old_meta is None or set(old_meta.partitions) != partitions:
        meta = Meta(DUAL_WRITE_VERSION, tuple(sorted(partitions)), None, dict(old_meta.extra) if old_meta else {})
        plan.meta = meta
        plan.writes.append(Write(META_KEY, serialize_meta(meta), Kind.META))
    plan.index = new_monolith
    return plan


def _shard_first_plan(
    layout: Layout,
    rewrite: Mapping[str, dict[str, idx.Entry]],
    base: Meta,
    describe: Describe,
    plan: WritePlan,
) -> WritePlan:
    """Every rewritten shard, then ``_meta.json`` with ``commitSeq + 1`` (conditional, last).

    A shard left empty is written empty and no longer listed: swamp deletes it, syncops never
    deletes, and an empty object cannot bring stale entries back.
    """
    listed = dict.fromkeys(base.partitions)
    for partition in sorted(rewrite):
        old = layout.shards.get(partition) if partition in listed else None
        shard = Shard(partition, rewrite[partition], dict(old.extra) if old else {})
        plan.shards[partition] = shard
        plan.writes.append(Write(shard_key(partition), serialize_shard(shard), Kind.SHARD))
        if shard.entries:
            listed[partition] = None
        else:
            listed.pop(partition, None)
    assert base.commit_seq is not None
    meta = Meta(SHARD_FIRST_VERSION, tuple(sorted(listed)), base.commit_seq + 1, dict(base.extra))
    plan.meta = meta
    plan.writes.append(Write(META_KEY, serialize_meta(meta), Kind.META, conditional=True))
    if all(p in layout.shards or p in plan.shards for p in base.partitions):
        after = Layout(meta=meta, shards={**layout.shards, **plan.shards})
        plan.index = entries_in_force(after, describe)
    return plan


def plan_write(
    layout: Layout,
    changes: Mapping[str, idx.Entry],
    *,
    last_pulled: str | None = None,
    describe: Describe = _same,
) -> WritePlan:
    """The objects a write of ``changes`` (new or changed entries, never removals) must produce.

    Monolith: the monolith, merged. Dual-write: that, then the dirty shards and a v1 meta when its
    partition list changes. Shard-first: the dirty shards (each shard ``layout`` holds, merged with
    the changes of its partition), then ``_meta.json`` with ``commitSeq + 1``. Read first the shards
    :func:`shards_to_read` names. ``last_pulled`` stamps a rewritten monolith.
    """
    plan = WritePlan(layout.mode)
    if not changes:
        plan.index = entries_in_force(layout, describe) if plan.mode is not Mode.SHARD_FIRST else None
        return plan
    _refuse_non_data(changes)
    if plan.mode is not Mode.SHARD_FIRST:
        new_monolith = idx.merge(layout.monolith or idx.Index(), changes, last_pulled=last_pulled)
        if plan.mode is Mode.MONOLITH:
            plan.writes.append(_monolith_write(new_monolith))
            plan.index = new_monolith
            return plan
        dirty = {home for home in map(shard_home, changes) if home is not None}
        for key in sorted(k for k in changes if partition_key(k) == META_PARTITION):
            plan.warnings.append(
                f"{escape_key(key)}: its partition would be {META_KEY} itself; kept in the monolith, no shard written"
            )
        return _dual_write_plan(layout, new_monolith, dirty, plan)

    assert layout.meta is not None
    _refuse_unshardable(changes, describe)
    by_home: dict[str, dict[str, idx.Entry]] = {}
    for key, entry in changes.items():
        home = shard_home(key)
        assert home is not None
        by_home.setdefault(home, {})[key] = entry
    listed = set(layout.meta.partitions)
    rewrite: dict[str, dict[str, idx.Entry]] = {}
    for partition, moved in by_home.items():
        current = _listed_shard(layout, partition, describe).entries if partition in listed else {}
        rewrite[partition] = idx.merge(idx.Index(entries=dict(current)), moved).entries
    for key, partition, _ in misplaced_entries(layout):
        if key in changes and partition in listed:  # a stale copy elsewhere: taken out of that shard
            target = rewrite.setdefault(partition, dict(layout.shards[partition].entries))
            target.pop(key, None)
    return _shard_first_plan(layout, rewrite, layout.meta, describe, plan)


def shards_to_read(meta: Meta, keys: Iterable[str]) -> list[str]:
    """The listed partitions a shard-first write of ``keys`` rewrites, so must read first."""
    listed = set(meta.partitions)
    return sorted({home for home in map(shard_home, keys) if home is not None and home in listed})


def plan_replace(
    layout: Layout,
    index: idx.Index,
    *,
    describe: Describe = _same,
) -> WritePlan:
    """The objects a rebuild or repair must produce to make ``index`` the one in force.

    Monolith: the monolith. Dual-write: it, then every shard of it (swamp's
    ``writePartitionedIndex`` without dirty keys), every shard it no longer has written empty, and a
    v1 meta. Shard-first: every shard of ``index``, every listed shard it no longer has written
    empty, then ``_meta.json`` with ``commitSeq + 1``.
    """
    plan = WritePlan(layout.mode)
    _refuse_non_data(index.entries)
    if plan.mode is Mode.MONOLITH:
        plan.writes.append(_monolith_write(index))
        plan.index = index
        return plan
    if plan.mode is Mode.DUAL_WRITE:
        dirty = {home for home in map(shard_home, index.entries) if home is not None}
        dirty.update(layout.meta.partitions if layout.meta else ())  # a copy of nothing left: written empty
        dirty.update(layout.shards)
        return _dual_write_plan(layout, index, dirty, plan)
    assert layout.meta is not None
    _refuse_unshardable(index.entries, describe)
    rewrite: dict[str, dict[str, idx.Entry]] = {p: {} for p in layout.meta.partitions}
    for key, entry in index.entries.items():
        home = shard_home(key)
        assert home is not None
        rewrite.setdefault(home, {})[key] = entry
    return _shard_first_plan(layout, rewrite, layout.meta, describe, plan)

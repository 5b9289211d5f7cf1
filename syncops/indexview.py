"""Where the index lives (issue 11): the index as a view over the storage layouts of a datastore.

discover, hydrate, push, status and verify never read or write ``.datastore-index.json`` or
``_index/`` themselves; they ask this module, which knows the three layouts of
:mod:`syncops.layout`:

* **monolith** (no ``_index/_meta.json``): ``.datastore-index.json`` is read and written, as always;
  syncops never migrates a datastore on its own;
* **dual-write** (``_meta.json`` version 1): the monolith is the truth; a write updates it
  (conditionally) and then the shards of the partitions it touched, and the v1 meta when its
  partition list changes;
* **shard-first** (``_meta.json`` version 2): the union of the listed shards is the truth (a listed
  shard that is missing is a corrupt index, exit 6); a write rewrites its dirty shards and then
  ``_meta.json`` with ``commitSeq + 1``, conditionally on the meta that was read; the monolith is
  neither read nor written.

How the layout is known: one GET of ``_index/_meta.json`` before anything else (404: no meta). It is
the one request a monolith datastore pays for the shards; a shard-first read is that GET plus one
GET per listed partition, and never the monolith.

A lost race at the commit point (412) re-reads and re-plans, bounded, like the monolith always did.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TypeVar

from syncops import index as idx
from syncops import layout as lay
from syncops.errors import ConditionUnsupported, CorruptIndex, NotFound, PreconditionFailed, StoreError
from syncops.keys import INDEX_KEY
from syncops.stores.base import Blob, FileBody, ObjectStore
from syncops.writelock import WriteLock

T = TypeVar("T")

#: Lost commit races to absorb before giving up (each one re-reads and re-merges).
MAX_ATTEMPTS = 10
#: Shards read at once in shard-first mode.
SHARD_READS = 8


@dataclass
class View:
    """What one read of a datastore's index objects found.

    ``index``: the entries in force (the monolith, or the union of the shards), None when the
    monolith is absent (discovery's case) or, with ``tolerant``, unreadable (``problem`` says why).
    ``monolith_token`` / ``meta_token``: the versions read (None: absent), on which writes are made.
    """

    layout: lay.Layout
    index: idx.Index | None
    monolith_token: str | None = None
    meta_token: str | None = None
    problem: CorruptIndex | None = None

    @property
    def mode(self) -> lay.Mode:
        return self.layout.mode

    @property
    def uses_swamp_layout(self) -> bool:
        """``_index/`` is in use: swamp's writers lock this datastore, so syncops's writes take the lock."""
        return self.layout.meta is not None

    @property
    def token(self) -> str | None:
        """The version of the commit point: ``_meta.json`` in shard-first mode, else the monolith."""
        return self.meta_token if self.mode is lay.Mode.SHARD_FIRST else self.monolith_token

    def with_index(self, index: idx.Index) -> View:
        """The same view with the index in force replaced (a monolith built from a listing)."""
        if self.mode is lay.Mode.SHARD_FIRST:
            return replace(self, index=index)
        return replace(self, layout=replace(self.layout, monolith=index), index=index)


def _get(store: ObjectStore, key: str) -> Blob | None:
    try:
        return store.get(key)
    except NotFound:
        return None


def read(store: ObjectStore, *, tolerant: bool = False) -> View:
    """Read the index objects in force: ``_meta.json``, then the monolith or every listed shard.

    A defect in what is in force is :class:`CorruptIndex` naming the object, or, with ``tolerant``
    (``--rebuild``, ``--repair``), ``View.problem``. A corrupt ``_meta.json`` is always an error:
    without it the layout is unknown.
    """
    describe = store.url.object_url
    meta_blob = _get(store, lay.META_KEY)
    meta = lay.parse_meta(meta_blob.data, describe(lay.META_KEY)) if meta_blob is not None else None
    meta_token = meta_blob.token if meta_blob is not None else None
    if meta is not None and meta.shard_first:
        shards = _read_shards(store, meta.partitions)
        layout = lay.Layout(meta=meta, shards=shards)
        try:
            return View(layout, lay.entries_in_force(layout, describe), meta_token=meta_token)
        except CorruptIndex as exc:
            if not tolerant:
                raise
            return View(layout, None, meta_token=meta_token, problem=exc)
    blob = _get(store, INDEX_KEY)
    layout = lay.Layout(meta=meta)
    if blob is None:
        return View(layout, None, None, meta_token)
    try:
        layout.monolith = idx.parse(blob.data, where=describe(INDEX_KEY))
    except CorruptIndex as exc:
        if not tolerant:
            raise
        return View(layout, None, blob.token, meta_token, problem=exc)
    return View(layout, layout.monolith, blob.token, meta_token)


def _read_shards(store: ObjectStore, partitions: tuple[str, ...]) -> dict[str, lay.Shard]:
    """Every listed shard that exists (a missing one is left out: the caller names it)."""
    names = list(dict.fromkeys(partitions))

    def one(partition: str) -> lay.Shard | None:
        blob = _get(store, lay.shard_key(partition))
        if blob is None:
            return None
        return lay.parse_shard(blob.data, partition, store.url.object_url(lay.shard_key(partition)))

    if len(names) <= 1:
        found = [one(p) for p in names]
    else:
        with ThreadPoolExecutor(max_workers=min(SHARD_READS, len(names)), thread_name_prefix="syncops-shard") as pool:
            found = list(pool.map(one, names))
    return {shard.partition: shard for shard in found if shard is not None}


def refresh(store: ObjectStore, view: View) -> View:
    """The view again after waiting for swamp's lock: in shard-first mode one GET of ``_meta.json``
    tells whether a writer committed meanwhile (then everything is read again), since the shards a
    write rewrites must be the ones in force; elsewhere the monolith's conditional write, which
    comes first, catches that without a read."""
    if view.mode is not lay.Mode.SHARD_FIRST:
        return view
    meta = _get(store, lay.META_KEY)
    if meta is not None and meta.token == view.meta_token:
        return view
    return read(store)


# -- writing ---------------------------------------------------------------------------------------


def _execute(store: ObjectStore, view: View, plan: lay.WritePlan, lock: WriteLock | None, conditional: bool) -> View:
    """Put the plan's objects in order, the commit point only over the version the view read;
    returns the view of what is in force after them (its new versions, for a following write)."""
    tokens: dict[str, str] = {}
    for write in plan.writes:
        if lock is not None:
            lock.check()
        if write.conditional and conditional:
            token = view.meta_token if write.kind is lay.Kind.META else view.monolith_token
            tokens[write.key] = store.put(write.key, write.data, if_absent=token is None, if_token=token)
        else:
            tokens[write.key] = store.put(write.key, write.data)
    layout = lay.Layout(
        monolith=view.layout.monolith,
        meta=plan.meta or view.layout.meta,
        shards={**view.layout.shards, **plan.shards},
        shards_present=view.layout.shards_present,
    )
    index = plan.index if plan.index is not None else view.index
    if plan.mode is not lay.Mode.SHARD_FIRST and INDEX_KEY in tokens:
        layout.monolith = plan.index
    return View(
        layout,
        index,
        monolith_token=tokens.get(INDEX_KEY, view.monolith_token),
        meta_token=tokens.get(lay.META_KEY, view.meta_token),
    )


def commit(
    store: ObjectStore,
    view: View,
    changes: Mapping[str, idx.Entry],
    warnings: list[str],
    *,
    lock: WriteLock | None = None,
    when_absent: Callable[[], idx.Index],
) -> tuple[View, idx.Index]:
    """Write ``changes`` (new or changed entries; never removals) into the index, wherever it lives.

    Returns the view after the write and the index now in force. ``when_absent`` gives the
    entries to merge into when the monolith is gone (a listing's: never an empty base, which would
    hide every other object). A lost race re-reads and re-merges, bounded; a backend that refuses
    conditions gets, after a fresh read, one unconditional write (with a warning).
    """
    describe = store.url.object_url
    conditional = True
    for _ in range(MAX_ATTEMPTS):
        if view.index is None and view.mode is not lay.Mode.SHARD_FIRST:
            view = view.with_index(when_absent())
        plan = lay.plan_write(view.layout, changes, last_pulled=idx.now_timestamp(), describe=describe)
        try:
            after = _execute(store, view, plan, lock, conditional)
        except ConditionUnsupported:
            warnings.append(
                "backend does not support conditional writes; index re-read, merged and written unconditionally "
                "(run `syncops verify` after concurrent pushes)"
            )
            conditional = False
            view = read(store)
            continue
        except (PreconditionFailed, NotFound):  # changed, or removed, since it was read
            view = read(store)
            continue
        warnings.extend(w for w in plan.warnings if w not in warnings)
        if plan.index is not None:
            return after, plan.index
        assert view.index is not None
        return after, idx.merge(view.index, changes)
    raise StoreError(
        f"{describe(lay.META_KEY if view.mode is lay.Mode.SHARD_FIRST else INDEX_KEY)}: lost {MAX_ATTEMPTS} "
        "races to other writers; the objects are uploaded, run push again to publish the index"
    )


def replace_index(
    store: ObjectStore, view: View, index: idx.Index, warnings: list[str], *, lock: WriteLock | None = None
) -> View:
    """Make ``index`` the one in force (discovery's publish, ``--rebuild``, ``--repair``), over the
    version the view read (create-only when the monolith was absent).

    :class:`PreconditionFailed` when the commit point changed since the read: the caller decides
    (discovery adopts, rebuild and repair tell the user to run again). A backend that refuses the
    condition gets one unconditional write, with a warning.
    """
    plan = lay.plan_replace(view.layout, index, describe=store.url.object_url)
    after = _conditionally(lambda conditional: _execute(store, view, plan, lock, conditional), warnings)
    warnings.extend(w for w in plan.warnings if w not in warnings)
    return after


def replace_monolith(
    store: ObjectStore, view: View, body: FileBody, warnings: list[str], *, lock: WriteLock | None = None
) -> str:
    """Make the serialized index ``body`` the monolith of a datastore without swamp's layout (what
    :func:`replace_index` writes there, already on disk), over the version the view read
    (create-only when absent); returns its new version token. Conditions and their refusal as
    :func:`replace_index`."""
    assert view.mode is lay.Mode.MONOLITH and not view.uses_swamp_layout
    if lock is not None:
        lock.check()
    token = view.monolith_token
    return _conditionally(
        lambda conditional: (
            store.put(INDEX_KEY, body, if_absent=token is None, if_token=token)
            if conditional
            else store.put(INDEX_KEY, body)
        ),
        warnings,
    )


def _conditionally(write: Callable[[bool], T], warnings: list[str]) -> T:
    """``write(True)``: the write under its condition; where the backend refuses conditions, one
    ``write(False)`` instead, with a warning (a replace is idempotent, so that is safe)."""
    try:
        return write(True)
    except ConditionUnsupported:
        warnings.append("backend does not support conditional writes; index written unconditionally")
        return write(False)

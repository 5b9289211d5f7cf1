"""Self-healing index discovery (SPEC §3 "discover").

A present, valid index is used as it is and nothing is written. An absent one is synthesized from a
streamed listing and published create-only, so racing peers converge on one index: the loser of the
race adopts the winner's. Only a real "not found" counts as absent: every other failure propagates,
because reading a 403 or a 503 as "no data" is exactly the silent-empty-environment bug.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from syncops import index as idx
from syncops import indexview
from syncops.errors import NotFound, PreconditionFailed, StoreError
from syncops.indexfile import IndexWriter
from syncops.keys import INDEX_KEY, data_items, escape_key, select_data, unsafe_reason
from syncops.layout import META_KEY, Mode
from syncops.stores.base import ObjectInfo, ObjectStore
from syncops.writelock import WriteLock

FOUND = "found"
DISCOVERED = "discovered"
ADOPTED = "adopted"
EMPTY = "empty"
REBUILT = "rebuilt"

T = TypeVar("T")


@dataclass
class Discovery:
    """The outcome: the index now in force, its version token, and whether this run wrote it."""

    status: str
    index: idx.Index
    token: str | None
    index_written: bool = False
    warnings: list[str] = field(default_factory=list)
    #: Where the index lives and the versions read (None: built without reading, in tests).
    view: indexview.View | None = None


@dataclass
class Listing:
    """A listing reduced to data entries, plus what was left out and why."""

    entries: dict[str, idx.Entry]
    warnings: list[str]
    namespaces: list[str]


def entries_from_listing(objects: Iterable[ObjectInfo]) -> Listing:
    """Keep the data objects of a listing: drop internal files, markers, namespaces, unsafe keys.

    The listing is consumed as a stream; only the resulting entries are held.
    """
    unsafe: list[str] = []
    entries, namespaces = select_data(
        ((obj.key, obj.size, obj) for obj in objects),
        lambda key, size, obj: idx.Entry(key=key, size=size, last_modified=idx.format_timestamp(obj.last_modified)),
        unsafe,
    )
    return Listing(entries=entries, warnings=_unsafe_warnings(unsafe), namespaces=namespaces)


def _unsafe_warnings(unsafe: list[str]) -> list[str]:
    return [f"unsafe key skipped: {escape_key(key)} ({unsafe_reason(key)})" for key in unsafe]


#: The collector's threshold for full collections while a listing streams (CPython's default is 10).
_LISTING_FULL_COLLECTION_THRESHOLD = 1_000_000


@contextmanager
def no_full_collections() -> Iterator[None]:
    """Hold off the cyclic collector's full collections while a listing streams.

    A listing allocates a few containers per object that live about one page, long enough to be
    promoted, so CPython ran a full collection (every object of the process, the SDK's service
    model included) every ~12,000 objects: 8 of them, ~0.5 s of a 100,000-object discovery's 3 s of
    CPU. Nothing a listing allocates forms reference cycles, so nothing is left for them to free;
    the young generations are still collected, and the setting is restored afterwards.
    """
    young, middle, full = gc.get_threshold()
    gc.set_threshold(young, middle, max(full, _LISTING_FULL_COLLECTION_THRESHOLD))
    try:
        yield
    finally:
        gc.set_threshold(young, middle, full)


def _adopt(store: ObjectStore, warnings: list[str]) -> Discovery:
    """Another peer published first: use its index, write nothing."""
    view = indexview.read(store)
    if view.index is None:
        raise StoreError(
            f"{store.url.object_url(INDEX_KEY)}: a conditional write said the index exists, "
            "but it cannot be read back; run again"
        )
    return Discovery(ADOPTED, view.index, view.token, index_written=False, warnings=warnings, view=view)


def publish_index(
    store: ObjectStore, view: indexview.View, index: idx.Index, warnings: list[str], status: str
) -> Discovery:
    """Publish an index built from a listing wherever the view says the index lives, under swamp's
    lock rules (:mod:`syncops.writelock`): create-only when the view read none, else over its version.

    Create-only (discovery): a lost race means another peer published first, and its index is
    adopted. Over a version (rebuild, repair): a lost race means someone changed the index since it
    was read, so nothing more is written and the caller is told to run again rather than overwrite
    their work. A backend that refuses the condition itself gets one unconditional write: the index
    comes from the listing, so racing peers publishing the same listing agree.
    """

    def write(lock: WriteLock) -> Discovery:
        after = indexview.replace_index(store, view, index, warnings, lock=lock)
        return Discovery(status, index, after.token, index_written=True, warnings=warnings, view=after)

    return _published(store, view, warnings, write, lambda adopted: adopted)


def _published(
    store: ObjectStore,
    view: indexview.View,
    warnings: list[str],
    write: Callable[[WriteLock], T],
    adopted: Callable[[Discovery], T],
) -> T:
    """``write`` under the lock rules, and what a lost race means (see :func:`publish_index`)."""
    create_only = view.token is None
    with WriteLock(store, take=view.uses_swamp_layout) as lock:
        try:
            done = write(lock)
        except (PreconditionFailed, NotFound):
            if create_only:
                warnings.extend(lock.warnings)
                return adopted(_adopt(store, warnings))
            raise StoreError(
                f"{store.url.object_url(INDEX_KEY if view.mode is not Mode.SHARD_FIRST else META_KEY)} changed "
                "while it was being rebuilt; nothing more was written, run again"
            ) from None
    warnings.extend(lock.warnings)
    return done


@dataclass
class Outcome:
    """What ``syncops discover`` reports: the status, how many entries the index in force has,
    whether this run wrote it, and the warnings; the entries themselves are not kept."""

    status: str
    entries: int
    index_written: bool = False
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, result: Discovery) -> Outcome:
        return cls(result.status, len(result.index), result.index_written, result.warnings)


def discover_outcome(store: ObjectStore, *, rebuild: bool = False) -> Outcome:
    """:func:`discover` for a caller that needs only the outcome (``syncops discover``, the post-deploy
    step), in memory that does not grow with the bucket.

    On a datastore without swamp's layout the listing becomes the index as it streams
    (:mod:`syncops.indexfile`: each object one line of a temp file, in the listing's order, which
    is the index's), and that file is published as :func:`discover` would publish the same entries.
    swamp's shard layouts group the entries by partition before anything is written: they take
    :func:`discover`'s path.
    """
    view = indexview.read(store, tolerant=rebuild)
    if not rebuild and view.index is not None:
        return Outcome(FOUND, len(view.index))
    if view.mode is not Mode.MONOLITH or view.uses_swamp_layout:
        return Outcome.of(_discover(store, view, rebuild=rebuild, publish=True))

    unsafe: list[str] = []
    namespaces: set[str] = set()
    writer = IndexWriter()
    try:
        with no_full_collections():
            listed = ((obj.key, obj.size, obj.last_modified) for obj in store.list())
            for key, size, modified in data_items(listed, unsafe, namespaces):
                writer.add(key, size, modified)
    except BaseException:
        writer.close()
        raise
    warnings = _unsafe_warnings(unsafe)
    with writer.finish(idx.now_timestamp(), namespaces) as body:
        if not rebuild and writer.count == 0:
            return Outcome(EMPTY, 0, warnings=warnings)
        status = REBUILT if rebuild else DISCOVERED

        def write(lock: WriteLock) -> Outcome:
            indexview.replace_monolith(store, view, body, warnings, lock=lock)
            return Outcome(status, writer.count, index_written=True, warnings=warnings)

        return _published(store, view, warnings, write, Outcome.of)


def discover(store: ObjectStore, *, rebuild: bool = False, publish: bool = True) -> Discovery:
    """Make the remote index valid (SPEC §3), or with ``rebuild`` replace it from a listing.

    The index is read wherever it lives (:mod:`syncops.indexview`): a shard-first datastore is
    "found" from its shards, whatever is (or is not) in its monolith. ``publish=False`` (status,
    ``--dry-run``) builds the index a discovery would publish and writes nothing: the outcome says
    ``discovered`` with ``index_written`` false.
    """
    return _discover(store, indexview.read(store, tolerant=rebuild), rebuild=rebuild, publish=publish)


def _discover(store: ObjectStore, view: indexview.View, *, rebuild: bool, publish: bool) -> Discovery:
    if not rebuild and view.index is not None:
        return Discovery(FOUND, view.index, view.token, view=view)

    with no_full_collections():
        listing = entries_from_listing(store.list())
    index = idx.Index(entries=listing.entries, last_pulled=idx.now_timestamp())  # no second dict
    if not rebuild and not listing.entries:
        return Discovery(EMPTY, index, None, warnings=listing.warnings, view=view)
    status = REBUILT if rebuild else DISCOVERED
    if not publish:
        return Discovery(status, index, None, index_written=False, warnings=listing.warnings, view=view)
    return publish_index(store, view, index, listing.warnings, status)

"""Self-healing index discovery (SPEC §3 "discover").

A present, valid index is used as it is and nothing is written. An absent one is synthesized from a
streamed listing and published create-only, so racing peers converge on one index: the loser of the
race adopts the winner's. Only a real "not found" counts as absent: every other failure propagates,
because reading a 403 or a 503 as "no data" is exactly the silent-empty-environment bug.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from syncops import index as idx
from syncops.errors import ConditionUnsupported, NotFound, PreconditionFailed, StoreError
from syncops.keys import INDEX_KEY, escape_key, select_data, unsafe_reason
from syncops.stores.base import Blob, ObjectInfo, ObjectStore

FOUND = "found"
DISCOVERED = "discovered"
ADOPTED = "adopted"
EMPTY = "empty"
REBUILT = "rebuilt"


@dataclass
class Discovery:
    """The outcome: the index now in force, its version token, and whether this run wrote it."""

    status: str
    index: idx.Index
    token: str | None
    index_written: bool = False
    warnings: list[str] = field(default_factory=list)


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
    warnings = [f"unsafe key skipped: {escape_key(key)} ({unsafe_reason(key)})" for key in unsafe]
    return Listing(entries=entries, warnings=warnings, namespaces=namespaces)


def read_blob(store: ObjectStore) -> Blob | None:
    """The raw index object and its version token, or None when it does not exist."""
    try:
        return store.get(INDEX_KEY)
    except NotFound:
        return None


def read_index(store: ObjectStore) -> tuple[idx.Index, Blob] | None:
    """The remote index and its raw blob, None when absent; :class:`CorruptIndex` when invalid."""
    blob = read_blob(store)
    if blob is None:
        return None
    return idx.parse(blob.data, where=store.url.object_url(INDEX_KEY)), blob


def _adopt(store: ObjectStore, warnings: list[str]) -> Discovery:
    """Another peer published first: use its index, write nothing."""
    current = read_index(store)
    if current is None:
        raise StoreError(
            f"{store.url.object_url(INDEX_KEY)}: a conditional write said the index exists, "
            "but it cannot be read back; run again"
        )
    index, blob = current
    return Discovery(ADOPTED, index, blob.token, index_written=False, warnings=warnings)


def publish_index(
    store: ObjectStore, index: idx.Index, token: str | None, warnings: list[str], status: str
) -> Discovery:
    """Publish an index built from a listing: create-only when ``token`` is None, else over ``token``.

    Create-only (discovery): a lost race means another peer published first, and its index is
    adopted. Over a version (rebuild, repair): a lost race means someone changed the index since it
    was read, so nothing is written and the caller is told to run again rather than overwrite
    their work. A backend that refuses the condition itself gets one unconditional write: the index
    comes from the listing, so racing peers publishing the same listing agree.
    """
    data = idx.stream(index, with_local=False)  # chunks: a big index is never whole in memory
    try:
        new_token = store.put(INDEX_KEY, data, if_absent=token is None, if_token=token)
    except PreconditionFailed:
        if token is None:
            return _adopt(store, warnings)
        raise StoreError(
            f"{store.url.object_url(INDEX_KEY)} changed while it was being rebuilt; nothing was written, run again"
        ) from None
    except ConditionUnsupported:
        warnings.append("backend does not support conditional writes; index written unconditionally")
        new_token = store.put(INDEX_KEY, data)
    return Discovery(status, index, new_token, index_written=True, warnings=warnings)


def discover(store: ObjectStore, *, rebuild: bool = False, publish: bool = True) -> Discovery:
    """Make the remote index valid (SPEC §3), or with ``rebuild`` replace it from a listing.

    ``publish=False`` (status, ``--dry-run``) builds the index a discovery would publish and writes
    nothing: the outcome says ``discovered`` with ``index_written`` false.
    """
    blob: Blob | None = None
    if rebuild:
        blob = read_blob(store)
    else:
        current = read_index(store)
        if current is not None:
            return Discovery(FOUND, current[0], current[1].token)

    listing = entries_from_listing(store.list())
    index = idx.Index(entries=listing.entries, last_pulled=idx.now_timestamp())  # no second dict
    if not rebuild and not listing.entries:
        return Discovery(EMPTY, index, None, warnings=listing.warnings)
    status = REBUILT if rebuild else DISCOVERED
    if not publish:
        return Discovery(status, index, None, index_written=False, warnings=listing.warnings)
    return publish_index(store, index, blob.token if blob else None, listing.warnings, status)

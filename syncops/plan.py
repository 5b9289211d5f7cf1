"""The three-way planner of SPEC §3: what to do with each key, from base, local and remote. No I/O.

The *base* is the local index: for every key, the remote version last synced and the local file as it
was at that moment. Comparing each side with the base (never the two sides with each other, never
clocks) tells which side changed, so a same-size update is seen, an untouched stale copy never
overwrites newer data, and a change on both sides is a conflict that loses nothing.

Content is compared by sha256 where a side has one. Hashing a local file costs a read, so the planner
says which files it needs hashed (:func:`keys_to_hash`); the caller hashes exactly those and plans
with the digests (:func:`plan`). Both are pure functions of their arguments.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from syncops.index import Entry


@dataclass(frozen=True)
class LocalFile:
    """A local data file as the scan saw it."""

    size: int
    mtime_ns: int

    @property
    def millis(self) -> int:
        return self.mtime_ns // 1_000_000


class Change(str, enum.Enum):
    """How one side differs from the base."""

    ADDED = "added"  # no base: present on this side only, or different from the other side
    MODIFIED = "modified"
    DELETED = "deleted"  # local: the file is gone; remote: the index no longer lists it


class Action(str, enum.Enum):
    NOTHING = "nothing"
    FETCH = "fetch"  # download the remote version
    UPLOAD = "upload"  # upload the local file
    ADOPT = "adopt"  # identical content: record the remote entry in the base, no transfer
    KEEP_LOCAL = "keep-local"  # a local change this direction does not carry: report it
    CONFLICT = "conflict"  # both sides changed: nothing moves (exit 7), unless forced
    FORGET = "forget"  # gone on both sides: drop from the base


@dataclass(frozen=True)
class Decision:
    key: str
    local: Change | None
    remote: Change | None
    hydrate: Action
    push: Action

    def conflict(self) -> dict[str, str]:
        """The ``conflicts`` item of the report: the key and what changed on each side."""
        return {
            "key": self.key,
            "local": (self.local or Change.MODIFIED).value,
            "remote": (self.remote or Change.MODIFIED).value,
        }


@dataclass
class Plan:
    decisions: dict[str, Decision] = field(default_factory=dict)

    def keys(self, direction: str, action: Action) -> list[str]:
        return sorted(k for k, d in self.decisions.items() if getattr(d, direction) is action)


def _same_content(a: str | None, b: str | None) -> bool | None:
    """True/False when both digests are known, None when either is not."""
    return None if a is None or b is None else a == b


def local_change(
    base: Entry | None, local: LocalFile | None, digest: str | None, reference: str | None = None
) -> Change | None:
    """How the local file differs from the base; ``digest`` is its sha256 when it was hashed and
    ``reference`` the digest of the base's content (:func:`reference_sha256`).

    The mtime is compared for equality with ``localMtime`` (never "newer than": clocks skew), and a
    touched file whose content is the base's is not a change.
    """
    if local is None:
        return Change.DELETED if base is not None else None
    if base is None:
        return Change.ADDED
    if local.size != base.size:
        return Change.MODIFIED
    if base.local_millis is not None and local.millis == base.local_millis:
        return None
    same = _same_content(digest, reference)
    if same is not None:
        return None if same else Change.MODIFIED
    # No content identity: a different mtime is a change; no recorded mtime (an index written by a
    # tool that keeps none) leaves size as the only evidence, and the size matched.
    return Change.MODIFIED if base.local_millis is not None else None


def remote_change(base: Entry | None, remote: Entry | None) -> Change | None:
    """How the remote entry differs from the base: sha256 and size when both have a digest, else size
    and ``lastModified``."""
    if remote is None:
        return Change.DELETED if base is not None else None
    if base is None:
        return Change.ADDED
    if remote.size != base.size:
        return Change.MODIFIED
    same = _same_content(remote.content_sha256, base.content_sha256)
    if same is not None:
        return None if same else Change.MODIFIED
    return None if remote.last_modified == base.last_modified else Change.MODIFIED


def reference_sha256(base: Entry | None, remote: Entry | None) -> str | None:
    """The digest of the content the base records: its own, or the remote entry's when the remote is
    still the version the base knew."""
    if base is None:
        return None
    if base.content_sha256 is not None:
        return base.content_sha256
    if remote is not None and remote.content_sha256 is not None and remote_change(base, remote) is None:
        return remote.content_sha256
    return None


def needs_hash(base: Entry | None, local: LocalFile | None, remote: Entry | None) -> bool:
    """Whether :func:`decide` needs the local file's sha256; an untouched file is never read."""
    if local is None:
        return False
    if base is None:  # never synced: identical content is adopted, not a conflict
        return remote is not None and remote.content_sha256 is not None and remote.size == local.size
    touched = base.local_millis is None or local.millis != base.local_millis
    if local.size == base.size and not touched:
        return False
    if local.size == base.size and reference_sha256(base, remote) is not None:
        return True  # touched: the content decides whether it changed
    # Changed: only when the remote changed too can identical content spare a conflict.
    return (
        remote is not None
        and remote.content_sha256 is not None
        and remote.size == local.size
        and remote_change(base, remote) is not None
    )


def decide(
    key: str, base: Entry | None, local: LocalFile | None, remote: Entry | None, digest: str | None = None
) -> Decision:
    """The decision for one key, in both directions (SPEC §3's table)."""
    lc = local_change(base, local, digest, reference_sha256(base, remote))
    rc = remote_change(base, remote)

    if local is not None and remote is not None and (lc is not None or base is None):
        # A local change (or a file never synced) that already equals the remote content: adopt.
        same = _same_content(digest, remote.content_sha256)
        if same is None and base is None and remote.content_sha256 is None and local.size == remote.size:
            same = True  # no base and no digest: same size is all there is to compare (older indexes)
        if same and local.size == remote.size:
            return Decision(key, lc, rc, Action.ADOPT, Action.ADOPT)

    if lc is None and rc is None:
        if local is not None and base is not None and remote is not None and local.millis != base.local_millis:
            return Decision(key, None, None, Action.ADOPT, Action.ADOPT)  # touched, identical: new localMtime
        return Decision(key, None, None, Action.NOTHING, Action.NOTHING)
    if lc is None:  # only the remote side changed
        if rc is Change.DELETED:
            return Decision(key, None, rc, Action.NOTHING, Action.NOTHING)
        return Decision(key, None, rc, Action.FETCH, Action.NOTHING)
    if lc is Change.DELETED:
        if remote is None:
            return Decision(key, lc, rc, Action.FORGET, Action.FORGET)
        return Decision(key, lc, rc, Action.FETCH, Action.NOTHING)  # push never deletes
    # The local file is new or modified.
    if rc is None or rc is Change.DELETED or (base is None and remote is None):
        return Decision(key, lc, rc, Action.KEEP_LOCAL, Action.UPLOAD)
    return Decision(key, lc, rc, Action.CONFLICT, Action.CONFLICT)


def keys_to_hash(base: Mapping[str, Entry], local: Mapping[str, LocalFile], remote: Mapping[str, Entry]) -> list[str]:
    """The local files whose sha256 :func:`plan` needs, sorted."""
    return sorted(k for k, f in local.items() if needs_hash(base.get(k), f, remote.get(k)))


def plan(
    base: Mapping[str, Entry],
    local: Mapping[str, LocalFile],
    remote: Mapping[str, Entry],
    digests: Mapping[str, str] | None = None,
) -> Plan:
    """Decide every key present on any of the three sides."""
    digests = digests or {}
    result = Plan()
    for key in sorted({*base, *local, *remote}):
        result.decisions[key] = decide(key, base.get(key), local.get(key), remote.get(key), digests.get(key))
    return result

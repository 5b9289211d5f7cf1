"""swamp's writer lock (SPEC §2 "swamp's lock"): the lock body, staleness, heartbeat and the bounded
wait, as pure functions. No I/O: the engine reads and writes ``.datastore.lock`` and asks these.

Facts mirrored from swamp's ``s3_lock.ts`` / ``gcs_lock.ts`` (``buildLockInfo``, ``encodeLockInfo``,
``acquire``, ``extend``, ``startHeartbeat``, ``release``) and ``interfaces.ts`` (``LockInfo``):

* the lock is ``<prefix>/.datastore.lock``, created with a create-only put;
* its body is ``JSON.stringify({holder, hostname, pid, acquiredAt, ttlMs, nonce}, null, 2)``, holder
  ``user@host``, ttl 30 s by default, nonce a random UUID per acquisition;
* the holder rewrites the body (same nonce, new ``acquiredAt``) every ``floor(ttlMs / 3)`` ms;
* it is stale when ``now - <the object's last-modified time> > ttlMs``; swamp deletes a stale lock
  and creates its own, waits 1 s between looks and gives up after 60 s;
* release deletes the object only while its nonce is still the holder's.

Where syncops departs (it never deletes what is not its own): an expired lock is taken over by a put
conditional on the expired object's version, and a body that is not a lock does not block and is
left alone (swamp itself can never lock such a datastore: ``{}`` has no ttlMs to expire).
"""

from __future__ import annotations

import enum
import json
import math
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from syncops.errors import BadInput, StoreError
from syncops.index import format_timestamp, parse_timestamp

LOCK_KEY = ".datastore.lock"
#: swamp's ``DEFAULT_TTL_MS``: a lock not refreshed for this long is stale.
DEFAULT_TTL_MS = 30_000
#: swamp's ``DEFAULT_RETRY_INTERVAL_MS``: how long a waiter sleeps between looks.
DEFAULT_RETRY_INTERVAL_MS = 1_000
#: swamp's own ``DEFAULT_MAX_WAIT_MS`` (two ttls); syncops waits a little longer by default.
SWAMP_MAX_WAIT_MS = 60_000
DEFAULT_MAX_WAIT_MS = 3 * DEFAULT_TTL_MS
#: swamp's jittered sleep after a stale-lock steal attempt, in [min, max) ms.
TAKEOVER_BACKOFF_MS = (200, 500)

#: Body fields in the order swamp's ``buildLockInfo`` writes them.
_FIELDS = ("holder", "hostname", "pid", "acquiredAt", "ttlMs", "nonce")


class LockTimeout(StoreError):
    """The lock stayed held by another live writer for the whole bounded wait."""


@dataclass(frozen=True)
class LockInfo:
    """A parsed lock body. Only ``holder`` and ``ttl_ms`` are required to count as a lock."""

    holder: str
    ttl_ms: float
    hostname: str | None = None
    pid: int | None = None
    acquired_at: str | None = None
    nonce: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """``user@host (pid 42, refreshed 2026-…Z)`` for wait and timeout messages."""
        details = [f"pid {self.pid}"] if self.pid is not None else []
        if self.acquired_at:
            details.append(f"refreshed {self.acquired_at}")
        return self.holder + (f" ({', '.join(details)})" if details else "")


@dataclass(frozen=True)
class NotALock:
    """An object at the lock key whose body is not a lock: it does not block, it is reported."""

    reason: str

    def warning(self, where: str = LOCK_KEY) -> str:
        return (
            f"{where} is not a swamp lock ({self.reason}): not waited for, not removed; "
            "swamp cannot take its lock on this datastore until that object is removed"
        )


def identity() -> tuple[str, str, int]:
    """``(user, host, pid)`` of this process, as swamp's ``buildLockInfo`` takes them."""
    user = os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"
    return user, socket.gethostname(), os.getpid()


def new_nonce() -> str:
    """A random per-acquisition nonce, like ``crypto.randomUUID()``."""
    return str(uuid.uuid4())


def build_lock(*, user: str, host: str, pid: int, nonce: str, now: datetime, ttl_ms: int = DEFAULT_TTL_MS) -> LockInfo:
    """The lock body swamp's ``buildLockInfo`` would write for this process at ``now``."""
    if ttl_ms < 3:
        raise BadInput(f"lock ttl of {ttl_ms} ms is too short to heartbeat (every ttl/3)")
    return LockInfo(
        holder=f"{user}@{host}",
        hostname=host,
        pid=pid,
        acquired_at=format_timestamp(now),
        ttl_ms=ttl_ms,
        nonce=nonce,
    )


def refreshed(lock: LockInfo, now: datetime) -> LockInfo:
    """The heartbeat body: the same lock with a new ``acquiredAt`` (swamp's ``extend``)."""
    return LockInfo(
        holder=lock.holder,
        ttl_ms=lock.ttl_ms,
        hostname=lock.hostname,
        pid=lock.pid,
        acquired_at=format_timestamp(now),
        nonce=lock.nonce,
        extra=dict(lock.extra),
    )


def _number(value: float) -> int | float:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def serialize_lock(lock: LockInfo) -> bytes:
    """The body as swamp's ``encodeLockInfo`` writes it: ``JSON.stringify(info, null, 2)``."""
    doc: dict[str, Any] = {"holder": lock.holder}
    if lock.hostname is not None:
        doc["hostname"] = lock.hostname
    if lock.pid is not None:
        doc["pid"] = lock.pid
    if lock.acquired_at is not None:
        doc["acquiredAt"] = lock.acquired_at
    doc["ttlMs"] = _number(lock.ttl_ms)
    if lock.nonce is not None:
        doc["nonce"] = lock.nonce
    for name in sorted(lock.extra):
        doc.setdefault(name, lock.extra[name])
    return json.dumps(doc, indent=2, ensure_ascii=False).encode("utf-8")


def parse_lock(data: bytes | str) -> LockInfo | NotALock:
    """A lock, or :class:`NotALock` for a body that is not JSON or lacks ``holder``/``ttlMs``."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return NotALock("not JSON")
    if not isinstance(raw, dict):
        return NotALock("not a JSON object")
    holder, ttl_ms = raw.get("holder"), raw.get("ttlMs")
    if not isinstance(holder, str):
        return NotALock("no holder")
    if isinstance(ttl_ms, bool) or not isinstance(ttl_ms, (int, float)) or not math.isfinite(ttl_ms):
        return NotALock("no ttlMs")
    pid, acquired_at, nonce, hostname = raw.get("pid"), raw.get("acquiredAt"), raw.get("nonce"), raw.get("hostname")
    return LockInfo(
        holder=holder,
        ttl_ms=ttl_ms,
        hostname=hostname if isinstance(hostname, str) else None,
        pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
        acquired_at=acquired_at if isinstance(acquired_at, str) else None,
        nonce=nonce if isinstance(nonce, str) else None,
        extra={k: v for k, v in raw.items() if k not in _FIELDS},
    )


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def is_expired(lock: LockInfo, now: datetime, last_modified: datetime | None = None) -> bool:
    """Stale as swamp's ``acquire`` decides: older than its ttl, strictly.

    The age is measured from the object's last-modified time (S3 ``LastModified``, GCS ``updated``),
    which is what swamp reads; without it, from ``acquiredAt``, which every heartbeat rewrites with
    the same moment. A lock with neither is never expired here: the bounded wait ends it.
    """
    if last_modified is None:
        if lock.acquired_at is None:
            return False
        try:
            last_modified = parse_timestamp(lock.acquired_at)
        except ValueError:
            return False
    return _utc(now) - _utc(last_modified) > timedelta(milliseconds=lock.ttl_ms)


def heartbeat_interval_ms(ttl_ms: float) -> int:
    """How often a holder rewrites its lock: ``Math.floor(ttlMs / 3)``, swamp's ``startHeartbeat``."""
    return math.floor(ttl_ms / 3)


def may_release(body: bytes | None, nonce: str) -> bool:
    """Release deletes the lock object only while it still carries our nonce (swamp's ``release``)."""
    if body is None:
        return False
    current = parse_lock(body)
    return isinstance(current, LockInfo) and current.nonce == nonce


# -- the bounded wait ------------------------------------------------------------------------------


class LockState(enum.Enum):
    ABSENT = "absent"
    LIVE = "live"  # another writer's unexpired lock
    EXPIRED = "expired"
    NOT_A_LOCK = "not-a-lock"
    OURS = "ours"


@dataclass(frozen=True)
class Observation:
    """What one read of the lock key found."""

    state: LockState
    lock: LockInfo | None = None
    not_a_lock: NotALock | None = None


def observe(
    body: bytes | None, *, now: datetime, last_modified: datetime | None = None, our_nonce: str | None = None
) -> Observation:
    """Classify the lock object's body (None: no object) as the wait policy needs it."""
    if body is None:
        return Observation(LockState.ABSENT)
    parsed = parse_lock(body)
    if isinstance(parsed, NotALock):
        return Observation(LockState.NOT_A_LOCK, not_a_lock=parsed)
    if our_nonce is not None and parsed.nonce == our_nonce:
        return Observation(LockState.OURS, lock=parsed)
    if is_expired(parsed, now, last_modified):
        return Observation(LockState.EXPIRED, lock=parsed)
    return Observation(LockState.LIVE, lock=parsed)


class Action(enum.Enum):
    CREATE = "create"  # no lock: create-only put of our body
    TAKE_OVER = "take-over"  # expired lock: put our body only over the version that was read
    PROCEED = "proceed"  # not a lock (warn), or already ours: write without taking it
    WAIT = "wait"  # another writer's live lock: sleep ``delay_ms``, then read again
    GIVE_UP = "give-up"  # waited the whole bound: fail with ``message`` (raise LockTimeout)


@dataclass(frozen=True)
class Step:
    action: Action
    delay_ms: int = 0
    message: str | None = None


@dataclass(frozen=True)
class WaitPolicy:
    """The bounded wait for another writer's lock.

    Defaults: look again every second (swamp's retry interval) for up to three ttls (90 s), a
    little over swamp's own 60 s, so a holder that crashed is seen expire well within the bound.
    """

    max_wait_ms: int = DEFAULT_MAX_WAIT_MS
    retry_interval_ms: int = DEFAULT_RETRY_INTERVAL_MS

    def next_step(self, seen: Observation, waited_ms: int, where: str = LOCK_KEY) -> Step:
        """What to do after a read of the lock key, ``waited_ms`` into the wait."""
        if seen.state is LockState.ABSENT:
            return Step(Action.CREATE)
        if seen.state is LockState.OURS:
            return Step(Action.PROCEED)
        if seen.state is LockState.NOT_A_LOCK:
            assert seen.not_a_lock is not None
            return Step(Action.PROCEED, message=seen.not_a_lock.warning(where))
        assert seen.lock is not None
        if seen.state is LockState.EXPIRED:
            return Step(Action.TAKE_OVER, message=f"{where}: expired lock of {seen.lock.describe()} taken over")
        if waited_ms >= self.max_wait_ms:
            return Step(
                Action.GIVE_UP,
                message=(
                    f"{where} is held by {seen.lock.describe()}; gave up after {waited_ms / 1000:.0f} s. "
                    f"Run again once that writer is done (a lock left by a crash expires "
                    f"{seen.lock.ttl_ms / 1000:.0f} s after its last heartbeat)"
                ),
            )
        delay = min(self.retry_interval_ms, self.max_wait_ms - waited_ms)
        return Step(Action.WAIT, delay_ms=delay, message=f"waiting for {where}, held by {seen.lock.describe()}")

    @staticmethod
    def after_lost_race_ms(fraction: float) -> int:
        """Sleep after a lost create or take-over race, for ``fraction`` in [0, 1): swamp's jitter."""
        low, high = TAKEOVER_BACKOFF_MS
        return low + math.floor(fraction * (high - low))

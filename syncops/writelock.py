"""swamp's writer lock on the wire (SPEC §2 "swamp's lock"): wait for it, take it, heartbeat it,
release it. The decisions are :mod:`syncops.lock`'s pure functions; this module does their I/O.

Every remote write of syncops (discovery's publish, push, ``--repair``, ``--rebuild``) runs inside
:class:`WriteLock`. It reads ``<prefix>/.datastore.lock`` and

* waits, bounded, for another writer's live lock (a message names the holder; then
  :class:`~syncops.lock.LockTimeout`, exit 4, naming the lock);
* takes the lock itself when the datastore uses swamp's layout (``_index/_meta.json`` present, or a
  lock seen): create-only, or over an expired lock's version (swamp deletes and recreates; syncops
  never deletes what is not its own), heartbeats it every ttl/3 from a background thread and deletes
  it at the end only if the nonce is still ours: the one delete syncops ever makes;
* on a datastore that has neither, writes nothing to the lock key (a monolith stays as it was);
* treats an object at the key whose body is not a lock (``{}``, not JSON) as no lock, with a warning.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from types import TracebackType

from syncops import environment
from syncops import lock as lk
from syncops.errors import ConditionUnsupported, NotFound, PreconditionFailed, StoreError
from syncops.stores.base import Blob, ObjectStore

#: ``SYNCOPS_LOCK_WAIT``: seconds to wait for another writer's lock (default three ttls, 90 s).
WAIT_VARIABLE = "SYNCOPS_LOCK_WAIT"
#: ``SYNCOPS_LOCK_TTL_MS``: the ttl syncops writes into its own lock (default swamp's 30 s).
TTL_VARIABLE = "SYNCOPS_LOCK_TTL_MS"


def wait_policy() -> lk.WaitPolicy:
    seconds = environment.number(WAIT_VARIABLE, lk.DEFAULT_MAX_WAIT_MS / 1000, minimum=0)
    return lk.WaitPolicy(max_wait_ms=int(seconds * 1000))


def ttl_ms() -> int:
    return int(environment.number(TTL_VARIABLE, lk.DEFAULT_TTL_MS, minimum=3))


def _say(text: str) -> None:
    print(f"syncops: {text}", file=sys.stderr, flush=True)


class WriteLock:
    """``with WriteLock(store, take=...) as held:`` around one remote write; ``held.check()`` before
    each index write (a lock lost to an expiry is a failure, never a silent overwrite)."""

    def __init__(
        self,
        store: ObjectStore,
        *,
        take: bool,
        notify: Callable[[str], None] = _say,
        policy: lk.WaitPolicy | None = None,
        ttl: int | None = None,
    ) -> None:
        self.store = store
        self.take = take
        self.notify = notify
        self.policy = policy or wait_policy()
        self.ttl_ms = ttl if ttl is not None else ttl_ms()
        self.where = store.url.object_url(lk.LOCK_KEY)
        self.warnings: list[str] = []
        self.held = False
        self.heartbeats = 0
        self._lock: lk.LockInfo | None = None
        self._token: str | None = None
        self._lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()
        #: Held for the whole of one heartbeat, so :meth:`check` sees the outcome of one in flight.
        self._beating = threading.Lock()

    # -- reading the key -----------------------------------------------------------------------
    def _read(self) -> Blob | None:
        try:
            return self.store.get(lk.LOCK_KEY)
        except NotFound:
            return None

    def acquire(self) -> WriteLock:
        started = time.monotonic()
        told = False
        while True:
            blob = self._read()
            seen = lk.observe(
                blob.data if blob else None,
                now=datetime.now(timezone.utc),
                last_modified=blob.last_modified if blob else None,
            )
            if seen.state in (lk.LockState.LIVE, lk.LockState.EXPIRED):
                self.take = True  # swamp locks this datastore: its writers must wait for ours
            waited = int((time.monotonic() - started) * 1000)
            step = self.policy.next_step(seen, waited, where=self.where)
            if step.action is lk.Action.PROCEED:
                if step.message:
                    empty = " (an empty file: older syncops versions left one on file:// datastores; remove it)"
                    self.warnings.append(step.message + (empty if blob is not None and not blob.data else ""))
                return self
            if step.action is lk.Action.GIVE_UP:
                raise lk.LockTimeout(step.message or f"{self.where} is held")
            if step.action is lk.Action.WAIT:
                if not told and step.message:
                    self.notify(step.message + f" (waiting up to {self.policy.max_wait_ms / 1000:.0f} s)")
                    told = True
                time.sleep(step.delay_ms / 1000)
                continue
            if not self.take:
                return self  # no lock and no swamp layout: a monolith datastore stays untouched
            if step.action is lk.Action.TAKE_OVER and step.message:
                self.warnings.append(step.message)
            if self._create(None if step.action is lk.Action.CREATE else blob):
                return self
            time.sleep(self.policy.after_lost_race_ms(random.random()) / 1000)

    def _create(self, expired: Blob | None) -> bool:
        """Put our lock, create-only or over the expired lock read; False when another writer won."""
        user, host, pid = lk.identity()
        mine = lk.build_lock(
            user=user, host=host, pid=pid, nonce=lk.new_nonce(), now=datetime.now(timezone.utc), ttl_ms=self.ttl_ms
        )
        body = lk.serialize_lock(mine)
        try:
            if expired is None:
                token = self.store.put(lk.LOCK_KEY, body, if_absent=True)
            else:
                token = self.store.put(lk.LOCK_KEY, body, if_token=expired.token)
        except (PreconditionFailed, NotFound):
            return False
        except ConditionUnsupported:
            self.warnings.append(
                f"{self.where}: the backend does not support conditional writes; written without swamp's lock"
            )
            return True
        self._lock, self._token, self.held = mine, token, True
        self._thread = threading.Thread(target=self._heartbeat, name="syncops-lock-heartbeat", daemon=True)
        self._thread.start()
        return True

    # -- holding it ----------------------------------------------------------------------------
    def _heartbeat(self) -> None:
        """Rewrite the lock every ttl/3 over our own last version (a 412 or 404: the lock is lost)."""
        interval = lk.heartbeat_interval_ms(self.ttl_ms) / 1000
        last_ok = time.monotonic()
        while not self._stop.wait(interval):
            with self._beating:
                if self._stop.is_set():
                    return
                lost = self._beat(last_ok)
                if lost is None:
                    last_ok = time.monotonic()
                elif lost:
                    return

    def _beat(self, last_ok: float) -> bool | None:
        """One heartbeat: None when written, False when it failed but the lock is still ours, True when lost."""
        assert self._lock is not None
        self._lock = lk.refreshed(self._lock, datetime.now(timezone.utc))
        try:
            token = self.store.put(lk.LOCK_KEY, lk.serialize_lock(self._lock), if_token=self._token)
        except (PreconditionFailed, NotFound):
            with self._guard:
                self._lost = f"{self.where} was taken by another writer while syncops held it"
            return True
        except StoreError as exc:
            if time.monotonic() - last_ok > self.ttl_ms / 1000:
                with self._guard:
                    self._lost = f"{self.where} could not be refreshed for a whole ttl ({exc})"
                return True
            return False
        with self._guard:
            self._token = token
            self.heartbeats += 1
        return None

    def check(self) -> None:
        """:class:`StoreError` when the lock we held was lost: nothing more may be written.

        Waits for a heartbeat in flight, so a loss its answer reports is never missed."""
        with self._beating, self._guard:
            lost = self._lost
        if lost is not None:
            raise StoreError(f"{lost}; stopped before writing the index, run again")

    def release(self) -> None:
        """Stop the heartbeat and delete the lock, only while it still carries our nonce."""
        if not self.held:
            return
        with self._beating:
            self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.held = False
        assert self._lock is not None and self._lock.nonce is not None
        try:
            blob = self._read()
            if blob is not None and lk.may_release(blob.data, self._lock.nonce):
                self.store.delete(lk.LOCK_KEY, if_token=blob.token)
        except (PreconditionFailed, NotFound):
            pass  # not ours any more, or gone: nothing of ours to remove
        except StoreError as exc:
            self.warnings.append(f"{self.where}: not released ({exc}); it expires {self.ttl_ms / 1000:.0f} s from now")

    def __enter__(self) -> WriteLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()

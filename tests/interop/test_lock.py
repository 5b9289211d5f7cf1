"""swamp's lock (issue 11), against file://, SeaweedFS and fake-gcs-server: every syncops write waits
for a live lock (bounded, a message naming the holder, then exit 4 naming the lock); on a datastore
that uses swamp's layout syncops holds the lock for its write (create-only, heartbeat, release only
while the nonce is ours), so swamp's writers wait for it; an expired lock is taken over; an object
that is not a lock does not block and is reported; a monolith datastore with no lock is left as it is.

Races are lined up at the loopback proxy: a request is held there until the other side has acted.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests import wire
from tests.conftest import BACKENDS, CliResult, Datastore, run_cli
from tests.interop import swamp
from tests.interop.swamp import MODEL_1, MONOLITH, SHARD_FIRST
from tests.proxy import FORWARD, Fault, Proxy

NEW_KEY = "data/command/shell/model-1/result/2/raw"
CLOUD = ("s3", "gcs")


def push(ds: Datastore, cache: Path, env: dict[str, str] | None = None, **extra: str) -> CliResult:
    return run_cli("push", ds.url, str(cache), "--json", env={**(env or ds.env), **extra})


def ready(ds: Datastore, tmp_path: Path, mode: str = SHARD_FIRST) -> Path:
    """A swamp datastore in ``mode``, a bootstrapped cache, and one new file in it to push."""
    swamp.build(ds, mode)
    cache = tmp_path / "cache"
    result = run_cli("bootstrap", ds.url, str(cache), env=ds.env)
    assert result.code == 0, result.stderr
    target = cache / NEW_KEY
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"pushed under the lock")
    return cache


def wait_for(condition: Any, what: str, timeout: float = 20.0) -> None:
    """Wait until the other side has acted (a condition on the bucket or the wire), bounded."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def lock_of(ds: Datastore) -> dict[str, Any] | None:
    return swamp.get_json(ds, swamp.LOCK)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", [MONOLITH, SHARD_FIRST])
def test_a_live_lock_is_waited_for_then_exit_4_naming_it(make_datastore, tmp_path: Path, backend: str, mode: str):
    ds = make_datastore(backend)
    cache = ready(ds, tmp_path, mode)
    held = swamp.hold_lock(ds, holder="alice@laptop")
    before = swamp.index_objects(ds)
    result = push(ds, cache, SYNCOPS_LOCK_WAIT="1")
    assert result.code == 4, result.stderr
    assert ".datastore.lock is held by alice@laptop" in result.json["error"]
    assert "waiting for" in result.stderr and "alice@laptop" in result.stderr
    assert ds.raw.get(ds.full(NEW_KEY)) is None, "uploaded while swamp held the lock"
    assert swamp.index_objects(ds) == before
    assert ds.raw.get(ds.full(swamp.LOCK)) == held, "another writer's lock was touched"


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_expired_lock_is_taken_over_and_released(make_datastore, tmp_path: Path, backend: str):
    ds = make_datastore(backend)
    cache = ready(ds, tmp_path)
    swamp.hold_lock(ds, holder="crashed@host", ttl_ms=1)  # expired by the time syncops starts
    report = push(ds, cache)
    assert report.code == 0, report.stderr
    assert any("expired lock of crashed@host" in w and "taken over" in w for w in report.json["warnings"])
    assert ds.raw.get(ds.full(swamp.LOCK)) is None, "syncops did not release the lock it took"
    assert NEW_KEY in swamp.swamp_pull_whole(ds)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_object_that_is_not_a_lock_does_not_block_and_is_reported(make_datastore, tmp_path: Path, backend: str):
    ds = make_datastore(backend)
    cache = ready(ds, tmp_path)
    ds.raw.put(ds.full(swamp.LOCK), b"{}")
    report = push(ds, cache, SYNCOPS_LOCK_WAIT="0")
    assert report.code == 0, report.stderr
    assert any("is not a swamp lock (no holder)" in w for w in report.json["warnings"])
    assert ds.raw.get(ds.full(swamp.LOCK)) == b"{}", "syncops removed an object it does not own"
    assert NEW_KEY in swamp.swamp_pull_whole(ds)


@pytest.mark.parametrize("backend", CLOUD)
def test_a_monolith_datastore_without_a_lock_gets_no_lock_write(make_datastore, tmp_path: Path, backend: str):
    ds = make_datastore(backend)
    cache = ready(ds, tmp_path, MONOLITH)
    with Proxy(ds.endpoint) as proxy:
        assert push(ds, cache, wire.proxied_env(backend, ds.env, proxy)).code == 0
        assert wire.count(backend, proxy, wire.LOCK_GET) == 1
        assert wire.count(backend, proxy, wire.LOCK_PUT) == wire.count(backend, proxy, wire.LOCK_DELETE) == 0
        assert wire.count(backend, proxy, wire.META_PUT) == wire.count(backend, proxy, wire.SHARD_PUT) == 0


@pytest.mark.parametrize("backend", CLOUD)
def test_a_lock_released_during_the_wait_lets_the_push_through(make_datastore, tmp_path: Path, backend: str):
    """The second look at the lock is held at the proxy until swamp's writer has released it."""
    ds = make_datastore(backend)
    cache = ready(ds, tmp_path)
    swamp.hold_lock(ds, holder="bob@ci")
    with Proxy(ds.endpoint) as proxy:
        second = proxy.add_fault(
            Fault(
                lambda method, path: wire.request_kind(backend, method, path) == wire.LOCK_GET,
                status=FORWARD,
                skip=1,
                times=1,
                before=lambda: ds.raw.delete(ds.full(swamp.LOCK)),
            )
        )
        result = push(ds, cache, wire.proxied_env(backend, ds.env, proxy))
        assert result.code == 0, result.stderr
        assert second.hits == 1
        assert "waiting for" in result.stderr and "bob@ci" in result.stderr
        assert wire.count(backend, proxy, wire.LOCK_DELETE) == 1  # ours, released
    assert ds.raw.get(ds.full(swamp.LOCK)) is None
    assert NEW_KEY in swamp.swamp_pull_model(ds, MODEL_1)


def _commit_write(backend: str, **options: Any) -> Fault:
    """The write of ``_index/_meta.json`` (the commit point), forwarded after ``before`` ran."""
    if backend == "s3":
        return Fault(
            lambda method, path: wire.request_kind("s3", method, path) == wire.META_PUT,
            status=FORWARD,
            times=1,
            **options,
        )
    return Fault(
        wire.is_write("gcs"),
        body=lambda body: wire.request_kind("gcs", "POST", "/upload/storage/v1/b/x/o", body) == wire.META_PUT,
        status=FORWARD,
        times=1,
        **options,
    )


@pytest.mark.parametrize("backend", CLOUD)
def test_swamps_writers_wait_for_syncops_while_it_holds_the_lock(make_datastore, tmp_path: Path, backend: str):
    """With the commit held at the proxy: the lock object is syncops's (holder, nonce, ttl), it is
    heartbeat (``acquiredAt`` moves, ttl 300 ms here), and swamp's create-only acquire gets 412.
    After the push the lock is gone."""
    ds = make_datastore(backend)
    cache = ready(ds, tmp_path)
    seen: dict[str, Any] = {}

    def while_held() -> None:
        first = lock_of(ds)
        seen["first"] = first
        wait_for(lambda: (lock_of(ds) or {}).get("acquiredAt") != first["acquiredAt"], "a heartbeat")
        seen["later"] = lock_of(ds)
        seen["swamp_acquire"] = swamp_acquire(ds)

    with Proxy(ds.endpoint) as proxy:
        proxy.add_fault(_commit_write(backend, before=while_held))
        result = push(ds, cache, wire.proxied_env(backend, ds.env, proxy), SYNCOPS_LOCK_TTL_MS="300")
        assert result.code == 0, result.stderr
        assert wire.count(backend, proxy, wire.LOCK_DELETE) == 1
    first, later = seen["first"], seen["later"]
    assert first["ttlMs"] == 300 and "@" in first["holder"] and first["nonce"] == later["nonce"]
    assert seen["swamp_acquire"] == "lost: held by another writer"
    assert ds.raw.get(ds.full(swamp.LOCK)) is None


def swamp_acquire(ds: Datastore) -> str:
    """swamp's ``acquire``: a create-only PUT of its own lock body."""
    body = swamp.lock_body(holder="swamp@elsewhere")
    try:
        if ds.kind == "s3":
            ds.raw.client.put_object(Bucket=ds.raw.bucket, Key=ds.full(swamp.LOCK), Body=body, IfNoneMatch="*")  # type: ignore[attr-defined]
        else:
            ds.raw.bucket.blob(ds.full(swamp.LOCK)).upload_from_string(body, if_generation_match=0)  # type: ignore[attr-defined]
    except Exception as exc:  # botocore ClientError 412 / google PreconditionFailed
        text = str(exc)
        assert "412" in text or "PreconditionFailed" in text, text
        return "lost: held by another writer"
    return "acquired"


@pytest.mark.parametrize("backend", CLOUD)
def test_a_lock_lost_while_held_stops_the_write_and_is_not_released(make_datastore, tmp_path: Path, backend: str):
    """The first shard write is held until another writer has replaced syncops's lock and syncops's
    heartbeat has failed on it (412); then the commit is refused (exit 4), and the other writer's
    lock is left in place: release deletes only a lock that still carries our nonce."""
    ds = make_datastore(backend)
    cache = ready(ds, tmp_path)
    theirs = swamp.lock_body(holder="thief@elsewhere")

    with Proxy(ds.endpoint) as proxy:

        def steal() -> None:
            ds.raw.put(ds.full(swamp.LOCK), theirs)
            wait_for(lambda: wire.count(backend, proxy, wire.LOCK_PUT, 412) >= 1, "the failed heartbeat")

        if backend == "s3":
            fault = Fault(
                lambda method, path: wire.request_kind("s3", method, path) == wire.SHARD_PUT,
                status=FORWARD,
                times=1,
                before=steal,
            )
        else:
            fault = Fault(
                wire.is_write("gcs"),
                body=lambda body: wire.request_kind("gcs", "POST", "/upload/storage/v1/b/x/o", body) == wire.SHARD_PUT,
                status=FORWARD,
                times=1,
                before=steal,
            )
        proxy.add_fault(fault)
        before_meta = swamp.meta(ds)
        result = push(ds, cache, wire.proxied_env(backend, ds.env, proxy), SYNCOPS_LOCK_TTL_MS="300")
        assert result.code == 4, result.stderr
        assert "taken by another writer" in result.json["error"]
        assert wire.count(backend, proxy, wire.LOCK_DELETE) == 0
    assert swamp.meta(ds) == before_meta, "committed without the lock"
    assert ds.raw.get(ds.full(swamp.LOCK)) == theirs


def test_the_lock_body_is_swamps(make_datastore, tmp_path: Path):
    """What swamp's readLock needs: holder, hostname, pid, acquiredAt, ttlMs (30 s by default), nonce."""
    ds = make_datastore("file")
    cache = ready(ds, tmp_path)
    captured: list[bytes] = []
    from syncops import lock as lk
    from syncops.stores import open_store
    from syncops.writelock import WriteLock

    store = open_store(ds.url)
    with WriteLock(store, take=True) as held:
        captured.append(ds.raw.get(swamp.LOCK) or b"")
        assert held.held
    body = json.loads(captured[0])
    assert list(body) == ["holder", "hostname", "pid", "acquiredAt", "ttlMs", "nonce"]
    assert body["ttlMs"] == lk.DEFAULT_TTL_MS
    assert ds.raw.get(swamp.LOCK) is None
    assert cache.is_dir()

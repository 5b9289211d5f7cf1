"""swamp's writer lock (SPEC §2 "swamp's lock"): its body, staleness, heartbeat and the bounded wait.
Pure: no server.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncops import lock as lk
from syncops.errors import BadInput, StoreError
from syncops.keys import KeyKind, classify

NOW = datetime(2026, 5, 4, 12, 0, 0, 123000, tzinfo=timezone.utc)
NONCE = "6f1c2d1e-8a51-4c1b-9a0e-0b5d7a2c9e11"


def ours(**kw: object) -> lk.LockInfo:
    args: dict = {"user": "ci", "host": "runner-1", "pid": 4242, "nonce": NONCE, "now": NOW} | kw
    return lk.build_lock(**args)


def test_the_lock_is_an_internal_file_at_the_datastore_root():
    assert lk.LOCK_KEY == ".datastore.lock"
    assert classify(lk.LOCK_KEY) is KeyKind.INTERNAL


def test_body_is_written_as_swamp_encodes_it():
    # encodeLockInfo: JSON.stringify({holder, hostname, pid, acquiredAt, ttlMs, nonce}, null, 2)
    assert lk.serialize_lock(ours()) == (
        b"{\n"
        b'  "holder": "ci@runner-1",\n'
        b'  "hostname": "runner-1",\n'
        b'  "pid": 4242,\n'
        b'  "acquiredAt": "2026-05-04T12:00:00.123Z",\n'
        b'  "ttlMs": 30000,\n'
        b'  "nonce": "6f1c2d1e-8a51-4c1b-9a0e-0b5d7a2c9e11"\n'
        b"}"
    )


def test_identity_and_nonce_come_from_this_process():
    user, host, pid = lk.identity()
    assert user and host and pid > 0
    assert lk.new_nonce() != lk.new_nonce() and len(lk.new_nonce()) == 36


def test_a_ttl_too_short_to_heartbeat_is_refused():
    with pytest.raises(BadInput):
        ours(ttl_ms=2)


def test_swamp_written_body_parses():
    body = json.dumps(
        {
            "holder": "alice@laptop",
            "hostname": "laptop",
            "pid": 77,
            "acquiredAt": "2026-05-04T11:59:50.000Z",
            "ttlMs": 30000,
            "nonce": "n-1",
        },
        indent=2,
    )
    parsed = lk.parse_lock(body)
    assert parsed == lk.LockInfo(
        holder="alice@laptop",
        ttl_ms=30000,
        hostname="laptop",
        pid=77,
        acquired_at="2026-05-04T11:59:50.000Z",
        nonce="n-1",
    )
    assert parsed.describe() == "alice@laptop (pid 77, refreshed 2026-05-04T11:59:50.000Z)"


def test_minimal_lock_needs_only_holder_and_ttl_and_keeps_unknown_fields():
    parsed = lk.parse_lock(b'{"holder": "h", "ttlMs": 1000, "owner": {"team": "x"}, "pid": "not a number"}')
    assert isinstance(parsed, lk.LockInfo)
    assert (parsed.pid, parsed.nonce, parsed.extra) == (None, None, {"owner": {"team": "x"}})
    assert parsed.describe() == "h"
    assert json.loads(lk.serialize_lock(parsed)) == {"holder": "h", "ttlMs": 1000, "owner": {"team": "x"}}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "not JSON"),
        (b"locked by bob", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'"x"', "not a JSON object"),
        (b"{}", "no holder"),  # left by another tool: SPEC's example
        (b'{"ttlMs": 30000}', "no holder"),
        (b'{"holder": 5, "ttlMs": 30000}', "no holder"),
        (b'{"holder": "h"}', "no ttlMs"),
        (b'{"holder": "h", "ttlMs": "30000"}', "no ttlMs"),
        (b'{"holder": "h", "ttlMs": true}', "no ttlMs"),
        (b'{"holder": "h", "ttlMs": null}', "no ttlMs"),
    ],
)
def test_a_body_that_is_not_a_lock_is_reported_not_raised(body, reason):
    parsed = lk.parse_lock(body)
    assert parsed == lk.NotALock(reason)
    assert "not a swamp lock" in parsed.warning() and reason in parsed.warning()


LOCKS = st.builds(
    lambda user, host, pid, nonce, ms, ttl: lk.build_lock(
        user=user, host=host, pid=pid, nonce=nonce, now=NOW + timedelta(milliseconds=ms), ttl_ms=ttl
    ),
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8),
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8),
    st.integers(min_value=1, max_value=2**22),
    st.uuids().map(str),
    st.integers(min_value=0, max_value=10**9),
    st.integers(min_value=3, max_value=10**7),
)


@given(LOCKS)
def test_lock_body_round_trips(lock):
    assert lk.parse_lock(lk.serialize_lock(lock)) == lock


# -- staleness -------------------------------------------------------------------------------------


def test_stale_only_when_older_than_its_ttl_strictly():
    lock = ours(ttl_ms=30_000)
    written = NOW
    assert not lk.is_expired(lock, written + timedelta(seconds=30), last_modified=written)
    assert lk.is_expired(lock, written + timedelta(seconds=30, milliseconds=1), last_modified=written)


def test_age_is_measured_from_the_objects_last_modified_time():
    # swamp reads S3 LastModified / GCS updated, not the body: a body written long ago but re-put
    # just now by a heartbeat is live
    lock = lk.parse_lock(b'{"holder": "h", "ttlMs": 30000, "acquiredAt": "2020-01-01T00:00:00.000Z"}')
    assert isinstance(lock, lk.LockInfo)
    assert not lk.is_expired(lock, NOW, last_modified=NOW - timedelta(seconds=5))
    assert lk.is_expired(lock, NOW)  # without it: from acquiredAt


def test_without_any_timestamp_a_lock_never_expires_here():
    lock = lk.parse_lock(b'{"holder": "h", "ttlMs": 1, "acquiredAt": "yesterday"}')
    assert isinstance(lock, lk.LockInfo)
    assert not lk.is_expired(lock, NOW)
    assert not lk.is_expired(lk.LockInfo(holder="h", ttl_ms=1), NOW)


def test_naive_times_are_utc():
    lock = ours()
    assert lk.is_expired(lock, datetime(2026, 5, 4, 13, 0), last_modified=datetime(2026, 5, 4, 12, 0))


@given(st.integers(min_value=0, max_value=10**7), st.integers(min_value=-(10**7), max_value=10**8))
def test_expired_exactly_when_age_exceeds_ttl(ttl, age_ms):
    lock = lk.LockInfo(holder="h", ttl_ms=ttl)
    written = NOW - timedelta(milliseconds=age_ms)
    assert lk.is_expired(lock, NOW, last_modified=written) == (age_ms > ttl)


# -- heartbeat and release -------------------------------------------------------------------------


@pytest.mark.parametrize(("ttl", "interval"), [(30_000, 10_000), (10_000, 3_333), (3, 1), (1000.5, 333)])
def test_heartbeat_every_third_of_the_ttl(ttl, interval):
    assert lk.heartbeat_interval_ms(ttl) == interval


def test_heartbeat_rewrites_acquired_at_and_keeps_the_nonce():
    later = NOW + timedelta(seconds=10)
    beat = lk.refreshed(ours(), later)
    assert beat.acquired_at == "2026-05-04T12:00:10.123Z"
    assert (beat.nonce, beat.holder, beat.pid, beat.ttl_ms) == (NONCE, "ci@runner-1", 4242, 30_000)


def test_release_only_while_the_nonce_is_still_ours():
    assert lk.may_release(lk.serialize_lock(ours()), NONCE)
    assert not lk.may_release(lk.serialize_lock(ours(nonce="someone-else")), NONCE)
    assert not lk.may_release(None, NONCE)
    assert not lk.may_release(b"{}", NONCE)
    assert not lk.may_release(b'{"holder": "h", "ttlMs": 1}', NONCE)


# -- the bounded wait ------------------------------------------------------------------------------


def live_body(holder: str = "alice@laptop") -> bytes:
    return json.dumps({"holder": holder, "pid": 9, "ttlMs": 30000, "nonce": "theirs"}).encode()


def test_observe_sorts_what_is_at_the_lock_key():
    fresh, old = NOW - timedelta(seconds=1), NOW - timedelta(seconds=31)
    assert lk.observe(None, now=NOW).state is lk.LockState.ABSENT
    assert lk.observe(live_body(), now=NOW, last_modified=fresh).state is lk.LockState.LIVE
    assert lk.observe(live_body(), now=NOW, last_modified=old).state is lk.LockState.EXPIRED
    assert lk.observe(b"{}", now=NOW).state is lk.LockState.NOT_A_LOCK
    mine = lk.serialize_lock(ours())
    assert lk.observe(mine, now=NOW, last_modified=fresh, our_nonce=NONCE).state is lk.LockState.OURS
    assert lk.observe(mine, now=NOW, last_modified=fresh, our_nonce="other").state is lk.LockState.LIVE


def test_no_lock_is_created_with_a_create_only_put():
    assert lk.WaitPolicy().next_step(lk.observe(None, now=NOW), 0) == lk.Step(lk.Action.CREATE)


def test_an_expired_lock_does_not_block_and_is_taken_over():
    seen = lk.observe(live_body(), now=NOW, last_modified=NOW - timedelta(minutes=5))
    step = lk.WaitPolicy().next_step(seen, 0)
    assert step.action is lk.Action.TAKE_OVER and "alice@laptop" in (step.message or "")


def test_a_body_that_is_not_a_lock_does_not_block_and_is_a_warning():
    step = lk.WaitPolicy().next_step(lk.observe(b"{}", now=NOW), 0, where="s3://b/p/.datastore.lock")
    assert step.action is lk.Action.PROCEED
    assert step.message is not None and step.message.startswith(
        "s3://b/p/.datastore.lock is not a swamp lock (no holder)"
    )


def test_a_live_lock_is_waited_for_with_a_message_then_given_up_on():
    policy = lk.WaitPolicy()
    seen = lk.observe(live_body(), now=NOW, last_modified=NOW)
    first = policy.next_step(seen, 0)
    assert first == lk.Step(lk.Action.WAIT, 1_000, "waiting for .datastore.lock, held by alice@laptop (pid 9)")
    near_end = policy.next_step(seen, lk.DEFAULT_MAX_WAIT_MS - 300)
    assert (near_end.action, near_end.delay_ms) == (lk.Action.WAIT, 300)  # never sleeps past the bound
    last = policy.next_step(seen, lk.DEFAULT_MAX_WAIT_MS)
    assert last.action is lk.Action.GIVE_UP
    assert last.message is not None and "held by alice@laptop (pid 9)" in last.message and "90 s" in last.message


def test_our_own_lock_needs_no_acquiring():
    seen = lk.observe(lk.serialize_lock(ours()), now=NOW, last_modified=NOW, our_nonce=NONCE)
    assert lk.WaitPolicy().next_step(seen, 10**9) == lk.Step(lk.Action.PROCEED)


def test_default_wait_is_a_few_ttls_and_longer_than_swamps():
    policy = lk.WaitPolicy()
    assert policy.max_wait_ms == 3 * lk.DEFAULT_TTL_MS > lk.SWAMP_MAX_WAIT_MS
    assert policy.retry_interval_ms == lk.DEFAULT_RETRY_INTERVAL_MS == 1_000


@given(st.floats(min_value=0, max_value=1, exclude_max=True))
def test_backoff_after_a_lost_race_is_swamps_jitter(fraction):
    assert 200 <= lk.WaitPolicy.after_lost_race_ms(fraction) < 500


@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=1_000, max_value=10**5))
def test_a_wait_always_ends(max_wait, retry):
    # following the policy against a lock that stays live gives up after at most max_wait
    policy = lk.WaitPolicy(max_wait_ms=max_wait, retry_interval_ms=retry)
    seen = lk.observe(live_body(), now=NOW, last_modified=NOW)
    waited, steps = 0, 0
    while (step := policy.next_step(seen, waited)).action is lk.Action.WAIT:
        assert step.delay_ms > 0
        waited += step.delay_ms
        steps += 1
    assert step.action is lk.Action.GIVE_UP and waited == max_wait and steps <= max_wait // retry + 1


def test_lock_timeout_is_a_remote_failure():
    assert issubclass(lk.LockTimeout, StoreError) and lk.LockTimeout("x").exit_code == 4

"""The three-way planner (syncops.plan), pure: SPEC §3's table row by row, then its promises as properties
over every combination of base, local and remote that hypothesis can make up."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncops import index as idx
from syncops.plan import Action, Change, LocalFile, decide, keys_to_hash, needs_hash, plan

T0 = "2026-05-04T11:59:00.000Z"
T1 = "2026-05-04T12:30:00.000Z"
MS0 = idx.millis_of(T0)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry(data: bytes, modified: str = T0, *, local_ms: int | None = None, digest: bool = True) -> idx.Entry:
    return idx.Entry(
        "k",
        len(data),
        modified,
        local_mtime=None if local_ms is None else idx.timestamp_from_millis(local_ms),
        sha256=sha(data) if digest else None,
    )


def file(data: bytes, ms: int = MS0) -> LocalFile:
    return LocalFile(size=len(data), mtime_ns=ms * 1_000_000)


BASE = entry(b"version-1", local_ms=MS0)
SAME = file(b"version-1")
TOUCHED = file(b"version-1", MS0 + 5_000)
EDITED_SAME_SIZE = file(b"version-X", MS0 + 5_000)
REMOTE_SAME = entry(b"version-1")
REMOTE_NEW_SAME_SIZE = entry(b"version-2", T1)


@pytest.mark.parametrize(
    ("name", "local", "remote", "digest", "hydrate", "push"),
    [
        ("unchanged / unchanged", SAME, REMOTE_SAME, None, Action.NOTHING, Action.NOTHING),
        ("touched but identical / unchanged", TOUCHED, REMOTE_SAME, sha(b"version-1"), Action.ADOPT, Action.ADOPT),
        ("unchanged / changed (same size)", SAME, REMOTE_NEW_SAME_SIZE, None, Action.FETCH, Action.NOTHING),
        ("changed (same size) / unchanged", EDITED_SAME_SIZE, REMOTE_SAME, sha(b"version-X"), Action.KEEP_LOCAL, Action.UPLOAD),
        ("changed / changed", EDITED_SAME_SIZE, REMOTE_NEW_SAME_SIZE, sha(b"version-X"), Action.CONFLICT, Action.CONFLICT),
        ("changed / changed to the same bytes", EDITED_SAME_SIZE, entry(b"version-X", T1), sha(b"version-X"), Action.ADOPT, Action.ADOPT),
        ("missing / present", None, REMOTE_SAME, None, Action.FETCH, Action.NOTHING),
        ("missing / changed", None, REMOTE_NEW_SAME_SIZE, None, Action.FETCH, Action.NOTHING),
        ("missing / removed", None, None, None, Action.FORGET, Action.FORGET),
        ("changed / removed from the index", EDITED_SAME_SIZE, None, sha(b"version-X"), Action.KEEP_LOCAL, Action.UPLOAD),
        ("unchanged / removed from the index", SAME, None, None, Action.NOTHING, Action.NOTHING),
    ],
)  # fmt: skip
def test_the_table_of_spec_section_3(name, local, remote, digest, hydrate, push):
    decision = decide("k", BASE, local, remote, digest)
    assert (decision.hydrate, decision.push) == (hydrate, push), name


def test_a_file_with_no_base_is_compared_by_size_and_sha256():
    remote = entry(b"version-1")
    assert decide("k", None, file(b"version-1"), remote, sha(b"version-1")).hydrate is Action.ADOPT
    assert decide("k", None, file(b"version-X"), remote, sha(b"version-X")).hydrate is Action.CONFLICT
    assert decide("k", None, file(b"longer file"), remote).push is Action.CONFLICT
    # An index without sha256 (older writers): same size is all there is, and it is adopted.
    assert decide("k", None, file(b"version-1"), entry(b"version-1", digest=False)).push is Action.ADOPT
    assert decide("k", None, file(b"new"), None).push is Action.UPLOAD
    assert decide("k", None, None, remote).hydrate is Action.FETCH


def test_a_clock_ahead_never_hides_a_same_size_edit():
    """The remote's lastModified far in the future (a peer with a fast clock) plays no part."""
    base = entry(b"version-1", "2099-01-01T00:00:00.000Z", local_ms=idx.millis_of("2099-01-01T00:00:00.000Z"))
    remote = entry(b"version-1", "2099-01-01T00:00:00.000Z")
    edited = file(b"version-X", MS0)  # the local clock is years behind
    assert decide("k", base, edited, remote, sha(b"version-X")).push is Action.UPLOAD


def test_an_untouched_file_is_never_read():
    assert not needs_hash(BASE, SAME, REMOTE_NEW_SAME_SIZE)
    assert not needs_hash(BASE, SAME, REMOTE_SAME)
    assert needs_hash(BASE, TOUCHED, REMOTE_SAME)
    assert keys_to_hash({"k": BASE}, {"k": SAME}, {"k": REMOTE_SAME}) == []


# -- properties ----------------------------------------------------------------------------------

contents = st.sampled_from([b"", b"aaaa", b"bbbb", b"longer content"])
moments = st.sampled_from([MS0, MS0 + 1, MS0 + 86_400_000])


@st.composite
def sides(draw: Any) -> tuple[Any, ...]:
    """(base, local, remote, local bytes, remote bytes, base bytes) for one key."""
    base_data = draw(contents)
    has_base = draw(st.booleans())
    base = None
    if has_base:
        base = idx.Entry(
            "k",
            len(base_data),
            draw(st.sampled_from([T0, T1])),
            local_mtime=draw(st.none() | moments.map(idx.timestamp_from_millis)),
            sha256=sha(base_data) if draw(st.booleans()) else None,
        )
    local_data = draw(st.none() | contents)
    local = None if local_data is None else LocalFile(len(local_data), draw(moments) * 1_000_000)
    remote_data = draw(st.none() | contents)
    remote = None
    if remote_data is not None:
        remote = idx.Entry(
            "k",
            len(remote_data),
            draw(st.sampled_from([T0, T1])),
            sha256=sha(remote_data) if draw(st.booleans()) else None,
        )
    return base, local, remote, local_data, remote_data, base_data if has_base else None


def _decided(base: Any, local: Any, remote: Any, local_data: Any) -> Any:
    digest = sha(local_data) if local_data is not None and needs_hash(base, local, remote) else None
    return decide("k", base, local, remote, digest)


@settings(max_examples=1000)
@given(sides())
def test_nothing_is_ever_lost_or_overwritten_blindly(state: tuple[Any, ...]):
    base, local, remote, local_data, remote_data, _ = state
    decision = _decided(base, local, remote, local_data)
    # hydrate replaces a local file only when the local side did not change (or the file is missing).
    if decision.hydrate is Action.FETCH:
        assert remote is not None
        assert decision.local in (None, Change.DELETED)
    # push uploads only a local change over a remote the base still describes (or a new key).
    if decision.push is Action.UPLOAD:
        assert local is not None
        assert decision.remote in (None, Change.DELETED) or (base is None and remote is None)
    # push never deletes and never uploads a missing file; hydrate never "uploads".
    assert decision.hydrate is not Action.UPLOAD and decision.push is not Action.FETCH
    if local is None:
        assert decision.push in (Action.NOTHING, Action.FORGET)
    # adoption records identical content only: same size, and equal digests wherever both are known.
    if decision.hydrate is Action.ADOPT:
        assert local is not None and remote is not None and local.size == remote.size
        if remote.content_sha256 is not None and local_data is not None:
            assert sha(local_data) == remote.content_sha256


@settings(max_examples=1000)
@given(sides())
def test_a_conflict_is_exactly_a_change_on_both_sides(state: tuple[Any, ...]):
    base, local, remote, local_data, remote_data, base_data = state
    decision = _decided(base, local, remote, local_data)
    if decision.hydrate is Action.CONFLICT:
        assert decision.push is Action.CONFLICT
        assert local is not None and remote is not None
        assert decision.local is not None and decision.remote not in (None, Change.DELETED)
    # Known facts in, the right verdict out: when every digest is known and clocks agree with content.
    if base is not None and base.content_sha256 and remote is not None and remote.content_sha256 and local:
        # (a file rewritten within the same millisecond at the same size is invisible, as in git)
        if (
            base.local_millis is not None
            and local_data is not None
            and (local.millis != base.local_millis or local_data == base_data)
        ):
            local_changed = local_data != base_data
            remote_changed = remote_data != base_data
            if local_changed and remote_changed and local_data != remote_data:
                assert decision.hydrate is Action.CONFLICT


@given(st.dictionaries(st.sampled_from("abcdef"), sides(), max_size=6))
def test_the_plan_is_the_decision_of_every_key_on_any_side(states: dict[str, tuple[Any, ...]]):
    base = {
        k: idx.Entry(k, s[0].size, s[0].last_modified, s[0].local_mtime, s[0].sha256) for k, s in states.items() if s[0]
    }
    local = {k: s[1] for k, s in states.items() if s[1]}
    remote = {k: idx.Entry(k, s[2].size, s[2].last_modified, sha256=s[2].sha256) for k, s in states.items() if s[2]}
    digests = {k: sha(states[k][3]) for k in keys_to_hash(base, local, remote)}
    made = plan(base, local, remote, digests)
    assert sorted(made.decisions) == sorted({*base, *local, *remote})
    for key, decision in made.decisions.items():
        assert decision == decide(key, base.get(key), local.get(key), remote.get(key), digests.get(key))

"""Property-based tests of the pure core (SPEC §2): the index model, the internal-file filter and
key safety hold for every input hypothesis can think of, not only the examples we wrote down.
"""

from __future__ import annotations

import os
import tempfile
import unicodedata
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncops import index as idx
from syncops.discover import entries_from_listing
from syncops.errors import BadInput
from syncops.keys import (
    ANY_DEPTH_INTERNAL_FILES,
    ROOT_INTERNAL_DIRS,
    ROOT_INTERNAL_FILES,
    KeyKind,
    classify,
    escape_key,
    in_namespace,
    is_internal,
    namespace_root,
    unsafe_reason,
)
from syncops.localfs import safe_join
from syncops.stores.base import ObjectInfo

# -- strategies ------------------------------------------------------------------------------------

#: Path segments that exercise every rule, mixed with arbitrary text.
SPECIAL_SEGMENTS = [
    "a", "b", "data", "..", ".", "", "_index", "_control", ".lock", ".namespace.json", "_catalog.db",
    "_catalog.db-wal", "_catalog.db-x", ".datastore-index.json", ".push-queue.json", "x\\y", "n\x00ul",
    "esc\x1b[0m", "tab\t", "del\x7f", "csi\x9b2J", "nel\x85", "é", " sp ", "...",
]  # fmt: skip
segments = st.one_of(st.sampled_from(SPECIAL_SEGMENTS), st.text(max_size=6))
keys = st.builds(
    lambda lead, parts, trail: lead + "/".join(parts) + trail,
    st.sampled_from(["", "", "", "/"]),
    st.lists(segments, min_size=1, max_size=4),
    st.sampled_from(["", "", "", "/"]),
)
safe_segments = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"), min_size=1, max_size=8
).filter(lambda s: s not in (".", ".."))
safe_keys = st.lists(safe_segments, min_size=1, max_size=4).map("/".join)

moments = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(timezone.utc)
).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))
timestamps = moments.map(idx.format_timestamp)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def entries(draw: Any, key: Any = keys) -> idx.Entry:
    name = draw(key)
    extra_names = st.text(max_size=8).filter(
        lambda n: n not in ("key", "size", "lastModified", "localMtime", "sha256", "remoteVersion")
    )
    return idx.Entry(
        key=name,
        size=draw(st.integers(min_value=0, max_value=2**53)),
        last_modified=draw(timestamps),
        local_mtime=draw(st.none() | timestamps),
        sha256=draw(st.none() | st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)),
        extra=draw(st.dictionaries(extra_names, json_values, max_size=2)),
        version=draw(st.none() | st.text(max_size=12)),
    )


@st.composite
def indexes(draw: Any) -> idx.Index:
    found = draw(st.lists(entries(), max_size=8, unique_by=lambda e: e.key))
    top = st.text(max_size=8).filter(lambda n: n not in ("version", "lastPulled", "entries"))
    return idx.Index(
        entries={e.key: e for e in found},
        last_pulled=draw(st.none() | timestamps),
        extra=draw(st.dictionaries(top, json_values, max_size=2)),
    )


def as_fields(index: idx.Index, *, with_local: bool = True) -> dict[str, Any]:
    return {k: e.to_json(with_local=with_local) for k, e in index.entries.items()}


# -- serialization ---------------------------------------------------------------------------------


@given(indexes())
def test_serialize_then_parse_gives_back_every_field(index: idx.Index):
    parsed = idx.parse(idx.serialize(index))
    assert as_fields(parsed) == as_fields(index)
    assert parsed.last_pulled == index.last_pulled
    assert parsed.extra == index.extra
    assert idx.serialize(parsed) == idx.serialize(index), "rewriting keeps the exact bytes"


@given(indexes())
def test_the_remote_form_drops_only_the_base_version_token(index: idx.Index):
    parsed = idx.parse(idx.serialize(index, with_local=False))
    assert all(e.version is None for e in parsed.entries.values())
    assert as_fields(parsed) == as_fields(index, with_local=False)
    assert {k: e.local_mtime for k, e in parsed.entries.items()} == {k: e.local_mtime for k, e in index.entries.items()}


@given(indexes(), st.randoms())
def test_serialization_is_deterministic_whatever_the_insertion_order(index: idx.Index, rng: Any):
    shuffled = list(index.entries.items())
    rng.shuffle(shuffled)
    again = idx.Index(entries=dict(shuffled), last_pulled=index.last_pulled, extra=dict(index.extra))
    assert idx.serialize(again) == idx.serialize(index)
    names = list(idx.parse(idx.serialize(index)).entries)
    assert names == sorted(names)


@given(moments)
def test_timestamps_round_trip_in_the_swamp_format(moment: datetime):
    text = idx.format_timestamp(moment)
    assert len(text) == 24 and text.endswith("Z") and text[19] == "."
    assert idx.parse_timestamp(text) == moment
    assert idx.format_timestamp(idx.parse_timestamp(text)) == text


# -- merge -----------------------------------------------------------------------------------------


@given(indexes(), st.lists(entries(st.one_of(keys, st.sampled_from(SPECIAL_SEGMENTS))), max_size=6))
def test_merge_never_drops_an_entry_and_takes_every_change(base: idx.Index, changed: list[idx.Entry]):
    changes = {e.key: e for e in changed}
    merged = idx.merge(base, changes)
    assert set(merged.entries) == set(base.entries) | set(changes)
    for key, entry in base.entries.items():
        if key not in changes:
            assert merged.entries[key] == entry
    for key, entry in changes.items():
        got = merged.entries[key]
        assert (got.size, got.last_modified, got.local_mtime, got.sha256) == (
            entry.size,
            entry.last_modified,
            entry.local_mtime,
            entry.sha256,
        )
        previous = base.entries.get(key)
        expected_extra = {**(previous.extra if previous else {}), **entry.extra}
        assert got.extra == expected_extra, "unknown fields of a rewritten entry are kept"
    assert merged.extra == base.extra and merged.last_pulled == base.last_pulled
    # Merging is idempotent: pushing the same changes again changes nothing.
    assert idx.serialize(idx.merge(merged, changes)) == idx.serialize(merged)


# -- key safety ------------------------------------------------------------------------------------


@given(keys)
def test_a_safe_key_always_stays_under_its_root(key: str):
    reason = unsafe_reason(key)
    if reason is not None:
        assert classify(key, 1) is KeyKind.UNSAFE
        return
    parts = key.split("/")
    assert all(p not in ("", ".", "..") for p in parts)
    assert "\\" not in key and not any(unicodedata.category(c) == "Cc" for c in key)
    root = "/srv/cache"
    assert os.path.normpath(os.path.join(root, *parts)).startswith(root + os.sep)


@given(st.text(alphabet="a_.-/~9", max_size=12))
def test_plain_ascii_keys_are_judged_by_their_segments(key: str):
    """Keys of letters, digits, dots and ``/`` (the fast path of the safety check) are unsafe exactly
    when a segment is empty, ``.`` or ``..``."""
    bad_segment = any(part in ("", ".", "..") for part in key.split("/"))
    assert (unsafe_reason(key) is not None) == bad_segment


_REAL_ROOT = Path(tempfile.mkdtemp(prefix="syncops-safe-join-"))


@given(keys)
@settings(max_examples=200)
def test_safe_join_refuses_or_stays_inside(key: str):
    root = _REAL_ROOT  # a real directory, so realpath resolves through the filesystem
    try:
        path = safe_join(root, key)
    except BadInput as exc:
        assert unsafe_reason(key) is not None or "symlink" in str(exc)
        assert not any(unicodedata.category(c) == "Cc" for c in str(exc)), "the message shows the key escaped"
        return
    assert unsafe_reason(key) is None
    assert root in path.parents


@given(keys, keys)
def test_escaped_keys_are_printable_and_distinct(a: str, b: str):
    shown = escape_key(a)
    assert not any(unicodedata.category(c) == "Cc" for c in shown), "printable on one line"
    assert (escape_key(a) == escape_key(b)) == (a == b)


@given(keys, st.integers(min_value=0, max_value=10))
def test_classify_agrees_with_the_safety_and_internal_rules(key: str, size: int):
    kind = classify(key, size)
    if kind is KeyKind.DATA:
        assert unsafe_reason(key) is None and not is_internal(key)
    elif kind is KeyKind.DIRECTORY_MARKER:
        assert key.endswith("/") and size == 0
    elif kind is KeyKind.INTERNAL:
        assert unsafe_reason(key) is None and is_internal(key)
    else:
        assert unsafe_reason(key) is not None


# -- the internal-file filter ----------------------------------------------------------------------


@given(safe_keys, st.sampled_from(sorted(ROOT_INTERNAL_FILES)))
def test_root_internal_files_count_only_at_the_root(directory: str, name: str):
    assert is_internal(name)
    nested = f"{directory}/{name}"
    base = nested.rsplit("/", 1)[-1]
    assert is_internal(nested) == (base in ANY_DEPTH_INTERNAL_FILES)


@given(safe_keys, st.sampled_from(ROOT_INTERNAL_DIRS))
def test_internal_trees_count_only_at_the_root(rest: str, tree: str):
    assert is_internal(tree + rest)
    nested = "data/" + tree + rest
    base = nested.rsplit("/", 1)[-1]
    assert is_internal(nested) == (base in ANY_DEPTH_INTERNAL_FILES or base.startswith("_catalog.db-"))


@given(st.lists(safe_segments, max_size=3).map("/".join), st.sampled_from([".lock", ".namespace.json", "_catalog.db"]))
def test_any_depth_internal_files_are_internal_everywhere(directory: str, name: str):
    assert is_internal(f"{directory}/{name}" if directory else name)
    assert is_internal(f"{directory}/_catalog.db-wal" if directory else "_catalog.db-wal")


@given(st.lists(st.tuples(keys, st.integers(min_value=0, max_value=3)), max_size=25))
def test_a_listing_keeps_exactly_the_data_outside_namespaces(objects: list[tuple[str, int]]):
    when = datetime(2026, 5, 4, 12, 0, tzinfo=timezone.utc)
    listing = [ObjectInfo(key, size, when) for key, size in objects]
    result = entries_from_listing(listing)
    roots = {r for k, _ in objects if (r := namespace_root(k)) is not None and unsafe_reason(k) is None}
    expected = {k for k, s in objects if classify(k, s) is KeyKind.DATA and not in_namespace(k, roots)}
    assert set(result.entries) == expected
    unsafe = [k for k, s in objects if classify(k, s) is KeyKind.UNSAFE]
    assert len(result.warnings) == len(unsafe)
    sizes = dict(objects)  # the last listing of a key wins, as in the engine
    for key, entry in result.entries.items():
        assert (entry.key, entry.size, entry.last_modified) == (key, sizes[key], "2026-05-04T12:00:00.000Z")


@given(indexes())
def test_an_index_splits_into_data_and_suspicious_entries(index: idx.Index):
    entries, kinds = index.split()
    data = [e.key for e in entries]
    suspicious = [k for k, _ in kinds]
    assert sorted(data + suspicious) == sorted(index.entries)
    assert data == sorted(data)
    assert all(unsafe_reason(k) is None and not is_internal(k) for k in data)


@pytest.mark.parametrize("key", ["../x", "/x", "a\\b", "a\x00b", "a//b", "./a", "a/"])
def test_examples_of_unsafe_keys(key: str):
    assert unsafe_reason(key) is not None

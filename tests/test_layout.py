"""swamp's index shards (SPEC §2 "swamp's index shards"): partition keys, _meta.json and shard
documents, the entries in force in each layout and the objects a write produces. Pure: no server.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncops import index as idx
from syncops import layout as lay
from syncops.errors import BadInput, CorruptIndex
from syncops.keys import INDEX_KEY, KeyKind, classify

T = "2026-05-04T11:59:00.000Z"


def entry(key: str, size: int = 1, **extra: object) -> idx.Entry:
    return idx.Entry(key=key, size=size, last_modified=T, extra=dict(extra))


# -- partition keys --------------------------------------------------------------------------------

# Mirrors swamp's partitionKeyFromPath (S3CacheSyncService, s3_cache_sync.ts, the version that reads
# _meta.json version 2): the expected values were worked out by hand from its branches.
PARTITION_TABLE = [
    # no directory: the root shard, except the empty path
    ("", None),
    ("README.md", "_root"),
    ("config.yaml", "_root"),
    # data/, outputs/, definitions-evaluated/: fewer than 4 segments have no shard
    ("data/a", None),
    ("data/a/b", None),
    ("data/", None),
    ("outputs/a/b", None),
    ("definitions-evaluated/a/b", None),
    # 4 or 5 segments: everything but the file name
    ("data/a/b/c", "data--a--b"),
    ("data/a/b/c/d", "data--a--b--c"),
    ("outputs/command/shell/out.yaml", "outputs--command--shell"),
    ("definitions-evaluated/command/shell/id.yaml", "definitions-evaluated--command--shell"),
    # 6 or more: everything but name/version/raw
    ("data/command/shell/model-1/result/1/raw", "data--command--shell--model-1"),
    ("data/type/model/name/1/raw", "data--type--model"),
    ("data/@user/my-type/model/name/2/metadata.yaml", "data--@user--my-type--model"),
    ("outputs/a/b/c/d/e/f/g", "outputs--a--b--c--d"),
    # workflow-runs/: the workflow id, from 3 segments on
    ("workflow-runs/wf", None),
    ("workflow-runs/wf/run.yaml", "workflow-runs--wf"),
    ("workflow-runs/wf/a/b/c/d", "workflow-runs--wf"),
    # every other tree: its first segment (the named ones and the unknown alike)
    ("workflows-evaluated/wf.yaml", "workflows-evaluated"),
    ("auto-definitions/x.yaml", "auto-definitions"),
    ("audit/2026/05/x.json", "audit"),
    ("telemetry/x", "telemetry"),
    ("logs/x", "logs"),
    ("files/a/b/c/d/e/f", "files"),
    ("config/x", "config"),
    ("bundles/x", "bundles"),
    ("a/", "a"),
    ("Data/a/b/c", "Data"),  # case matters
    ("_meta/x", "_meta"),  # swamp's own key for it; syncops refuses to write such a shard
    # a leading '/' makes swamp return "", which its callers treat as no partition
    ("/abs/path", None),
    ("/", None),
    # empty segments count as segments, as JavaScript's split counts them
    ("data//b/c", "data----b"),
    ("workflow-runs//x", "workflow-runs--"),
]


@pytest.mark.parametrize(("path", "expected"), PARTITION_TABLE)
def test_partition_key_mirrors_swamp(path, expected):
    assert lay.partition_key(path) == expected


SEGMENT = st.one_of(
    st.sampled_from(
        [
            "data",
            "outputs",
            "definitions-evaluated",
            "workflow-runs",
            "workflows-evaluated",
            "audit",
            "a",
            "raw",
            "1",
            "",
        ]
    ),
    st.text(st.characters(blacklist_characters="/"), max_size=6),
)
PATHS = st.lists(SEGMENT, min_size=1, max_size=9).map("/".join)


@given(PATHS)
def test_partition_key_is_one_object_name_or_none(path):
    key = lay.partition_key(path)
    assert key is None or (key != "" and "/" not in key)


@given(PATHS)
def test_partition_key_is_none_exactly_for_the_paths_swamp_has_no_shard_for(path):
    segments = path.split("/")
    homeless = (
        path == ""
        or (len(segments) > 1 and segments[0] == "")
        or (segments[0] in ("data", "outputs", "definitions-evaluated") and 1 < len(segments) < 4)
        or (segments[0] == "workflow-runs" and 1 < len(segments) < 3)
    )
    assert (lay.partition_key(path) is None) == homeless


@given(st.sampled_from(["data", "outputs", "definitions-evaluated"]), st.lists(SEGMENT, min_size=5, max_size=8))
def test_deep_model_paths_share_the_shard_of_their_model(tree, rest):
    # name/version/raw below the model: the same model prefix, the same shard
    path = "/".join([tree, *rest])
    model = [tree, *rest[:-3]]
    assert lay.partition_key(path) == "--".join(model)
    assert lay.partition_key("/".join([*model, "other", "9", "raw"])) == "--".join(model)


@given(st.text(st.characters(blacklist_characters="/"), min_size=1))
def test_a_path_without_directory_is_in_the_root_shard(name):
    assert lay.partition_key(name) == lay.ROOT_PARTITION


def test_shard_key_is_under_index_dir():
    assert lay.shard_key("data--a--b") == "_index/data--a--b.json"
    assert classify(lay.shard_key("x")) is KeyKind.INTERNAL
    assert classify(lay.META_KEY) is KeyKind.INTERNAL


# -- _meta.json ------------------------------------------------------------------------------------


def test_meta_version_1_parses():
    meta = lay.parse_meta(b'{"version": 1, "partitions": ["data--a--b", "audit"]}')
    assert (meta.version, meta.partitions, meta.commit_seq, meta.shard_first) == (
        1,
        ("data--a--b", "audit"),
        None,
        False,
    )


def test_meta_version_2_parses_with_commit_seq_and_keeps_unknown_fields():
    raw = {"version": 2, "partitions": ["a"], "commitSeq": 7, "lastCompacted": "2026-01-01T00:00:00.000Z"}
    meta = lay.parse_meta(json.dumps(raw))
    assert (meta.version, meta.commit_seq, meta.shard_first) == (2, 7, True)
    assert meta.extra == {"lastCompacted": "2026-01-01T00:00:00.000Z"}
    assert json.loads(lay.serialize_meta(meta)) == raw


def test_meta_is_written_as_json_stringify_with_two_spaces():
    meta = lay.Meta(version=2, partitions=("b", "a", "b"), commit_seq=3)
    assert (
        lay.serialize_meta(meta)
        == b'{\n  "version": 2,\n  "partitions": [\n    "a",\n    "b"\n  ],\n  "commitSeq": 3\n}'
    )
    fresh = lay.Meta(version=2, partitions=(), commit_seq=0)  # what swamp writes into an empty bucket
    assert lay.serialize_meta(fresh) == b'{\n  "version": 2,\n  "partitions": [],\n  "commitSeq": 0\n}'
    assert lay.serialize_meta(lay.Meta(1, ("x",))) == b'{\n  "version": 1,\n  "partitions": [\n    "x"\n  ]\n}'


BAD_METAS = [
    (b"not json", "not valid JSON"),
    (b"[]", "not a JSON object"),
    (b'{"partitions": []}', "version is None"),
    (b'{"version": 3, "partitions": []}', "version is 3"),
    (b'{"version": true, "partitions": []}', "version is True"),
    (b'{"version": "2", "partitions": [], "commitSeq": 0}', "version is '2'"),
    (b'{"version": 1}', "'partitions' is missing"),
    (b'{"version": 1, "partitions": {"a": 1}}', "'partitions' is missing or not a list"),
    (b'{"version": 2, "partitions": []}', "needs 'commitSeq'"),
    (b'{"version": 2, "partitions": [], "commitSeq": -1}', "needs 'commitSeq'"),
    (b'{"version": 2, "partitions": [], "commitSeq": 1.5}', "needs 'commitSeq'"),
    (b'{"version": 2, "partitions": [], "commitSeq": true}', "needs 'commitSeq'"),
    (b'{"version": 1, "partitions": [1]}', "not a string"),
    (b'{"version": 1, "partitions": [""]}', "not a safe name"),
    (b'{"version": 1, "partitions": ["../x"]}', "not a safe name"),
    (b'{"version": 1, "partitions": ["a/b"]}', "contains '/'"),
    (b'{"version": 1, "partitions": ["_meta"]}', "_meta.json itself"),
    (b'{"version": 1, "partitions": ["a\\u0000"]}', "not a safe name"),
]


@pytest.mark.parametrize(("data", "why"), BAD_METAS)
def test_a_defective_meta_is_corrupt_and_named(data, why):
    with pytest.raises(CorruptIndex) as caught:
        lay.parse_meta(data, where="s3://b/p/_index/_meta.json")
    assert str(caught.value).startswith("s3://b/p/_index/_meta.json: ")
    assert why in str(caught.value)
    assert caught.value.exit_code == 6


PARTITION_NAMES = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x2FF, blacklist_categories=("Cc",), blacklist_characters="/\\"),
    min_size=1,
).filter(lambda p: p not in (".", "..", "_meta"))
METAS = st.one_of(
    st.builds(lambda ps: lay.Meta(1, tuple(sorted(set(ps)))), st.lists(PARTITION_NAMES, max_size=5)),
    st.builds(
        lambda ps, seq: lay.Meta(2, tuple(sorted(set(ps))), seq),
        st.lists(PARTITION_NAMES, max_size=5),
        st.integers(min_value=0, max_value=2**53),
    ),
)


@given(METAS)
def test_meta_round_trips(meta):
    assert lay.parse_meta(lay.serialize_meta(meta)) == meta


# -- shards ----------------------------------------------------------------------------------------

SHARD_EXAMPLE = b"""{
  "version": 1,
  "entries": {
    "data/t/m/n/1/raw": {"key": "data/t/m/n/1/raw", "size": 5, "lastModified": "2026-05-04T11:59:00.000Z", "sha256": "ab"}
  }
}
"""


def test_shard_parses_and_serializes_in_the_monolith_layout():
    shard = lay.parse_shard(SHARD_EXAMPLE, "data--t--m")
    assert shard.partition == "data--t--m"
    assert shard.entries["data/t/m/n/1/raw"].sha256 == "ab"
    assert lay.serialize_shard(shard) == SHARD_EXAMPLE


def test_shard_serialization_is_sorted_and_keeps_every_field_of_an_entry():
    """Field fidelity (issue 11): an entry is written with every field it was read with, localMtime
    and unknown ones included; only syncops's own remoteVersion (a base field) is never published."""
    a = idx.Entry("b/x", 1, T, local_mtime=T, extra={"zz": [1, 2]})
    shard = lay.Shard("b", {"b/x": a, "b/a": entry("b/a")}, extra={"note": {"k": 1}})
    text = lay.serialize_shard(shard).decode()
    assert text.index('"b/a"') < text.index('"b/x"')
    raw = json.loads(text)
    assert list(raw) == ["version", "note", "entries"]
    assert raw["entries"]["b/x"]["localMtime"] == T and raw["entries"]["b/x"]["zz"] == [1, 2]
    assert lay.serialize_shard(lay.Shard("b")) == b'{\n  "version": 1,\n  "entries": {}\n}\n'


BAD_SHARDS = [
    (b"{", "not valid JSON"),
    (b'"x"', "not a JSON object"),
    (b'{"version": 2, "entries": {}}', "version is 2"),
    (b'{"version": true, "entries": {}}', "version is True"),
    (b'{"version": 1}', "'entries' is missing"),
    (b'{"version": 1, "entries": []}', "'entries' is missing"),
    (
        b'{"version": 1, "entries": {"a": {"key": "b", "size": 1, "lastModified": "2026-05-04T11:59:00.000Z"}}}',
        "not its own name",
    ),
    (
        b'{"version": 1, "entries": {"a": {"key": "a", "size": -1, "lastModified": "2026-05-04T11:59:00.000Z"}}}',
        "not a byte count",
    ),
]


@pytest.mark.parametrize(("data", "why"), BAD_SHARDS)
def test_a_defective_shard_is_corrupt_and_named(data, why):
    with pytest.raises(CorruptIndex) as caught:
        lay.parse_shard(data, "data--a--b")
    assert str(caught.value).startswith("_index/data--a--b.json: ")
    assert why in str(caught.value)


KEYS = st.lists(
    st.sampled_from(["data", "outputs", "workflow-runs", "audit", "m", "n", "x", "raw", "1"]), min_size=1, max_size=7
).map("/".join)
ENTRIES = st.dictionaries(KEYS, st.integers(min_value=0, max_value=2**40), max_size=12).map(
    lambda d: {k: entry(k, size) for k, size in d.items()}
)


@given(ENTRIES)
def test_shard_round_trips(entries):
    shard = lay.Shard("p", entries)
    again = lay.parse_shard(lay.serialize_shard(shard), "p")
    assert again == shard


# -- the layout view -------------------------------------------------------------------------------


def mono(*entries: idx.Entry) -> idx.Index:
    return idx.Index(entries={e.key: e for e in entries}, last_pulled=T)


def shard(partition: str, *entries: idx.Entry) -> lay.Shard:
    return lay.Shard(partition, {e.key: e for e in entries})


def test_mode_follows_meta_and_shards():
    assert lay.Layout().mode is lay.Mode.MONOLITH
    assert lay.Layout(monolith=mono()).mode is lay.Mode.MONOLITH
    assert lay.Layout(meta=lay.Meta(1, ())).mode is lay.Mode.DUAL_WRITE
    assert lay.Layout(shards_present=True).mode is lay.Mode.DUAL_WRITE  # shards whose meta was lost
    assert lay.Layout(meta=lay.Meta(2, (), 0)).mode is lay.Mode.SHARD_FIRST


def test_monolith_and_dual_write_hold_the_monolith():
    m = mono(entry("data/a/b/c"))
    stale = {"data--a--b": shard("data--a--b", entry("data/a/b/c", size=99))}
    assert lay.entries_in_force(lay.Layout(monolith=m)) is m
    assert lay.entries_in_force(lay.Layout(monolith=m, meta=lay.Meta(1, ("data--a--b",)), shards=stale)) is m
    assert lay.entries_in_force(lay.Layout(meta=lay.Meta(1, ()))) is None  # absent: discovery's case
    assert lay.objects_to_read(lay.Layout(meta=lay.Meta(1, ("x",)))) == [INDEX_KEY]


def test_shard_first_holds_the_union_of_the_listed_shards_not_the_monolith():
    meta = lay.Meta(2, ("audit", "data--a--b"), 4)
    shards = {
        "audit": shard("audit", entry("audit/x")),
        "data--a--b": shard("data--a--b", entry("data/a/b/c")),
        "orphan": shard("orphan", entry("orphan/y")),  # not listed: not in force
    }
    layout = lay.Layout(monolith=mono(entry("old/stale")), meta=meta, shards=shards)
    held = lay.entries_in_force(layout)
    assert held is not None and sorted(held.entries) == ["audit/x", "data/a/b/c"]
    assert lay.objects_to_read(layout) == ["_index/audit.json", "_index/data--a--b.json"]


def test_a_key_in_two_shards_is_taken_from_the_later_listed_one():
    meta = lay.Meta(2, ("workflows-evaluated", "workflows-evaluated--x"), 1)
    shards = {
        "workflows-evaluated": shard("workflows-evaluated", entry("workflows-evaluated/x/y", size=1)),
        "workflows-evaluated--x": shard("workflows-evaluated--x", entry("workflows-evaluated/x/y", size=2)),
    }
    layout = lay.Layout(meta=meta, shards=shards)
    held = lay.entries_in_force(layout)
    assert held is not None and held.entries["workflows-evaluated/x/y"].size == 2
    assert lay.misplaced_entries(layout) == [
        ("workflows-evaluated/x/y", "workflows-evaluated--x", "workflows-evaluated")
    ]


def test_a_listed_shard_that_is_missing_is_corrupt_and_named():
    layout = lay.Layout(meta=lay.Meta(2, ("audit", "logs"), 1), shards={"audit": shard("audit")})
    with pytest.raises(CorruptIndex) as caught:
        lay.entries_in_force(layout, describe=lambda key: f"gs://b/{key}")
    assert str(caught.value).startswith("gs://b/_index/logs.json: listed in gs://b/_index/_meta.json (version 2)")


# -- write plans: the three modes ------------------------------------------------------------------


def apply(bucket: dict[str, bytes], plan: lay.WritePlan) -> dict[str, bytes]:
    out = dict(bucket)
    for write in plan.writes:
        out[write.key] = write.body()
    return out


def read_back(bucket: dict[str, bytes]) -> lay.Layout:
    shards = {
        key[len(lay.INDEX_DIR) : -len(".json")]: lay.parse_shard(data, key[len(lay.INDEX_DIR) : -len(".json")])
        for key, data in bucket.items()
        if key.startswith(lay.INDEX_DIR) and key != lay.META_KEY
    }
    return lay.Layout(
        monolith=idx.parse(bucket[INDEX_KEY]) if INDEX_KEY in bucket else None,
        meta=lay.parse_meta(bucket[lay.META_KEY]) if lay.META_KEY in bucket else None,
        shards=shards,
        shards_present=bool(shards),
    )


def test_monolith_write_is_the_conditional_monolith_only():
    layout = lay.Layout(monolith=mono(entry("data/a/b/c")))
    plan = lay.plan_write(layout, {"x/y": entry("x/y")}, last_pulled="2026-06-01T00:00:00.000Z")
    assert [(w.key, w.kind, w.conditional) for w in plan.writes] == [(INDEX_KEY, lay.Kind.INDEX, True)]
    written = idx.parse(plan.writes[0].body())
    assert sorted(written.entries) == ["data/a/b/c", "x/y"] and written.last_pulled == "2026-06-01T00:00:00.000Z"
    assert plan.index is not None and sorted(plan.index.entries) == ["data/a/b/c", "x/y"]


def test_dual_write_writes_monolith_then_dirty_shards_then_meta():
    before = mono(entry("data/a/b/c"), entry("data/a/b/d"), entry("audit/x"), entry("data/x"))
    layout = lay.Layout(monolith=before, meta=lay.Meta(1, ("audit", "data--a--b")))
    plan = lay.plan_write(layout, {"data/a/b/e": entry("data/a/b/e"), "logs/l": entry("logs/l")})
    assert [(w.key, w.conditional) for w in plan.writes] == [
        (INDEX_KEY, True),
        ("_index/data--a--b.json", False),
        ("_index/logs.json", False),
        (lay.META_KEY, False),
    ]
    # each dirty shard holds every monolith entry of its partition; "data/x" has none and stays in the monolith
    assert sorted(lay.parse_shard(plan.writes[1].body(), "data--a--b").entries) == [
        "data/a/b/c",
        "data/a/b/d",
        "data/a/b/e",
    ]
    assert lay.parse_meta(plan.writes[3].body()) == lay.Meta(1, ("audit", "data--a--b", "logs"))
    assert plan.index is not None and "data/x" in plan.index.entries


def test_dual_write_leaves_meta_alone_when_its_partitions_do_not_change():
    layout = lay.Layout(monolith=mono(entry("data/a/b/c")), meta=lay.Meta(1, ("data--a--b",)))
    plan = lay.plan_write(layout, {"data/a/b/c": entry("data/a/b/c", size=2)})
    assert [w.kind for w in plan.writes] == [lay.Kind.INDEX, lay.Kind.SHARD]


def test_dual_write_recreates_a_lost_meta():
    layout = lay.Layout(monolith=mono(), shards_present=True)
    plan = lay.plan_write(layout, {"audit/a": entry("audit/a")})
    assert [w.key for w in plan.writes] == [INDEX_KEY, "_index/audit.json", lay.META_KEY]


def test_dual_write_never_writes_a_shard_over_the_meta():
    layout = lay.Layout(monolith=mono(), meta=lay.Meta(1, ()))
    plan = lay.plan_write(layout, {"_meta/x": entry("_meta/x")})
    assert lay.META_KEY not in [w.key for w in plan.writes if w.kind is lay.Kind.SHARD]
    assert plan.index is not None and "_meta/x" in plan.index.entries
    assert plan.warnings and "_meta/x" in plan.warnings[0]


def test_shard_first_writes_dirty_shards_then_meta_with_commit_seq_plus_one():
    meta = lay.Meta(2, ("audit", "data--a--b"), 41, extra={"lastCompacted": T})
    shards = {"audit": shard("audit", entry("audit/x")), "data--a--b": shard("data--a--b", entry("data/a/b/c", zz=1))}
    layout = lay.Layout(monolith=mono(entry("stale/monolith")), meta=meta, shards=shards)
    changes = {"data/a/b/c": entry("data/a/b/c", size=7), "workflow-runs/w/r.yaml": entry("workflow-runs/w/r.yaml")}
    plan = lay.plan_write(layout, changes)
    assert [(w.key, w.kind, w.conditional) for w in plan.writes] == [
        ("_index/data--a--b.json", lay.Kind.SHARD, False),
        ("_index/workflow-runs--w.json", lay.Kind.SHARD, False),
        (lay.META_KEY, lay.Kind.META, True),
    ]
    assert INDEX_KEY not in [w.key for w in plan.writes]  # the monolith is no longer updated
    new_meta = lay.parse_meta(plan.writes[-1].body())
    assert new_meta == lay.Meta(2, ("audit", "data--a--b", "workflow-runs--w"), 42, extra={"lastCompacted": T})
    rewritten = lay.parse_shard(plan.writes[0].body(), "data--a--b").entries["data/a/b/c"]
    assert (rewritten.size, rewritten.extra) == (7, {"zz": 1})  # unknown fields of a rewritten entry kept
    assert plan.index is not None and sorted(plan.index.entries) == ["audit/x", "data/a/b/c", "workflow-runs/w/r.yaml"]


def test_shard_first_needs_only_the_dirty_shards():
    meta = lay.Meta(2, ("audit", "data--a--b"), 1)
    assert lay.shards_to_read(meta, ["data/a/b/z", "logs/new", "data/x"]) == ["data--a--b"]
    layout = lay.Layout(meta=meta, shards={"data--a--b": shard("data--a--b", entry("data/a/b/c"))})
    plan = lay.plan_write(layout, {"data/a/b/z": entry("data/a/b/z")})
    assert [w.key for w in plan.writes] == ["_index/data--a--b.json", lay.META_KEY]
    assert plan.index is None  # "audit" was not read: the full index is not known


def test_shard_first_refuses_a_dirty_listed_shard_that_is_missing():
    layout = lay.Layout(meta=lay.Meta(2, ("data--a--b",), 1))
    with pytest.raises(CorruptIndex, match="_index/data--a--b.json: listed in"):
        lay.plan_write(layout, {"data/a/b/z": entry("data/a/b/z")})


@pytest.mark.parametrize("key", ["data/a/b", "outputs/x", "workflow-runs/w", "_meta/x"])
def test_shard_first_refuses_a_key_without_shard_and_writes_nothing(key):
    layout = lay.Layout(meta=lay.Meta(2, (), 0))
    with pytest.raises(BadInput) as caught:
        lay.plan_write(layout, {key: entry(key), "audit/ok": entry("audit/ok")})
    assert key in str(caught.value) and "nothing written" in str(caught.value)
    assert caught.value.exit_code == 2


def test_unwritable_keys_are_refused_before_any_upload():
    keys = ["audit/ok", "data/a/b"]
    lay.refuse_unwritable(lay.Layout(), keys)  # the monolith holds any data key
    lay.refuse_unwritable(lay.Layout(meta=lay.Meta(1, ())), keys)
    with pytest.raises(BadInput, match="data/a/b"):
        lay.refuse_unwritable(lay.Layout(meta=lay.Meta(2, (), 0)), iter(keys))
    with pytest.raises(BadInput, match="not a data key"):
        lay.refuse_unwritable(lay.Layout(), ["_control/x"])


@pytest.mark.parametrize("key", [".datastore-index.json", "_index/x.json", "a/.lock", "../x", "dir/"])
def test_a_key_that_is_not_data_is_refused_in_every_mode(key):
    for layout in (lay.Layout(), lay.Layout(meta=lay.Meta(1, ())), lay.Layout(meta=lay.Meta(2, (), 0))):
        with pytest.raises(BadInput):
            lay.plan_write(layout, {key: entry(key)})


def test_no_changes_no_writes():
    for layout in (lay.Layout(monolith=mono()), lay.Layout(meta=lay.Meta(2, (), 0))):
        assert lay.plan_write(layout, {}).writes == []


def test_shard_first_moves_a_stale_copy_out_of_another_shard():
    meta = lay.Meta(2, ("workflows-evaluated--x",), 5)
    stale = shard("workflows-evaluated--x", entry("workflows-evaluated/x/y"))
    layout = lay.Layout(meta=meta, shards={"workflows-evaluated--x": stale})
    plan = lay.plan_write(layout, {"workflows-evaluated/x/y": entry("workflows-evaluated/x/y", size=9)})
    after = read_back(apply({}, plan))
    assert [w.key for w in plan.writes] == [
        "_index/workflows-evaluated.json",
        "_index/workflows-evaluated--x.json",  # written empty (syncops never deletes), no longer listed
        lay.META_KEY,
    ]
    assert after.shards["workflows-evaluated--x"].entries == {}
    assert after.meta == lay.Meta(2, ("workflows-evaluated",), 6)
    held = lay.entries_in_force(after)
    assert held is not None and held.entries["workflows-evaluated/x/y"].size == 9


def test_first_write_into_a_fresh_shard_first_bucket():
    plan = lay.plan_write(lay.Layout(meta=lay.Meta(2, (), 0)), {"README.md": entry("README.md")})
    assert [w.key for w in plan.writes] == ["_index/_root.json", lay.META_KEY]
    assert lay.parse_meta(plan.writes[-1].body()) == lay.Meta(2, ("_root",), 1)


# -- write plans: properties -----------------------------------------------------------------------

SHARDABLE = KEYS.filter(lambda k: classify(k) is KeyKind.DATA and lay.shard_home(k) is not None)
SHARDABLE_ENTRIES = st.dictionaries(SHARDABLE, st.integers(min_value=0, max_value=999), max_size=10).map(
    lambda d: {k: entry(k, size) for k, size in d.items()}
)
DATA_ENTRIES = ENTRIES.map(lambda d: {k: e for k, e in d.items() if classify(k) is KeyKind.DATA})


def shard_first_bucket(entries: dict[str, idx.Entry], seq: int) -> dict[str, bytes]:
    grouped: dict[str, dict[str, idx.Entry]] = {}
    for key, e in entries.items():
        grouped.setdefault(lay.partition_key(key) or "", {})[key] = e
    bucket = {lay.shard_key(p): lay.serialize_shard(lay.Shard(p, es)) for p, es in grouped.items()}
    bucket[lay.META_KEY] = lay.serialize_meta(lay.Meta(2, tuple(grouped), seq))
    bucket[INDEX_KEY] = idx.serialize(mono(entry("stale/monolith")))
    return bucket


@settings(max_examples=60)
@given(SHARDABLE_ENTRIES, SHARDABLE_ENTRIES, st.integers(min_value=0, max_value=10**6))
def test_shard_first_write_then_read_gives_base_merged_with_changes(before, changes, seq):
    bucket = shard_first_bucket(before, seq)
    layout = read_back(bucket)
    plan = lay.plan_write(layout, changes)
    after = read_back(apply(bucket, plan))
    held = lay.entries_in_force(after)
    assert held is not None and held.entries == {**before, **changes}
    if changes:
        assert after.meta is not None and after.meta.commit_seq == seq + 1
        assert [w.conditional for w in plan.writes] == [False] * (len(plan.writes) - 1) + [True]
        assert plan.writes[-1].key == lay.META_KEY
        assert {w.key for w in plan.writes[:-1]} == {lay.shard_key(p) for p in map(lay.partition_key, changes)}
        assert after.monolith == layout.monolith  # untouched
        assert plan.index is not None and plan.index.entries == held.entries
    else:
        assert plan.writes == []


@settings(max_examples=60)
@given(DATA_ENTRIES, DATA_ENTRIES)
def test_dual_write_keeps_every_written_shard_a_copy_of_the_monolith(before, changes):
    bucket = {INDEX_KEY: idx.serialize(mono(*before.values())), lay.META_KEY: lay.serialize_meta(lay.Meta(1, ()))}
    plan = lay.plan_write(read_back(bucket), changes)
    after = read_back(apply(bucket, plan))
    assert after.monolith is not None and after.monolith.entries == {**before, **changes}
    if not changes:
        return
    assert plan.writes[0].key == INDEX_KEY and plan.writes[0].conditional
    assert not any(w.conditional for w in plan.writes[1:])
    for partition, written in after.shards.items():
        expected = {k: e for k, e in after.monolith.entries.items() if lay.shard_home(k) == partition}
        assert written.entries == expected
    assert set(after.shards) == {h for h in map(lay.shard_home, changes) if h is not None}
    assert after.meta is not None
    assert set(after.meta.partitions) == {h for h in map(lay.shard_home, after.monolith.entries) if h is not None}


@settings(max_examples=40)
@given(SHARDABLE_ENTRIES, SHARDABLE_ENTRIES)
def test_replace_makes_exactly_the_given_index_in_force(before, wanted):
    bucket = shard_first_bucket(before, 3)
    plan = lay.plan_replace(read_back(bucket), mono(*wanted.values()))
    after = read_back(apply(bucket, plan))
    held = lay.entries_in_force(after)
    assert held is not None and held.entries == wanted
    assert after.meta is not None and after.meta.commit_seq == 4
    assert all(after.shards[p].entries for p in after.meta.partitions)  # an emptied shard is no longer listed


def test_replace_in_dual_write_rewrites_every_shard():
    layout = lay.Layout(monolith=mono(entry("audit/old")), meta=lay.Meta(1, ("audit",)))
    plan = lay.plan_replace(layout, mono(entry("audit/a"), entry("logs/b"), entry("data/x")))
    assert [w.key for w in plan.writes] == [INDEX_KEY, "_index/audit.json", "_index/logs.json", lay.META_KEY]
    dropped = lay.Layout(monolith=mono(entry("files/old")), meta=lay.Meta(1, ("files",)))
    plan = lay.plan_replace(dropped, mono(entry("audit/a")))
    assert [w.key for w in plan.writes] == [INDEX_KEY, "_index/audit.json", "_index/files.json", lay.META_KEY]
    assert plan.shards["files"].entries == {}  # no stale copy left for swamp's scoped pulls
    assert plan.meta == lay.Meta(1, ("audit",))


def test_replace_in_shard_first_refuses_keys_without_shard():
    with pytest.raises(BadInput, match="data/x"):
        lay.plan_replace(lay.Layout(meta=lay.Meta(2, (), 0)), mono(entry("data/x")))

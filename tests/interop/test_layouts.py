"""Interop with swamp's index layouts (issue 11), on file://, SeaweedFS and fake-gcs-server: buckets
built as swamp leaves them (monolith only, dual-write v1, shard-first v2, a namespace) and every
command run against each, checking what hydrate brings, what push leaves in the monolith, the shards
and ``_meta.json``, how commitSeq steps, verify's verdict, and that swamp's own readers (whole pull
and model-scoped pull) find what syncops pushed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests import wire
from tests.conftest import BACKENDS, CliResult, Datastore, LocalRaw, run_cli
from tests.expect import data_files, write
from tests.interop import swamp
from tests.interop.swamp import DUAL_WRITE, FILES, MODEL_1, MODEL_2, MODES, MONOLITH, SHARD_FIRST
from tests.proxy import FORWARD, Fault, Proxy

NEW_KEY = "data/command/shell/model-1/result/2/raw"  # a new version of model 1: same partition
NEW_DATA = b"model one, version 2"


def cli(command: str, ds: Datastore, *args: str, env: dict[str, str] | None = None) -> CliResult:
    return run_cli(command, ds.url, *args, "--json", env=env if env is not None else ds.env)


def ok(result: CliResult) -> dict[str, Any]:
    assert result.code == 0, result.stderr or result.stdout
    return result.json


@pytest.fixture(params=[(b, m) for b in BACKENDS for m in MODES], ids=lambda p: f"{p[0]}-{p[1]}")
def swamp_ds(request: pytest.FixtureRequest, make_datastore) -> tuple[Datastore, str]:
    backend, mode = request.param
    return make_datastore(backend), mode


# -- reading ---------------------------------------------------------------------------------------


def test_hydrate_brings_the_entries_in_force_and_writes_nothing(swamp_ds, tmp_path: Path):
    """Monolith and dual-write: the monolith's entries. Shard-first: the union of the listed shards,
    including what swamp recorded only in shards, and never what only a stale monolith still lists."""
    ds, mode = swamp_ds
    stale = {"old/gone.txt": swamp.entry("old/gone.txt", b"gone")} if mode == SHARD_FIRST else None
    swamp.build(ds, mode, stale_monolith=stale)
    before = swamp.index_objects(ds)
    report = ok(cli("hydrate", ds, str(tmp_path / "cache")))
    assert (report["status"], report["pulled"], report["index_written"]) == ("found", len(FILES), False)
    assert data_files(tmp_path / "cache") == FILES
    assert swamp.index_objects(ds) == before, "hydrate wrote an index object"
    assert ds.raw.get(ds.full(swamp.LOCK)) is None


def test_a_listed_shard_that_is_missing_is_a_corrupt_index(make_datastore, tmp_path: Path):
    for backend in BACKENDS:
        ds = make_datastore(backend)
        swamp.build(ds, SHARD_FIRST)
        ds.raw.delete(ds.full(swamp.shard_key(MODEL_2)))
        result = cli("hydrate", ds, str(tmp_path / backend))
        assert result.code == 6, result.stderr
        assert f"_index/{MODEL_2}.json" in result.json["error"] and "listed in" in result.json["error"]


# -- writing ---------------------------------------------------------------------------------------


def test_push_writes_what_swamp_would_and_swamp_finds_it(swamp_ds, tmp_path: Path):
    ds, mode = swamp_ds
    swamp.build(ds, mode)
    cache = tmp_path / "cache"
    ok(cli("bootstrap", ds, str(cache)))
    before = swamp.index_objects(ds)
    write(cache, NEW_KEY, NEW_DATA)
    report = ok(cli("push", ds, str(cache)))
    assert (report["pushed"], report["entries"]) == (1, len(FILES) + 1)
    after = swamp.index_objects(ds)
    untouched = swamp.shard_key(MODEL_2)

    if mode == MONOLITH:
        assert not [k for k in ds.raw.keys() if "_index/" in k], "a monolith datastore was migrated"
        assert ds.index()["entries"][NEW_KEY]["sha256"] == swamp.sha(NEW_DATA)
    if mode == DUAL_WRITE:
        assert ds.index()["entries"][NEW_KEY]["sha256"] == swamp.sha(NEW_DATA)
        dirty = swamp.shard(ds, MODEL_1)["entries"]
        monolith = ds.index()["entries"]
        assert dirty == {k: v for k, v in monolith.items() if k.startswith("data/command/shell/model-1/")}
        assert after[ds.full(untouched)] == before[ds.full(untouched)], "a clean shard was rewritten"
        assert swamp.meta(ds)["version"] == 1
    if mode == SHARD_FIRST:
        assert ds.index() is None, "syncops wrote a monolith into a shard-first datastore"
        assert swamp.meta(ds) == {
            "version": 2,
            "partitions": swamp.PARTITIONS,
            "commitSeq": 4,
        }
        assert swamp.shard(ds, MODEL_1)["entries"][NEW_KEY]["sha256"] == swamp.sha(NEW_DATA)
        assert after[ds.full(untouched)] == before[ds.full(untouched)], "a clean shard was rewritten"

    # swamp's readers: the whole pull and the pull scoped to model 1 both find the pushed file.
    assert NEW_KEY in swamp.swamp_pull_whole(ds)
    assert NEW_KEY in swamp.swamp_pull_model(ds, MODEL_1)
    assert swamp.swamp_pull_model(ds, MODEL_2).keys() == {"data/command/shell/model-2/result/1/raw"}
    assert ds.raw.get(ds.full(NEW_KEY)) == NEW_DATA
    assert ds.raw.get(ds.full(swamp.LOCK)) is None, "the lock was left behind"

    # And a second peer hydrates it back from whatever the layout holds.
    other = tmp_path / "other"
    ok(cli("hydrate", ds, str(other)))
    assert data_files(other) == {**FILES, NEW_KEY: NEW_DATA}


@pytest.mark.parametrize("mode", [DUAL_WRITE, SHARD_FIRST])
def test_entries_syncops_did_not_change_keep_every_field(make_datastore, tmp_path: Path, mode: str):
    ds = make_datastore("file")
    key = "data/command/shell/model-1/result/1/raw"
    kept = swamp.entry(
        key,
        FILES[key],
        localMtime="2026-05-04T11:58:59.123Z",
        sha256=swamp.sha(FILES[key]),
        swampOnly={"nested": [1, 2.5, None], "why": "unknown to syncops"},
        tags=["a", "b"],
    )
    entries = {k: swamp.entry(k, v) for k, v in FILES.items()} | {key: kept}
    swamp.build(ds, mode, entries=entries)
    cache = tmp_path / "cache"
    ok(cli("bootstrap", ds, str(cache)))
    write(cache, NEW_KEY, NEW_DATA)
    ok(cli("push", ds, str(cache)))
    assert swamp.shard(ds, MODEL_1)["entries"][key] == kept
    if mode == DUAL_WRITE:
        assert ds.index()["entries"][key] == kept
    written = swamp.shard(ds, MODEL_1)["entries"][NEW_KEY]
    assert written["sha256"] == swamp.sha(NEW_DATA) and written["size"] == len(NEW_DATA)


def test_shard_first_refuses_a_key_with_no_partition_before_uploading(make_datastore, tmp_path: Path):
    for backend in BACKENDS:
        ds = make_datastore(backend)
        swamp.build(ds, SHARD_FIRST)
        cache = tmp_path / backend
        ok(cli("bootstrap", ds, str(cache)))
        before = swamp.index_objects(ds)
        write(cache, "data/too-short.json", b"3 segments have no shard")
        result = cli("push", ds, str(cache))
        assert result.code == 2, result.stderr
        assert "data/too-short.json" in result.json["error"] and "no shard" in result.json["error"]
        assert ds.raw.get(ds.full("data/too-short.json")) is None, "uploaded although it cannot be indexed"
        assert swamp.index_objects(ds) == before


def test_commit_seq_steps_once_per_push(make_datastore, tmp_path: Path):
    ds = make_datastore("s3")
    swamp.build(ds, SHARD_FIRST, commit_seq=7)
    cache = tmp_path / "cache"
    ok(cli("bootstrap", ds, str(cache)))
    for step, key in enumerate(["workflow-runs/wf-2/run.yaml", "notes.md"], start=8):
        write(cache, key, key.encode())
        ok(cli("push", ds, str(cache)))
        assert swamp.meta(ds)["commitSeq"] == step
    assert {"workflow-runs--wf-2", "_root"} <= set(swamp.meta(ds)["partitions"])
    ok(cli("push", ds, str(cache)))  # nothing changed: nothing committed
    assert swamp.meta(ds)["commitSeq"] == 9


@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_a_lost_commit_race_rereads_and_remerges(make_datastore, tmp_path: Path, backend: str):
    """Our conditional ``_meta.json`` write is held at the proxy until a swamp writer (ignoring the
    lock, the worst case) committed its own entry to the same shard; ours then gets 412, re-reads and
    re-merges: both entries end in the shard and commitSeq steps twice."""
    ds = make_datastore(backend)
    swamp.build(ds, SHARD_FIRST)
    cache = tmp_path / "cache"
    ok(cli("bootstrap", ds, str(cache)))
    write(cache, NEW_KEY, NEW_DATA)
    theirs = "data/command/shell/model-1/result/3/raw"

    def swamp_commits() -> None:
        ds.raw.put(ds.full(theirs), b"theirs")
        current = swamp.shard(ds, MODEL_1)
        current["entries"] = {k: v for k, v in current["entries"].items() if k != NEW_KEY}
        current["entries"][theirs] = swamp.entry(theirs, b"theirs")
        ds.raw.put(ds.full(swamp.shard_key(MODEL_1)), swamp.js_compact(current))
        ds.raw.put(ds.full(swamp.META), swamp.js_pretty({**swamp.meta(ds), "commitSeq": 4}))

    with Proxy(ds.endpoint) as proxy:
        proxy.add_fault(meta_write(ds, backend, before=swamp_commits))
        report = ok(cli("push", ds, str(cache), env=wire.proxied_env(backend, ds.env, proxy)))
        assert wire.count(backend, proxy, wire.META_PUT, 412) == 1
    assert report["pushed"] == 1
    assert swamp.meta(ds)["commitSeq"] == 5
    assert {NEW_KEY, theirs} <= set(swamp.shard(ds, MODEL_1)["entries"])
    assert {NEW_KEY, theirs} <= set(swamp.swamp_pull_whole(ds))


def meta_write(ds: Datastore, backend: str, **options: Any) -> Fault:
    """The first write of ``_index/_meta.json``, forwarded after ``before`` ran."""
    if backend == "s3":
        match = lambda method, path: wire.request_kind("s3", method, path) == wire.META_PUT  # noqa: E731
        return Fault(match, status=FORWARD, times=1, **options)
    return Fault(
        wire.is_write("gcs"),
        body=lambda body: wire.request_kind("gcs", "POST", "/upload/storage/v1/b/x/o", body) == wire.META_PUT,
        status=FORWARD,
        times=1,
        **options,
    )


# -- discover, verify, repair, rebuild -------------------------------------------------------------


def test_verify_judges_the_index_in_force(swamp_ds):
    ds, mode = swamp_ds
    swamp.build(ds, mode)
    report = ok(run_cli("verify", ds.url, "--json", env=ds.env))
    assert (report["status"], report["entries"]) == ("ok", len(FILES))
    ds.raw.put(ds.full("workflow-runs/wf-9/run.yaml"), b"not indexed")
    result = run_cli("verify", ds.url, "--json", env=ds.env)
    assert result.code == 5
    assert [(p["kind"], p["key"]) for p in result.json["problems"]] == [
        ("unindexed-object", "workflow-runs/wf-9/run.yaml")
    ]
    before = swamp.index_objects(ds)
    repaired = ok(run_cli("verify", ds.url, "--repair", "--json", env=ds.env))
    assert (repaired["status"], repaired["entries"]) == ("repaired", len(FILES) + 1)
    assert "workflow-runs/wf-9/run.yaml" in swamp.swamp_pull_whole(ds)
    if mode == SHARD_FIRST:
        assert swamp.meta(ds)["commitSeq"] == 4 and ds.index() is None
    if mode == MONOLITH:
        assert set(swamp.index_objects(ds)) == set(before) == {ds.full(swamp.INDEX)}
    assert ok(run_cli("verify", ds.url, "--json", env=ds.env))["status"] == "ok"


def test_verify_checks_shards_against_meta_and_listing(make_datastore):
    ds = make_datastore("gcs")
    swamp.build(ds, SHARD_FIRST)
    ds.raw.put(ds.full("_index/orphan.json"), swamp.js_compact({"version": 1, "entries": {}}))
    report = ok(run_cli("verify", ds.url, "--json", env=ds.env))
    assert any("orphan.json" in w and "not listed" in w for w in report["warnings"])
    ds.raw.delete(ds.full(swamp.shard_key(MODEL_2)))
    assert run_cli("verify", ds.url, "--json", env=ds.env).code == 6  # a listed shard missing: corrupt
    repaired = run_cli("verify", ds.url, "--repair", "--json", env=ds.env)
    assert repaired.code == 0, repaired.stderr
    kinds = {(p["kind"], p["key"]) for p in repaired.json["problems"]}
    assert ("missing-shard", swamp.shard_key(MODEL_2)) in kinds
    assert swamp.swamp_pull_whole(ds).keys() == FILES.keys()  # rebuilt from the listing
    assert swamp.meta(ds)["commitSeq"] == 4


@pytest.mark.parametrize("mode", [DUAL_WRITE, SHARD_FIRST])
def test_rebuild_replaces_the_index_where_it_lives(make_datastore, mode: str):
    ds = make_datastore("s3")
    swamp.build(ds, mode)
    ds.raw.put(ds.full("README.md"), b"longer than it was before")
    report = ok(run_cli("discover", ds.url, "--rebuild", "--json", env=ds.env))
    assert report["status"] == "rebuilt"
    whole = swamp.swamp_pull_whole(ds)
    assert whole["README.md"]["size"] == len(b"longer than it was before")
    assert swamp.swamp_pull_model(ds, "_root")["README.md"]["size"] == len(b"longer than it was before")
    if mode == SHARD_FIRST:
        assert ds.index() is None and swamp.meta(ds)["commitSeq"] == 4
    else:
        # the v1 meta is rewritten only when its partition list changes (not here: swamp's order stays)
        assert swamp.meta(ds)["version"] == 1 and sorted(swamp.meta(ds)["partitions"]) == swamp.PARTITIONS


def test_a_dual_write_datastore_that_lost_its_monolith_is_discovered_into_both(make_datastore):
    ds = make_datastore("file")
    swamp.build(ds, DUAL_WRITE)
    ds.raw.delete(ds.full(swamp.INDEX))
    report = ok(run_cli("discover", ds.url, "--json", env=ds.env))
    assert (report["status"], report["entries"]) == ("discovered", len(FILES))
    assert ds.index()["entries"].keys() == FILES.keys()
    assert swamp.swamp_pull_model(ds, MODEL_1).keys() == {"data/command/shell/model-1/result/1/raw"}


# -- namespaces ------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_namespace_is_a_datastore_of_its_own_in_its_own_layout(make_datastore, tmp_path: Path, backend: str):
    """The parent is a monolith; ``team/`` holds ``.namespace.json`` and a shard-first index of its
    own. Hydrating the parent never brings the namespace; hydrating the namespace reads its shards."""
    ds = make_datastore(backend)
    swamp.build(ds, MONOLITH, {"README.md": b"parent"})
    if ds.kind == "file":
        team = Datastore("file", ds.url + "/team", "", ds.env, LocalRaw(Path(ds.bucket) / "team"), ds.bucket)
    else:
        team = Datastore(ds.kind, ds.url + "/team", "team", ds.env, ds.raw, ds.bucket, ds.endpoint)
    ds.raw.put(ds.full("team/.namespace.json"), b"{}")
    swamp.build(team, SHARD_FIRST)
    ok(cli("hydrate", ds, str(tmp_path / "parent")))
    assert data_files(tmp_path / "parent") == {"README.md": b"parent"}
    report = ok(cli("hydrate", team, str(tmp_path / "team")))
    assert report["pulled"] == len(FILES)
    assert data_files(tmp_path / "team") == FILES

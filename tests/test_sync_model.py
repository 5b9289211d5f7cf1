"""The sync model (SPEC §3 "The sync model"), end to end through the CLI on file://, SeaweedFS and
fake-gcs-server: the six failures of the size-and-mtime engine stay fixed, every row of the table holds
in both directions, ``--force``, ``status`` / ``--dry-run`` write nothing (counted on the wire), the upgrade
path transfers nothing, and a bad base or a malformed sha256 never ends in a traceback.

Races are lined up at the loopback proxy: a request is held there until the other peer has acted.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from syncops import index as idx
from syncops.localfs import PARTIAL_SUFFIX
from tests import wire
from tests.conftest import BACKENDS, CliResult, Datastore, run_cli
from tests.expect import data_files, write
from tests.proxy import FORWARD, Fault, Proxy

CLOUD = ("s3", "gcs")
INDEX = ".datastore-index.json"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``root`` (the base included) with its bytes and mtime: "nothing was written"."""
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()
    }


def base_of(root: Path) -> dict[str, Any]:
    return json.loads((root / INDEX).read_text())


def sync(command: str, ds: Datastore, directory: Path, *flags: str, env: dict[str, str] | None = None) -> CliResult:
    return run_cli(command, ds.url, str(directory), "--json", *flags, env=env if env is not None else ds.env)


def ok(result: CliResult) -> dict[str, Any]:
    assert result.code == 0, result.stderr or result.stdout
    return result.json


def object_write(ds: Datastore, key: str) -> Fault:
    """A fault matching the data write of ``key`` (S3 PUT by path; GCS upload by the name in its body)."""
    if ds.kind == "s3":
        path = f"/{ds.bucket}/{quote(ds.full(key))}"
        return Fault(lambda method, p: method == "PUT" and p.split("?")[0] == path)
    name = json.dumps(ds.full(key)).encode()
    return Fault(wire.is_write("gcs"), body=lambda body: b'"name": ' + name in body or b'"name":' + name in body)


def peers(ds: Datastore, tmp_path: Path, files: dict[str, bytes], count: int = 2) -> list[Path]:
    """Seed ``files`` and bootstrap ``count`` peers from them."""
    ds.seed(files)
    dirs = [tmp_path / f"peer{i}" for i in range(1, count + 1)]
    for directory in dirs:
        ok(sync("bootstrap", ds, directory))
    return dirs


# -- the six failures ------------------------------------------------------------------------------


def test_a_same_size_update_by_a_peer_is_fetched(datastore: Datastore, tmp_path: Path):
    one, two = peers(datastore, tmp_path, {"m/a.json": b"version-1", "m/b.json": b"other"})
    write(two, "m/a.json", b"version-2")
    assert ok(sync("push", datastore, two))["pushed"] == 1
    report = ok(sync("hydrate", datastore, one))
    assert (report["pulled"], report["local_changes"], report["conflicts"]) == (1, [], [])
    assert (one / "m/a.json").read_bytes() == b"version-2"
    assert base_of(one)["entries"]["m/a.json"]["sha256"] == sha(b"version-2")


def test_an_untouched_stale_copy_never_overwrites_newer_data(datastore: Datastore, tmp_path: Path):
    one, two = peers(datastore, tmp_path, {"a.txt": b"old"})
    write(two, "a.txt", b"newer and longer")
    ok(sync("push", datastore, two))
    published = datastore.index()
    report = ok(sync("push", datastore, one))
    assert (report["pushed"], report["conflicts"], report["index_written"]) == (0, [], False)
    assert datastore.raw.get(datastore.full("a.txt")) == b"newer and longer"
    assert datastore.index() == published
    assert ok(sync("status", datastore, one))["to_fetch"] == ["a.txt"]


@pytest.mark.parametrize("backend", CLOUD)
def test_racing_pushes_of_one_key_cannot_interleave(make_datastore, tmp_path: Path, backend: str):
    """Peer 1's data write is held at the proxy until peer 2 has pushed the same key completely; then
    it is released, gets 412, and peer 1 reports a conflict. Bucket and index agree on peer 2's bytes."""
    ds = make_datastore(backend)
    one, two = peers(ds, tmp_path, {"k.bin": b"base"})
    write(one, "k.bin", b"from peer one")
    write(two, "k.bin", b"from peer two!")
    second: list[CliResult] = []
    with Proxy(ds.endpoint) as proxy:
        fault = object_write(ds, "k.bin")
        fault.status, fault.times = FORWARD, 1
        fault.before = lambda: second.append(sync("push", ds, two))
        proxy.add_fault(fault)
        first = sync("push", ds, one, env=wire.proxied_env(backend, ds.env, proxy))
    assert fault.hits == 1 and ok(second[0])["pushed"] == 1
    assert first.code == 7, first.stderr
    assert first.json["conflicts"] == [{"key": "k.bin", "local": "modified", "remote": "modified"}]
    assert first.json["pushed"] == 0
    assert ds.raw.get(ds.full("k.bin")) == b"from peer two!"
    assert ds.index()["entries"]["k.bin"]["sha256"] == sha(b"from peer two!")
    assert (one / "k.bin").read_bytes() == b"from peer one"  # nothing of either side is lost
    # Peer 1 still sees its change as a conflict (never "in sync"), until it chooses a side.
    assert sync("status", ds, one).json["conflicts"] == [{"key": "k.bin", "local": "modified", "remote": "modified"}]


def test_a_same_size_edit_is_pushed_when_the_remote_clock_is_ahead(datastore: Datastore, tmp_path: Path):
    datastore.seed({"f.txt": b"aaaa"})
    ahead = "2099-01-01T00:00:00.000Z"
    index = {
        "version": 1,
        "lastPulled": ahead,
        "entries": {"f.txt": {"key": "f.txt", "size": 4, "lastModified": ahead}},
    }
    datastore.raw.put(datastore.full(INDEX), json.dumps(index).encode())
    cache = tmp_path / "cache"
    ok(sync("hydrate", datastore, cache))
    write(cache, "f.txt", b"bbbb")
    assert ok(sync("push", datastore, cache))["pushed"] == 1
    assert datastore.raw.get(datastore.full("f.txt")) == b"bbbb"
    assert datastore.index()["entries"]["f.txt"]["sha256"] == sha(b"bbbb")


def test_a_body_of_the_right_length_but_wrong_content_never_reaches_its_path(datastore: Datastore, tmp_path: Path):
    datastore.seed({"f.bin": b"good bytes", "other.bin": b"fine"})
    stamp = "2026-05-04T12:00:00.000Z"
    entries = {
        "f.bin": {"key": "f.bin", "size": 10, "lastModified": stamp, "sha256": sha(b"evil bytes")},
        "other.bin": {"key": "other.bin", "size": 4, "lastModified": stamp, "sha256": sha(b"fine")},
    }
    datastore.raw.put(
        datastore.full(INDEX), json.dumps({"version": 1, "lastPulled": stamp, "entries": entries}).encode()
    )
    cache = tmp_path / "cache"
    result = sync("hydrate", datastore, cache)
    assert result.code == 4, result.stderr
    [problem] = result.json["problems"]
    assert problem["key"] == "f.bin" and "sha256" in problem["detail"]
    assert data_files(cache) == {"other.bin": b"fine"}  # the other key is hydrated; no partial file anywhere
    assert not any(p.name.endswith(PARTIAL_SUFFIX) for p in cache.rglob("*"))
    assert sorted(base_of(cache)["entries"]) == ["other.bin"]


@pytest.mark.parametrize("backend", CLOUD)
def test_a_body_corrupted_on_the_wire_is_read_again_by_the_stores_checksum(
    make_datastore, tmp_path: Path, backend: str
):
    """No sha256 in the entry: the store's own checksum (S3 single-part ETag, GCS crc32c/md5) catches a
    flipped byte; one corrupted read is retried, a persistent one fails with nothing at the path."""
    ds = make_datastore(backend)
    ds.seed({"f.bin": b"0123456789" * 100})
    assert run_cli("discover", ds.url, env=ds.env).code == 0
    corrupted = {"left": 1}

    def flip(method: str, path: str, status: int, body: bytes) -> bytes:
        if wire.request_kind(backend, method, path) != wire.OBJECT_GET or status != 200 or not corrupted["left"]:
            return body
        corrupted["left"] -= 1
        return b"X" + body[1:]

    with Proxy(ds.endpoint) as proxy:
        proxy.state.rewrites.append(flip)
        env = wire.proxied_env(backend, ds.env, proxy, AWS_MAX_ATTEMPTS="2", SYNCOPS_GCS_RETRY_TIMEOUT="2")
        report = ok(sync("hydrate", ds, tmp_path / "once", env=env))
        assert report["pulled"] == 1 and wire.count(backend, proxy, wire.OBJECT_GET) == 2
        assert (tmp_path / "once/f.bin").read_bytes() == b"0123456789" * 100
        corrupted["left"] = 1_000
        failed = sync("hydrate", ds, tmp_path / "always", env=env)
    assert failed.code == 4, failed.stderr
    assert not (tmp_path / "always/f.bin").exists()


def test_pushed_entries_carry_sha256_and_a_swamp_hydrated_cache_pushes_nothing(datastore: Datastore, tmp_path: Path):
    """swamp's own push skips same-size edits of entries without sha256; syncops's entries have it. And a
    directory that swamp hydrated (a local index with localMtime and sha256, no syncops fields) is a base."""
    stamp = "2026-05-04T12:00:00.000Z"
    files = {"data/a.json": b"alpha", "data/b.json": b"bravo!"}
    datastore.seed(files)
    remote = {k: {"key": k, "size": len(v), "lastModified": stamp, "sha256": sha(v)} for k, v in files.items()}
    datastore.raw.put(
        datastore.full(INDEX), json.dumps({"version": 1, "lastPulled": stamp, "entries": remote}).encode()
    )
    version = datastore.index_version()
    cache = tmp_path / "swamp-cache"
    local = {}
    for key, data in files.items():
        write(cache, key, data)
        mtime = os.stat(cache / key).st_mtime_ns
        local[key] = {**remote[key], "localMtime": idx.timestamp_from_millis(mtime // 1_000_000)}
    (cache / INDEX).write_text(json.dumps({"version": 1, "lastPulled": stamp, "entries": local}))
    report = ok(sync("push", datastore, cache))
    assert (report["pushed"], report["index_written"]) == (0, False)
    assert datastore.index_version() == version
    write(cache, "data/a.json", b"ALPHA")  # a same-size edit
    assert ok(sync("push", datastore, cache))["pushed"] == 1
    assert datastore.index()["entries"]["data/a.json"]["sha256"] == sha(b"ALPHA")
    assert datastore.index()["entries"]["data/b.json"] == remote["data/b.json"]  # untouched, every field kept


# -- every row of the table, both directions -------------------------------------------------------

LOCAL_EDIT = b"edited here"
REMOTE_EDIT = b"edited remotely!"


def _row(ds: Datastore, tmp_path: Path, local: str, remote: str) -> tuple[Path, Path]:
    """Peer ``mine`` and peer ``other`` bootstrapped from k.txt; then the row's changes on each side."""
    mine, other = peers(ds, tmp_path, {"k.txt": b"original", "still.txt": b"same"})
    if remote == "changed":
        write(other, "k.txt", REMOTE_EDIT)
        ok(sync("push", ds, other))
    if local == "changed":
        write(mine, "k.txt", LOCAL_EDIT)
    elif local == "missing":
        (mine / "k.txt").unlink()
    return mine, other


ROWS = [
    # local, remote, status lists, hydrate: (exit, k.txt after, pulled), push: (exit, remote k.txt after, pushed)
    ("unchanged", "unchanged", ([], [], [], []), (0, b"original", 0), (0, b"original", 0)),
    ("unchanged", "changed", (["k.txt"], [], [], []), (0, REMOTE_EDIT, 1), (0, REMOTE_EDIT, 0)),
    ("changed", "unchanged", ([], ["k.txt"], ["k.txt"], []), (0, LOCAL_EDIT, 0), (0, LOCAL_EDIT, 1)),
    ("changed", "changed", ([], [], [], ["k.txt"]), (7, LOCAL_EDIT, 0), (7, REMOTE_EDIT, 0)),
    ("missing", "unchanged", (["k.txt"], [], [], []), (0, b"original", 1), (0, b"original", 0)),
    ("missing", "changed", (["k.txt"], [], [], []), (0, REMOTE_EDIT, 1), (0, REMOTE_EDIT, 0)),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("local", "remote", "planned", "hydrated", "pushed"), ROWS, ids=[f"{r[0]}-{r[1]}" for r in ROWS]
)
def test_every_row_of_the_table(make_datastore, tmp_path: Path, backend, local, remote, planned, hydrated, pushed):
    ds = make_datastore(backend)
    mine, _ = _row(ds, tmp_path / "h", local, remote)
    status = sync("status", ds, mine).json
    to_fetch, to_upload, local_changes, conflicts = planned
    assert (status["to_fetch"], status["to_upload"], status["local_changes"]) == (to_fetch, to_upload, local_changes)
    assert [c["key"] for c in status["conflicts"]] == conflicts

    result = sync("hydrate", ds, mine)
    code, after, pulled = hydrated
    assert (result.code, result.json["pulled"]) == (code, pulled), result.stderr
    assert (mine / "k.txt").read_bytes() == after
    assert (mine / "still.txt").read_bytes() == b"same"

    ds2 = make_datastore(backend)
    mine, _ = _row(ds2, tmp_path / "p", local, remote)
    result = sync("push", ds2, mine)
    code, after, count = pushed
    assert (result.code, result.json["pushed"]) == (code, count), result.stderr
    assert ds2.raw.get(ds2.full("k.txt")) == after
    assert ds2.index()["entries"]["k.txt"]["size"] == len(after)
    if local == "changed":
        assert (mine / "k.txt").read_bytes() == LOCAL_EDIT  # never lost, whatever happened remotely


@pytest.mark.parametrize("backend", BACKENDS)
def test_force_takes_a_side_and_loses_nothing(make_datastore, tmp_path: Path, backend: str):
    ds = make_datastore(backend)
    mine, _ = _row(ds, tmp_path / "h", "changed", "changed")
    report = ok(sync("hydrate", ds, mine, "--force"))
    assert report["conflicts"] == [] and report["pulled"] == 1
    assert (mine / "k.txt").read_bytes() == REMOTE_EDIT
    [kept] = [p for p in mine.iterdir() if p.name.startswith("k.txt.conflict-")]
    assert kept.read_bytes() == LOCAL_EDIT
    assert ok(sync("status", ds, mine))["to_upload"] == [kept.name]  # an ordinary local file from now on

    ds = make_datastore(backend)
    mine, _ = _row(ds, tmp_path / "p", "changed", "changed")
    report = ok(sync("push", ds, mine, "--force"))
    assert (report["pushed"], report["conflicts"]) == (1, [])
    assert ds.raw.get(ds.full("k.txt")) == LOCAL_EDIT
    assert ds.index()["entries"]["k.txt"]["sha256"] == sha(LOCAL_EDIT)
    assert ok(sync("status", ds, mine))["to_upload"] == []


# -- seeing before syncing -------------------------------------------------------------------------


@pytest.mark.parametrize("backend", CLOUD)
def test_status_and_dry_runs_write_nothing_anywhere(make_datastore, tmp_path: Path, backend: str):
    """Counted on the wire: no write request of any kind, on an unindexed bucket too (no index is
    published); the local directory (its base included) is byte for byte and mtime for mtime unchanged."""
    ds = make_datastore(backend)
    mine, other = peers(ds, tmp_path, {"a.txt": b"a-original", "b.txt": b"b-original", "c.txt": b"c"})
    write(other, "a.txt", b"a-remote-edit")
    ok(sync("push", ds, other))
    write(mine, "b.txt", b"b-local-edit")
    write(mine, "new.txt", b"only here")
    (mine / "c.txt").unlink()
    before = snapshot(mine)
    fresh = make_datastore(backend)  # unindexed: discovery would publish, a plan must not
    fresh.seed({"x.txt": b"x"})
    with Proxy(ds.endpoint) as proxy:
        env = wire.proxied_env(backend, ds.env, proxy)
        status = ok(sync("status", ds, mine, env=env))
        hydrate = ok(sync("hydrate", ds, mine, "--dry-run", env=env))
        push = ok(sync("push", ds, mine, "--dry-run", env=env))
        unindexed = ok(run_cli("status", fresh.url, str(tmp_path / "nowhere"), "--json", env=env))
        writes = [s for s in proxy.seen if s.method not in ("GET", "HEAD")]
    assert writes == []
    assert snapshot(mine) == before
    assert not (tmp_path / "nowhere").exists()
    assert fresh.index() is None
    assert (status["to_fetch"], status["to_upload"], status["local_changes"]) == (
        ["a.txt", "c.txt"], ["b.txt", "new.txt"], ["b.txt", "new.txt"]
    )  # fmt: skip
    assert (hydrate["to_fetch"], hydrate["dry_run"], "to_upload" in hydrate) == (["a.txt", "c.txt"], True, False)
    assert (push["to_upload"], "to_fetch" in push) == (["b.txt", "new.txt"], False)
    assert (unindexed["status"], unindexed["index_written"], unindexed["to_fetch"]) == ("discovered", False, ["x.txt"])


def test_status_for_a_person_is_a_short_table(make_datastore, tmp_path: Path):
    ds = make_datastore("file")
    mine, _ = _row(ds, tmp_path, "changed", "changed")
    result = run_cli("status", ds.url, str(mine), env=ds.env)
    assert result.code == 7 and result.stdout == ""
    assert "0 to fetch, 0 to upload, 0 local changes, 1 conflicts" in result.stderr
    assert '"k.txt": local modified, remote modified' in result.stderr


# -- upgrade and interop paths --------------------------------------------------------------------


@pytest.mark.parametrize("backend", CLOUD)
def test_a_directory_from_the_previous_format_syncs_with_zero_transfers(make_datastore, tmp_path: Path, backend: str):
    ds = make_datastore(backend)
    files = {f"d/{i}.bin": bytes([i]) * (10 + i) for i in range(20)}
    [cache] = peers(ds, tmp_path, files, count=1)
    old = base_of(cache)  # what the previous release wrote: no sha256, no version token, no owner
    old.pop("syncopsDatastore")
    for entry in old["entries"].values():
        entry.pop("sha256"), entry.pop("remoteVersion")
    (cache / INDEX).write_text(json.dumps(old))
    with Proxy(ds.endpoint) as proxy:
        env = wire.proxied_env(backend, ds.env, proxy)
        hydrated = ok(sync("hydrate", ds, cache, env=env))
        # The GET of _index/_meta.json (404: a monolith; issue 11) and the index GET, nothing else.
        assert (hydrated["pulled"], len(proxy.seen)) == (0, 2)
        pushed = ok(sync("push", ds, cache, env=env))
        assert pushed["pushed"] == 0
        assert [s for s in proxy.seen if s.method not in ("GET", "HEAD")] == []
    # No base at all, identical files: compared by size (and sha256 where the index has it), adopted.
    (cache / INDEX).unlink()
    with Proxy(ds.endpoint) as proxy:
        again = ok(sync("hydrate", ds, cache, env=wire.proxied_env(backend, ds.env, proxy)))
        assert (again["pulled"], wire.count(backend, proxy, wire.OBJECT_GET)) == (0, 0)
    assert sorted(base_of(cache)["entries"]) == sorted(files)


def test_a_touched_but_identical_file_is_not_a_change_and_costs_no_request(make_datastore, tmp_path: Path):
    ds = make_datastore("s3")
    [cache] = peers(ds, tmp_path, {"t.txt": b"touch me"}, count=1)
    os.utime(cache / "t.txt", ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    with Proxy(ds.endpoint) as proxy:
        env = wire.proxied_env("s3", ds.env, proxy)
        report = ok(sync("hydrate", ds, cache, env=env))
        # The meta GET (404: a monolith; issue 11) and the index GET.
        assert (report["pulled"], report["local_changes"], len(proxy.seen)) == (0, [], 2)
        assert ok(sync("push", ds, cache, env=env))["pushed"] == 0
    assert base_of(cache)["entries"]["t.txt"]["localMtime"] == "2020-09-13T12:26:40.000Z"


# -- bad input and faults --------------------------------------------------------------------------

BAD_BASES: dict[str, Callable[[Path], None]] = {
    "not JSON": lambda p: p.write_text("{not json"),
    "nested too deeply": lambda p: p.write_text("[" * 100_000 + "]" * 100_000),
    "a FIFO": lambda p: os.mkfifo(p),
    "a directory": lambda p: p.mkdir(),
    "another datastore's": lambda p: p.write_text(
        json.dumps({**json.loads(p.read_text()), "syncopsDatastore": "s3://elsewhere"})
    ),
}


@pytest.mark.parametrize("kind", list(BAD_BASES))
def test_a_base_that_cannot_be_trusted_means_an_unsynced_directory_never_a_mass_transfer(
    make_datastore, tmp_path: Path, kind: str
):
    ds = make_datastore("file")
    files = {"a.txt": b"aaa", "b/c.txt": b"ccc"}
    [cache] = peers(ds, tmp_path, files, count=1)
    base = cache / INDEX
    if kind != "another datastore's":
        base.unlink()
    BAD_BASES[kind](base)
    write(cache, "a.txt", b"AAA-local")  # a real local change must survive the bad base
    before = snapshot(Path(ds.bucket))
    if kind == "a directory":  # read: ignored with a warning; written: a local I/O failure, before any upload
        for command in ("push", "hydrate"):
            failed = sync(command, ds, cache)
            assert (failed.code, failed.json["status"]) == (4, "error"), failed.stderr
            assert ".datastore-index.json" in failed.json["error"]
        assert data_files(cache) == {"a.txt": b"AAA-local", "b/c.txt": b"ccc"}
        assert snapshot(Path(ds.bucket)) == before
        return
    pushed = sync("push", ds, cache)
    assert pushed.code == 7, pushed.stderr  # never synced as far as syncops can tell: a.txt differs
    assert pushed.json["pushed"] == 0
    assert pushed.json["conflicts"] == [{"key": "a.txt", "local": "added", "remote": "added"}]
    assert any("local index" in w and "compared by content" in w for w in pushed.json["warnings"])
    hydrated = sync("hydrate", ds, cache)
    assert (hydrated.code, hydrated.json["pulled"]) == (7, 0), hydrated.stderr
    assert data_files(cache) == {"a.txt": b"AAA-local", "b/c.txt": b"ccc"}
    assert snapshot(Path(ds.bucket)) == before  # not one byte written to the datastore


def test_a_malformed_remote_sha256_is_a_warning_for_hydrate_and_a_problem_for_verify(
    datastore: Datastore, tmp_path: Path
):
    datastore.seed({"f.txt": b"fine"})
    stamp = "2026-05-04T12:00:00.000Z"
    entry = {"key": "f.txt", "size": 4, "lastModified": stamp, "sha256": "not-a-digest"}
    datastore.raw.put(
        datastore.full(INDEX), json.dumps({"version": 1, "lastPulled": stamp, "entries": {"f.txt": entry}}).encode()
    )
    report = ok(sync("hydrate", datastore, tmp_path / "c"))
    assert report["pulled"] == 1 and any("malformed sha256" in w for w in report["warnings"])
    verified = run_cli("verify", datastore.url, "--json", env=datastore.env)
    assert verified.code == 5
    assert [(p["kind"], p["key"]) for p in verified.json["problems"]] == [("malformed-sha256", "f.txt")]


@pytest.mark.parametrize("backend", CLOUD)
def test_a_push_killed_between_data_and_index_is_finished_without_uploading_again(
    make_datastore, tmp_path: Path, backend: str
):
    ds = make_datastore(backend)
    [cache] = peers(ds, tmp_path, {"k.bin": b"before", "other.bin": b"o"}, count=1)
    write(cache, "k.bin", b"after the edit")
    with Proxy(ds.endpoint) as proxy:
        proxy.add_fault(wire.index_write_fault(backend, status=403, times=None))
        killed = sync("push", ds, cache, env=wire.proxied_env(backend, ds.env, proxy))
    assert killed.code == 3, killed.stderr
    assert ds.raw.get(ds.full("k.bin")) == b"after the edit"  # the data landed, the index did not
    assert ds.index()["entries"]["k.bin"]["size"] == len(b"before")
    with Proxy(ds.endpoint) as proxy:
        rerun = ok(sync("push", ds, cache, env=wire.proxied_env(backend, ds.env, proxy)))
        assert (rerun["pushed"], rerun["conflicts"]) == (1, [])
        assert wire.count(backend, proxy, wire.OBJECT_PUT) == 0  # finished, not uploaded again
    assert ds.index()["entries"]["k.bin"]["sha256"] == sha(b"after the edit")
    assert ok(sync("status", ds, cache))["to_upload"] == []


def test_a_multipart_upload_carries_its_condition_and_its_sha256(make_datastore, tmp_path: Path, monkeypatch):
    """Above the multipart threshold (lowered here to keep the test small) parts are read in order and
    hashed once; the condition travels on CompleteMultipartUpload, so a stale base completes nothing."""
    import syncops.stores.s3 as s3_store
    from syncops.push import push

    monkeypatch.setattr(s3_store, "MULTIPART_THRESHOLD", 1 << 20)
    monkeypatch.setattr(s3_store, "PART_SIZE", 5 << 20)
    ds = make_datastore("s3")
    mine = tmp_path / "mine"
    data = os.urandom(12 << 20)  # three parts: 5 + 5 + 2 MiB
    write(mine, "big.bin", data)
    report = push(ds.store(), mine)
    assert (report.pushed, report.conflicts) == (1, [])
    assert ds.raw.get(ds.full("big.bin")) == data
    assert ds.index()["entries"]["big.bin"]["sha256"] == sha(data)
    ds.raw.put(ds.full("big.bin"), b"someone else's bytes")  # the object moves on behind the base
    write(mine, "big.bin", os.urandom(12 << 20))
    stale = push(ds.store(), mine)
    assert (stale.pushed, [c["key"] for c in stale.conflicts], stale.exit_code) == (0, ["big.bin"], 7)
    assert ds.raw.get(ds.full("big.bin")) == b"someone else's bytes"


def test_a_resumable_gcs_upload_is_hashed_once_and_sends_its_condition(make_datastore, tmp_path: Path):
    """Above 8 MiB google-cloud-storage uploads in resumable chunks, seeking back on retries: the digest is
    still that of the bytes sent. The generation condition travels on the session's initiation (GCS
    enforces it there; fake-gcs-server ignores it on resumable uploads, measured, so the request itself is
    what is checked here; the conflict itself is pinned below 8 MiB by the table tests)."""
    ds = make_datastore("gcs")
    mine = tmp_path / "mine"
    data = os.urandom(9 << 20)
    write(mine, "big.bin", data)
    assert ok(sync("push", ds, mine))["pushed"] == 1
    assert ds.raw.get(ds.full("big.bin")) == data
    assert ds.index()["entries"]["big.bin"]["sha256"] == sha(data)
    generation = ds.raw.version(ds.full("big.bin"))
    write(mine, "big.bin", os.urandom(9 << 20))
    with Proxy(ds.endpoint) as proxy:
        assert ok(sync("push", ds, mine, env=wire.proxied_env("gcs", ds.env, proxy)))["pushed"] == 1
        starts = [s.path for s in proxy.seen if s.method == "POST" and "uploadType=resumable" in s.path]
    assert len(starts) == 1 and f"ifGenerationMatch={generation}" in starts[0]

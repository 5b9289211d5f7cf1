"""Racing peers (SPEC §3 discover 4, push): separate processes against one datastore.

* Six peers discovering the same unindexed bucket all succeed with the same index, and exactly one
  of them writes it; the others adopt it. Through the proxy, every peer's listing is held until all
  six have listed, so all six really do attempt the create-only write.
* Two peers pushing different files at once lose no entry: the loser of the ``If-Match`` race
  re-reads and re-merges.
* A backend that answers the conditional header itself with 501 Not Implemented gets the documented
  fallback: one unconditional write.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests import wire
from tests.conftest import BACKENDS, CliResult, Datastore, run_cli, syncops_command
from tests.expect import assert_index_after_push, assert_index_is
from tests.proxy import FORWARD, Fault, Proxy

PEERS = 6
FILES = {f"data/part-{i:02d}.bin": bytes([i]) * (100 + i) for i in range(12)}


def run_at_once(commands: list[list[str]], env: dict[str, str]) -> list[CliResult]:
    """Start every command before waiting for any: separate processes, as separate machines would be."""
    procs = [
        subprocess.Popen(
            [*syncops_command(), *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        for args in commands
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append(CliResult(proc.returncode, out.decode(), err.decode()))
    return results


def _check_one_writer(ds: Datastore, results: list[CliResult]) -> None:
    for result in results:
        assert result.code == 0, result.stderr
    reports = [r.json for r in results]
    statuses = [r["status"] for r in reports]
    assert statuses.count("discovered") == 1 and set(statuses) <= {"discovered", "adopted", "found"}, statuses
    assert sum(r["index_written"] for r in reports) == 1, "exactly one peer wrote the index"
    assert all(r["entries"] == len(FILES) for r in reports)
    assert_index_is(ds, FILES)


@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_six_peers_discovering_at_once_agree_and_exactly_one_writes(make_datastore, backend: str):
    ds = make_datastore(backend)
    ds.seed(FILES)
    with Proxy(ds.endpoint) as proxy:
        # Hold every listing until all six peers have listed: all of them then race to publish.
        gate = proxy.add_fault(Fault(wire.is_list(backend), status=FORWARD, times=None, gather=PEERS))
        env = wire.proxied_env(backend, ds.env, proxy)
        results = run_at_once([["discover", ds.url, "--json"]] * PEERS, env)

        assert gate.hits == PEERS, "every peer listed: none of them found an index"
        assert wire.count(backend, proxy, wire.INDEX_PUT) == PEERS, "every peer tried the create-only write"
        assert wire.count(backend, proxy, wire.INDEX_PUT, 200) == 1, "exactly one write landed"
        assert wire.count(backend, proxy, wire.INDEX_PUT, 412) == PEERS - 1
    _check_one_writer(ds, results)
    assert sorted(r.json["status"] for r in results) == ["adopted"] * (PEERS - 1) + ["discovered"]


def test_six_local_peers_discovering_at_once_agree_and_exactly_one_writes(make_datastore):
    """The file:// backend makes the same promise with an flock-guarded create-only write."""
    ds = make_datastore("file")
    ds.seed(FILES)
    results = run_at_once([["discover", ds.url, "--json"]] * PEERS, ds.env)
    _check_one_writer(ds, results)


def _write_tree(root: Path, files: dict[str, bytes]) -> None:
    for key, data in files.items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(data)


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_peers_pushing_different_files_at_once_lose_no_entry(make_datastore, tmp_path: Path, backend: str):
    ds = make_datastore(backend)
    ds.seed(FILES)
    assert run_cli("discover", ds.url, env=ds.env).code == 0
    mine = {"peer-a/one.json": b'{"a": 1}', "peer-a/two.json": b'{"a": 2}'}
    theirs = {"peer-b/one.json": b'{"b": 1}', "shared/b.csv": b"b,1\n"}
    _write_tree(tmp_path / "a", mine)
    _write_tree(tmp_path / "b", theirs)
    commands = [["push", ds.url, str(tmp_path / "a"), "--json"], ["push", ds.url, str(tmp_path / "b"), "--json"]]

    if backend == "file":
        results = run_at_once(commands, ds.env)
    else:
        with Proxy(ds.endpoint) as proxy:
            # Both index writes are held until both are in flight, on the same version: one must lose.
            proxy.add_fault(wire.index_write_fault(backend, status=FORWARD, times=2, gather=2))
            results = run_at_once(commands, wire.proxied_env(backend, ds.env, proxy))
            assert wire.count(backend, proxy, wire.INDEX_PUT, 412) >= 1, "the two index writes really raced"
            assert wire.count(backend, proxy, wire.INDEX_PUT, 200) == 2

    for result in results:
        assert result.code == 0, result.stderr
        assert result.json["pushed"] == 2
    assert_index_after_push(ds, FILES, {**mine, **theirs})
    for key, data in {**mine, **theirs}.items():
        assert ds.raw.get(ds.full(key)) == data


# -- the documented fallback when a backend refuses the conditional header itself ------------------


@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_discovery_falls_back_to_one_unconditional_write_when_the_condition_is_unsupported(
    make_datastore, backend: str
):
    ds = make_datastore(backend)
    ds.seed(FILES)
    with Proxy(ds.endpoint) as proxy:
        refused = proxy.add_fault(wire.conditional_write_fault(backend, 501))
        result = run_cli("discover", ds.url, "--json", env=wire.proxied_env(backend, ds.env, proxy))

        assert result.code == 0, result.stderr
        assert refused.hits == 1, "the conditional write was tried first"
        assert wire.count(backend, proxy, wire.INDEX_PUT, 501) == 1
        assert wire.count(backend, proxy, wire.INDEX_PUT, 200) == 1, "then exactly one unconditional write"
    assert (result.json["status"], result.json["index_written"]) == ("discovered", True)
    assert any("unconditionally" in w for w in result.json["warnings"])
    assert_index_is(ds, FILES)


@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_push_and_rebuild_fall_back_to_one_unconditional_write_when_the_condition_is_unsupported(
    make_datastore, tmp_path: Path, backend: str
):
    ds = make_datastore(backend)
    ds.seed(FILES)
    assert run_cli("discover", ds.url, env=ds.env).code == 0
    added = {"new/file.txt": b"new"}
    _write_tree(tmp_path / "src", added)
    with Proxy(ds.endpoint) as proxy:
        proxy.add_fault(wire.conditional_write_fault(backend, 501, times=None))
        env = wire.proxied_env(backend, ds.env, proxy)
        pushed = run_cli("push", ds.url, str(tmp_path / "src"), "--json", env=env)
        assert pushed.code == 0, pushed.stderr
        assert any("unconditionally" in w for w in pushed.json["warnings"])
        assert_index_after_push(ds, FILES, added)

        ds.raw.put(ds.full("late/object.bin"), b"late")
        proxy.reset_counts()
        rebuilt = run_cli("discover", ds.url, "--rebuild", "--json", env=env)
        assert rebuilt.code == 0, rebuilt.stderr
        assert (rebuilt.json["status"], rebuilt.json["index_written"]) == ("rebuilt", True)
        assert any("unconditionally" in w for w in rebuilt.json["warnings"])
        assert wire.count(backend, proxy, wire.INDEX_PUT, 501) == 1
        assert wire.count(backend, proxy, wire.INDEX_PUT, 200) == 1
    assert_index_is(ds, {**FILES, **added, "late/object.bin": b""})  # rebuilt: all from the listing

"""push against real servers (SPEC §3 "push"), through the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from tests.conftest import Datastore, run_cli

REMOTE = {"data/r1.json": b'{"remote": 1}', "data/deep/r2.bin": b"\x00\x01" * 500}


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for key, data in files.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_push_to_an_unindexed_populated_bucket_keeps_every_remote_entry(datastore: Datastore, tmp_path: Path):
    """(E) discovery runs first, so the published index is remote entries ∪ local files."""
    datastore.seed(REMOTE)
    local = tmp_path / "work"
    write_tree(local, {"data/new.txt": b"made here", "data/.lock": b"internal, never pushed"})
    result = run_cli("push", datastore.url, str(local), "--json", env=datastore.env)
    assert result.code == 0, result.stderr
    assert (result.json["status"], result.json["pushed"], result.json["entries"]) == ("discovered", 1, 3)
    assert result.json["bytes"] == len(b"made here")

    published = datastore.index()
    assert published is not None
    assert sorted(published["entries"]) == ["data/deep/r2.bin", "data/new.txt", "data/r1.json"]
    assert published["entries"]["data/new.txt"]["size"] == 9
    assert all("localMtime" not in e for e in published["entries"].values())
    assert datastore.raw.get(datastore.full("data/new.txt")) == b"made here"
    assert datastore.raw.get(datastore.full("data/.lock")) is None
    for key, data in REMOTE.items():
        assert datastore.raw.get(datastore.full(key)) == data

    # The base records what this directory holds: the pushed file, at the version it wrote.
    base = json.loads((local / ".datastore-index.json").read_text())
    assert sorted(base["entries"]) == ["data/new.txt"]
    mine = base["entries"]["data/new.txt"]
    assert mine["sha256"] == hashlib.sha256(b"made here").hexdigest() == published["entries"]["data/new.txt"]["sha256"]
    assert mine["lastModified"] == published["entries"]["data/new.txt"]["lastModified"]
    assert mine["remoteVersion"] and "localMtime" in mine


def test_push_with_nothing_new_writes_nothing(datastore: Datastore, tmp_path: Path):
    local = tmp_path / "work"
    write_tree(local, {"a.txt": b"a", "b/c.txt": b"c"})
    first = run_cli("push", datastore.url, str(local), "--json", env=datastore.env)
    assert first.code == 0, first.stderr
    assert (first.json["status"], first.json["pushed"], first.json["index_written"]) == ("empty", 2, True)
    version = datastore.index_version()
    again = run_cli("push", datastore.url, str(local), "--json", env=datastore.env)
    assert again.code == 0, again.stderr
    assert (again.json["status"], again.json["pushed"], again.json["index_written"]) == ("found", 0, False)
    assert datastore.index_version() == version


def test_changed_files_are_pushed_and_the_index_is_replaced_conditionally(datastore: Datastore, tmp_path: Path):
    local = tmp_path / "work"
    write_tree(local, {"a.txt": b"one", "b.txt": b"two"})
    assert run_cli("push", datastore.url, str(local), env=datastore.env).code == 0
    version = datastore.index_version()

    (local / "a.txt").write_bytes(b"uno")  # same size, newer mtime
    later = time.time() + 5
    os.utime(local / "a.txt", (later, later))
    (local / "b.txt").write_bytes(b"a longer body")  # another size
    result = run_cli("push", datastore.url, str(local), "--json", env=datastore.env)
    assert result.code == 0, result.stderr
    assert result.json["pushed"] == 2
    assert datastore.index_version() != version
    assert datastore.raw.get(datastore.full("a.txt")) == b"uno"
    assert datastore.index()["entries"]["b.txt"]["size"] == len(b"a longer body")


def test_push_never_deletes_remote_objects(datastore: Datastore, tmp_path: Path):
    datastore.seed(REMOTE)
    local = tmp_path / "work"
    assert run_cli("bootstrap", datastore.url, str(local), env=datastore.env).code == 0
    (local / "data/r1.json").unlink()
    write_tree(local, {"extra.txt": b"x"})
    result = run_cli("push", datastore.url, str(local), "--json", env=datastore.env)
    assert result.code == 0, result.stderr
    assert result.json["pushed"] == 1
    assert datastore.raw.get(datastore.full("data/r1.json")) == REMOTE["data/r1.json"]
    assert "data/r1.json" in datastore.index()["entries"]


def test_a_hydrated_cache_pushes_nothing(datastore: Datastore, tmp_path: Path):
    datastore.seed(REMOTE)
    local = tmp_path / "work"
    assert run_cli("bootstrap", datastore.url, str(local), env=datastore.env).code == 0
    result = run_cli("push", datastore.url, str(local), "--json", env=datastore.env)
    assert (result.code, result.json["pushed"], result.json["index_written"]) == (0, 0, False)


def test_push_of_a_missing_directory_is_bad_input(datastore: Datastore, tmp_path: Path):
    result = run_cli("push", datastore.url, str(tmp_path / "nope"), env=datastore.env)
    assert result.code == 2
    assert "not a directory" in result.stderr


def test_index_removed_while_pushing_is_rebuilt_from_the_listing_not_emptied(make_datastore, tmp_path: Path):
    """An index deleted between push's read and its write must not become "only my files".

    The proxy deletes the index (as an operator forcing re-discovery would) just before push's
    conditional index PUT reaches the server; the retry re-lists instead of merging into nothing.
    """
    from tests.proxy import FORWARD, Fault, Proxy

    ds = make_datastore("s3")
    ds.seed(REMOTE)
    assert run_cli("discover", ds.url, env=ds.env).code == 0
    local = tmp_path / "work"
    write_tree(local, {"mine.txt": b"pushed"})
    index_key = ds.full(".datastore-index.json")
    with Proxy(ds.endpoint) as proxy:
        proxy.add_fault(
            Fault(
                lambda method, path: method == "PUT" and path.split("?")[0].endswith("/.datastore-index.json"),
                status=FORWARD,
                times=1,
                before=lambda: ds.raw.delete(index_key),
            )
        )
        result = run_cli("push", ds.url, str(local), "--json", env=dict(ds.env, AWS_ENDPOINT_URL=proxy.endpoint))
    assert result.code == 0, result.stderr
    assert sorted(ds.index()["entries"]) == sorted([*REMOTE, "mine.txt"])
    assert result.json["entries"] == 3


def test_push_skips_a_file_that_vanished_before_its_upload(tmp_path: Path):
    from syncops.push import push as run_push
    from syncops.stores import open_store

    store_dir = tmp_path / "store"
    store_dir.mkdir()
    local = tmp_path / "work"
    write_tree(local, {"keep.txt": b"k", "gone.swp": b"editor swap"})
    from syncops import workdir

    original = workdir.scan

    def scan_then_vanish(source, warnings):
        files = original(source, warnings)
        (local / "gone.swp").unlink()  # an editor removes its swap file mid-push
        return files

    workdir.scan = scan_then_vanish
    try:
        report = run_push(open_store(f"file://{store_dir}"), local)
    finally:
        workdir.scan = original
    assert report.pushed == 1
    assert any("gone.swp" in w and "vanished" in w for w in report.warnings)
    assert (store_dir / "keep.txt").read_bytes() == b"k"
    assert not (store_dir / "gone.swp").exists()

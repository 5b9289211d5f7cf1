"""hydrate / bootstrap against real servers (SPEC §3 "hydrate"), through the CLI."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from syncops import index as idx
from syncops.localfs import PARTIAL_SUFFIX
from tests.conftest import Datastore, run_cli

rng = random.Random(7)
FILES = {
    "data/models/a.json": b'{"a": 1}\n',
    "data/models/deep/b.json": b'{"b": [1, 2, 3]}\n',
    "data/raw/random.bin": rng.randbytes(3 * 1024 * 1024 + 17),
    "data/raw/empty.bin": b"",
    "data/names/with space & ünïcode.txt": "hello ✓\n".encode(),
    "top.csv": b"x,y\n1,2\n",
}


def local_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".datastore-index.json"
    }


def test_bootstrap_hydrates_every_file_byte_for_byte(datastore: Datastore, tmp_path: Path):
    """(B) an unindexed bucket: discovered, published, and every file lands whole, with its mtime."""
    datastore.seed(FILES)
    target = tmp_path / "cache"
    result = run_cli("bootstrap", datastore.url, str(target), "--json", env=datastore.env)
    assert result.code == 0, result.stderr
    report = result.json
    assert (report["status"], report["entries"], report["pulled"], report["skipped"], report["stale"]) == (
        "discovered",
        len(FILES),
        len(FILES),
        0,
        0,
    )
    assert report["bytes"] == sum(len(v) for v in FILES.values())
    assert report["index_written"] is True
    assert local_files(target) == FILES
    assert not [p for p in target.rglob("*") if p.name.endswith(PARTIAL_SUFFIX)]

    remote = datastore.index()
    assert remote is not None
    local = json.loads((target / ".datastore-index.json").read_text())
    assert local["version"] == 1
    assert set(local["entries"]) == set(FILES)
    for key, entry in local["entries"].items():
        remote_entry = remote["entries"][key]
        assert {k: entry[k] for k in ("key", "size", "lastModified")} == remote_entry
        mtime = (target / key).stat().st_mtime
        assert idx.timestamp_from_epoch(mtime) == remote_entry["lastModified"]
        assert entry["localMtime"] == remote_entry["lastModified"]


def test_second_peer_writes_nothing_and_a_rerun_downloads_nothing(datastore: Datastore, tmp_path: Path):
    """(F) peer 2 against a discovered bucket leaves the index version as it was; reruns pull 0."""
    datastore.seed(FILES)
    first = run_cli("bootstrap", datastore.url, str(tmp_path / "peer1"), "--json", env=datastore.env)
    assert first.code == 0, first.stderr
    version = datastore.index_version()
    assert version is not None
    index_bytes = datastore.raw.get(datastore.full(".datastore-index.json"))

    second = run_cli("bootstrap", datastore.url, str(tmp_path / "peer2"), "--json", env=datastore.env)
    assert second.code == 0, second.stderr
    assert (second.json["status"], second.json["index_written"], second.json["pulled"]) == ("found", False, len(FILES))
    assert local_files(tmp_path / "peer2") == FILES

    rerun = run_cli("hydrate", datastore.url, str(tmp_path / "peer2"), "--json", env=datastore.env)
    assert rerun.code == 0, rerun.stderr
    assert (rerun.json["pulled"], rerun.json["skipped"], rerun.json["bytes"]) == (0, len(FILES), 0)

    assert datastore.index_version() == version
    assert datastore.raw.get(datastore.full(".datastore-index.json")) == index_bytes


def test_missing_files_are_fetched_again_and_local_edits_are_kept(datastore: Datastore, tmp_path: Path):
    datastore.seed(FILES)
    target = tmp_path / "cache"
    assert run_cli("bootstrap", datastore.url, str(target), env=datastore.env).code == 0
    (target / "top.csv").unlink()
    (target / "data/models/a.json").write_bytes(b"cut")
    result = run_cli("hydrate", datastore.url, str(target), "--json", env=datastore.env)
    assert result.code == 0, result.stderr
    assert (result.json["pulled"], result.json["skipped"]) == (1, len(FILES) - 1)
    assert result.json["local_changes"] == ["data/models/a.json"]
    assert local_files(target) == {**FILES, "data/models/a.json": b"cut"}


def test_an_entry_whose_object_vanished_is_counted_stale(datastore: Datastore, tmp_path: Path):
    datastore.seed(FILES)
    assert run_cli("discover", datastore.url, env=datastore.env).code == 0
    datastore.raw.delete(datastore.full("top.csv"))
    target = tmp_path / "cache"
    result = run_cli("hydrate", datastore.url, str(target), "--json", env=datastore.env)
    assert result.code == 0, result.stderr
    assert (result.json["status"], result.json["pulled"], result.json["stale"]) == ("found", len(FILES) - 1, 1)
    assert any("top.csv" in w and "gone" in w for w in result.json["warnings"])
    assert not (target / "top.csv").exists()
    local = json.loads((target / ".datastore-index.json").read_text())
    assert "top.csv" not in local["entries"]


def test_empty_datastore_hydrates_nothing_and_says_so(datastore: Datastore, tmp_path: Path):
    target = tmp_path / "cache"
    result = run_cli("bootstrap", datastore.url, str(target), env=datastore.env)
    assert result.code == 0
    assert "the datastore is empty" in result.stderr
    assert datastore.raw.keys() == []
    assert json.loads((target / ".datastore-index.json").read_text())["entries"] == {}


@pytest.mark.parametrize("kind", ["s3", "gcs"])
def test_prefixed_datastore_hydrates_relative_paths(make_datastore, kind, tmp_path: Path):
    """(I) objects under env/prod land at DIR/<relative key>; objects outside the prefix do not."""
    ds = make_datastore(kind, prefix="env/prod")
    ds.seed(FILES)
    ds.raw.put("env/production/x.json", b"neighbour")
    target = tmp_path / "cache"
    result = run_cli("bootstrap", ds.url, str(target), "--json", env=ds.env)
    assert result.code == 0, result.stderr
    assert local_files(target) == FILES


def test_concurrency_one_gives_the_same_result(make_datastore, tmp_path: Path):
    ds = make_datastore("s3")
    ds.seed(FILES)
    result = run_cli("hydrate", ds.url, str(tmp_path / "c"), "--concurrency", "1", "--json", env=ds.env)
    assert result.code == 0, result.stderr
    assert local_files(tmp_path / "c") == FILES


def test_a_gcs_hydrate_of_an_indexed_datastore_never_loads_the_library(make_datastore, tmp_path: Path):
    """Reads go through the media-download data plane: google-cloud-storage (with requests,
    google-api-core and grpc, a fifth of a small hydrate's CPU) is loaded only by a call that needs it."""
    ds = make_datastore("gcs", prefix="env")
    ds.seed(FILES)
    assert run_cli("discover", ds.url, env=ds.env).code == 0
    program = (
        "import sys\n"
        "from syncops.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "print(sorted(m for m in ('google.cloud.storage', 'requests', 'grpc') if m in sys.modules))\n"
    )
    target = tmp_path / "c"
    proc = subprocess.run(
        [sys.executable, "-c", program, "hydrate", ds.url, str(target)],
        env=ds.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    assert local_files(target) == FILES


def test_hydrate_never_follows_a_symlink_out_of_the_target(make_datastore, tmp_path: Path):
    ds = make_datastore("file")
    ds.seed({"link/escape.txt": b"must not land outside", "ok.txt": b"fine"})
    target = tmp_path / "cache"
    outside = tmp_path / "outside"
    outside.mkdir()
    target.mkdir()
    os.symlink(outside, target / "link")
    result = run_cli("hydrate", ds.url, str(target), "--json", env=ds.env)
    assert result.code == 4, result.stderr  # done, with a key that could not be brought
    assert list(outside.iterdir()) == []
    assert (target / "ok.txt").read_bytes() == b"fine"
    [problem] = result.json["problems"]
    assert problem["key"] == "link/escape.txt" and "symlink" in problem["detail"]
    assert sorted(json.loads((target / ".datastore-index.json").read_text())["entries"]) == ["ok.txt"]


@pytest.mark.parametrize("inside", ["root", "below"])
def test_hydrating_into_the_file_datastore_itself_is_refused(make_datastore, inside):
    """DIR equal to, or inside, a file:// datastore would overwrite its index or turn copies into data."""
    ds = make_datastore("file")
    ds.seed({"a.txt": b"a"})
    assert run_cli("discover", ds.url, env=ds.env).code == 0
    before = ds.raw.get(".datastore-index.json")
    target = ds.bucket if inside == "root" else f"{ds.bucket}/cache"
    for command in ("hydrate", "push"):
        result = run_cli(command, ds.url, target, env=ds.env)
        assert result.code == 2, result.stderr
        assert "overlap" in result.stderr
    assert ds.raw.get(".datastore-index.json") == before
    assert ds.raw.keys() == [".datastore-index.json", "a.txt"]


def test_a_key_with_a_255_byte_basename_hydrates(datastore: Datastore, tmp_path: Path):
    """Temp files get short names of their own, so the longest legal name still lands."""
    long_key = "deep/" + "n" * 251 + ".bin"
    datastore.seed({long_key: b"long name", "short.txt": b"s"})
    result = run_cli("bootstrap", datastore.url, str(tmp_path / "c"), "--json", env=datastore.env)
    assert result.code == 0, result.stderr
    assert (tmp_path / "c" / long_key).read_bytes() == b"long name"


@pytest.mark.parametrize("kind", ["s3", "gcs"])
def test_a_folder_object_for_the_prefix_itself_is_not_a_key(make_datastore, kind, tmp_path: Path):
    ds = make_datastore(kind, prefix="env/prod")
    ds.raw.put("env/prod/", b"")  # what a console's "create folder" makes
    ds.seed({"a.txt": b"a"})
    result = run_cli("bootstrap", ds.url, str(tmp_path / "c"), "--json", env=ds.env)
    assert result.code == 0, result.stderr
    assert result.json["warnings"] == []
    assert result.json["entries"] == 1


def test_a_local_write_failure_exits_4_with_one_json_object(make_datastore, tmp_path: Path):
    """A local index path taken by a directory: one clear error and exit code, never a traceback."""
    ds = make_datastore("file")
    ds.seed({"a.txt": b"a"})
    target = tmp_path / "c"
    (target / ".datastore-index.json").mkdir(parents=True)
    result = run_cli("hydrate", ds.url, str(target), "--json", env=ds.env)
    assert result.code == 4
    assert "Traceback" not in result.stderr
    assert result.json["status"] == "error"
    assert "local file system error" in result.json["error"]

"""Hostile input (SPEC §2 unsafe keys, §3 discover 5): keys that could climb out of the target or
confuse a terminal, in a listing and in a crafted remote index, are never written to disk nor
indexed, and are reported with the key escaped; a corrupt index exits 6 naming the object;
internal files inside an index are ignored by hydrate and reported by verify.

SeaweedFS refuses ``..`` and backslash keys on PUT, so hostile listing entries are injected by
rewriting the listing response in the proxy (placeholders are seeded, then renamed on the wire);
the ``file://`` backend gets real hostile file names and symlinks.
"""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path
from urllib.parse import quote

import pytest

from syncops.keys import escape_key
from tests import wire
from tests.conftest import BACKENDS, Datastore, run_cli
from tests.expect import assert_hydrated, assert_index_is, data_files
from tests.proxy import Proxy

INDEX = ".datastore-index.json"
SAFE = {"data/ok.txt": b"fine", "data/sub/also.bin": b"\x00\x01\x02"}

#: Keys no listing or index may turn into a path (relative to the datastore prefix).
HOSTILE_LISTED = [
    "../../escape-dots.txt",
    "/abs/escape-absolute.txt",
    "dir\\..\\..\\escape-backslash.txt",
    "nul\x00byte.txt",
    "ctl\x1b[31mred.txt",
    "csi\x9b2J.txt",
    "new\nline.txt",
    "dir//empty-segment.txt",
    "./dot-segment.txt",
    "data/../../up.txt",
]


def _files_outside(root: Path, target: Path, ds: Datastore) -> list[str]:
    """Every file under ``root`` that is neither inside ``target`` nor in a ``file://`` datastore."""
    allowed = [target] + ([Path(ds.bucket)] if ds.kind == "file" else [])
    return [str(p) for p in root.rglob("*") if p.is_file() and not any(a in p.parents for a in allowed)]


def _assert_reported(warnings: list[str], keys: list[str]) -> None:
    text = "\n".join(warnings)
    for key in keys:
        assert escape_key(key) in text, f"{escape_key(key)} not reported"
    assert not any(unicodedata.category(ch) == "Cc" and ch != "\n" for ch in text), "keys are shown escaped"
    assert all("\n" not in w for w in warnings)


@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_hostile_keys_in_a_listing_are_skipped_reported_and_never_written(make_datastore, tmp_path: Path, backend: str):
    ds = make_datastore(backend, prefix="env")
    placeholders = {f"hostile/p{i}": key for i, key in enumerate(HOSTILE_LISTED)}
    ds.seed(SAFE)
    ds.seed({name: b"would escape" for name in placeholders})

    def rename(method: str, path: str, status: int, body: bytes) -> bytes:
        if wire.request_kind(backend, method, path) != wire.LIST:
            return body
        for name, evil in placeholders.items():
            if backend == "s3":  # boto3 lists with encoding-type=url and decodes the keys
                body = body.replace(f"<Key>env/{name}</Key>".encode(), f"<Key>env/{quote(evil)}</Key>".encode())
            else:
                body = body.replace(json.dumps(f"env/{name}").encode(), json.dumps(f"env/{evil}").encode())
        return body

    target = tmp_path / "deep" / "down" / "target"
    with Proxy(ds.endpoint) as proxy:
        proxy.state.rewrites.append(rename)
        result = run_cli("bootstrap", ds.url, str(target), "--json", env=wire.proxied_env(backend, ds.env, proxy))
        assert result.code == 0, result.stderr
        assert wire.count(backend, proxy, wire.OBJECT_GET) == len(SAFE), "no hostile key was even fetched"

    report = result.json
    assert (report["status"], report["entries"], report["pulled"]) == ("discovered", len(SAFE), len(SAFE))
    _assert_reported(report["warnings"], HOSTILE_LISTED)
    assert_index_is(ds, SAFE)
    assert _files_outside(tmp_path, target, ds) == []
    assert_hydrated(target, SAFE)


def test_hostile_local_names_and_symlinks_never_lead_outside(make_datastore, tmp_path: Path):
    """file:// datastore with backslash, control-character and newline names and symlinks out of it;
    a target whose subdirectory is a symlink to elsewhere is not written through."""
    ds = make_datastore("file")
    ds.seed(SAFE)
    root = Path(ds.bucket)
    hostile = ["back\\slash.txt", "ctl\x07bell.txt", "new\nline.txt", "data/esc\x1b.txt", "nel\x85.txt"]
    for name in hostile:
        (root / name).write_bytes(b"hostile")
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "passwd").write_bytes(b"never read")
    (root / "linked").symlink_to(secret)
    (root / "data" / "link.txt").symlink_to(secret / "passwd")

    target = tmp_path / "target"
    result = run_cli("bootstrap", ds.url, str(target), "--json", env=ds.env)
    assert result.code == 0, result.stderr
    _assert_reported(result.json["warnings"], hostile)
    assert_index_is(ds, SAFE)
    assert_hydrated(target, SAFE)

    # A second cache whose "data" directory is a symlink to somewhere else: never written through.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    trap = tmp_path / "trap"
    trap.mkdir()
    (trap / "data").symlink_to(elsewhere)
    trapped = run_cli("hydrate", ds.url, str(trap), "--json", env=ds.env)
    assert trapped.code == 4, trapped.stderr  # done with keys that could not be brought, each named
    assert list(elsewhere.iterdir()) == []
    blocked = [p for p in trapped.json["problems"] if p["key"].startswith("data/")]
    assert blocked and all("symlink" in p["detail"] for p in blocked)


CRAFTED_UNSAFE = ["../../escape.txt", "/etc/escape.txt", "a\\b.txt", "nul\x00.txt", "bell\x07.txt", "x//y.txt"]
CRAFTED_INTERNAL = ["_control/lease", "data/.lock", ".push-queue.json", "db/_catalog.db-wal"]


def crafted(ds: Datastore) -> bytes:
    stamp = "2026-05-04T12:00:00.000Z"
    keys = [*SAFE, *CRAFTED_UNSAFE, *CRAFTED_INTERNAL]
    sizes = {**{k: len(v) for k, v in SAFE.items()}, **{k: 4 for k in CRAFTED_INTERNAL}}
    entries = {k: {"key": k, "size": sizes.get(k, 6), "lastModified": stamp} for k in keys}
    return json.dumps({"version": 1, "lastPulled": stamp, "entries": entries}).encode()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_crafted_index_is_hydrated_safely_and_verify_reports_it(make_datastore, tmp_path: Path, backend: str):
    ds = make_datastore(backend)
    ds.seed(SAFE)
    ds.seed({k: b"intl" for k in CRAFTED_INTERNAL})  # the internal files exist: still never hydrated
    ds.raw.put(ds.full(INDEX), crafted(ds))
    version = ds.index_version()
    target = tmp_path / "nest" / "target"

    result = run_cli("hydrate", ds.url, str(target), "--json", env=ds.env)
    assert result.code == 0, result.stderr
    assert (result.json["status"], result.json["pulled"], result.json["stale"]) == ("found", len(SAFE), 0)
    _assert_reported(result.json["warnings"], [*CRAFTED_UNSAFE, *CRAFTED_INTERNAL])
    assert _files_outside(tmp_path, target, ds) == []
    assert data_files(target) == SAFE
    assert ds.index_version() == version, "hydrate never writes the remote index"

    check = run_cli("verify", ds.url, "--json", env=ds.env)
    assert check.code == 5
    reported = {(p["kind"], p["key"]) for p in check.json["problems"]}
    assert reported == {("unsafe-entry", k) for k in CRAFTED_UNSAFE} | {("internal-entry", k) for k in CRAFTED_INTERNAL}


CORRUPT = {
    "not-json": b"<html>gateway says hi</html>",
    "truncated": b'{"version": 1, "entries": {"a": {"key": "a", "si',
    "wrong-version": b'{"version": 2, "entries": {}}',
    "entries-not-object": b'{"version": 1, "entries": []}',
    "entry-without-size": b'{"version": 1, "entries": {"a": {"key": "a", "lastModified": "2026-05-04T12:00:00.000Z"}}}',
    "key-mismatch": b'{"version": 1, "entries": {"a": {"key": "b", "size": 1, "lastModified": "2026-05-04T12:00:00.000Z"}}}',
    "version-true": b'{"version": true, "entries": {}}',
    "duplicate-key": b'{"version": 1, "entries": {"a": {"key": "a", "size": 1, "size": 9, "lastModified": "2026-05-04T12:00:00.000Z"}}}',
    "nested-too-deep": b'{"version": 1, "entries": {}, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "mtime-out-of-range": b'{"version": 1, "entries": {"a": {"key": "a", "size": 1, "lastModified": "9999-12-31T23:59:59.999Z"}}}',
}


@pytest.mark.parametrize("corruption", sorted(CORRUPT))
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_corrupt_index_exits_6_naming_the_object_and_writes_nothing(
    make_datastore, tmp_path: Path, backend: str, corruption: str
):
    ds = make_datastore(backend, prefix="" if backend == "file" else "team/prod")
    ds.seed(SAFE)
    ds.raw.put(ds.full(INDEX), CORRUPT[corruption])
    version = ds.index_version()
    target = tmp_path / "cache"

    result = run_cli("bootstrap", ds.url, str(target), env=ds.env)
    assert result.code == 6
    named = {"s3": f"s3://{ds.bucket}/team/prod/{INDEX}", "gcs": f"gs://{ds.bucket}/team/prod/{INDEX}"}
    assert named.get(backend, f"file://{ds.bucket}/{INDEX}") in result.stderr
    assert "--rebuild" in result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert ds.index_version() == version
    assert not target.exists() or data_files(target) == {}


@pytest.mark.parametrize("command", ["discover", "hydrate", "push"])
def test_every_command_refuses_a_corrupt_index_with_exit_6(make_datastore, tmp_path: Path, command: str):
    ds = make_datastore("file")
    ds.seed(SAFE)
    ds.raw.put(INDEX, CORRUPT["wrong-version"])
    work = tmp_path / "work"
    work.mkdir()
    (work / "local.txt").write_bytes(b"would be pushed")
    args = [command, ds.url] + ([] if command == "discover" else [str(work)])
    result = run_cli(*args, "--json", env=ds.env)
    assert result.code == 6
    assert result.json["exit_code"] == 6 and "version is 2" in result.json["error"]
    assert ds.raw.get(INDEX) == CORRUPT["wrong-version"]
    assert ds.raw.get("local.txt") is None, "push uploads nothing against a corrupt index"
    assert sorted(os.listdir(work)) == ["local.txt"]

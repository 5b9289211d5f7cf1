"""What a correct outcome looks like, computed from the server's own view of the seeded objects.

Shared by the hardening tests (faults, races, crashes, hostile input, verify): the exact index a
listing must give, and byte-for-byte checks of a hydrated directory.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from syncops import index as idx
from tests.conftest import CliResult, Datastore

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def entries_for(ds: Datastore, keys: Any) -> dict[str, dict[str, Any]]:
    """The index entries ``keys`` must get: size and lastModified exactly as the server lists them."""
    listing = ds.raw.listing()
    out: dict[str, dict[str, Any]] = {}
    for key in sorted(keys):
        size, modified = listing[ds.full(key)]
        out[key] = {"key": key, "size": size, "lastModified": idx.format_timestamp(modified)}
    return out


def assert_index_is(ds: Datastore, keys: Any) -> dict[str, Any]:
    """The published index is a valid version-1 index holding exactly ``keys``, as listed."""
    published = ds.index()
    assert published is not None, "no index was published"
    assert published["version"] == 1
    assert TIMESTAMP.match(published["lastPulled"])
    assert published["entries"] == entries_for(ds, keys)
    return published


def write(root: Path, key: str, data: bytes) -> None:
    """Write one local file at ``key`` under ``root`` (directories made as needed)."""
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def data_files(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` but the local index copy, as key -> bytes."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".datastore-index.json"
    }


def assert_hydrated(target: Path, files: dict[str, bytes]) -> None:
    """``target`` holds exactly ``files``, byte for byte, plus a local index listing each of them."""
    assert data_files(target) == files
    local = idx.parse((target / ".datastore-index.json").read_bytes())
    assert sorted(local.entries) == sorted(files)
    for key, data in files.items():
        assert local.entries[key].size == len(data)
        assert local.entries[key].local_mtime is not None


def assert_index_after_push(ds: Datastore, listed: Any, pushed: dict[str, bytes]) -> None:
    """Entries discovered from the listing are kept exactly; pushed ones carry their size (their
    ``lastModified`` is the upload time the pushing peer recorded)."""
    published = ds.index()
    assert published is not None, "no index was published"
    assert published["version"] == 1
    entries = published["entries"]
    assert sorted(entries) == sorted({*listed, *pushed})
    expected = entries_for(ds, listed)
    assert {k: entries[k] for k in expected} == expected
    for key, data in pushed.items():
        assert entries[key]["key"] == key and entries[key]["size"] == len(data)
        assert TIMESTAMP.match(entries[key]["lastModified"])


#: Fake credentials for runs that must get as far as building S3 clients (never sent anywhere real).
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "AKIAFAKEFAKEFAKE", "AWS_SECRET_ACCESS_KEY": "fake-secret-never-printed-0123"}


def assert_one_line_error(result: CliResult, code: int, needle: str, *, as_json: bool) -> None:
    """Exit ``code``, exactly one line on stderr holding ``needle``, and with --json one JSON object."""
    assert result.code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "panicked" not in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert needle in result.stderr, result.stderr
    if as_json:
        assert len(result.stdout.splitlines()) == 1
        payload = json.loads(result.stdout)
        assert (payload["status"], payload["exit_code"]) == ("error", code)
        assert needle in payload["error"]
    else:
        assert result.stdout == ""

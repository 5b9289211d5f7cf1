"""verify [--repair] and discover --rebuild (SPEC §3, §4), through the CLI against real servers.

verify is read-only unless ``--repair``: it lists every disagreement between index and listing (kind
and key) and exits 5; ``--repair`` publishes the index rebuilt from the listing, conditionally, and
exits 0. ``discover --rebuild`` replaces the index whatever its state, conditional on the version it
read, so a concurrent writer's index is never overwritten.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import wire
from tests.conftest import BACKENDS, Datastore, run_cli
from tests.expect import assert_index_is, entries_for
from tests.proxy import FORWARD, Fault, Proxy, Seen

INDEX = ".datastore-index.json"
FILES = {
    "data/a.json": b'{"a": 1}\n',
    "data/b.bin": bytes(range(200)),
    "models/m.json": b'{"m": true}\n',
    "_control/lease": b"internal",
    "team/.namespace.json": b"{}",
    "team/theirs.txt": b"another datastore",
}
DATA_KEYS = ["data/a.json", "data/b.bin", "models/m.json"]


def crafted_index(ds: Datastore) -> bytes:
    """An index with one problem of each kind next to a correct entry."""
    good = entries_for(ds, ["data/b.bin", "models/m.json"])
    wrong_size = {**entries_for(ds, ["data/a.json"])["data/a.json"], "size": 999}
    stamp = "2026-05-04T12:00:00.000Z"
    odd = ["gone/away.txt", "_control/lease", "data/.lock", "../escape.txt", "a\\b.txt", "ctl\x01x", "team/theirs.txt"]
    entries = {**good, "data/a.json": wrong_size, **{k: {"key": k, "size": 1, "lastModified": stamp} for k in odd}}
    return json.dumps({"version": 1, "lastPulled": stamp, "entries": entries}).encode()


EXPECTED_PROBLEMS = [
    ("unsafe-entry", "../escape.txt"),
    ("internal-entry", "_control/lease"),
    ("unsafe-entry", "a\\b.txt"),
    ("unsafe-entry", "ctl\x01x"),
    ("internal-entry", "data/.lock"),
    ("size-mismatch", "data/a.json"),
    ("missing-object", "gone/away.txt"),
    ("namespace-entry", "team/theirs.txt"),
    ("unindexed-object", "extra/new.bin"),
]


def seeded_with_problems(ds: Datastore) -> None:
    ds.seed(FILES)
    ds.seed({"extra/new.bin": b"not indexed"})
    ds.raw.put(ds.full(INDEX), crafted_index(ds))


def test_verify_is_ok_on_a_consistent_datastore_and_writes_nothing(datastore: Datastore):
    datastore.seed(FILES)
    assert run_cli("discover", datastore.url, env=datastore.env).code == 0
    before = datastore.index_version()
    result = run_cli("verify", datastore.url, "--json", env=datastore.env)
    assert result.code == 0, result.stderr
    assert result.json["status"] == "ok"
    assert (result.json["entries"], result.json["index_written"], result.json["problems"]) == (3, False, [])
    assert datastore.index_version() == before


def test_verify_lists_each_problem_by_kind_and_key_exits_5_and_writes_nothing(datastore: Datastore):
    seeded_with_problems(datastore)
    before = datastore.index_version()
    result = run_cli("verify", datastore.url, "--json", env=datastore.env)
    assert result.code == 5, result.stderr
    assert result.json["status"] == "problems"
    assert [(p["kind"], p["key"]) for p in result.json["problems"]] == EXPECTED_PROBLEMS
    assert datastore.index_version() == before

    human = run_cli("verify", datastore.url, env=datastore.env)
    assert human.code == 5
    assert 'problem: size-mismatch: "data/a.json" (index says 999 bytes, object has 9)' in human.stderr
    assert 'problem: unsafe-entry: "ctl\\x01x"' in human.stderr, "keys are shown escaped"
    assert datastore.index_version() == before


def test_verify_reports_a_missing_index_but_not_an_empty_datastore(datastore: Datastore):
    empty = run_cli("verify", datastore.url, "--json", env=datastore.env)
    assert (empty.code, empty.json["status"], empty.json["problems"]) == (0, "ok", [])

    datastore.seed(FILES)
    result = run_cli("verify", datastore.url, "--json", env=datastore.env)
    assert result.code == 5
    assert [(p["kind"], p["key"]) for p in result.json["problems"]] == [("missing-index", INDEX)]
    assert datastore.index() is None

    repaired = run_cli("verify", datastore.url, "--repair", "--json", env=datastore.env)
    assert repaired.code == 0, repaired.stderr
    assert (repaired.json["status"], repaired.json["index_written"], repaired.json["entries"]) == (
        "repaired",
        True,
        len(DATA_KEYS),
    )
    assert_index_is(datastore, DATA_KEYS)


@pytest.mark.parametrize("backend", BACKENDS)
def test_verify_repair_publishes_the_listing_index_conditionally_and_exits_0(make_datastore, backend: str):
    ds = make_datastore(backend)
    seeded_with_problems(ds)
    token = _token(ds)
    if backend == "file":
        result = run_cli("verify", ds.url, "--repair", "--json", env=ds.env)
    else:
        with Proxy(ds.endpoint) as proxy:
            result = run_cli("verify", ds.url, "--repair", "--json", env=wire.proxied_env(backend, ds.env, proxy))
            writes = [s for k, s in wire.kinds(backend, proxy) if k == wire.INDEX_PUT]
            assert len(writes) == 1
            _assert_conditional_on(backend, writes[0], token)
    assert result.code == 0, result.stderr
    assert (result.json["status"], result.json["index_written"]) == ("repaired", True)
    assert [(p["kind"], p["key"]) for p in result.json["problems"]] == EXPECTED_PROBLEMS
    assert_index_is(ds, [*DATA_KEYS, "extra/new.bin"])

    again = run_cli("verify", ds.url, "--json", env=ds.env)
    assert (again.code, again.json["status"], again.json["problems"]) == (0, "ok", [])


@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_verify_repair_never_overwrites_an_index_changed_meanwhile(make_datastore, backend: str):
    ds = make_datastore(backend)
    seeded_with_problems(ds)
    theirs = crafted_index(ds).replace(b'"size": 999', b'"size": 998')
    with Proxy(ds.endpoint) as proxy:
        # Another writer replaces the index between verify's read and its write.
        proxy.add_fault(Fault(wire.is_list(backend), status=FORWARD, before=lambda: ds.raw.put(ds.full(INDEX), theirs)))
        result = run_cli("verify", ds.url, "--repair", "--json", env=wire.proxied_env(backend, ds.env, proxy))
        assert wire.count(backend, proxy, wire.INDEX_PUT, 412) == 1
        assert wire.count(backend, proxy, wire.INDEX_PUT, 200) == 0
    assert result.code == 4
    assert "changed while it was being rebuilt" in result.json["error"]
    assert ds.raw.get(ds.full(INDEX)) == theirs


def test_verify_on_a_corrupt_index_exits_6_and_repair_replaces_it(datastore: Datastore):
    datastore.seed(FILES)
    datastore.raw.put(datastore.full(INDEX), b'{"version": 1, "entries": [')
    result = run_cli("verify", datastore.url, env=datastore.env)
    assert result.code == 6
    assert ".datastore-index.json: not valid JSON" in result.stderr
    assert datastore.raw.get(datastore.full(INDEX)) == b'{"version": 1, "entries": ['

    repaired = run_cli("verify", datastore.url, "--repair", "--json", env=datastore.env)
    assert repaired.code == 0, repaired.stderr
    assert repaired.json["status"] == "repaired"
    assert [p["kind"] for p in repaired.json["problems"]] == ["corrupt-index"]
    assert_index_is(datastore, DATA_KEYS)


# -- discover --rebuild ----------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["valid", "corrupt", "absent"])
def test_rebuild_replaces_the_index_from_the_listing_whatever_its_state(datastore: Datastore, state: str):
    datastore.seed(FILES)
    if state == "valid":
        assert run_cli("discover", datastore.url, env=datastore.env).code == 0
        datastore.raw.delete(datastore.full("models/m.json"))  # the valid index is now stale
        datastore.seed({"late/added.txt": b"late"})
        keys = ["data/a.json", "data/b.bin", "late/added.txt"]
    elif state == "corrupt":
        datastore.raw.put(datastore.full(INDEX), b'{"version": 7, "entries": {}}')
        keys = DATA_KEYS
    else:
        keys = DATA_KEYS
    before = datastore.index_version()

    result = run_cli("discover", datastore.url, "--rebuild", "--json", env=datastore.env)
    assert result.code == 0, result.stderr
    assert (result.json["status"], result.json["index_written"], result.json["entries"]) == (
        "rebuilt",
        True,
        len(keys),
    )
    assert datastore.index_version() != before
    assert_index_is(datastore, keys)


@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_rebuild_is_conditional_on_the_version_it_read(make_datastore, backend: str):
    ds = make_datastore(backend)
    ds.seed(FILES)
    ds.raw.put(ds.full(INDEX), b"corrupt")
    token = _token(ds)
    with Proxy(ds.endpoint) as proxy:
        env = wire.proxied_env(backend, ds.env, proxy)
        assert run_cli("discover", ds.url, "--rebuild", env=env).code == 0
        (write,) = [s for k, s in wire.kinds(backend, proxy) if k == wire.INDEX_PUT]
        _assert_conditional_on(backend, write, token)

        # A concurrent writer between the read and the write: the rebuild writes nothing and exits 4.
        current = ds.raw.get(ds.full(INDEX))
        assert current is not None
        theirs = current.replace(b'"lastPulled": "', b'"lastPulled": "1')
        proxy.add_fault(Fault(wire.is_list(backend), status=FORWARD, before=lambda: ds.raw.put(ds.full(INDEX), theirs)))
        proxy.reset_counts()
        raced = run_cli("discover", ds.url, "--rebuild", "--json", env=env)
        assert wire.count(backend, proxy, wire.INDEX_PUT, 412) == 1
    assert raced.code == 4
    assert ds.raw.get(ds.full(INDEX)) == theirs


def test_rebuild_of_an_absent_index_is_create_only(make_datastore):
    ds = make_datastore("s3")
    ds.seed(FILES)
    with Proxy(ds.endpoint) as proxy:
        assert run_cli("discover", ds.url, "--rebuild", env=wire.proxied_env("s3", ds.env, proxy)).code == 0
        (write,) = [s for k, s in wire.kinds("s3", proxy) if k == wire.INDEX_PUT]
    assert write.headers.get("if-none-match") == "*"


def _token(ds: Datastore) -> str:
    """The version token syncops reads: the ETag on S3, the generation on GCS."""
    version = ds.index_version() or ""
    return version.split("@")[0]


def _assert_conditional_on(backend: str, write: Seen, token: str) -> None:
    if backend == "s3":
        assert write.headers.get("if-match") == token
    else:
        assert f"ifGenerationMatch={token}" in write.path


def test_verify_usage_errors_exit_2(tmp_path: Path):
    assert run_cli("verify", "ftp://nope").code == 2
    assert run_cli("verify", f"file://{tmp_path}", "--bogus").code == 2

"""discover against real servers (SPEC §3 "discover"), checked from outside through the CLI."""

from __future__ import annotations

import re

import pytest

from syncops import index as idx
from syncops.errors import AccessDenied, NotFound
from syncops.keys import INDEX_KEY
from tests.conftest import Datastore, run_cli
from tests.proxy import Fault, Proxy

DATA = {
    "data/models/a.json": b'{"a": 1}\n',
    "data/models/b.json": b'{"b": 2, "weights": [1, 2, 3]}\n',
    "data/raw/blob.bin": bytes(range(256)) * 40,
    "top.csv": b"x,y\n1,2\n",
}
INTERNAL = {
    ".push-queue.json": b"[]",
    ".datastore-sync-state.json": b"{}",
    "_index/by-name": b"idx",
    "_control/lease": b"lease",
    ".namespace.json": b"{}",
    "data/.lock": b"",
    "data/deep/.lock": b"1",
    "db/_catalog.db": b"sqlite",
    "db/_catalog.db-wal": b"wal",
    "db/_catalog.db-shm": b"shm",
    "db/_catalog.db-journal": b"journal",
    "team-b/.namespace.json": b'{"name": "team-b"}',
    "team-b/models/other.json": b"theirs",
    "team-b/deep/er.bin": b"theirs too",
}
#: Named like internal files, but only internal at the root: these are data.
LOOKALIKES = {"data/_index/x.json": b"1", "data/_control/y.json": b"22", "data/.datastore-index.json": b"333"}

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def expected_entries(ds: Datastore, keys: dict[str, bytes]) -> dict[str, dict[str, object]]:
    """What the index must hold, computed from the server's own listing of the seeded objects."""
    listing = ds.raw.listing()
    out = {}
    for key in keys:
        size, modified = listing[ds.full(key)]
        out[key] = {"key": key, "size": size, "lastModified": idx.format_timestamp(modified)}
    return out


def test_discovery_publishes_the_index_built_from_the_listing(datastore: Datastore):
    """(A) exact published JSON: every data object, sizes and timestamps from the listing, nothing else."""
    datastore.seed(DATA)
    result = run_cli("discover", datastore.url, "--json", env=datastore.env)
    assert result.code == 0, result.stderr
    assert result.json["status"] == "discovered"
    assert result.json["entries"] == len(DATA)
    assert result.json["index_written"] is True

    published = datastore.index()
    assert published is not None
    assert set(published) == {"version", "lastPulled", "entries"}
    assert published["version"] == 1
    assert TIMESTAMP.match(published["lastPulled"])
    assert published["entries"] == expected_entries(datastore, DATA)
    assert list(published["entries"]) == sorted(DATA)


def test_every_internal_file_and_namespace_subtree_is_left_out(datastore: Datastore):
    """(C) root-only internal names, nested .lock and _catalog.db-*, a namespace subtree, markers."""
    datastore.seed({**DATA, **INTERNAL, **LOOKALIKES})
    if datastore.kind != "file":
        datastore.seed({"data/empty-dir/": b""})  # a console-made directory marker
    result = run_cli("discover", datastore.url, "--json", env=datastore.env)
    assert result.code == 0, result.stderr
    assert result.json["warnings"] == []
    published = datastore.index()
    assert published is not None
    assert published["entries"] == expected_entries(datastore, {**DATA, **LOOKALIKES})


def test_empty_datastore_is_reported_empty_and_nothing_is_written(datastore: Datastore):
    """(D) no data objects: status empty, exit 0, no object created."""
    result = run_cli("discover", datastore.url, "--json", env=datastore.env)
    assert result.code == 0, result.stderr
    assert result.json["status"] == "empty"
    assert result.json["entries"] == 0
    assert result.json["index_written"] is False
    assert datastore.raw.keys() == []


def test_only_internal_files_counts_as_empty(datastore: Datastore):
    datastore.seed({"data/.lock": b"", "_control/x": b"1"})
    result = run_cli("discover", datastore.url, "--json", env=datastore.env)
    assert result.json["status"] == "empty"
    assert datastore.raw.keys() == sorted(datastore.full(k) for k in ("_control/x", "data/.lock"))


def test_a_present_index_is_used_and_nothing_is_written(datastore: Datastore):
    datastore.seed(DATA)
    assert run_cli("discover", datastore.url, env=datastore.env).code == 0
    before = datastore.index_version()
    datastore.seed({"late.txt": b"added after the index"})
    result = run_cli("discover", datastore.url, "--json", env=datastore.env)
    assert result.code == 0
    assert result.json["status"] == "found"
    assert result.json["index_written"] is False
    assert result.json["entries"] == len(DATA)
    assert datastore.index_version() == before


def test_missing_index_is_the_sdks_not_found(datastore: Datastore):
    """(G) the real SDK error for an absent object is what the backend turns into NotFound."""
    store = datastore.store()
    with pytest.raises(NotFound):
        store.get(INDEX_KEY)


@pytest.mark.parametrize("kind", ["s3", "gcs"])
def test_a_403_on_the_index_is_not_absence(make_datastore, kind):
    """(G) a denied index read fails with AccessDenied (exit 3); it is never read as "no index"."""
    ds = make_datastore(kind)
    ds.seed(DATA)
    with Proxy(ds.endpoint) as proxy:
        proxy.add_fault(Fault(lambda method, path: method == "GET", status=403, times=None))
        env = dict(ds.env)
        env["AWS_ENDPOINT_URL" if kind == "s3" else "STORAGE_EMULATOR_HOST"] = proxy.endpoint
        result = run_cli("discover", ds.url, "--json", env=env)
        assert result.code == 3, result.stderr
        assert result.json["status"] == "error"
        assert "access denied" in result.json["error"]
        assert proxy.count("GET") == 1  # failed fast: no retries, no listing
        assert proxy.count("PUT") + proxy.count("POST") == 0
    assert ds.index() is None


def test_wrong_s3_credentials_exit_3_with_a_hint_and_no_traceback(make_datastore):
    """(H) the message names the operation, object, credential source and permission; no secret."""
    ds = make_datastore("s3")
    ds.seed(DATA)
    env = dict(ds.env, AWS_SECRET_ACCESS_KEY="definitely-wrong-secret")
    result = run_cli("bootstrap", ds.url, "/tmp/syncops-never-created", env=env)
    assert result.code == 3
    assert "Traceback" not in result.stderr
    assert "SignatureDoesNotMatch" in result.stderr
    # The first request is the GET of _index/_meta.json (where the index lives, issue 11): it is the one denied.
    assert f"GetObject {ds.url}/_index/_meta.json" in result.stderr
    assert "environment variables" in result.stderr
    assert "s3:GetObject" in result.stderr
    assert "definitely-wrong-secret" not in result.stderr + result.stdout
    assert ds.index() is None


def test_missing_s3_credentials_exit_3(make_datastore):
    ds = make_datastore("s3")
    env = {k: v for k, v in ds.env.items() if not k.startswith("AWS_ACCESS_KEY_ID") and k != "AWS_SECRET_ACCESS_KEY"}
    result = run_cli("discover", ds.url, env=env)
    assert result.code == 3
    assert "no AWS credentials" in result.stderr
    assert "Traceback" not in result.stderr


def test_gcs_denied_names_the_anonymous_emulator_credentials(make_datastore):
    ds = make_datastore("gcs")
    with Proxy(ds.endpoint) as proxy:
        proxy.add_fault(Fault(lambda method, path: True, status=403, times=None))
        result = run_cli("discover", ds.url, env=dict(ds.env, STORAGE_EMULATOR_HOST=proxy.endpoint))
    assert result.code == 3
    assert "anonymous (emulator" in result.stderr
    assert "storage.objects.get" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_bucket_fails_and_is_not_empty(make_datastore):
    for kind in ("s3", "gcs"):
        ds = make_datastore(kind)
        url = ds.url.replace(ds.bucket, ds.bucket + "-missing")
        result = run_cli("discover", url, "--json", env=ds.env)
        assert result.code == 4, (kind, result.stderr)
        assert "does not exist" in result.json["error"]


@pytest.mark.parametrize("kind", ["s3", "gcs"])
def test_prefixed_datastore_indexes_only_its_prefix(make_datastore, kind):
    """(I) s3://bucket/env/prod: keys relative to the prefix, neighbours with a similar name excluded."""
    ds = make_datastore(kind, prefix="env/prod")
    ds.seed(DATA)
    ds.raw.put("env/production/other.json", b"neighbour")
    ds.raw.put("env/staging/a.json", b"other env")
    ds.raw.put("root.txt", b"outside")
    result = run_cli("discover", ds.url, "--json", env=ds.env)
    assert result.code == 0, result.stderr
    assert result.json["url"] == ds.url
    assert ds.raw.get("env/prod/.datastore-index.json") is not None
    assert ds.raw.get(".datastore-index.json") is None
    assert ds.index()["entries"] == expected_entries(ds, DATA)


def test_internal_api_raises_access_denied_type(make_datastore):
    ds = make_datastore("s3")
    with Proxy(ds.endpoint) as proxy:
        proxy.add_fault(Fault(lambda method, path: True, status=403, times=None))
        from syncops.stores import open_store

        with pytest.raises(AccessDenied):
            open_store(ds.url, endpoint_url=proxy.endpoint).get(INDEX_KEY)

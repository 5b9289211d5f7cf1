"""The request budget (issue 6), counted on the wire by the loopback proxy, on S3 and GCS:

* discovery of N unindexed objects = 1 meta GET + 1 index GET + ceil(N/1000) listing pages + 1 lock GET
  + 1 index PUT;
* discovery of an indexed bucket = 2 GETs (``_index/_meta.json``, 404, then the index);
* hydrate of an up-to-date cache = those 2 GETs and no object requests;
* hydrate of an empty cache = 2 GETs + one GET per object;
* no per-object HEAD (or metadata GET) anywhere.

The meta GET and the lock GET are issue 11's, and deliberately explicit here: one GET of
``_index/_meta.json`` is how syncops knows where the index lives (404: a monolith), and every write
first reads ``.datastore.lock`` to wait for a swamp writer. A monolith datastore with no lock gets no
other request from either, and nothing is written to ``_index/`` or the lock key.
(tests/interop/test_budget.py pins the budgets of the dual-write and shard-first layouts.)

and the S3 download path keeps that budget whether bytes come through obstore (the default),
through boto3 (``SYNCOPS_S3_DATA_PLANE=boto3``) or through boto3 after a region redirect.
"""

from __future__ import annotations

import math
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests import wire
from tests.conftest import Datastore, run_cli
from tests.proxy import Fault, Proxy

CLOUD = ("s3", "gcs")
#: Enough objects for three listing pages of 1,000, few enough to seed in a few seconds.
MANY = 2_500


def seed_many(ds: Datastore, count: int) -> dict[str, bytes]:
    files = {f"data/{i % 7}/object-{i:05d}.txt": f"{i}\n".encode() for i in range(count)}
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda item: ds.raw.put(ds.full(item[0]), item[1]), files.items()))
    return files


def requests_by_kind(backend: str, proxy: Proxy) -> Counter[str]:
    return Counter(kind for kind, _ in wire.kinds(backend, proxy))


def assert_no_per_object_metadata_requests(backend: str, proxy: Proxy) -> None:
    """No HEADs, and on GCS no metadata GETs (``/storage/v1/b/B/o/NAME`` without ``alt=media``)."""
    seen = proxy.seen
    assert not [s.path for s in seen if s.method == "HEAD"], "a HEAD request was made"
    if backend == "gcs":
        metadata = [s.path for s in seen if s.method == "GET" and "/o/" in s.path and "alt=media" not in s.path]
        assert not metadata, f"per-object metadata reads: {metadata[:3]}"


@pytest.mark.parametrize("backend", CLOUD)
def test_discovery_of_n_objects_is_one_get_the_listing_pages_and_one_put(make_datastore, backend: str):
    ds = make_datastore(backend, prefix="env/prod")
    seed_many(ds, MANY)
    with Proxy(ds.endpoint) as proxy:
        result = run_cli("discover", ds.url, "--json", env=wire.proxied_env(backend, ds.env, proxy))
        assert result.code == 0, result.stderr
        assert (result.json["status"], result.json["entries"]) == ("discovered", MANY)
        assert requests_by_kind(backend, proxy) == {
            wire.META_GET: 1,  # issue 11: where the index lives (404 here: a monolith)
            wire.INDEX_GET: 1,
            wire.LIST: math.ceil(MANY / 1000),
            wire.LOCK_GET: 1,  # issue 11: a write first looks for swamp's lock (404 here: nothing taken)
            wire.INDEX_PUT: 1,
        }
        assert_no_per_object_metadata_requests(backend, proxy)


@pytest.mark.parametrize("backend", CLOUD)
def test_discovery_of_an_indexed_bucket_is_one_get(make_datastore, backend: str):
    ds = make_datastore(backend)
    seed_many(ds, 40)
    assert run_cli("discover", ds.url, env=ds.env).code == 0
    with Proxy(ds.endpoint) as proxy:
        result = run_cli("discover", ds.url, "--json", env=wire.proxied_env(backend, ds.env, proxy))
        assert result.code == 0, result.stderr
        assert result.json["status"] == "found"
        assert requests_by_kind(backend, proxy) == {wire.META_GET: 1, wire.INDEX_GET: 1}  # meta: issue 11
        assert len(proxy.seen) == 2


@pytest.mark.parametrize("backend", CLOUD)
def test_hydrate_fetches_each_object_with_one_get_and_nothing_else(make_datastore, tmp_path: Path, backend: str):
    ds = make_datastore(backend)
    files = seed_many(ds, 40)
    assert run_cli("discover", ds.url, env=ds.env).code == 0
    with Proxy(ds.endpoint) as proxy:
        result = run_cli(
            "hydrate", ds.url, str(tmp_path / "cache"), "--json", env=wire.proxied_env(backend, ds.env, proxy)
        )
        assert result.code == 0, result.stderr
        assert result.json["pulled"] == len(files)
        assert requests_by_kind(backend, proxy) == {wire.META_GET: 1, wire.INDEX_GET: 1, wire.OBJECT_GET: len(files)}
        per_object = Counter(s.path for kind, s in wire.kinds(backend, proxy) if kind == wire.OBJECT_GET)
        assert set(per_object.values()) == {1}, "an object was fetched twice"
        assert_no_per_object_metadata_requests(backend, proxy)


@pytest.mark.parametrize("backend", CLOUD)
def test_hydrate_of_an_up_to_date_cache_is_one_get_and_no_object_requests(make_datastore, tmp_path: Path, backend: str):
    ds = make_datastore(backend)
    seed_many(ds, 40)
    target = tmp_path / "cache"
    assert run_cli("bootstrap", ds.url, str(target), env=ds.env).code == 0
    with Proxy(ds.endpoint) as proxy:
        result = run_cli("hydrate", ds.url, str(target), "--json", env=wire.proxied_env(backend, ds.env, proxy))
        assert result.code == 0, result.stderr
        assert (result.json["pulled"], result.json["skipped"]) == (0, 40)
        assert requests_by_kind(backend, proxy) == {wire.META_GET: 1, wire.INDEX_GET: 1}  # meta: issue 11
        assert len(proxy.seen) == 2


def test_the_boto3_download_path_keeps_the_same_budget(make_datastore, tmp_path: Path):
    """``SYNCOPS_S3_DATA_PLANE=boto3`` (downloads through boto3 instead of obstore): same requests."""
    ds = make_datastore("s3")
    files = seed_many(ds, 40)
    assert run_cli("discover", ds.url, env=ds.env).code == 0
    target = tmp_path / "cache"
    with Proxy(ds.endpoint) as proxy:
        env = wire.proxied_env("s3", ds.env, proxy, SYNCOPS_S3_DATA_PLANE="boto3")
        result = run_cli("hydrate", ds.url, str(target), "--json", env=env)
        assert result.code == 0, result.stderr
        assert requests_by_kind("s3", proxy) == {wire.META_GET: 1, wire.INDEX_GET: 1, wire.OBJECT_GET: len(files)}
        assert_no_per_object_metadata_requests("s3", proxy)
    for key, data in files.items():
        assert (target / key).read_bytes() == data


def test_a_region_redirect_on_the_data_plane_falls_back_to_boto3(make_datastore, tmp_path: Path):
    """A 301 PermanentRedirect (bucket in another region) to an obstore GET: boto3, which follows
    S3's region redirects, fetches that object and the rest; nothing is lost or fetched twice."""
    ds = make_datastore("s3")
    files = seed_many(ds, 20)
    assert run_cli("discover", ds.url, env=ds.env).code == 0
    target = tmp_path / "cache"
    with Proxy(ds.endpoint) as proxy:
        redirect = proxy.add_fault(Fault(wire.is_object_get("s3"), status=301))
        result = run_cli("hydrate", ds.url, str(target), "--json", env=wire.proxied_env("s3", ds.env, proxy))
        assert result.code == 0, result.stderr
        assert redirect.hits == 1
        assert requests_by_kind("s3", proxy) == {wire.META_GET: 1, wire.INDEX_GET: 1, wire.OBJECT_GET: len(files) + 1}
    assert result.json["pulled"] == len(files)
    for key, data in files.items():
        assert (target / key).read_bytes() == data

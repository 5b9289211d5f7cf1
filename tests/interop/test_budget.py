"""The request budget of each layout (issue 11), counted on the wire on S3 and GCS:

* monolith: a read is 2 GETs (``_index/_meta.json`` → 404, then the monolith);
* dual-write: 2 GETs (the meta, then the monolith; no shard is read);
* shard-first: 1 + P GETs (the meta and each of the P listed shards; never the monolith);
* hydrate adds one GET per object to fetch, in every layout, and writes nothing;
* a push in shard-first mode: the read, the lock (GET, create-only PUT, DELETE after a GET that
  confirms the nonce), one more meta GET under the lock, the data, each dirty shard, the meta.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests import wire
from tests.conftest import Datastore, run_cli
from tests.interop import swamp
from tests.interop.swamp import DUAL_WRITE, FILES, MODES, MONOLITH, SHARD_FIRST
from tests.proxy import Proxy

CLOUD = ("s3", "gcs")
READS = {
    MONOLITH: {wire.META_GET: 1, wire.INDEX_GET: 1},
    DUAL_WRITE: {wire.META_GET: 1, wire.INDEX_GET: 1},
    SHARD_FIRST: {wire.META_GET: 1, wire.SHARD_GET: len(swamp.PARTITIONS)},
}


def by_kind(backend: str, proxy: Proxy) -> Counter[str]:
    return Counter(kind for kind, _ in wire.kinds(backend, proxy))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", CLOUD)
def test_hydrate_costs_the_layouts_read_plus_one_get_per_object(
    make_datastore, tmp_path: Path, backend: str, mode: str
):
    ds: Datastore = make_datastore(backend)
    swamp.build(ds, mode)
    cache = tmp_path / "cache"
    with Proxy(ds.endpoint) as proxy:
        env = wire.proxied_env(backend, ds.env, proxy)
        assert run_cli("hydrate", ds.url, str(cache), env=env).code == 0
        assert by_kind(backend, proxy) == {**READS[mode], wire.OBJECT_GET: len(FILES)}
        proxy.reset_counts()
        assert run_cli("hydrate", ds.url, str(cache), env=env).code == 0
        assert by_kind(backend, proxy) == READS[mode]  # up to date: the read and nothing else


@pytest.mark.parametrize("backend", CLOUD)
def test_a_shard_first_push_writes_one_shard_and_the_meta_under_the_lock(make_datastore, tmp_path: Path, backend: str):
    ds = make_datastore(backend)
    swamp.build(ds, SHARD_FIRST)
    cache = tmp_path / "cache"
    assert run_cli("bootstrap", ds.url, str(cache), env=ds.env).code == 0
    (cache / "README.md").write_bytes(b"# edited\n")
    with Proxy(ds.endpoint) as proxy:
        result = run_cli("push", ds.url, str(cache), "--json", env=wire.proxied_env(backend, ds.env, proxy))
        assert result.code == 0, result.stderr
        assert by_kind(backend, proxy) == {
            **READS[SHARD_FIRST],  # discovery's read
            wire.LOCK_GET: 2,  # the look before taking it, and the nonce check before releasing it
            wire.LOCK_PUT: 1,  # create-only (a push this short sends no heartbeat)
            wire.LOCK_DELETE: 1,
            wire.META_GET: 2,  # + one under the lock: did a writer commit while we waited?
            wire.OBJECT_PUT: 1,
            wire.SHARD_PUT: 1,  # the _root shard only
            wire.META_PUT: 1,  # commitSeq + 1
        }
    assert swamp.meta(ds)["commitSeq"] == 4

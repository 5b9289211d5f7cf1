"""The post-deploy step of ``pulumi up`` (the dynamic provider), called directly as the Pulumi engine
would call it, against real S3 (SeaweedFS) and GCS (fake-gcs-server) buckets.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pulumi.dynamic import CreateResult, UpdateResult
from pulumi.dynamic.dynamic import serialize_provider

from syncops.discover import discover
from syncops.errors import AccessDenied
from syncops.provision.post_deploy import DiscoveryProvider, PostDeployFailed
from syncops.stores import open_store
from tests.conftest import Datastore
from tests.proxy import Fault, Proxy

CLOUDS = {"s3": "aws", "gcs": "gcp"}
DATA = {"data/models/a.json": b'{"a": 1}', "data/models/b.json": b"[2]", "readme.txt": b"hello"}


def props(ds: Datastore, prefix: str | None = None) -> dict[str, str]:
    return {"cloud": CLOUDS[ds.kind], "bucket": ds.bucket, "prefix": ds.prefix if prefix is None else prefix}


def outs_of(result: CreateResult | UpdateResult) -> dict[str, Any]:
    assert result.outs is not None
    return result.outs


@pytest.fixture(params=["s3", "gcs"])
def seeded(request: pytest.FixtureRequest, make_datastore: Callable[..., Datastore]) -> Datastore:
    """A bucket holding data but no index, as after ``aws s3 cp`` or a restore."""
    ds = make_datastore(request.param, prefix="env/dev")
    ds.seed({**DATA, "_catalog.db": b"internal"})
    return ds


def test_create_publishes_a_real_index_and_reports_it(seeded: Datastore) -> None:
    result = DiscoveryProvider().create(props(seeded))
    outs = outs_of(result)

    assert outs["index_status"] == "discovered"
    assert outs["index_entries"] == 3
    assert outs["index_written"] is True
    assert outs["datastore_url"] == seeded.url
    index = seeded.index()
    assert index is not None and index["version"] == 1
    assert sorted(index["entries"]) == sorted(DATA)
    assert index["entries"]["readme.txt"]["size"] == 5
    assert result.id


def test_second_run_finds_the_index_and_leaves_its_version_unchanged(seeded: Datastore) -> None:
    provider = DiscoveryProvider()
    provider.create(props(seeded))
    version = seeded.index_version()
    raw_before = seeded.raw.get(seeded.full(".datastore-index.json"))

    again = provider.update("id", props(seeded), props(seeded))
    second_create = provider.create(props(seeded))

    for outs in (again.outs, second_create.outs):
        assert outs is not None
        assert outs["index_status"] == "found"
        assert outs["index_written"] is False
        assert outs["index_entries"] == 3
    assert seeded.index_version() == version
    assert seeded.raw.get(seeded.full(".datastore-index.json")) == raw_before


def test_diff_reruns_only_when_bucket_or_prefix_changes(seeded: Datastore) -> None:
    provider = DiscoveryProvider()
    olds = {**props(seeded), "index_status": "discovered", "index_entries": 3}

    assert provider.diff("id", olds, props(seeded)).changes is False
    assert provider.diff("id", olds, props(seeded, prefix="env/prod")).changes is True
    assert provider.diff("id", olds, {**props(seeded), "bucket": "another-bucket"}).changes is True
    assert provider.diff("id", olds, {**props(seeded), "cloud": "gcp" if seeded.kind == "s3" else "aws"}).changes


def test_update_to_a_new_prefix_discovers_that_prefix(seeded: Datastore) -> None:
    provider = DiscoveryProvider()
    provider.create(props(seeded))
    seeded.raw.put("env/prod/models/c.json", b"{}")

    result = provider.update("id", props(seeded), props(seeded, prefix="env/prod"))

    assert result.outs is not None
    assert result.outs["prefix"] == "env/prod"
    assert result.outs["index_status"] == "discovered"
    assert result.outs["index_entries"] == 1
    published = seeded.raw.get("env/prod/.datastore-index.json")
    assert published is not None and list(json.loads(published)["entries"]) == ["models/c.json"]


def test_empty_bucket_reports_empty_and_writes_nothing(make_datastore: Callable[..., Datastore]) -> None:
    ds = make_datastore("s3")
    outs = outs_of(DiscoveryProvider().create(props(ds)))

    assert outs["index_status"] == "empty"
    assert outs["index_entries"] == 0
    assert ds.raw.keys() == []


def test_delete_never_deletes_data_or_the_index(seeded: Datastore) -> None:
    provider = DiscoveryProvider()
    outs = outs_of(provider.create(props(seeded)))
    keys = seeded.raw.keys()
    assert seeded.full(".datastore-index.json") in keys

    provider.delete("id", outs)

    assert seeded.raw.keys() == keys


def test_s3_access_denied_fails_with_syncops_message(
    make_datastore: Callable[..., Datastore], monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = make_datastore("s3")
    ds.seed(DATA)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(AccessDenied) as denied:
        discover(open_store(ds.url))

    with pytest.raises(PostDeployFailed) as failed:
        DiscoveryProvider().create(props(ds))

    assert str(denied.value) in str(failed.value)
    assert "syncops exit code 3" in str(failed.value)
    assert failed.value.exit_code == 3
    assert ds.index() is None


def test_gcs_access_denied_fails_with_syncops_message(
    make_datastore: Callable[..., Datastore], monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = make_datastore("gcs")
    ds.seed(DATA)
    with Proxy(ds.endpoint) as proxy:
        proxy.add_fault(Fault(lambda method, path: True, status=403, times=None))
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.endpoint)
        with pytest.raises(AccessDenied) as denied:
            discover(open_store(ds.url))

        with pytest.raises(PostDeployFailed) as failed:
            DiscoveryProvider().create(props(ds))

    assert str(denied.value) in str(failed.value)
    assert failed.value.exit_code == 3
    assert ds.index() is None


def test_provider_survives_serialization_into_a_fresh_process(
    make_datastore: Callable[..., Datastore], tmp_path: Path
) -> None:
    """Pulumi pickles the provider with dill and runs it in its own process: that round trip must work."""
    ds = make_datastore("s3")
    ds.seed(DATA)
    blob = tmp_path / "provider.b64"
    blob.write_text(serialize_provider(DiscoveryProvider()))
    script = (
        "import base64, json, sys, dill\n"
        "provider = dill.loads(base64.b64decode(open(sys.argv[1]).read()))\n"
        "print(json.dumps(provider.create(json.loads(sys.argv[2])).outs))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(blob), json.dumps(props(ds))],
        env={**os.environ, **ds.env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )

    assert proc.returncode == 0, proc.stderr
    outs = json.loads(proc.stdout)
    assert outs["index_status"] == "discovered" and outs["index_entries"] == 3
    assert ds.index() is not None
    assert len(base64.b64decode(blob.read_text())) < 1000, "the provider must be pickled by reference"

"""``syncops:seedFrom`` (issue 13 item 2): ``pulumi up`` of a fresh environment seeds the new bucket from
another datastore before discovery, once, and returns with the data in place.

The program runs under Pulumi's mocks with the real dynamic providers (seed and discovery) run against
real buckets on SeaweedFS and fake-gcs-server; the providers are also called directly, as the engine
would call them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from syncops.provision.config import ConfigError
from syncops.provision.post_deploy import DiscoveryProvider, PostDeployFailed, SeedProvider
from syncops.provision.up import DeployFailed, _deploy_error
from tests import servers
from tests.conftest import Datastore
from tests.proxy import Proxy
from tests.pulumi_program import POST_DEPLOY_TYPE, SEED_TYPE, real_post_deploy, run_program

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CLOUDS = {"s3": "aws", "gcs": "gcp"}
DATA = {"models/a.json": b'{"a": 1}', "models/b.json": b"[1, 2]", "notes.txt": b"hello", ".lock": b""}
SEEDED = sorted(k for k in DATA if k != ".lock")


def props(ds: Datastore, source: Datastore) -> dict[str, Any]:
    return {"cloud": CLOUDS[ds.kind], "bucket": ds.bucket, "prefix": ds.prefix, "seed_from": source.url}


def reach_both(monkeypatch: pytest.MonkeyPatch, *stores: Datastore) -> None:
    """The deploying machine reaches every server (each datastore fixture set only its own)."""
    for ds in stores:
        for key, value in ds.env.items():
            if key.startswith(("AWS_", "STORAGE_EMULATOR_HOST")):
                monkeypatch.setenv(key, value)


@pytest.mark.parametrize(("source", "target"), [("s3", "s3"), ("gcs", "gcs"), ("gcs", "s3")])
def test_the_seed_step_copies_the_source_then_discovery_finds_the_index(
    make_datastore: Callable[..., Datastore], monkeypatch: pytest.MonkeyPatch, source: str, target: str
) -> None:
    src, dst = make_datastore(source, prefix="env/prod"), make_datastore(target, prefix="env/dev")
    reach_both(monkeypatch, src, dst)
    src.seed(DATA)

    outs = SeedProvider().create(props(dst, src)).outs
    found = DiscoveryProvider().create(props(dst, src)).outs

    assert outs is not None and found is not None
    assert (outs["seeded_from"], outs["seeded_objects"], outs["seed_copied"]) == (src.url, 3, 3)
    assert outs["seed_copy_mode"] == ("server-side" if source == target else "streamed")
    assert (found["index_status"], found["index_entries"]) == ("found", 3)
    assert sorted(dst.index()["entries"]) == SEEDED  # type: ignore[index]
    assert src.index() is None, "the source is read-only to the stack"


def test_a_bucket_holding_a_different_index_fails_the_deployment_listing_the_conflict(
    make_datastore: Callable[..., Datastore],
) -> None:
    src, dst = make_datastore("s3"), make_datastore("s3")
    src.seed(DATA)
    dst.seed({"notes.txt": b"this environment's own notes"})
    DiscoveryProvider().create({"cloud": "aws", "bucket": dst.bucket, "prefix": ""})
    version = dst.index_version()

    with pytest.raises(PostDeployFailed) as failed:
        SeedProvider().create(props(dst, src))

    assert failed.value.exit_code == 7 and failed.value.operation == "seed"
    message = str(failed.value)
    assert message.startswith(f"syncops seed of {dst.url} failed (syncops exit code 7): seeding from {src.url}")
    assert "notes.txt: source 5 bytes, destination object of 28 bytes" in message
    assert "nothing was overwritten" in message and "--force" in message
    assert dst.index_version() == version
    assert dst.raw.get("notes.txt") == b"this environment's own notes"
    assert sorted(dst.raw.keys()) == [".datastore-index.json", "notes.txt"]
    # `syncops up` reads the step's own exit code back from the engine's output.
    assert _deploy_error("dev", Exception(f"error: {message}\n")).exit_code == 7


def test_a_source_without_access_fails_naming_the_source(
    make_datastore: Callable[..., Datastore], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.proxy import Fault

    src, dst = make_datastore("s3"), make_datastore("s3")
    src.seed(DATA)
    with Proxy(src.endpoint) as proxy:
        proxy.add_fault(Fault(lambda method, path: path.startswith(f"/{src.bucket}"), status=403, times=None))
        with pytest.raises(PostDeployFailed) as failed:
            SeedProvider().create({**props(dst, src), "aws_endpoint": proxy.endpoint})
    assert failed.value.exit_code == 3
    assert f"seeding from {src.url}: access denied" in str(failed.value) and f"s3://{src.bucket}/" in str(failed.value)
    assert dst.raw.keys() == []


def test_the_seed_runs_once_a_new_datastore_replaces_it_a_new_source_alone_does_not(
    make_datastore: Callable[..., Datastore],
) -> None:
    src, dst = make_datastore("s3"), make_datastore("s3")
    provider = SeedProvider()
    olds = {**props(dst, src), "seeded_objects": 3}

    assert provider.diff("id", olds, props(dst, src)).changes is False
    assert provider.diff("id", olds, {**props(dst, src), "seed_from": "s3://another/source"}).changes is False
    moved = provider.diff("id", olds, {**props(dst, src), "bucket": "another-bucket"})
    assert (moved.changes, moved.replaces) == (True, ["bucket"])
    provider.delete("id", olds)  # deletes nothing (there is nothing to delete yet, and never anything)


def test_pulumi_up_of_a_fresh_environment_returns_with_the_data_in_place(
    make_datastore: Callable[..., Datastore],
) -> None:
    """``syncops:seedFrom`` through the program: the seed resource runs first (its real provider against
    SeaweedFS), discovery after it finds the seeded index, and the stack reports both."""
    src, dst = make_datastore("s3", prefix="env/prod"), make_datastore("s3")
    src.seed(DATA)

    deployment = run_program(
        {
            "cloud": "aws",
            "bucketName": dst.bucket,
            "seedFrom": src.url,
            "aws:region": "us-east-1",
            "aws:endpoints": [{"s3": dst.endpoint}],
            "aws:accessKey": servers.ACCESS_KEY,
            "aws:secretKey": servers.SECRET_KEY,
        },
        post_deploy=real_post_deploy,
    )

    outputs = deployment.outputs
    assert (outputs["seededFrom"], outputs["seededObjects"]) == (src.url, 3)
    assert (outputs["indexStatus"], outputs["indexEntries"]) == ("found", 3)
    seed, discovery = deployment.one(SEED_TYPE), deployment.one(POST_DEPLOY_TYPE)
    assert seed.name == "datastore-discovery-seed" and seed.inputs["seed_from"] == src.url
    assert seed.urn in discovery.dependencies
    assert deployment.urn_of("aws:s3/bucket:Bucket") in seed.dependencies
    assert sorted(dst.index()["entries"]) == SEEDED  # type: ignore[index]
    assert servers.SECRET_KEY not in json.dumps(outputs)


def test_pulumi_up_onto_a_bucket_with_a_different_index_fails_with_nothing_overwritten(
    make_datastore: Callable[..., Datastore],
) -> None:
    src, dst = make_datastore("gcs"), make_datastore("gcs")
    src.seed(DATA)
    dst.seed({"models/a.json": b'{"a": "theirs"}'})
    DiscoveryProvider().create({"cloud": "gcp", "bucket": dst.bucket, "prefix": ""})
    version = dst.index_version()

    with pytest.raises(PostDeployFailed, match=r"syncops exit code 7\): seeding from .*models/a.json: source 8 bytes"):
        run_program({"cloud": "gcp", "bucketName": dst.bucket, "seedFrom": src.url}, post_deploy=real_post_deploy)

    assert dst.index_version() == version
    assert dst.raw.get("models/a.json") == b'{"a": "theirs"}'


def test_without_seed_from_there_is_no_seed_resource_and_the_outputs_are_null() -> None:
    deployment = run_program({"cloud": "aws"})
    assert deployment.of_type(SEED_TYPE) == []
    assert (deployment.outputs["seededFrom"], deployment.outputs["seededObjects"]) == (None, None)
    assert "deployer" not in deployment.outputs["iamPolicy"]


def test_the_iam_output_says_what_the_deploying_identity_needs_on_source_and_destination() -> None:
    deployment = run_program({"cloud": "aws", "prefix": "env/dev", "seedFrom": "s3://prod-data/env/prod"})
    policies = deployment.outputs["iamPolicy"]
    deployer = policies["deployer"]
    assert deployer["destination"] == policies["writers"]
    source = {s["Sid"]: s for s in deployer["source"]["Statement"]}
    assert source["ListSeedSource"]["Action"] == ["s3:ListBucket"]
    assert source["ListSeedSource"]["Resource"] == ["arn:aws:s3:::prod-data"]
    assert source["ListSeedSource"]["Condition"] == {"StringLike": {"s3:prefix": ["env/prod", "env/prod/*"]}}
    assert source["ReadSeedSourceObjects"]["Action"] == ["s3:GetObject"]
    assert source["ReadSeedSourceObjects"]["Resource"] == ["arn:aws:s3:::prod-data/env/prod/*"]
    assert deployment.one(SEED_TYPE).inputs["seed_from"] == "s3://prod-data/env/prod"

    gcp = run_program({"cloud": "gcp", "seedFrom": "s3://prod-data"}).outputs["iamPolicy"]["deployer"]
    assert gcp["destination"]["permissions"] == [
        "storage.objects.create",
        "storage.objects.delete",
        "storage.objects.get",
        "storage.objects.list",
    ]
    assert {s["Sid"] for s in gcp["source"]["Statement"]} == {"ListSeedSource", "ReadSeedSourceObjects"}
    from_gcs = run_program({"cloud": "aws", "seedFrom": "gs://prod-data/env"}).outputs["iamPolicy"]["deployer"]
    assert from_gcs["source"]["permissions"] == ["storage.objects.get", "storage.objects.list"]
    assert from_gcs["source"]["bucket"] == "prod-data"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"seedFrom": "ftp://elsewhere/x"}, "syncops:seedFrom 'ftp://elsewhere/x': bad datastore URL"),
        ({"seedFrom": "s3://acme-dev", "bucketName": "acme-dev"}, "one is inside the other"),
        ({"seedFrom": "s3://acme-dev/env", "bucketName": "acme-dev", "prefix": "env/dev"}, "one is inside the other"),
        ({"seedFrom": "s3://prod", "bootstrap": "false"}, "syncops:seedFrom is set but syncops:bootstrap is false"),
    ],
)
def test_a_bad_seed_from_fails_before_any_resource(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        run_program({"cloud": "aws", **config})
    assert message in str(error.value)


def test_up_reports_a_failed_seed_with_its_exit_code() -> None:
    failure = PostDeployFailed("s3://acme-dev", "seeding from s3://prod: access denied", 3, operation="seed")
    error = _deploy_error("dev", Exception(f"error: {failure}\n"))
    assert isinstance(error, DeployFailed) and error.exit_code == 3
    assert "syncops seed of s3://acme-dev failed" in str(error)

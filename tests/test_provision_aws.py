"""The Pulumi program with ``syncops:cloud: aws``, run under Pulumi's mocks: every secure default of
SPEC §5 in the registered resources, the post-deploy step wired after them, the stack outputs, and
clear errors for bad configuration.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from syncops.provision.config import ConfigError
from syncops.provision.post_deploy import PostDeployFailed
from tests.conftest import Datastore
from tests.pulumi_program import POST_DEPLOY_TYPE, ROOT, Deployment, real_post_deploy, run_program

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

BUCKET = "aws:s3/bucket:Bucket"
OWNERSHIP = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
PUBLIC_ACCESS = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
ENCRYPTION = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
POLICY = "aws:s3/bucketPolicy:BucketPolicy"
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
SETTINGS = [OWNERSHIP, PUBLIC_ACCESS, ENCRYPTION, VERSIONING, POLICY, LIFECYCLE]
KMS_KEY = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def deploy(**config: Any) -> Deployment:
    return run_program({"cloud": "aws", **config})


@pytest.fixture(scope="module")
def default() -> Deployment:
    return deploy(prefix="env/dev")


def test_every_bucket_resource_is_a_child_of_the_datastore_component(default: Deployment) -> None:
    assert default.one("syncops:aws:DatastoreBucket").name == "datastore"
    for typ in [BUCKET, *SETTINGS]:
        assert "::syncops:aws:DatastoreBucket$" + typ + "::" in default.urn_of(typ)


def test_uses_only_current_s3_resource_types(default: Deployment) -> None:
    s3_types = {r.typ for r in default.resources if r.typ.startswith("aws:s3")}
    assert s3_types == {BUCKET, *SETTINGS}
    assert not [t for t in s3_types if "V2" in t or "bucketV2" in t]


def test_settings_apply_to_the_datastore_bucket(default: Deployment) -> None:
    bucket_id = "datastore-4f7a2c1"
    for typ in SETTINGS:
        assert default.one(typ).inputs["bucket"] == bucket_id, typ


def test_versioning_enabled_by_default(default: Deployment) -> None:
    assert default.one(VERSIONING).inputs["versioningConfiguration"] == {"status": "Enabled"}


def test_versioning_false_suspends_it() -> None:
    assert deploy(versioning=False).one(VERSIONING).inputs["versioningConfiguration"] == {"status": "Suspended"}


def test_sse_s3_by_default(default: Deployment) -> None:
    (rule,) = default.one(ENCRYPTION).inputs["rules"]
    assert rule["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}


def test_sse_kms_when_a_key_is_set() -> None:
    (rule,) = deploy(kmsKeyId=KMS_KEY).one(ENCRYPTION).inputs["rules"]
    assert rule["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": KMS_KEY}
    assert rule["bucketKeyEnabled"] is True


def test_all_four_public_access_blocks(default: Deployment) -> None:
    inputs = default.one(PUBLIC_ACCESS).inputs
    for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"):
        assert inputs[flag] is True, flag


def test_bucket_owner_enforced(default: Deployment) -> None:
    assert default.one(OWNERSHIP).inputs["rule"] == {"objectOwnership": "BucketOwnerEnforced"}


def test_tls_only_bucket_policy(default: Deployment) -> None:
    policy = default.one(POLICY)
    (statement,) = json.loads(policy.inputs["policy"])["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == "*"
    assert statement["Action"] == "s3:*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    arn = "arn:aws:s3:::datastore-4f7a2c1"
    assert statement["Resource"] == [arn, f"{arn}/*"]
    assert default.urn_of(PUBLIC_ACCESS) in policy.dependencies


def test_lifecycle_expires_noncurrent_versions_and_aborts_incomplete_uploads(default: Deployment) -> None:
    lifecycle = default.one(LIFECYCLE)
    rules = {rule["id"]: rule for rule in lifecycle.inputs["rules"]}
    noncurrent = rules["expire-noncurrent-versions"]
    assert noncurrent["status"] == "Enabled"
    assert noncurrent["noncurrentVersionExpiration"] == {"noncurrentDays": 30}
    assert noncurrent["filter"] == {}
    multipart = rules["abort-incomplete-multipart-uploads"]
    assert multipart["status"] == "Enabled"
    assert multipart["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 7}
    assert default.urn_of(VERSIONING) in lifecycle.dependencies


def test_noncurrent_days_from_config() -> None:
    rules = deploy(noncurrentDays=90).one(LIFECYCLE).inputs["rules"]
    assert rules[0]["noncurrentVersionExpiration"] == {"noncurrentDays": 90}


def test_tags_carry_managed_by_and_the_configured_tags() -> None:
    tags = deploy(tags={"team": "data", "env": "dev"}).one(BUCKET).inputs["tags"]
    assert tags == {"managed-by": "syncops", "team": "data", "env": "dev"}


def test_force_destroy_off_by_default_and_bucket_auto_named(default: Deployment) -> None:
    inputs = default.one(BUCKET).inputs
    assert inputs["forceDestroy"] is False
    assert "bucket" not in inputs


def test_bucket_name_and_force_destroy_from_config() -> None:
    inputs = deploy(bucketName="acme-dev-datastore", forceDestroy=True).one(BUCKET).inputs
    assert inputs["bucket"] == "acme-dev-datastore"
    assert inputs["forceDestroy"] is True


def test_post_deploy_runs_discovery_after_the_bucket_and_every_setting(default: Deployment) -> None:
    discovery = default.one(POST_DEPLOY_TYPE)
    assert discovery.inputs["cloud"] == "aws"
    assert discovery.inputs["bucket"] == "datastore-4f7a2c1"
    assert discovery.inputs["prefix"] == "env/dev"
    assert "__provider" in discovery.inputs
    for typ in [BUCKET, *SETTINGS]:
        assert default.urn_of(typ) in discovery.dependencies, typ


def test_stack_outputs(default: Deployment) -> None:
    outputs = default.outputs
    assert outputs["provider"] == "aws"
    assert outputs["bucketName"] == "datastore-4f7a2c1"
    assert outputs["datastoreUrl"] == "s3://datastore-4f7a2c1/env/dev"
    assert outputs["indexKey"] == "env/dev/.datastore-index.json"
    assert outputs["indexStatus"] == "discovered"
    assert outputs["indexEntries"] == 3
    assert set(outputs["iamPolicy"]) == {"readers", "writers"}


def _statements(policy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    assert policy["Version"] == "2012-10-17"
    return {s["Sid"]: s for s in policy["Statement"]}


def test_iam_policy_is_least_privilege_and_scoped_to_bucket_and_prefix(default: Deployment) -> None:
    arn = "arn:aws:s3:::datastore-4f7a2c1"
    readers = _statements(default.outputs["iamPolicy"]["readers"])
    writers = _statements(default.outputs["iamPolicy"]["writers"])
    for statements in (readers, writers):
        listing = statements["ListDatastore"]
        assert listing["Action"] == ["s3:ListBucket"]
        assert listing["Resource"] == [arn]
        assert listing["Condition"] == {"StringLike": {"s3:prefix": ["env/dev", "env/dev/*"]}}
        assert all(s["Effect"] == "Allow" for s in statements.values())
    assert readers["ReadDatastoreObjects"]["Action"] == ["s3:GetObject"]
    assert readers["ReadDatastoreObjects"]["Resource"] == [f"{arn}/env/dev/*"]
    assert writers["WriteDatastoreObjects"]["Action"] == ["s3:GetObject", "s3:PutObject"]
    assert writers["WriteDatastoreObjects"]["Resource"] == [f"{arn}/env/dev/*"]
    every_action = [a for s in [*readers.values(), *writers.values()] for a in s["Action"]]
    assert not [a for a in every_action if "Delete" in a or a.endswith("*")]
    assert set(readers) == {"ListDatastore", "ReadDatastoreObjects"}


def test_iam_policy_without_prefix_covers_the_bucket_and_names_the_kms_key() -> None:
    outputs = deploy(kmsKeyId=KMS_KEY).outputs
    readers = _statements(outputs["iamPolicy"]["readers"])
    writers = _statements(outputs["iamPolicy"]["writers"])
    assert "Condition" not in readers["ListDatastore"]
    assert readers["ReadDatastoreObjects"]["Resource"] == ["arn:aws:s3:::datastore-4f7a2c1/*"]
    assert readers["UseDatastoreKey"] == {
        "Sid": "UseDatastoreKey",
        "Effect": "Allow",
        "Action": ["kms:Decrypt"],
        "Resource": [KMS_KEY],
    }
    assert writers["UseDatastoreKey"]["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert outputs["datastoreUrl"] == "s3://datastore-4f7a2c1"
    assert outputs["indexKey"] == ".datastore-index.json"


def test_bootstrap_false_declares_no_post_deploy_step() -> None:
    deployment = deploy(bootstrap=False)
    assert deployment.of_type(POST_DEPLOY_TYPE) == []
    assert deployment.outputs["indexStatus"] == "skipped"
    assert deployment.outputs["indexEntries"] is None


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"cloud": None}, "syncops:cloud is not set"),
        ({"cloud": "azure"}, "syncops:cloud must be 'aws' or 'gcp', not 'azure'"),
        ({"bucketName": "My_Bucket"}, "syncops:bucketName 'My_Bucket' is not a valid name for an S3 bucket"),
        ({"bucketName": "ab"}, "syncops:bucketName 'ab' is not a valid name"),
        ({"bucketName": "a" * 64}, "is not a valid name for an S3 bucket"),
        ({"bucketName": "a..b"}, "no '..'"),
        ({"bucketName": "192.168.1.10"}, "IP address"),
        ({"bucketName": "xn--datastore"}, "reserved prefix"),
        ({"bucketName": "data-s3alias"}, "reserved prefix or suffix"),
        ({"prefix": "env/../prod"}, "syncops:prefix 'env/../prod'"),
        ({"prefix": "env//prod"}, "empty, '.' or '..' path segments"),
        ({"prefix": "env\\prod"}, "backslashes"),
        ({"versioning": "maybe"}, "syncops:versioning must be true or false, not 'maybe'"),
        ({"forceDestroy": "sure"}, "syncops:forceDestroy must be true or false"),
        ({"bootstrap": "2"}, "syncops:bootstrap must be true or false"),
        ({"noncurrentDays": "0"}, "syncops:noncurrentDays must be a whole number ≥ 1, not 0"),
        ({"noncurrentDays": "thirty"}, "syncops:noncurrentDays must be a whole number ≥ 1, not 'thirty'"),
        ({"kmsKeyName": "projects/p/locations/l/keyRings/r/cryptoKeys/k"}, "on aws set syncops:kmsKeyId"),
        ({"kmsKeyId": "alias/datastore"}, "syncops:kmsKeyId must be a KMS key ARN"),
        ({"location": "EU"}, "syncops:location applies to gcp buckets only"),
        ({"tags": ["team", "data"]}, "syncops:tags must be a map"),
        ({"tags": {"team": {"nested": 1}}}, "syncops:tags.team must be a string"),
    ],
)
def test_bad_config_fails_before_any_resource_with_a_clear_message(config: dict[str, Any], message: str) -> None:
    full = {"cloud": "aws", **config}
    with pytest.raises(ConfigError) as error:
        run_program({k: v for k, v in full.items() if v is not None})
    assert message in str(error.value)


def test_example_stack_file_runs() -> None:
    stack = yaml.safe_load((ROOT / "stacks" / "Pulumi.aws-dev.yaml").read_text())["config"]
    assert stack["syncops:cloud"] == "aws" and "aws:region" in stack
    config = {k.removeprefix("syncops:"): v for k, v in stack.items() if k.startswith("syncops:")}
    deployment = run_program(config)
    assert deployment.outputs["datastoreUrl"] == "s3://datastore-4f7a2c1/datastore"
    assert deployment.one(BUCKET).inputs["tags"] == {"managed-by": "syncops", "environment": "dev", "team": "platform"}


def test_project_file_declares_python_with_the_repository_venv_and_stack_dir() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "syncops"
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": ".venv"}}
    assert project["stackConfigDir"] == "stacks"


def test_pulumi_up_against_a_bucket_full_of_unindexed_data_publishes_its_index(
    make_datastore: Callable[..., Datastore],
) -> None:
    """The program with its real post-deploy provider, against a real S3 bucket (SeaweedFS)."""
    ds = make_datastore("s3", prefix="env/dev")
    ds.seed({"models/a.json": b"{}", "models/b.json": b"[]", ".lock": b""})

    deployment = run_program(
        {"cloud": "aws", "bucketName": ds.bucket, "prefix": "env/dev"}, post_deploy=real_post_deploy
    )

    assert deployment.outputs["indexStatus"] == "discovered"
    assert deployment.outputs["indexEntries"] == 2
    index = ds.index()
    assert index is not None and sorted(index["entries"]) == ["models/a.json", "models/b.json"]


def test_pulumi_up_fails_on_access_denied_with_syncops_message(
    make_datastore: Callable[..., Datastore], monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = make_datastore("s3")
    ds.seed({"models/a.json": b"{}"})
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")

    with pytest.raises(PostDeployFailed, match=r"syncops exit code 3\): access denied") as failed:
        run_program({"cloud": "aws", "bucketName": ds.bucket}, post_deploy=real_post_deploy)

    assert ds.bucket in str(failed.value)
    assert ds.index() is None

"""The Pulumi program with ``syncops:cloud: aws``, run under Pulumi's mocks: every secure default of
SPEC §5 in the registered resources, the post-deploy step wired after them, the stack outputs, and
clear errors for bad configuration.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest
import yaml
from pulumi.runtime.rpc import is_rpc_secret, unwrap_rpc_secret

from syncops.provision.access import aws_access
from syncops.provision.aws import AwsDatastoreBucket, AwsDatastoreBucketArgs
from syncops.provision.config import ConfigError
from syncops.provision.post_deploy import DiscoveryProvider, PostDeployDiscovery, PostDeployFailed
from tests import servers
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
    # Delete on swamp's lock object only (syncops releases the lock it took), never on data.
    assert writers["ReleaseDatastoreLock"]["Action"] == ["s3:DeleteObject"]
    assert writers["ReleaseDatastoreLock"]["Resource"] == [f"{arn}/env/dev/.datastore.lock"]
    every_action = [(a, r) for s in [*readers.values(), *writers.values()] for a in s["Action"] for r in s["Resource"]]
    assert [(a, r) for a, r in every_action if "Delete" in a] == [("s3:DeleteObject", f"{arn}/env/dev/.datastore.lock")]
    assert not [a for a, _ in every_action if a.endswith("*")]
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
    deployment = run_program(stack)
    assert deployment.outputs["datastoreUrl"] == "s3://datastore-4f7a2c1/datastore"
    assert deployment.one(POST_DEPLOY_TYPE).inputs["aws_region"] == stack["aws:region"]
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


# -- the stack's aws:* settings reach the post-deploy step (issue 13, item 3) ------------------------------

ROLE = "arn:aws:iam::111122223333:role/datastore-deployer"
STACK_AWS = {
    "aws:profile": "acme-prod",
    "aws:region": "eu-west-1",
    "aws:endpoints": [{"s3": "https://s3.proxy.example"}, {"sts": "https://sts.proxy.example"}],
    "aws:accessKey": "AKIASTACKKEY",
    "aws:secretKey": "stack-secret-key",
    "aws:token": "stack-session-token",
    "aws:assumeRoles": [{"roleArn": ROLE, "sessionName": "deploy", "duration": "1h30m", "externalId": "acme"}],
}
SECRETS = ("AKIASTACKKEY", "stack-secret-key", "stack-session-token")


def test_post_deploy_inputs_carry_the_stacks_aws_settings_with_secrets_as_secrets() -> None:
    deployment = run_program({"cloud": "aws", **STACK_AWS})
    inputs = deployment.one(POST_DEPLOY_TYPE).inputs

    assert inputs["aws_profile"] == "acme-prod"
    assert inputs["aws_region"] == "eu-west-1"
    assert inputs["aws_endpoint"] == "https://s3.proxy.example"
    assert inputs["aws_sts_endpoint"] == "https://sts.proxy.example"
    assert inputs["aws_assume_roles"] == [
        {"role_arn": ROLE, "session_name": "deploy", "duration_seconds": 5400, "external_id": "acme"}
    ]
    for key, value in zip(("aws_access_key", "aws_secret_key", "aws_token"), SECRETS, strict=True):
        assert is_rpc_secret(inputs[key]), key
        assert unwrap_rpc_secret(inputs[key]) == value
    for key in ("aws_profile", "aws_region", "aws_endpoint", "aws_assume_roles"):
        assert not is_rpc_secret(inputs[key]), key
    assert not [secret for secret in SECRETS if secret in json.dumps(deployment.outputs)]


def test_without_aws_settings_the_step_keeps_the_machines_defaults(default: Deployment) -> None:
    inputs = default.one(POST_DEPLOY_TYPE).inputs
    assert not [key for key in inputs if key.startswith("aws_") and inputs[key] is not None]


def test_the_older_single_assume_role_is_honoured() -> None:
    deployment = run_program({"cloud": "aws", "aws:assumeRole": {"roleArn": ROLE, "durationSeconds": 900}})
    assert deployment.one(POST_DEPLOY_TYPE).inputs["aws_assume_roles"] == [{"role_arn": ROLE, "duration_seconds": 900}]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"aws:accessKey": "AKIAONLY"}, "aws:accessKey and aws:secretKey must be set together"),
        ({"aws:secretKey": "only-the-secret"}, "aws:accessKey and aws:secretKey must be set together"),
        ({"aws:assumeRoles": [{"sessionName": "x"}]}, "aws:assumeRoles[0] has no roleArn"),
        ({"aws:assumeRoles": [{"roleArn": ROLE, "duration": "90 minutes"}]}, "must be a duration such as 15m"),
        (
            {"aws:assumeRoles": [{"roleArn": ROLE, "role": "x"}]},
            "aws:assumeRoles[0].role is not an assume-role setting",
        ),
        (
            {"aws:assumeRoles": [{"roleArn": ROLE}], "aws:assumeRole": {"roleArn": ROLE}},
            "aws:assumeRoles and aws:assumeRole are both set",
        ),
        ({"aws:endpoints": ["https://s3.example"]}, "aws:endpoints must be a list of maps"),
    ],
)
def test_bad_aws_settings_fail_before_any_resource(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        run_program({"cloud": "aws", **config})
    assert message in str(error.value)
    assert "only-the-secret" not in str(error.value)


def _machine_is_denied(ds: Datastore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The deploying machine's own keys and endpoint cannot reach the bucket: only the stack's can."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAMACHINEDEFAULT")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "the-machines-own-secret")
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    with pytest.raises(PostDeployFailed):  # not even the machine's keys against the right endpoint
        DiscoveryProvider().create({"cloud": "aws", "bucket": ds.bucket, "prefix": "", "aws_endpoint": ds.endpoint})


def test_pulumi_up_reaches_the_bucket_with_the_stacks_endpoint_and_keys(
    make_datastore: Callable[..., Datastore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The program with its real post-deploy provider; only the stack's aws:* settings can reach SeaweedFS."""
    ds = make_datastore("s3")
    ds.seed({"models/a.json": b"{}", "models/b.json": b"[]"})
    _machine_is_denied(ds, monkeypatch)

    deployment = run_program(
        {
            "cloud": "aws",
            "bucketName": ds.bucket,
            "aws:region": "us-east-1",
            "aws:endpoints": [{"s3": ds.endpoint}],
            "aws:accessKey": servers.ACCESS_KEY,
            "aws:secretKey": servers.SECRET_KEY,
        },
        post_deploy=real_post_deploy,
    )

    assert deployment.outputs["indexStatus"] == "discovered"
    assert deployment.outputs["indexEntries"] == 2
    assert ds.index() is not None
    assert servers.SECRET_KEY not in json.dumps(deployment.outputs)


def explicit_provider_program(provider_args: dict[str, Any], bucket_name: str | None = None) -> Callable[[], None]:
    """A program of one's own: the datastore managed with an explicit aws.Provider, discovery after it."""

    def program() -> None:
        prod = aws.Provider("prod", **provider_args)
        datastore = AwsDatastoreBucket(
            "datastore", AwsDatastoreBucketArgs(bucket_name=bucket_name), opts=pulumi.ResourceOptions(provider=prod)
        )
        stack_access = aws_access({"profile": "stack-profile", "region": "us-west-2"}, {}, {})
        discovery = PostDeployDiscovery(
            "datastore-discovery",
            cloud="aws",
            bucket=datastore.bucket_name,
            prefix="",
            access=stack_access,
            opts=pulumi.ResourceOptions(depends_on=[datastore.bucket], provider=datastore.provider),
        )
        pulumi.export("indexStatus", discovery.index_status)

    return program


def test_an_explicit_provider_wins_over_the_stack_config() -> None:
    deployment = run_program(
        {"cloud": "aws", "aws:profile": "stack-profile", "aws:region": "us-west-2"},
        program=explicit_provider_program(
            {
                "profile": "prod",
                "region": "eu-central-1",
                "access_key": "AKIAPROVIDERKEY",
                "secret_key": "provider-secret",
                "endpoints": [aws.ProviderEndpointArgs(s3="https://s3.prod.example")],
            }
        ),
    )
    assert deployment.one("pulumi:providers:aws").name == "prod"
    inputs = deployment.one(POST_DEPLOY_TYPE).inputs
    assert (inputs["aws_profile"], inputs["aws_region"]) == ("prod", "eu-central-1")
    assert inputs["aws_endpoint"] == "https://s3.prod.example"
    assert unwrap_rpc_secret(inputs["aws_access_key"]) == "AKIAPROVIDERKEY"
    assert is_rpc_secret(inputs["aws_secret_key"]) and unwrap_rpc_secret(inputs["aws_secret_key"]) == "provider-secret"


def test_pulumi_up_with_an_explicit_provider_reaches_the_bucket_with_its_settings(
    make_datastore: Callable[..., Datastore], monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = make_datastore("s3")
    ds.seed({"models/a.json": b"{}"})
    _machine_is_denied(ds, monkeypatch)
    provider_args = {
        "region": "us-east-1",
        "access_key": servers.ACCESS_KEY,
        "secret_key": servers.SECRET_KEY,
        "endpoints": [aws.ProviderEndpointArgs(s3=ds.endpoint)],
    }

    deployment = run_program(
        {"cloud": "aws", "aws:accessKey": "AKIASTACKKEY", "aws:secretKey": "wrong-stack-secret"},
        program=explicit_provider_program(provider_args, bucket_name=ds.bucket),
        post_deploy=real_post_deploy,
    )

    assert deployment.outputs["indexStatus"] == "discovered"
    assert ds.index() is not None

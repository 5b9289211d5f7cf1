"""The Pulumi program with ``syncops:cloud: gcp``, run under Pulumi's mocks: every secure default of
SPEC §5 and issue 4 on the registered bucket, optional CMEK with its service-agent grant, the
post-deploy step, the stack outputs, and clear errors for bad configuration.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_gcp as gcp
import pytest
import yaml
from google.cloud import storage
from pulumi.runtime.rpc import is_rpc_secret, unwrap_rpc_secret

from syncops.provision.access import gcp_access
from syncops.provision.config import ConfigError
from syncops.provision.gcp import GcpDatastoreBucket, GcpDatastoreBucketArgs
from syncops.provision.post_deploy import PostDeployDiscovery
from tests.conftest import Datastore
from tests.proxy import Proxy
from tests.pulumi_program import GCS_AGENT, POST_DEPLOY_TYPE, ROOT, Deployment, real_post_deploy, run_program

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

BUCKET = "gcp:storage/bucket:Bucket"
KEY_ACCESS = "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember"
SERVICE_AGENT_INVOKE = "gcp:storage/getProjectServiceAccount:getProjectServiceAccount"
KMS_KEY = "projects/acme/locations/us/keyRings/datastore/cryptoKeys/datastore"


def deploy(**config: Any) -> Deployment:
    return run_program({"cloud": "gcp", **config})


@pytest.fixture(scope="module")
def default() -> Deployment:
    return deploy(prefix="env/dev")


def bucket(deployment: Deployment) -> dict[str, Any]:
    return deployment.one(BUCKET).inputs


def test_bucket_is_a_child_of_the_datastore_component(default: Deployment) -> None:
    assert default.one("syncops:gcp:DatastoreBucket").name == "datastore"
    assert "::syncops:gcp:DatastoreBucket$gcp:storage/bucket:Bucket::datastore" in default.urn_of(BUCKET)


def test_uniform_bucket_level_access(default: Deployment) -> None:
    assert bucket(default)["uniformBucketLevelAccess"] is True


def test_public_access_prevention_enforced(default: Deployment) -> None:
    assert bucket(default)["publicAccessPrevention"] == "enforced"


def test_versioning_enabled_by_default_and_off_when_configured(default: Deployment) -> None:
    assert bucket(default)["versioning"] == {"enabled": True}
    assert bucket(deploy(versioning=False))["versioning"] == {"enabled": False}


def test_lifecycle_deletes_noncurrent_versions_and_aborts_incomplete_uploads(default: Deployment) -> None:
    rules = {rule["action"]["type"]: rule["condition"] for rule in bucket(default)["lifecycleRules"]}
    assert rules["Delete"] == {"daysSinceNoncurrentTime": 30, "withState": "ARCHIVED"}
    assert rules["AbortIncompleteMultipartUpload"] == {"age": 7}
    configured = {r["action"]["type"]: r["condition"] for r in bucket(deploy(noncurrentDays=5))["lifecycleRules"]}
    assert configured["Delete"]["daysSinceNoncurrentTime"] == 5


def test_soft_delete_policy_seven_days_by_default_and_configurable(default: Deployment) -> None:
    assert bucket(default)["softDeletePolicy"] == {"retentionDurationSeconds": 7 * 86400}
    assert bucket(deploy(softDeleteDays=30))["softDeletePolicy"] == {"retentionDurationSeconds": 30 * 86400}
    assert bucket(deploy(softDeleteDays=0))["softDeletePolicy"] == {"retentionDurationSeconds": 0}


def test_google_managed_encryption_by_default(default: Deployment) -> None:
    assert "encryption" not in bucket(default)
    assert default.of_type(KEY_ACCESS) == []
    assert default.calls == []


def test_cmek_sets_the_default_key_and_first_grants_the_storage_service_agent() -> None:
    deployment = deploy(kmsKeyName=KMS_KEY)
    assert bucket(deployment)["encryption"] == {"defaultKmsKeyName": KMS_KEY}
    grant = deployment.one(KEY_ACCESS)
    assert grant.inputs == {
        "cryptoKeyId": KMS_KEY,
        "role": "roles/cloudkms.cryptoKeyEncrypterDecrypter",
        "member": f"serviceAccount:{GCS_AGENT}",
    }
    assert [token for token, _ in deployment.calls] == [SERVICE_AGENT_INVOKE]
    assert grant.urn in deployment.one(BUCKET).dependencies


def test_labels_carry_managed_by_and_the_configured_labels() -> None:
    labels = bucket(deploy(labels={"team": "data", "env": "dev"}))["labels"]
    assert labels == {"managed-by": "syncops", "team": "data", "env": "dev"}


def test_location_force_destroy_and_name(default: Deployment) -> None:
    assert bucket(default)["location"] == "US"
    assert bucket(default)["forceDestroy"] is False
    assert "name" not in bucket(default)
    configured = bucket(deploy(location="EUROPE-WEST1", forceDestroy=True, bucketName="acme_dev.datastore"))
    assert configured["location"] == "EUROPE-WEST1"
    assert configured["forceDestroy"] is True
    assert configured["name"] == "acme_dev.datastore"


def test_post_deploy_runs_discovery_after_the_bucket(default: Deployment) -> None:
    discovery = default.one(POST_DEPLOY_TYPE)
    assert discovery.inputs["cloud"] == "gcp"
    assert discovery.inputs["bucket"] == "datastore-4f7a2c1"
    assert discovery.inputs["prefix"] == "env/dev"
    assert default.urn_of(BUCKET) in discovery.dependencies


def test_stack_outputs(default: Deployment) -> None:
    outputs = default.outputs
    assert outputs["provider"] == "gcp"
    assert outputs["bucketName"] == "datastore-4f7a2c1"
    assert outputs["datastoreUrl"] == "gs://datastore-4f7a2c1/env/dev"
    assert outputs["indexKey"] == "env/dev/.datastore-index.json"
    assert outputs["indexStatus"] == "discovered"
    assert outputs["indexEntries"] == 3


def test_iam_policy_is_least_privilege_and_scoped_to_the_prefix(default: Deployment) -> None:
    policy = default.outputs["iamPolicy"]
    readers, writers = policy["readers"], policy["writers"]
    assert readers["permissions"] == ["storage.objects.get", "storage.objects.list"]
    assert writers["permissions"] == [
        "storage.objects.create",
        "storage.objects.delete",
        "storage.objects.get",
        "storage.objects.list",
    ]
    for role in (readers, writers):
        assert role["bucket"] == "datastore-4f7a2c1"
        assert role["condition"]["expression"] == (
            'resource.type == "storage.googleapis.com/Bucket" || '
            'resource.name.startsWith("projects/_/buckets/datastore-4f7a2c1/objects/env/dev/")'
        )
    assert not [p for p in writers["permissions"] if p.startswith("storage.buckets.")]


def test_iam_policy_without_prefix_has_no_condition() -> None:
    policy = deploy().outputs["iamPolicy"]
    assert policy["readers"]["condition"] is None and policy["writers"]["condition"] is None


def test_bootstrap_false_declares_no_post_deploy_step() -> None:
    deployment = deploy(bootstrap=False)
    assert deployment.of_type(POST_DEPLOY_TYPE) == []
    assert deployment.outputs["indexStatus"] == "skipped"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"bucketName": "goog-datastore"}, "may not start with 'goog' or contain 'google'"),
        ({"bucketName": "my-google-data"}, "may not start with 'goog' or contain 'google'"),
        ({"bucketName": "Datastore"}, "syncops:bucketName 'Datastore' is not a valid name for a GCS bucket"),
        ({"bucketName": "a" * 64}, "at most 63 characters"),
        ({"bucketName": "-datastore"}, "starting and ending with a letter or digit"),
        ({"kmsKeyId": "arn:aws:kms:eu-west-1:111122223333:key/abc"}, "on gcp set syncops:kmsKeyName"),
        ({"kmsKeyName": "datastore-key"}, "syncops:kmsKeyName must be projects/P/locations/L/keyRings/R/cryptoKeys/K"),
        ({"labels": {"Team": "data"}}, "GCP label key 'Team'"),
        ({"labels": {"team": "Data Platform"}}, "GCP label value 'Data Platform'"),
        ({"softDeleteDays": "3"}, "syncops:softDeleteDays must be 0 (off) or 7 to 90, not 3"),
        ({"softDeleteDays": "365"}, "not 365"),
        ({"noncurrentDays": "-1"}, "syncops:noncurrentDays must be a whole number ≥ 1"),
        ({"cloud": "GCS"}, "syncops:cloud must be 'aws' or 'gcp', not 'GCS'"),
    ],
)
def test_bad_config_fails_before_any_resource_with_a_clear_message(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        run_program({"cloud": "gcp", **config})
    assert message in str(error.value)


def test_example_stack_file_runs() -> None:
    stack = yaml.safe_load((ROOT / "stacks" / "Pulumi.gcp-dev.yaml").read_text())["config"]
    assert stack["syncops:cloud"] == "gcp" and "gcp:project" in stack
    deployment = run_program(stack)
    assert deployment.outputs["datastoreUrl"] == "gs://datastore-4f7a2c1/datastore"
    assert deployment.one(POST_DEPLOY_TYPE).inputs["gcp_project"] == stack["gcp:project"]
    assert bucket(deployment)["labels"] == {"managed-by": "syncops", "environment": "dev", "team": "platform"}


def test_pulumi_up_against_a_bucket_full_of_unindexed_data_publishes_its_index(
    make_datastore: Callable[..., Datastore],
) -> None:
    """The program with its real post-deploy provider, against a real GCS emulator bucket."""
    ds = make_datastore("gcs")
    ds.seed({"models/a.json": b"{}", "team-b/.namespace.json": b"{}", "team-b/x.json": b"{}"})

    deployment = run_program({"cloud": "gcp", "bucketName": ds.bucket}, post_deploy=real_post_deploy)

    assert deployment.outputs["indexStatus"] == "discovered"
    assert deployment.outputs["indexEntries"] == 1
    index = ds.index()
    assert index is not None and list(index["entries"]) == ["models/a.json"]


# -- the stack's gcp:* settings reach the post-deploy step (issue 13, item 3) ------------------------------

KEY_JSON = '{"type": "service_account", "client_email": "deployer@acme.iam.gserviceaccount.com"}'


@pytest.mark.parametrize(
    ("secret_config", "secret_input", "value"),
    [("gcp:credentials", "gcp_credentials", KEY_JSON), ("gcp:accessToken", "gcp_access_token", "ya29.stack-token")],
)
def test_post_deploy_inputs_carry_the_stacks_gcp_settings_with_secrets_as_secrets(
    secret_config: str, secret_input: str, value: str
) -> None:
    deployment = run_program({"cloud": "gcp", "gcp:project": "acme-data", secret_config: value})
    inputs = deployment.one(POST_DEPLOY_TYPE).inputs

    assert inputs["gcp_project"] == "acme-data" and not is_rpc_secret(inputs["gcp_project"])
    assert is_rpc_secret(inputs[secret_input]) and unwrap_rpc_secret(inputs[secret_input]) == value
    assert value not in json.dumps(deployment.outputs)
    assert not [key for key in inputs if key.startswith("aws_") and inputs[key] is not None]


def test_gcp_credentials_and_access_token_together_are_refused() -> None:
    with pytest.raises(ConfigError, match="gcp:credentials and gcp:accessToken are both set") as error:
        run_program({"cloud": "gcp", "gcp:credentials": KEY_JSON, "gcp:accessToken": "ya29.stack-token"})
    assert "ya29" not in str(error.value) and "deployer@" not in str(error.value)


class _RecordingClient(storage.Client):
    projects: list[str | None] = []

    def __init__(self, project: Any = None, *args: Any, **kwargs: Any) -> None:
        _RecordingClient.projects.append(project)
        super().__init__(project, *args, **kwargs)


def test_pulumi_up_reaches_the_bucket_with_the_stacks_project_and_token(
    make_datastore: Callable[..., Datastore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The program with its real post-deploy provider: gcp:project reaches the client, the token the server."""
    ds = make_datastore("gcs")
    ds.seed({"models/a.json": b"{}"})
    monkeypatch.setattr(_RecordingClient, "projects", [])
    monkeypatch.setattr(storage, "Client", _RecordingClient)
    with Proxy(ds.endpoint) as server:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.endpoint)
        monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "the-machines-project")

        deployment = run_program(
            {"cloud": "gcp", "bucketName": ds.bucket, "gcp:project": "acme-data", "gcp:accessToken": "ya29.stack"},
            post_deploy=real_post_deploy,
        )

    assert deployment.outputs["indexStatus"] == "discovered"
    assert _RecordingClient.projects == ["acme-data"]
    assert {seen.headers.get("authorization") for seen in server.seen} == {"Bearer ya29.stack"}


def test_an_explicit_provider_wins_over_the_stack_config() -> None:
    def program() -> None:
        prod = gcp.Provider("prod", project="acme-prod", access_token="ya29.provider-token")
        datastore = GcpDatastoreBucket(
            "datastore", GcpDatastoreBucketArgs(), opts=pulumi.ResourceOptions(provider=prod)
        )
        PostDeployDiscovery(
            "datastore-discovery",
            cloud="gcp",
            bucket=datastore.bucket_name,
            prefix="",
            access=gcp_access({"project": "stack-project"}, {"credentials": pulumi.Output.secret(KEY_JSON)}),
            opts=pulumi.ResourceOptions(depends_on=[datastore.bucket], provider=datastore.provider),
        )

    deployment = run_program({"cloud": "gcp", "gcp:project": "stack-project"}, program=program)
    inputs = deployment.one(POST_DEPLOY_TYPE).inputs

    assert inputs["gcp_project"] == "acme-prod"
    assert (
        is_rpc_secret(inputs["gcp_access_token"])
        and unwrap_rpc_secret(inputs["gcp_access_token"]) == "ya29.provider-token"
    )
    assert unwrap_rpc_secret(inputs["gcp_credentials"]) is None

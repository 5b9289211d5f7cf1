"""The datastore bucket on Google Cloud Storage, private and versioned from its first second.

With a customer-managed key, the project's Cloud Storage service agent is granted use of that key
first: GCS encrypts with the agent's identity, and a bucket whose default key it cannot use refuses
every write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_gcp as gcp

from syncops.keys import INDEX_KEY
from syncops.provision.policy import deployer_policies, gcs_access_policies
from syncops.stores.base import DatastoreUrl


@dataclass
class GcpDatastoreBucketArgs:
    bucket_name: str | None = None
    prefix: str = ""
    location: str = "US"
    versioning: bool = True
    #: ``projects/P/locations/L/keyRings/R/cryptoKeys/K`` selects CMEK; None keeps Google-managed keys.
    kms_key_name: str | None = None
    noncurrent_days: int = 30
    abort_incomplete_upload_days: int = 7
    soft_delete_days: int = 7
    force_destroy: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    #: ``syncops:seedFrom``: the access documents then also say what the deploying identity needs.
    seed_from: str | None = None


class GcpDatastoreBucket(pulumi.ComponentResource):
    """A GCS bucket holding a datastore, with the secure defaults of SPEC §5 (see :class:`AwsDatastoreBucket`)."""

    bucket: gcp.storage.Bucket
    bucket_name: pulumi.Output[str]
    datastore_url: pulumi.Output[str]
    index_key: pulumi.Output[str]
    access_policies: pulumi.Output[dict]
    settings: list[pulumi.Resource]
    provider: pulumi.ProviderResource | None

    def __init__(self, name: str, args: GcpDatastoreBucketArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("syncops:gcp:DatastoreBucket", name, None, opts)
        #: The explicit provider the bucket is managed with, None for the default one: the post-deploy
        #: step must reach the bucket with the same settings.
        self.provider = self.get_provider("gcp:storage/bucket:Bucket")
        self.settings = []
        bucket_depends_on: list[pulumi.Resource] = []
        encryption = None
        if args.kms_key_name:
            agent = gcp.storage.get_project_service_account_output(opts=pulumi.InvokeOptions(parent=self))
            key_access = gcp.kms.CryptoKeyIAMMember(
                f"{name}-kms-access",
                crypto_key_id=args.kms_key_name,
                role="roles/cloudkms.cryptoKeyEncrypterDecrypter",
                member=agent.email_address.apply(lambda email: f"serviceAccount:{email}"),
                opts=pulumi.ResourceOptions(parent=self),
            )
            bucket_depends_on.append(key_access)
            self.settings.append(key_access)
            encryption = gcp.storage.BucketEncryptionArgs(default_kms_key_name=args.kms_key_name)

        self.bucket = gcp.storage.Bucket(
            name,
            name=args.bucket_name,
            location=args.location,
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            versioning=gcp.storage.BucketVersioningArgs(enabled=args.versioning),
            encryption=encryption,
            soft_delete_policy=gcp.storage.BucketSoftDeletePolicyArgs(
                retention_duration_seconds=args.soft_delete_days * 86400
            ),
            lifecycle_rules=[
                gcp.storage.BucketLifecycleRuleArgs(
                    action=gcp.storage.BucketLifecycleRuleActionArgs(type="Delete"),
                    condition=gcp.storage.BucketLifecycleRuleConditionArgs(
                        days_since_noncurrent_time=args.noncurrent_days, with_state="ARCHIVED"
                    ),
                ),
                gcp.storage.BucketLifecycleRuleArgs(
                    action=gcp.storage.BucketLifecycleRuleActionArgs(type="AbortIncompleteMultipartUpload"),
                    condition=gcp.storage.BucketLifecycleRuleConditionArgs(age=args.abort_incomplete_upload_days),
                ),
            ],
            force_destroy=args.force_destroy,
            labels=args.labels,
            opts=pulumi.ResourceOptions(parent=self, depends_on=bucket_depends_on),
        )

        prefix = args.prefix
        self.bucket_name = self.bucket.name
        url = self.bucket.name.apply(lambda b: DatastoreUrl.for_bucket("gs", b, prefix))
        self.datastore_url = url.apply(str)
        self.index_key = url.apply(lambda u: u.full_key(INDEX_KEY))
        seed_from = args.seed_from

        def policies(bucket: str) -> dict[str, Any]:
            documents = gcs_access_policies(bucket, prefix)
            if seed_from:
                documents["deployer"] = deployer_policies(documents["writers"], seed_from)
            return documents

        self.access_policies = self.bucket.name.apply(policies)
        self.register_outputs(
            {
                "bucketName": self.bucket_name,
                "datastoreUrl": self.datastore_url,
                "indexKey": self.index_key,
                "accessPolicies": self.access_policies,
            }
        )

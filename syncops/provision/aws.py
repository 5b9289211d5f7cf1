"""The datastore bucket on S3, private and encrypted from its first second.

Every setting is its own pulumi-aws 7 resource (the split ``Bucket*`` resources, not the deprecated
inline arguments), all children of one component, so ``pulumi preview`` shows each secure default by
name and a drifted setting is repaired on the next ``pulumi up``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from syncops.keys import INDEX_KEY
from syncops.provision.policy import aws_access_policies, aws_tls_only_policy, deployer_policies
from syncops.stores.base import DatastoreUrl


@dataclass
class AwsDatastoreBucketArgs:
    bucket_name: str | None = None
    prefix: str = ""
    versioning: bool = True
    #: A KMS key ARN selects SSE-KMS; None keeps SSE-S3 (AES256).
    kms_key_id: str | None = None
    noncurrent_days: int = 30
    abort_incomplete_upload_days: int = 7
    force_destroy: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    #: ``syncops:seedFrom``: the access documents then also say what the deploying identity needs.
    seed_from: str | None = None


class AwsDatastoreBucket(pulumi.ComponentResource):
    """An S3 bucket holding a datastore, with the secure defaults of SPEC §5.

    ``settings`` lists the resources that make the bucket safe to write to; a post-deploy step depends
    on them so the index is never published into a bucket that is not yet private and encrypted.
    """

    bucket: aws.s3.Bucket
    bucket_name: pulumi.Output[str]
    datastore_url: pulumi.Output[str]
    index_key: pulumi.Output[str]
    access_policies: pulumi.Output[dict]
    settings: list[pulumi.Resource]
    provider: pulumi.ProviderResource | None

    def __init__(self, name: str, args: AwsDatastoreBucketArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("syncops:aws:DatastoreBucket", name, None, opts)
        #: The explicit provider (``opts.provider``/``providers``) the bucket is managed with, None for the
        #: default one: the post-deploy step must reach the bucket with the same settings.
        self.provider = self.get_provider("aws:s3/bucket:Bucket")
        child = pulumi.ResourceOptions(parent=self)

        self.bucket = aws.s3.Bucket(
            name,
            bucket=args.bucket_name,
            force_destroy=args.force_destroy,
            tags=args.tags,
            opts=child,
        )
        bucket_id = self.bucket.id

        ownership = aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket_id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=child,
        )
        public_access = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket_id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        encryption_default = (
            aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                sse_algorithm="aws:kms", kms_master_key_id=args.kms_key_id
            )
            if args.kms_key_id
            else aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                sse_algorithm="AES256"
            )
        )
        encryption = aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket_id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=encryption_default,
                    # S3 Bucket Keys cut the KMS request count (and cost) per object; harmless with SSE-S3.
                    bucket_key_enabled=bool(args.kms_key_id),
                )
            ],
            opts=child,
        )
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket_id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
                status="Enabled" if args.versioning else "Suspended"
            ),
            opts=child,
        )
        tls_only = aws.s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=bucket_id,
            policy=self.bucket.arn.apply(lambda arn: json.dumps(aws_tls_only_policy(arn))),
            # A policy put before the public-access block exists could be judged "public" and refused.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_access]),
        )
        lifecycle = aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket_id,
            rules=[
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-noncurrent-versions",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(),
                    noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                        noncurrent_days=args.noncurrent_days
                    ),
                    expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(expired_object_delete_marker=True),
                ),
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="abort-incomplete-multipart-uploads",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(),
                    abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                        days_after_initiation=args.abort_incomplete_upload_days
                    ),
                ),
            ],
            # Noncurrent-version rules are only meaningful once versioning is configured.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
        )
        self.settings = [ownership, public_access, encryption, versioning, tls_only, lifecycle]

        prefix = args.prefix
        self.bucket_name = self.bucket.bucket
        url = self.bucket.bucket.apply(lambda b: DatastoreUrl.for_bucket("s3", b, prefix))
        self.datastore_url = url.apply(str)
        self.index_key = url.apply(lambda u: u.full_key(INDEX_KEY))
        kms_key_id = args.kms_key_id
        seed_from = args.seed_from

        def policies(arn: str) -> dict[str, Any]:
            documents = aws_access_policies(arn, prefix, kms_key_id)
            if seed_from:
                partition = arn.split(":")[1]
                documents["deployer"] = deployer_policies(documents["writers"], seed_from, partition)
            return documents

        self.access_policies = self.bucket.arn.apply(policies)
        self.register_outputs(
            {
                "bucketName": self.bucket_name,
                "datastoreUrl": self.datastore_url,
                "indexKey": self.index_key,
                "accessPolicies": self.access_policies,
            }
        )

"""The syncops Pulumi program: one datastore bucket (S3 or GCS), secure by default, made usable by
syncops discovery before ``pulumi up`` returns.

All configuration is read and validated here, before any resource is declared: the ``syncops:*``
settings, and the ``aws:*`` / ``gcp:*`` provider settings that select credentials, region, project
and endpoint, which the post-deploy step needs to reach the bucket as the provider does (secrets are
read as secrets and stay secrets).
"""

import pulumi

from syncops.provision import (
    AwsDatastoreBucket,
    AwsDatastoreBucketArgs,
    GcpDatastoreBucket,
    GcpDatastoreBucketArgs,
    PostDeployDiscovery,
    parse_settings,
)
from syncops.provision.access import Access, aws_access, gcp_access

config = pulumi.Config("syncops")
settings = parse_settings(
    {
        key: config.get(key)
        for key in (
            "cloud",
            "bucketName",
            "prefix",
            "versioning",
            "kmsKeyId",
            "kmsKeyName",
            "noncurrentDays",
            "forceDestroy",
            "bootstrap",
            "location",
            "softDeleteDays",
            "seedFrom",
        )
    },
    {"tags": config.get_object("tags"), "labels": config.get_object("labels")},
)

access: Access
if settings.cloud == "aws":
    aws = pulumi.Config("aws")
    access = aws_access(
        {key: aws.get(key) for key in ("profile", "region")},
        {key: aws.get_object(key) for key in ("endpoints", "assumeRoles", "assumeRole")},
        {key: aws.get_secret(key) for key in ("accessKey", "secretKey", "token")},
    )
else:
    gcp = pulumi.Config("gcp")
    access = gcp_access(
        {"project": gcp.get("project")},
        {key: gcp.get_secret(key) for key in ("credentials", "accessToken")},
    )

datastore: AwsDatastoreBucket | GcpDatastoreBucket
if settings.cloud == "aws":
    datastore = AwsDatastoreBucket(
        "datastore",
        AwsDatastoreBucketArgs(
            bucket_name=settings.bucket_name,
            prefix=settings.prefix,
            versioning=settings.versioning,
            kms_key_id=settings.kms_key,
            noncurrent_days=settings.noncurrent_days,
            abort_incomplete_upload_days=settings.abort_incomplete_upload_days,
            force_destroy=settings.force_destroy,
            tags=settings.labels,
            seed_from=settings.seed_from,
        ),
    )
else:
    datastore = GcpDatastoreBucket(
        "datastore",
        GcpDatastoreBucketArgs(
            bucket_name=settings.bucket_name,
            prefix=settings.prefix,
            location=settings.location,
            versioning=settings.versioning,
            kms_key_name=settings.kms_key,
            noncurrent_days=settings.noncurrent_days,
            abort_incomplete_upload_days=settings.abort_incomplete_upload_days,
            soft_delete_days=settings.soft_delete_days,
            force_destroy=settings.force_destroy,
            labels=settings.labels,
            seed_from=settings.seed_from,
        ),
    )

if not settings.versioning:
    pulumi.log.warn("syncops:versioning is false: overwritten or deleted datastore objects cannot be recovered")

pulumi.export("provider", settings.cloud)
pulumi.export("bucketName", datastore.bucket_name)
pulumi.export("datastoreUrl", datastore.datastore_url)
pulumi.export("indexKey", datastore.index_key)
pulumi.export("iamPolicy", datastore.access_policies)

if settings.bootstrap:
    discovery = PostDeployDiscovery(
        "datastore-discovery",
        cloud=settings.cloud,
        bucket=datastore.bucket_name,
        prefix=settings.prefix,
        access=access,
        # With syncops:seedFrom, the new bucket is seeded from that datastore first (once), then discovered.
        seed_from=settings.seed_from,
        opts=pulumi.ResourceOptions(depends_on=[datastore.bucket, *datastore.settings], provider=datastore.provider),
    )
    pulumi.export("indexStatus", discovery.index_status)
    pulumi.export("indexEntries", discovery.index_entries)
    pulumi.export("seededFrom", discovery.seeded_from)
    pulumi.export("seededObjects", discovery.seeded_objects)
else:
    pulumi.export("indexStatus", "skipped")
    pulumi.export("indexEntries", None)
    pulumi.export("seededFrom", None)
    pulumi.export("seededObjects", None)

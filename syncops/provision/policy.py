"""Least-privilege access documents for a datastore's readers and writers, as plain data.

Readers get exactly what ``syncops hydrate`` needs on a bucket whose index exists (read objects, list
the prefix); writers add what ``syncops push`` / ``discover`` need (create objects, including the
index). Nothing grants delete of data on AWS: writers may delete one object, swamp's lock
``<prefix>/.datastore.lock``, which syncops removes when it releases the lock it took (the only delete it
ever makes). On GCS, replacing an existing object (the index on every push) requires
``storage.objects.delete``, so writers carry it there. Everything is scoped to the bucket and, when one
is set, to the prefix.
"""

from __future__ import annotations

from typing import Any

from syncops.lock import LOCK_KEY

READER_ACTIONS = ["s3:GetObject"]
WRITER_ACTIONS = ["s3:GetObject", "s3:PutObject"]
KMS_READER_ACTIONS = ["kms:Decrypt"]
#: Multipart uploads to an SSE-KMS bucket read back the data key, so writers need Decrypt as well.
KMS_WRITER_ACTIONS = ["kms:Decrypt", "kms:GenerateDataKey"]

#: Writers release the lock they took (SPEC §2): delete on that one key, never on data.
LOCK_RELEASE_ACTIONS = ["s3:DeleteObject"]

GCS_READER_PERMISSIONS = ["storage.objects.get", "storage.objects.list"]
GCS_WRITER_PERMISSIONS = [
    "storage.objects.create",
    "storage.objects.delete",
    "storage.objects.get",
    "storage.objects.list",
]


def aws_access_policy(bucket_arn: str, prefix: str, *, writer: bool, kms_key_arn: str | None = None) -> dict[str, Any]:
    """An IAM policy document for one role (reader or writer) of the datastore at ``bucket_arn``/prefix."""
    objects = f"{bucket_arn}/{prefix}/*" if prefix else f"{bucket_arn}/*"
    listing: dict[str, Any] = {
        "Sid": "ListDatastore",
        "Effect": "Allow",
        "Action": ["s3:ListBucket"],
        "Resource": [bucket_arn],
    }
    if prefix:
        listing["Condition"] = {"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"]}}
    statements: list[dict[str, Any]] = [
        listing,
        {
            "Sid": "WriteDatastoreObjects" if writer else "ReadDatastoreObjects",
            "Effect": "Allow",
            "Action": list(WRITER_ACTIONS if writer else READER_ACTIONS),
            "Resource": [objects],
        },
    ]
    if writer:
        lock = f"{bucket_arn}/{prefix}/{LOCK_KEY}" if prefix else f"{bucket_arn}/{LOCK_KEY}"
        statements.append(
            {"Sid": "ReleaseDatastoreLock", "Effect": "Allow", "Action": list(LOCK_RELEASE_ACTIONS), "Resource": [lock]}
        )
    if kms_key_arn:
        statements.append(
            {
                "Sid": "UseDatastoreKey",
                "Effect": "Allow",
                "Action": list(KMS_WRITER_ACTIONS if writer else KMS_READER_ACTIONS),
                "Resource": [kms_key_arn],
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def aws_tls_only_policy(bucket_arn: str) -> dict[str, Any]:
    """The bucket policy that refuses every request not made over TLS."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, f"{bucket_arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def aws_access_policies(bucket_arn: str, prefix: str, kms_key_arn: str | None) -> dict[str, Any]:
    return {
        "readers": aws_access_policy(bucket_arn, prefix, writer=False, kms_key_arn=kms_key_arn),
        "writers": aws_access_policy(bucket_arn, prefix, writer=True, kms_key_arn=kms_key_arn),
    }


def gcs_prefix_condition(bucket: str, prefix: str) -> dict[str, str] | None:
    """An IAM condition limiting object access to the prefix; listing is checked against the bucket itself."""
    if not prefix:
        return None
    return {
        "title": "syncops datastore prefix",
        "description": f"objects under gs://{bucket}/{prefix}/ (listing is authorized on the bucket)",
        "expression": (
            f'resource.type == "storage.googleapis.com/Bucket" || '
            f'resource.name.startsWith("projects/_/buckets/{bucket}/objects/{prefix}/")'
        ),
    }


def gcs_access_policy(bucket: str, prefix: str, *, writer: bool) -> dict[str, Any]:
    """A custom role's permissions plus the conditional bucket binding that grants it."""
    return {
        "title": "syncops datastore writer" if writer else "syncops datastore reader",
        "permissions": list(GCS_WRITER_PERMISSIONS if writer else GCS_READER_PERMISSIONS),
        "bucket": bucket,
        "condition": gcs_prefix_condition(bucket, prefix),
    }


def gcs_access_policies(bucket: str, prefix: str) -> dict[str, Any]:
    return {
        "readers": gcs_access_policy(bucket, prefix, writer=False),
        "writers": gcs_access_policy(bucket, prefix, writer=True),
    }


def seed_source_policy(source_url: str, partition: str = "aws") -> dict[str, Any]:
    """What the identity running ``pulumi up`` needs on the datastore ``syncops:seedFrom`` names: read and
    list, nothing else (the source is read-only to the stack). In the source's own terms: an IAM policy
    document for ``s3://``, a custom role's permissions and binding condition for ``gs://``."""
    from syncops.stores.base import DatastoreUrl

    source = DatastoreUrl.parse(source_url)
    if source.scheme == "s3":
        policy = aws_access_policy(f"arn:{partition}:s3:::{source.bucket}", source.prefix, writer=False)
        for statement in policy["Statement"]:
            statement["Sid"] = statement["Sid"].replace("Datastore", "SeedSource")
        return policy
    if source.scheme == "gs":
        return {**gcs_access_policy(source.bucket, source.prefix, writer=False), "title": "syncops seed source reader"}
    return {"path": source.bucket, "access": "read and list by the user running pulumi up (a local directory)"}


def deployer_policies(destination_writers: dict[str, Any], source_url: str, partition: str = "aws") -> dict[str, Any]:
    """The deploying identity of a stack with ``syncops:seedFrom``: write on the new datastore (the copies
    and the index) and read + list on the source."""
    return {"destination": destination_writers, "source": seed_source_policy(source_url, partition)}

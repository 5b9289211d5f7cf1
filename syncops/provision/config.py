"""The ``syncops:*`` stack configuration (SPEC §5), validated in one place before any resource exists.

A bad value fails ``pulumi preview`` with one line naming the key and what is allowed, instead of
surfacing minutes later as a provider error half-way through an update.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi

from syncops import validate

CLOUDS = ("aws", "gcp")
#: The datastore URL scheme of each cloud's buckets.
SCHEMES = {"aws": "s3", "gcp": "gs"}
#: Days after which a noncurrent object version is deleted, unless ``noncurrentDays`` says otherwise.
DEFAULT_NONCURRENT_DAYS = 30
#: Days after which an unfinished multipart upload is aborted (its parts cost money and are invisible).
ABORT_INCOMPLETE_UPLOAD_DAYS = 7
#: GCS soft-delete retention; GCS accepts 0 (off) or 7 to 90 days.
DEFAULT_SOFT_DELETE_DAYS = 7
DEFAULT_GCP_LOCATION = "US"
#: Every bucket carries this tag/label so it can be traced back to the program that owns it.
MANAGED_BY = {"managed-by": "syncops"}

_GCP_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_GCP_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_AWS_KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")
_GCP_KMS_KEY_NAME = re.compile(r"^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$")


class ConfigError(pulumi.RunError):
    """A ``syncops:*`` value is missing or invalid; Pulumi prints the message without a traceback."""


@dataclass(frozen=True)
class DatastoreSettings:
    """Everything the program needs to know, already validated."""

    cloud: str
    bucket_name: str | None = None
    prefix: str = ""
    versioning: bool = True
    kms_key: str | None = None
    noncurrent_days: int = DEFAULT_NONCURRENT_DAYS
    abort_incomplete_upload_days: int = ABORT_INCOMPLETE_UPLOAD_DAYS
    force_destroy: bool = False
    bootstrap: bool = True
    labels: dict[str, str] = field(default_factory=dict)
    location: str = DEFAULT_GCP_LOCATION
    soft_delete_days: int = DEFAULT_SOFT_DELETE_DAYS
    #: The datastore the new bucket is seeded from before discovery (``syncops:seedFrom``), or None.
    seed_from: str | None = None


def _key(name: str) -> str:
    return f"syncops:{name}"


def bucket_name_problem(cloud: str, name: str) -> str | None:
    """Why ``name`` cannot be a new bucket on ``cloud``, or None when it can (the rules live in the core)."""
    return validate.bucket_name_problem("s3" if cloud == "aws" else "gs", name, creating=True)


def normalize_prefix(text: str) -> str:
    """The prefix without surrounding slashes; unsafe segments are refused, never silently repaired."""
    prefix = text.strip().strip("/")
    if not prefix:
        return ""
    if "\\" in prefix or any(ord(ch) < 32 or ord(ch) == 127 for ch in prefix):
        raise ConfigError(f"{_key('prefix')} {text!r}: backslashes and control characters are not allowed")
    if any(segment in ("", ".", "..") for segment in prefix.split("/")):
        raise ConfigError(f"{_key('prefix')} {text!r}: empty, '.' or '..' path segments are not allowed")
    return prefix


def _bool(key: str, raw: str | None, default: bool) -> bool:
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("true", "yes", "1"):
        return True
    if value in ("false", "no", "0"):
        return False
    raise ConfigError(f"{_key(key)} must be true or false, not {raw!r}")


def _int(key: str, raw: str | None, default: int, valid: Callable[[int], bool], allowed: str) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{_key(key)} must be {allowed}, not {raw!r}") from None
    if not valid(value):
        raise ConfigError(f"{_key(key)} must be {allowed}, not {value}")
    return value


def _labels(cloud: str, key: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ConfigError(f"{_key(key)} must be a map of names to strings, e.g. {{team: data}}")
    labels: dict[str, str] = {}
    for name, item in value.items():
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise ConfigError(f"{_key(key)}.{name} must be a string, not {type(item).__name__}")
        labels[name] = str(item)
    if cloud == "gcp":
        for name, item in labels.items():
            if not _GCP_LABEL_KEY.match(name):
                raise ConfigError(
                    f"{_key(key)}: GCP label key {name!r} must start with a lowercase letter and use only "
                    "lowercase letters, digits, '_' and '-' (at most 63 characters)"
                )
            if not _GCP_LABEL_VALUE.match(item):
                raise ConfigError(
                    f"{_key(key)}.{name}: GCP label value {item!r} may use only lowercase letters, digits, "
                    "'_' and '-' (at most 63 characters)"
                )
    return labels


def parse_settings(raw: Mapping[str, str | None], objects: Mapping[str, Any] | None = None) -> DatastoreSettings:
    """Validate the ``syncops:*`` values (``raw`` holds strings, ``objects`` the structured ``tags``/``labels``)."""
    objects = objects or {}
    cloud = (raw.get("cloud") or "").strip().lower()
    if not cloud:
        raise ConfigError(f"{_key('cloud')} is not set: run `pulumi config set syncops:cloud aws` (or gcp)")
    if cloud not in CLOUDS:
        raise ConfigError(f"{_key('cloud')} must be 'aws' or 'gcp', not {raw.get('cloud')!r}")

    bucket_name = (raw.get("bucketName") or "").strip() or None
    if bucket_name is not None:
        problem = bucket_name_problem(cloud, bucket_name)
        if problem:
            store = "an S3" if cloud == "aws" else "a GCS"
            raise ConfigError(f"{_key('bucketName')} {bucket_name!r} is not a valid name for {store} bucket: {problem}")

    kms_key_id = (raw.get("kmsKeyId") or "").strip() or None
    kms_key_name = (raw.get("kmsKeyName") or "").strip() or None
    if cloud == "aws":
        if kms_key_name:
            raise ConfigError(f"{_key('kmsKeyName')} is the GCP key setting; on aws set {_key('kmsKeyId')}")
        if kms_key_id and not _AWS_KMS_KEY_ARN.match(kms_key_id):
            raise ConfigError(
                f"{_key('kmsKeyId')} must be a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), not {kms_key_id!r}: "
                "the readers' and writers' IAM policy has to name the key itself"
            )
        kms_key = kms_key_id
    else:
        if kms_key_id:
            raise ConfigError(f"{_key('kmsKeyId')} is the AWS key setting; on gcp set {_key('kmsKeyName')}")
        if kms_key_name and not _GCP_KMS_KEY_NAME.match(kms_key_name):
            raise ConfigError(
                f"{_key('kmsKeyName')} must be projects/P/locations/L/keyRings/R/cryptoKeys/K, not {kms_key_name!r}"
            )
        kms_key = kms_key_name

    labels = {
        **MANAGED_BY,
        **_labels(cloud, "tags", objects.get("tags")),
        **_labels(cloud, "labels", objects.get("labels")),
    }
    location = (raw.get("location") or "").strip() or DEFAULT_GCP_LOCATION
    if cloud == "aws":
        for gcp_only in ("location", "softDeleteDays"):
            if raw.get(gcp_only):
                raise ConfigError(f"{_key(gcp_only)} applies to gcp buckets only (on aws the region is aws:region)")

    seed_from = _seed_from(cloud, raw.get("seedFrom"), bucket_name, normalize_prefix(raw.get("prefix") or ""))
    bootstrap = _bool("bootstrap", raw.get("bootstrap"), True)
    if seed_from and not bootstrap:
        raise ConfigError(
            f"{_key('seedFrom')} is set but {_key('bootstrap')} is false: the seed is part of the post-deploy step"
        )

    return DatastoreSettings(
        cloud=cloud,
        bucket_name=bucket_name,
        prefix=normalize_prefix(raw.get("prefix") or ""),
        versioning=_bool("versioning", raw.get("versioning"), True),
        kms_key=kms_key,
        noncurrent_days=_int(
            "noncurrentDays", raw.get("noncurrentDays"), DEFAULT_NONCURRENT_DAYS, lambda d: d >= 1, "a whole number ≥ 1"
        ),
        force_destroy=_bool("forceDestroy", raw.get("forceDestroy"), False),
        bootstrap=bootstrap,
        labels=labels,
        location=location,
        soft_delete_days=_int(
            "softDeleteDays",
            raw.get("softDeleteDays"),
            DEFAULT_SOFT_DELETE_DAYS,
            lambda d: d == 0 or 7 <= d <= 90,
            "0 (off) or 7 to 90",
        ),
        seed_from=seed_from,
    )


def _seed_from(cloud: str, raw: str | None, bucket_name: str | None, prefix: str) -> str | None:
    """``syncops:seedFrom``: a datastore URL other than (and not around or inside) the stack's own."""
    from syncops.errors import BadInput
    from syncops.stores.base import DatastoreUrl

    text = (raw or "").strip()
    if not text:
        return None
    try:
        source = DatastoreUrl.parse(text)
        if bucket_name is not None:
            from syncops.seed import refuse_nesting

            refuse_nesting(source, DatastoreUrl.for_bucket(SCHEMES[cloud], bucket_name, prefix))
    except BadInput as exc:
        raise ConfigError(f"{_key('seedFrom')} {text!r}: {exc}") from None
    return str(source)

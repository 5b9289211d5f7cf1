"""Explicit connection settings for a store, for callers that must not rely on the machine's defaults.

The command line never needs these: it uses the standard chains (environment, profiles, instance
roles, Application Default Credentials). The post-deploy step of ``pulumi up`` does: it must reach the
bucket with the credentials, region, project and endpoint the stack's cloud provider uses, which may
differ from the deploying machine's defaults. A setting left ``None`` (or empty) falls back to the
standard chain, exactly as if it had not been given.

Plain data with no SDK imports; secret fields are left out of ``repr`` so a settings object can be
logged or shown in a traceback without leaking them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AwsKeys:
    """Static AWS credentials: an access key pair, with a session token for temporary ones."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class AwsRole:
    """One hop of an STS AssumeRole chain; the fields are AssumeRole's own parameters."""

    role_arn: str
    session_name: str | None = None
    external_id: str | None = field(default=None, repr=False)
    duration_seconds: int | None = None
    policy: str | None = None
    policy_arns: tuple[str, ...] = ()
    source_identity: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    transitive_tag_keys: tuple[str, ...] = ()

    def assume_role_parameters(self) -> dict[str, Any]:
        """The STS AssumeRole parameters besides the role ARN (botocore picks a session name when unset)."""
        parameters: dict[str, Any] = {}
        if self.session_name:
            parameters["RoleSessionName"] = self.session_name
        if self.external_id:
            parameters["ExternalId"] = self.external_id
        if self.duration_seconds:
            parameters["DurationSeconds"] = self.duration_seconds
        if self.policy:
            parameters["Policy"] = self.policy
        if self.policy_arns:
            parameters["PolicyArns"] = [{"arn": arn} for arn in self.policy_arns]
        if self.source_identity:
            parameters["SourceIdentity"] = self.source_identity
        if self.tags:
            parameters["Tags"] = [{"Key": key, "Value": value} for key, value in self.tags]
        if self.transitive_tag_keys:
            parameters["TransitiveTagKeys"] = list(self.transitive_tag_keys)
        return parameters


@dataclass(frozen=True)
class StoreSettings:
    """What selects credentials, region, project and endpoint for one store.

    AWS: ``aws_credentials`` (static keys) win over ``aws_profile``, and an explicitly named profile
    wins over keys in the environment (as boto3 and the AWS SDKs resolve them); ``aws_assume_roles``
    are then assumed in order, each with the credentials of the one before. GCS: ``gcp_access_token``
    wins over ``gcp_credentials_info`` (a service-account or other key file's JSON, parsed), which wins
    over Application Default Credentials.
    """

    aws_profile: str | None = None
    aws_region: str | None = None
    #: The S3 endpoint (a proxy, SeaweedFS, MinIO, a VPC endpoint); ``--endpoint-url`` still wins.
    aws_endpoint: str | None = None
    #: The STS endpoint the role chain is assumed through (the SDK's default otherwise).
    aws_sts_endpoint: str | None = None
    aws_credentials: AwsKeys | None = None
    aws_assume_roles: tuple[AwsRole, ...] = ()
    gcp_project: str | None = None
    gcp_credentials_info: Mapping[str, Any] | None = field(default=None, repr=False)
    gcp_access_token: str | None = field(default=None, repr=False)

    @property
    def selects_aws_credentials(self) -> bool:
        """True when these settings, not the environment's keys, decide the AWS identity."""
        return bool(self.aws_profile or self.aws_credentials or self.aws_assume_roles)

    @property
    def selects_gcp_credentials(self) -> bool:
        """True when these settings, not Application Default Credentials, decide the Google identity."""
        return bool(self.gcp_access_token or self.gcp_credentials_info)

"""The boto3 session of an S3 store, from explicit :class:`StoreSettings` or the standard chain.

With no settings this is ``boto3.session.Session()``: the environment, the shared files, the
instance role. Settings select what an AWS provider configuration selects, resolved the way boto3
and the AWS SDKs do: static keys win over a profile; a profile named explicitly wins over keys in
the environment; an assume-role chain is then assumed hop by hop, each hop signed with the
credentials of the one before, and refreshed by botocore before they expire.
"""

from __future__ import annotations

import functools
from typing import Any

from syncops.errors import AccessDenied, BadInput, Unavailable
from syncops.stores.settings import AwsRole, StoreSettings

#: ``credentials.method`` of a session whose credentials come from an assumed role chain.
ROLE_CHAIN_METHOD = "assume-role-chain"


def new_session(settings: StoreSettings) -> Any:
    import boto3
    from botocore.exceptions import ProfileNotFound

    keys = settings.aws_credentials
    try:
        session = boto3.session.Session(
            profile_name=settings.aws_profile or None,
            region_name=settings.aws_region or None,
            aws_access_key_id=keys.access_key_id if keys else None,
            aws_secret_access_key=keys.secret_access_key if keys else None,
            aws_session_token=keys.session_token if keys else None,
        )
    except ProfileNotFound:
        raise BadInput(
            f"AWS profile {settings.aws_profile!r} is not in the AWS config files "
            "(~/.aws/config, ~/.aws/credentials, or AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE)"
        ) from None
    if not settings.aws_assume_roles:
        return session
    return _role_chain_session(session, settings)


def _role_chain_session(base: Any, settings: StoreSettings) -> Any:
    """A session whose credentials are the last role of ``settings.aws_assume_roles``, assumed from ``base``."""
    import boto3
    import botocore.session
    from botocore.credentials import AssumeRoleCredentialFetcher, CredentialResolver, DeferredRefreshableCredentials

    region = settings.aws_region or base.region_name
    credentials = base.get_credentials()
    if credentials is None:
        raise AccessDenied(
            f"no AWS credentials to assume role {settings.aws_assume_roles[0].role_arn} with "
            "(set keys, a profile, or run with an instance role)"
        )
    sts_client = functools.partial(base.client, region_name=region, endpoint_url=settings.aws_sts_endpoint)
    for role in settings.aws_assume_roles:
        fetcher = AssumeRoleCredentialFetcher(
            client_creator=sts_client,
            source_credentials=credentials,
            role_arn=role.role_arn,
            extra_args=role.assume_role_parameters(),
        )
        credentials = DeferredRefreshableCredentials(method=ROLE_CHAIN_METHOD, refresh_using=fetcher.fetch_credentials)
        # Assume each hop now: a denied or unreachable STS is reported here, naming the role, instead
        # of surfacing later as a denied GetObject (or inside the data plane's credential callback).
        _assume(role, credentials)

    core = botocore.session.Session(profile=settings.aws_profile or None)
    core.register_component("credential_provider", CredentialResolver([_Assumed(credentials)]))
    return boto3.session.Session(botocore_session=core, region_name=region)


def _assume(role: AwsRole, credentials: Any) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        credentials.get_frozen_credentials()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status is not None and (status >= 500 or status == 429):
            raise Unavailable(f"AssumeRole {role.role_arn}: {code or status} after retries") from None
        raise AccessDenied(
            f"access denied ({code or status}): AssumeRole {role.role_arn}; the caller needs sts:AssumeRole "
            "on it, and the role's trust policy must allow the caller"
        ) from None
    except BotoCoreError as exc:
        raise Unavailable(f"AssumeRole {role.role_arn}: {exc}") from None


class _Assumed:
    """The credential provider of a role-chain session: the chain's refreshable credentials, always."""

    METHOD = ROLE_CHAIN_METHOD
    CANONICAL_NAME = "AssumeRoleChain"

    def __init__(self, credentials: Any) -> None:
        self._credentials = credentials

    def load(self) -> Any:
        return self._credentials

"""How the post-deploy step reaches the bucket: with the settings of the cloud provider that manages it.

Without this, discovery inside ``pulumi up`` would run as whoever the deploying machine's default
credentials belong to, in its default region, against its default endpoint: a stack with
``aws:profile: prod`` or ``aws:assumeRoles`` would create the bucket in one account and look for it
in another. Precedence, from strongest:

1. an explicit provider the datastore is managed with (``opts.provider`` / ``providers``): its
   settings only, since an explicit Pulumi provider never reads the stack's ``aws:*`` / ``gcp:*``;
2. the stack's ``aws:*`` / ``gcp:*`` configuration, which the default provider uses;
3. what either leaves unset: the deploying machine's standard chain (environment variables, shared
   AWS files, instance role, Application Default Credentials), as the provider itself falls back.

The settings travel as the post-deploy resource's inputs. Keys, tokens and key files are Pulumi
secrets (encrypted in the state, never in its outputs); the dynamic provider turns the inputs into
:class:`~syncops.stores.settings.StoreSettings` on the deploying machine.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi

from syncops.errors import BadInput
from syncops.provision.config import ConfigError
from syncops.stores.settings import AwsKeys, AwsRole, StoreSettings

#: The post-deploy resource's inputs that hold secrets.
SECRET_INPUTS = ("aws_access_key", "aws_secret_key", "aws_token", "gcp_credentials", "gcp_access_token")
#: Every input the settings travel in (None when unset).
ACCESS_INPUTS = (
    "aws_profile",
    "aws_region",
    "aws_endpoint",
    "aws_sts_endpoint",
    "aws_assume_roles",
    "gcp_project",
    *SECRET_INPUTS,
)

_ROLE_FIELDS = {
    "roleArn": "role_arn",
    "sessionName": "session_name",
    "externalId": "external_id",
    "policy": "policy",
    "policyArns": "policy_arns",
    "sourceIdentity": "source_identity",
    "tags": "tags",
    "transitiveTagKeys": "transitive_tag_keys",
    "duration": "duration",
    "durationSeconds": "duration_seconds",
}
#: A setting's value: a string, or an Output of one (an explicit provider's), or None when unset.
Text = pulumi.Input[str | None]
_GO_DURATION = re.compile(r"(\d+)(h|m|s)")
_SECONDS = {"h": 3600, "m": 60, "s": 1}


@dataclass(frozen=True)
class AwsAccess:
    """The ``aws:*`` settings that select credentials, region and endpoints (values may be Outputs)."""

    profile: Text = None
    region: Text = None
    s3_endpoint: Text = None
    sts_endpoint: Text = None
    access_key: Text = None
    secret_key: Text = None
    token: Text = None
    #: Normalized roles (see :func:`assume_roles`), assumed in order.
    assume_roles: list[dict[str, Any]] | None = None

    def inputs(self) -> dict[str, Any]:
        return {
            "aws_profile": self.profile,
            "aws_region": self.region,
            "aws_endpoint": self.s3_endpoint,
            "aws_sts_endpoint": self.sts_endpoint,
            "aws_assume_roles": self.assume_roles or None,
            "aws_access_key": _secret(self.access_key),
            "aws_secret_key": _secret(self.secret_key),
            "aws_token": _secret(self.token),
        }


@dataclass(frozen=True)
class GcpAccess:
    """The ``gcp:*`` settings that select credentials and project (values may be Outputs)."""

    project: Text = None
    #: A key file's JSON, or its path on the deploying machine (as the gcp provider accepts).
    credentials: Text = None
    access_token: Text = None

    def inputs(self) -> dict[str, Any]:
        return {
            "gcp_project": self.project,
            "gcp_credentials": _secret(self.credentials),
            "gcp_access_token": _secret(self.access_token),
        }


Access = AwsAccess | GcpAccess


def _secret(value: Text) -> pulumi.Output[str | None] | None:
    return None if value is None else pulumi.Output.secret(value)


# -- the stack's configuration (program side) -----------------------------------------------------


def aws_access(
    plain: Mapping[str, str | None],
    objects: Mapping[str, Any],
    secrets: Mapping[str, pulumi.Output[str] | None],
) -> AwsAccess:
    """The stack's ``aws:*`` settings: ``plain`` holds profile/region, ``objects`` the structured
    endpoints/assumeRoles/assumeRole, ``secrets`` accessKey/secretKey/token (read as secrets)."""
    endpoints = _endpoints(objects.get("endpoints"))
    if objects.get("assumeRoles") and objects.get("assumeRole"):
        raise ConfigError("aws:assumeRoles and aws:assumeRole are both set: keep aws:assumeRoles")
    roles = objects.get("assumeRoles")
    if roles is None and objects.get("assumeRole") is not None:
        roles = [objects["assumeRole"]]
    if (secrets.get("accessKey") is None) != (secrets.get("secretKey") is None):
        raise ConfigError("aws:accessKey and aws:secretKey must be set together")
    return AwsAccess(
        profile=(plain.get("profile") or "").strip() or None,
        region=(plain.get("region") or "").strip() or None,
        s3_endpoint=endpoints.get("s3"),
        sts_endpoint=endpoints.get("sts"),
        access_key=secrets.get("accessKey"),
        secret_key=secrets.get("secretKey"),
        token=secrets.get("token"),
        assume_roles=assume_roles(roles, "aws:assumeRoles"),
    )


def gcp_access(plain: Mapping[str, str | None], secrets: Mapping[str, pulumi.Output[str] | None]) -> GcpAccess:
    """The stack's ``gcp:*`` settings: ``plain`` holds project, ``secrets`` credentials/accessToken."""
    if secrets.get("credentials") is not None and secrets.get("accessToken") is not None:
        raise ConfigError("gcp:credentials and gcp:accessToken are both set: the gcp provider accepts only one")
    return GcpAccess(
        project=(plain.get("project") or "").strip() or None,
        credentials=secrets.get("credentials"),
        access_token=secrets.get("accessToken"),
    )


def _endpoints(value: Any) -> dict[str, str]:
    """``aws:endpoints`` (a list of ``{service: url}`` maps) as one map; only s3 and sts matter here."""
    if value is None:
        return {}
    if isinstance(value, str):
        value = json.loads(value)
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise ConfigError("aws:endpoints must be a list of maps from service to URL, e.g. [{s3: https://…}]")
    found: dict[str, str] = {}
    for item in value:
        for service in ("s3", "sts"):
            url = item.get(service)
            if url:
                if not isinstance(url, str):
                    raise ConfigError(f"aws:endpoints {service} must be a URL string")
                found[service] = url
    return found


def assume_roles(value: Any, key: str) -> list[dict[str, Any]] | None:
    """Validate ``aws:assumeRoles`` items (camelCase as in the stack file, or snake_case as in
    ``ProviderAssumeRoleArgs``) into plain dicts of :class:`AwsRole` fields."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError(f"{key} must be a list of roles, e.g. [{{roleArn: arn:aws:iam::ACCOUNT:role/NAME}}]")
    roles = []
    for number, item in enumerate(value):
        where = f"{key}[{number}]"
        if not isinstance(item, Mapping):
            raise ConfigError(f"{where} must be a map with at least roleArn")
        role: dict[str, Any] = {}
        for name, raw in item.items():
            field = _ROLE_FIELDS.get(name) or (name if name in _ROLE_FIELDS.values() else None)
            if field is None:
                raise ConfigError(f"{where}.{name} is not an assume-role setting ({', '.join(_ROLE_FIELDS)})")
            if raw is None or raw == "" or raw == []:
                continue
            if field == "duration":
                field, raw = "duration_seconds", _duration(f"{where}.{name}", raw)
            elif field == "duration_seconds":
                raw = _whole_seconds(f"{where}.{name}", raw)
            elif field in ("policy_arns", "transitive_tag_keys"):
                if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
                    raise ConfigError(f"{where}.{name} must be a list of strings")
            elif field == "tags":
                if not isinstance(raw, Mapping) or not all(isinstance(v, str) for v in raw.values()):
                    raise ConfigError(f"{where}.{name} must be a map of strings")
                raw = dict(raw)
            elif not isinstance(raw, str):
                raise ConfigError(f"{where}.{name} must be a string")
            role[field] = raw
        if not role.get("role_arn"):
            raise ConfigError(f"{where} has no roleArn")
        roles.append(role)
    return roles or None


def _duration(where: str, raw: Any) -> int:
    """A Go duration as the AWS provider takes it (``1h``, ``15m``, ``1h30m``) in seconds."""
    text = str(raw).strip()
    parts = _GO_DURATION.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ConfigError(f"{where} must be a duration such as 15m, 1h or 1h30m, not {raw!r}")
    return sum(int(number) * _SECONDS[unit] for number, unit in parts)


def _whole_seconds(where: str, raw: Any) -> int:
    try:
        seconds = int(str(raw).strip())
    except ValueError:
        raise ConfigError(f"{where} must be a whole number of seconds, not {raw!r}") from None
    if seconds < 1:
        raise ConfigError(f"{where} must be at least 1 second")
    return seconds


# -- an explicit provider (program side) ----------------------------------------------------------


def explicit_provider(cloud: str, opts: pulumi.ResourceOptions | None) -> pulumi.ProviderResource | None:
    """The ``aws``/``gcp`` provider given in ``opts`` (provider, providers, or the parent's), as Pulumi
    would pick it for a resource of that cloud; None for the default provider."""
    if opts is None:
        return None
    if opts.provider is not None and opts.provider.package == cloud:
        return opts.provider
    providers = opts.providers
    if isinstance(providers, Mapping):
        if cloud in providers:
            return providers[cloud]
    elif providers:
        for provider in providers:
            if provider.package == cloud:
                return provider
    if opts.parent is not None:
        return opts.parent.get_provider(f"{cloud}:index:Provider")
    return None


def provider_access(cloud: str, provider: pulumi.ProviderResource) -> Access:
    """What an explicit provider's resource exposes of its settings.

    The Python SDK gives back a provider's string settings as outputs; of its structured ones only
    ``endpoints`` comes back (as JSON). ``assumeRoles`` of an explicit provider cannot be read back.
    """
    if cloud == "gcp":
        return GcpAccess(
            project=getattr(provider, "project", None),
            credentials=getattr(provider, "credentials", None),
            access_token=getattr(provider, "access_token", None),
        )
    endpoints: pulumi.Output[dict[str, str]] = pulumi.Output.from_input(getattr(provider, "endpoints", None)).apply(
        _endpoints
    )
    return AwsAccess(
        profile=getattr(provider, "profile", None),
        region=getattr(provider, "region", None),
        s3_endpoint=endpoints.apply(lambda found: found.get("s3")),
        sts_endpoint=endpoints.apply(lambda found: found.get("sts")),
        access_key=getattr(provider, "access_key", None),
        secret_key=getattr(provider, "secret_key", None),
        token=getattr(provider, "token", None),
    )


# -- the dynamic provider's side -----------------------------------------------------------------


def store_settings(props: Mapping[str, Any]) -> StoreSettings:
    """The post-deploy resource's inputs as the settings its store is opened with.

    Runs on the deploying machine (a key file path is read there, as the gcp provider reads it);
    messages never quote a key, a token or a key file's content.
    """
    access_key, secret_key = _text(props, "aws_access_key"), _text(props, "aws_secret_key")
    if bool(access_key) != bool(secret_key):
        raise BadInput("the AWS access key and secret key must be given together")
    keys = AwsKeys(access_key, secret_key, _text(props, "aws_token")) if access_key and secret_key else None
    roles = tuple(_role(item) for item in props.get("aws_assume_roles") or ())
    return StoreSettings(
        aws_profile=_text(props, "aws_profile"),
        aws_region=_text(props, "aws_region"),
        aws_endpoint=_text(props, "aws_endpoint"),
        aws_sts_endpoint=_text(props, "aws_sts_endpoint"),
        aws_credentials=keys,
        aws_assume_roles=roles,
        gcp_project=_text(props, "gcp_project"),
        gcp_credentials_info=_credentials_info(_text(props, "gcp_credentials")),
        gcp_access_token=_text(props, "gcp_access_token"),
    )


def _text(props: Mapping[str, Any], key: str) -> str | None:
    value = props.get(key)
    return value.strip() or None if isinstance(value, str) else None


def _role(item: Mapping[str, Any]) -> AwsRole:
    return AwsRole(
        role_arn=str(item["role_arn"]),
        session_name=item.get("session_name"),
        external_id=item.get("external_id"),
        duration_seconds=item.get("duration_seconds"),
        policy=item.get("policy"),
        policy_arns=tuple(item.get("policy_arns") or ()),
        source_identity=item.get("source_identity"),
        tags=tuple(sorted((item.get("tags") or {}).items())),
        transitive_tag_keys=tuple(item.get("transitive_tag_keys") or ()),
    )


def _credentials_info(value: str | None) -> dict[str, Any] | None:
    """``gcp:credentials``: a key file's JSON, or the path of one (read here, on the deploying machine)."""
    if value is None:
        return None
    if value.startswith("{"):
        text = value
    else:
        try:
            text = Path(value).expanduser().read_text()
        except (OSError, ValueError):
            raise BadInput(
                "the Google credentials are neither a JSON key nor the path of a readable key file"
            ) from None
    try:
        info = json.loads(text)
    except ValueError:
        raise BadInput("the Google credentials (a key file's JSON) do not parse as JSON") from None
    if not isinstance(info, dict):
        raise BadInput("the Google credentials must be a key file's JSON object")
    return info

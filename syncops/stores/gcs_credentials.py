"""Google credentials from explicit :class:`StoreSettings`, built the way google-auth builds them from
a key file or a token, so a store reaches GCS as the configured identity rather than the machine's
Application Default Credentials.
"""

from __future__ import annotations

from typing import Any

from syncops.errors import BadInput
from syncops.stores.settings import StoreSettings

#: Key-file types google-auth loads (``gcloud`` and the Google providers accept the same).
KEY_TYPES = ("service_account", "authorized_user", "external_account", "impersonated_service_account")
_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def configured_credentials(settings: StoreSettings) -> tuple[Any, str, str | None] | None:
    """(credentials, where they came from, the key file's project) from ``settings``, or None when
    they select none. An access token wins over a key file, as it does for the gcp provider."""
    if settings.gcp_access_token:
        from google.oauth2.credentials import Credentials

        return Credentials(token=settings.gcp_access_token), "an access token given to syncops explicitly", None
    info = settings.gcp_credentials_info
    if not info:
        return None
    from google.auth.exceptions import GoogleAuthError

    kind = info.get("type")
    try:
        credentials, project = _from_key_file(dict(info))
    except (GoogleAuthError, ValueError, TypeError, KeyError):
        # The library's message may quote the key material: name the type only.
        raise BadInput(
            f"the Google credentials given to syncops (type {kind!r}) cannot be loaded: expected the complete "
            f"JSON key of one of {', '.join(KEY_TYPES)}"
        ) from None
    return credentials, f"the {kind} credentials given to syncops explicitly", project


def _from_key_file(info: dict[str, Any]) -> tuple[Any, str | None]:
    """Credentials of the key file's own type, each through its explicit loader (google-auth's generic
    one is deprecated for configuration from outside the program)."""
    kind = info.get("type")
    if kind == "service_account":
        from google.oauth2 import service_account

        return service_account.Credentials.from_service_account_info(info), info.get("project_id")
    if kind == "authorized_user":
        from google.oauth2 import credentials

        return credentials.Credentials.from_authorized_user_info(info), info.get("quota_project_id")
    if kind == "impersonated_service_account":
        from google.auth import impersonated_credentials

        return impersonated_credentials.Credentials.from_impersonated_service_account_info(info, scopes=[_SCOPE]), None
    if kind == "external_account":  # workload identity federation: the source picks the class, as google-auth does
        from google.auth import aws, identity_pool, pluggable

        source = info.get("credential_source") or {}
        if str(source.get("environment_id", "")).startswith("aws"):
            return aws.Credentials.from_info(info), None
        if "executable" in source:
            return pluggable.Credentials.from_info(info), None
        return identity_pool.Credentials.from_info(info), None
    raise ValueError("unsupported key type")

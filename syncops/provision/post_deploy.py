"""The post-deploy step inside ``pulumi up``: syncops discovery as a resource (a Pulumi dynamic provider).

Its purpose is that a finished ``pulumi up`` leaves a datastore whose ``.datastore-index.json`` is valid:
a bucket restored from a backup or seeded with ``aws s3 cp`` gets its index before any environment
bootstraps from it. Three promises hold:

* discovery runs again whenever the bucket or the prefix changes, and only then;
* a failure (403, 5xx after retries, a corrupt index) fails the deployment with syncops's own message,
  so a denied bucket can never leave a "successful" stack;
* deleting the resource (``pulumi destroy``, a replacement) never deletes data or the index.

The provider runs in Pulumi's dynamic-provider process on the deploying machine. It reaches the
bucket with the settings of the cloud provider that manages it (profile, region, keys, assumed roles,
S3 endpoint; project, key file, access token), handed over as the resource's inputs, secrets as
Pulumi secrets; see :mod:`syncops.provision.access` for where they come from and which wins. What
they leave unset comes from the machine's standard chain (the AWS chain, Application Default
Credentials, ``AWS_ENDPOINT_URL``, ``STORAGE_EMULATOR_HOST``), exactly as ``syncops discover`` would.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

from syncops.provision.access import ACCESS_INPUTS, Access, explicit_provider, provider_access, store_settings
from syncops.provision.config import SCHEMES
from syncops.provision.failure import PostDeployFailed
from syncops.stores.base import DatastoreUrl

#: The inputs whose change means "a different datastore": discovery runs again.
WATCHED_INPUTS = ("cloud", "bucket", "prefix")

__all__ = ["DiscoveryProvider", "PostDeployDiscovery", "PostDeployFailed", "datastore_url", "run_discovery"]


def datastore_url(cloud: str, bucket: str, prefix: str) -> str:
    scheme = SCHEMES.get(cloud)
    if scheme is None:
        raise ValueError(f"unknown cloud {cloud!r}")
    return str(DatastoreUrl.for_bucket(scheme, bucket, prefix))


def run_discovery(props: Mapping[str, Any]) -> dict[str, Any]:
    """Discover the datastore the resource's inputs name, as their settings say, and describe the
    outcome as the resource's outputs (which never hold a setting: secrets stay inputs)."""
    from syncops import api
    from syncops.errors import SyncopsError

    cloud, bucket, prefix = str(props["cloud"]), str(props["bucket"]), str(props.get("prefix") or "")
    url = f"{SCHEMES.get(cloud, cloud)}://{bucket}" + (f"/{prefix}" if prefix else "")  # until checked
    try:
        url = datastore_url(cloud, bucket, prefix)
        report = api.discover(url, settings=store_settings(props))
    except SyncopsError as exc:
        raise PostDeployFailed(url, str(exc), exc.exit_code) from None
    return {
        "datastore_url": url,
        "index_status": report.status,
        "index_entries": report.entries,
        "index_written": report.index_written,
        "warnings": list(report.warnings),
    }


class DiscoveryProvider(ResourceProvider):
    """Create and update run discovery; delete leaves the bucket exactly as it is."""

    #: The provider captures no secrets, so its serialized form need not be stored as one.
    serialize_as_secret_always = False

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = {**_inputs(props), **run_discovery(props)}
        return CreateResult(id_=uuid.uuid4().hex, outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [key for key in WATCHED_INPUTS if olds.get(key) != news.get(key)]
        return DiffResult(changes=bool(changed), replaces=[], stables=[], delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs={**_inputs(news), **run_discovery(news)})

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Forget the resource only: the datastore's objects and index belong to its users, not to Pulumi."""


def _inputs(props: dict[str, Any]) -> dict[str, Any]:
    return {key: props.get(key) or "" for key in WATCHED_INPUTS}


class PostDeployDiscovery(Resource, module="syncops", name="PostDeployDiscovery"):
    """Runs syncops discovery against the datastore once the bucket and its settings exist.

    ``access`` is the stack's ``aws:*`` / ``gcp:*`` configuration; an ``aws``/``gcp`` provider in
    ``opts`` (``provider``, ``providers`` or the parent's) replaces it, as it replaces the stack's
    configuration for the resources it manages.
    """

    datastore_url: pulumi.Output[str]
    index_status: pulumi.Output[str]
    index_entries: pulumi.Output[int]
    index_written: pulumi.Output[bool]
    warnings: pulumi.Output[list]

    def __init__(
        self,
        name: str,
        *,
        cloud: str,
        bucket: pulumi.Input[str],
        prefix: str,
        access: Access | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        provider = explicit_provider(cloud, opts)
        if provider is not None:
            access = provider_access(cloud, provider)
        props: dict[str, Any] = {
            "cloud": cloud,
            "bucket": bucket,
            "prefix": prefix,
            **dict.fromkeys(ACCESS_INPUTS),
            **(access.inputs() if access is not None else {}),
            "datastore_url": None,
            "index_status": None,
            "index_entries": None,
            "index_written": None,
            "warnings": None,
        }
        super().__init__(DiscoveryProvider(), name, props, opts)

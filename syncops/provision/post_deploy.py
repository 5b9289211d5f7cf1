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

__all__ = [
    "DiscoveryProvider",
    "PostDeployDiscovery",
    "PostDeployFailed",
    "PostDeploySeed",
    "SeedProvider",
    "datastore_url",
    "run_discovery",
    "run_seed",
]
#: Conflicts quoted in a failed seed's message (the rest are counted).
_CONFLICTS_SHOWN = 10


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


def run_seed(props: Mapping[str, Any]) -> dict[str, Any]:
    """Seed the datastore the inputs name from ``seed_from`` (read-only to the stack), with the same
    settings as discovery; a conflict fails the deployment listing it, with nothing overwritten."""
    from syncops import api
    from syncops.errors import Conflicts, SyncopsError

    cloud, bucket, prefix = str(props["cloud"]), str(props["bucket"]), str(props.get("prefix") or "")
    source = str(props["seed_from"])
    url = f"{SCHEMES.get(cloud, cloud)}://{bucket}" + (f"/{prefix}" if prefix else "")  # until checked
    try:
        url = datastore_url(cloud, bucket, prefix)
        report = api.seed(source, url, settings=store_settings(props))
    except Conflicts as exc:
        conflicts = exc.report.conflicts or []
        listed = "; ".join(
            f"{c['key']}: source {c['source']}, destination {c['destination']}" for c in conflicts[:_CONFLICTS_SHOWN]
        )
        more = f"; and {len(conflicts) - _CONFLICTS_SHOWN} more" if len(conflicts) > _CONFLICTS_SHOWN else ""
        message = (
            f"seeding from {source}: the bucket already holds other content for {len(conflicts)} keys "
            f"({listed}{more}); nothing was overwritten. Run `syncops seed {source} {url} --force` to replace "
            "it, or remove syncops:seedFrom"
        )
        raise PostDeployFailed(url, message, exc.exit_code, operation="seed") from None
    except SyncopsError as exc:
        raise PostDeployFailed(url, f"seeding from {source}: {exc}", exc.exit_code, operation="seed") from None
    return {
        "seeded_from": report.source,
        "seeded_objects": (report.copied or 0) + (report.skipped or 0),
        "seed_copied": report.copied or 0,
        "seed_status": report.status,
        "seed_copy_mode": report.copy_mode,
        "warnings": list(report.warnings),
    }


class SeedProvider(ResourceProvider):
    """Create seeds the datastore, once. A change of the datastore (cloud, bucket, prefix) replaces the
    resource, so a new bucket is seeded too; a change of ``seed_from`` alone does nothing: seeding again
    is explicit (``pulumi up --replace <urn>``). Delete leaves every object where it is."""

    serialize_as_secret_always = False

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = {**_inputs(props), "seed_from": props.get("seed_from"), **run_seed(props)}
        return CreateResult(id_=uuid.uuid4().hex, outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaced = [key for key in WATCHED_INPUTS if olds.get(key) != news.get(key)]
        return DiffResult(changes=bool(replaced), replaces=replaced, stables=[], delete_before_replace=False)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Forget the resource only: the seeded objects and index now belong to the datastore's users."""


def access_inputs(cloud: str, access: Access | None, opts: pulumi.ResourceOptions | None) -> dict[str, Any]:
    """The access settings a post-deploy resource takes as inputs: an explicit ``aws``/``gcp`` provider in
    ``opts`` wins over ``access`` (the stack's configuration); every setting key is present (None: unset)."""
    provider = explicit_provider(cloud, opts)
    if provider is not None:
        access = provider_access(cloud, provider)
    return {**dict.fromkeys(ACCESS_INPUTS), **(access.inputs() if access is not None else {})}


class PostDeploySeed(Resource, module="syncops", name="PostDeploySeed"):
    """Seeds the new datastore from ``seed_from`` once the bucket and its settings exist (see
    :class:`SeedProvider`); :class:`PostDeployDiscovery` creates it when given ``seed_from``."""

    seeded_from: pulumi.Output[str]
    seeded_objects: pulumi.Output[int]
    seed_copied: pulumi.Output[int]
    seed_status: pulumi.Output[str]
    seed_copy_mode: pulumi.Output[str]
    warnings: pulumi.Output[list]

    def __init__(
        self,
        name: str,
        *,
        cloud: str,
        bucket: pulumi.Input[str],
        prefix: str,
        seed_from: str,
        access: Access | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "cloud": cloud,
            "bucket": bucket,
            "prefix": prefix,
            "seed_from": seed_from,
            **access_inputs(cloud, access, opts),
            "seeded_from": None,
            "seeded_objects": None,
            "seed_copied": None,
            "seed_status": None,
            "seed_copy_mode": None,
            "warnings": None,
        }
        super().__init__(SeedProvider(), name, props, opts)


class PostDeployDiscovery(Resource, module="syncops", name="PostDeployDiscovery"):
    """Runs syncops discovery against the datastore once the bucket and its settings exist.

    ``access`` is the stack's ``aws:*`` / ``gcp:*`` configuration; an ``aws``/``gcp`` provider in
    ``opts`` (``provider``, ``providers`` or the parent's) replaces it, as it replaces the stack's
    configuration for the resources it manages. With ``seed_from`` (``syncops:seedFrom``), a
    :class:`PostDeploySeed` named ``<name>-seed`` copies that datastore's data in first, and discovery
    runs after it; ``seeded_from`` / ``seeded_objects`` are its outputs (None without a seed).
    """

    datastore_url: pulumi.Output[str]
    index_status: pulumi.Output[str]
    index_entries: pulumi.Output[int]
    index_written: pulumi.Output[bool]
    warnings: pulumi.Output[list]
    seed: PostDeploySeed | None
    seeded_from: pulumi.Output[str] | None
    seeded_objects: pulumi.Output[int] | None

    def __init__(
        self,
        name: str,
        *,
        cloud: str,
        bucket: pulumi.Input[str],
        prefix: str,
        access: Access | None = None,
        seed_from: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        seed = None
        if seed_from:
            seed = PostDeploySeed(
                f"{name}-seed", cloud=cloud, bucket=bucket, prefix=prefix, seed_from=seed_from, access=access, opts=opts
            )
            opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[seed]))
        props: dict[str, Any] = {
            "cloud": cloud,
            "bucket": bucket,
            "prefix": prefix,
            **access_inputs(cloud, access, opts),
            "datastore_url": None,
            "index_status": None,
            "index_entries": None,
            "index_written": None,
            "warnings": None,
        }
        super().__init__(DiscoveryProvider(), name, props, opts)
        self.seed = seed
        self.seeded_from = seed.seeded_from if seed is not None else None
        self.seeded_objects = seed.seeded_objects if seed is not None else None

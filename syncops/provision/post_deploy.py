"""The post-deploy step inside ``pulumi up``: syncops discovery as a resource (a Pulumi dynamic provider).

Its purpose is that a finished ``pulumi up`` leaves a datastore whose ``.datastore-index.json`` is valid:
a bucket restored from a backup or seeded with ``aws s3 cp`` gets its index before any environment
bootstraps from it. Three promises hold:

* discovery runs again whenever the bucket or the prefix changes, and only then;
* a failure (403, 5xx after retries, a corrupt index) fails the deployment with syncops's own message,
  so a denied bucket can never leave a "successful" stack;
* deleting the resource (``pulumi destroy``, a replacement) never deletes data or the index.

The provider runs in Pulumi's dynamic-provider process with the deploying machine's standard
credentials (the AWS chain, Application Default Credentials, ``AWS_ENDPOINT_URL``,
``STORAGE_EMULATOR_HOST``), exactly as ``syncops discover`` would.
"""

from __future__ import annotations

import uuid
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

#: The inputs whose change means "a different datastore": discovery runs again.
WATCHED_INPUTS = ("cloud", "bucket", "prefix")
_SCHEMES = {"aws": "s3", "gcp": "gs"}


class PostDeployFailed(Exception):
    """Discovery failed; the message is syncops's own, tagged with the exit code the CLI would use."""

    def __init__(self, url: str, message: str, exit_code: int) -> None:
        super().__init__(f"syncops discovery of {url} failed (syncops exit code {exit_code}): {message}")
        self.exit_code = exit_code


def datastore_url(cloud: str, bucket: str, prefix: str) -> str:
    scheme = _SCHEMES.get(cloud)
    if scheme is None:
        raise ValueError(f"unknown cloud {cloud!r}")
    return f"{scheme}://{bucket}/{prefix}" if prefix else f"{scheme}://{bucket}"


def run_discovery(url: str) -> dict[str, Any]:
    """Discover ``url`` and describe the outcome as the resource's outputs."""
    from syncops.discover import discover
    from syncops.errors import SyncopsError
    from syncops.stores import DatastoreUrl, open_store
    from syncops.validate import check_store_endpoint

    try:
        parsed = DatastoreUrl.parse(url)
        check_store_endpoint(parsed.scheme, None)
        store = open_store(parsed)
        try:
            result = discover(store)
        finally:
            store.close()
    except SyncopsError as exc:
        raise PostDeployFailed(url, str(exc), exc.exit_code) from None
    return {
        "datastore_url": url,
        "index_status": result.status,
        "index_entries": len(result.index),
        "index_written": result.index_written,
        "warnings": list(result.warnings),
    }


class DiscoveryProvider(ResourceProvider):
    """Create and update run discovery; delete leaves the bucket exactly as it is."""

    #: The provider captures no secrets, so its serialized form need not be stored as one.
    serialize_as_secret_always = False

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = {**_inputs(props), **run_discovery(_url(props))}
        return CreateResult(id_=uuid.uuid4().hex, outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [key for key in WATCHED_INPUTS if olds.get(key) != news.get(key)]
        return DiffResult(changes=bool(changed), replaces=[], stables=[], delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs={**_inputs(news), **run_discovery(_url(news))})

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Forget the resource only: the datastore's objects and index belong to its users, not to Pulumi."""


def _inputs(props: dict[str, Any]) -> dict[str, Any]:
    return {key: props.get(key) or "" for key in WATCHED_INPUTS}


def _url(props: dict[str, Any]) -> str:
    return datastore_url(str(props["cloud"]), str(props["bucket"]), str(props.get("prefix") or ""))


class PostDeployDiscovery(Resource, module="syncops", name="PostDeployDiscovery"):
    """Runs syncops discovery against the datastore once the bucket and its settings exist."""

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
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "cloud": cloud,
            "bucket": bucket,
            "prefix": prefix,
            "datastore_url": None,
            "index_status": None,
            "index_entries": None,
            "index_written": None,
            "warnings": None,
        }
        super().__init__(DiscoveryProvider(), name, props, opts)

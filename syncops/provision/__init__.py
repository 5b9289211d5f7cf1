"""The Pulumi side of syncops: the datastore bucket components, the post-deploy discovery step and
``syncops up`` (the Automation API).

Only this subpackage imports pulumi; the sync engine never does, so ``syncops bootstrap`` runs on
machines without the Pulumi SDK. The names below are imported on first use, so ``syncops up`` (which
needs the SDK only once a real stack is selected) can import :mod:`syncops.provision.up` and report a
missing SDK or CLI with its own message instead of an ``ImportError``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from syncops.provision.aws import AwsDatastoreBucket, AwsDatastoreBucketArgs
    from syncops.provision.config import ConfigError, DatastoreSettings, parse_settings
    from syncops.provision.gcp import GcpDatastoreBucket, GcpDatastoreBucketArgs
    from syncops.provision.post_deploy import DiscoveryProvider, PostDeployDiscovery

__all__ = [
    "AwsDatastoreBucket",
    "AwsDatastoreBucketArgs",
    "ConfigError",
    "DatastoreSettings",
    "DiscoveryProvider",
    "GcpDatastoreBucket",
    "GcpDatastoreBucketArgs",
    "PostDeployDiscovery",
    "parse_settings",
]

_MODULES = {
    "AwsDatastoreBucket": "aws",
    "AwsDatastoreBucketArgs": "aws",
    "ConfigError": "config",
    "DatastoreSettings": "config",
    "DiscoveryProvider": "post_deploy",
    "GcpDatastoreBucket": "gcp",
    "GcpDatastoreBucketArgs": "gcp",
    "PostDeployDiscovery": "post_deploy",
    "parse_settings": "config",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)

"""The Pulumi side of syncops: the datastore bucket components and the post-deploy discovery step.

Only this subpackage (and ``syncops.up``) imports pulumi; the sync engine never does, so
``syncops bootstrap`` runs on machines without the Pulumi SDK.
"""

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

"""Backends behind one contract; :func:`open_store` picks one from the datastore URL.

Backends are imported lazily so ``syncops`` on a ``file://`` datastore never loads an SDK.
"""

from __future__ import annotations

from syncops.errors import BadInput
from syncops.stores.base import Blob, DatastoreUrl, Fetched, Head, ObjectInfo, ObjectStore, UploadBody
from syncops.stores.settings import StoreSettings

__all__ = [
    "Blob",
    "DatastoreUrl",
    "Fetched",
    "Head",
    "ObjectInfo",
    "ObjectStore",
    "StoreSettings",
    "UploadBody",
    "open_store",
]


def open_store(
    url: str | DatastoreUrl,
    *,
    endpoint_url: str | None = None,
    concurrency: int = 32,
    settings: StoreSettings | None = None,
) -> ObjectStore:
    """The store for ``url``; ``settings`` select credentials, region, project and endpoint explicitly
    (the standard chains decide whatever they leave unset)."""
    parsed = url if isinstance(url, DatastoreUrl) else DatastoreUrl.parse(url)
    if parsed.scheme == "s3":
        from syncops.stores.s3 import S3Store

        return S3Store(parsed, endpoint_url=endpoint_url, concurrency=concurrency, settings=settings)
    if endpoint_url is not None:
        raise BadInput("--endpoint-url applies to s3:// datastores only (GCS emulators: STORAGE_EMULATOR_HOST)")
    if parsed.scheme == "gs":
        from syncops.stores.gcs import GcsStore

        return GcsStore(parsed, concurrency=concurrency, settings=settings)
    from syncops.stores.local import LocalStore

    return LocalStore(parsed)

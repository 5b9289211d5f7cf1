"""What a request seen by the test proxy is, per backend: index read or write, listing page, data.

The fault, race and crash tests aim faults at one kind of request and count requests by kind, so
the wire shapes of the two SDKs are decoded here once:

* S3 (path-style): ``GET /bucket/key`` reads, ``GET /bucket?list-type=2…`` lists, ``PUT /bucket/key``
  writes; conditions travel as ``If-None-Match`` / ``If-Match`` headers.
* GCS JSON API: ``GET /download/storage/v1/b/B/o/NAME?alt=media`` reads, ``GET /storage/v1/b/B/o?…``
  lists, ``POST /upload/storage/v1/b/B/o?uploadType=multipart[&ifGenerationMatch=N]`` writes, with
  the object name inside the multipart body (kept by the proxy in ``Seen.body``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.proxy import Fault, Proxy, Seen

INDEX_NAME = ".datastore-index.json"
META_NAME = "_index/_meta.json"
LOCK_NAME = ".datastore.lock"

INDEX_GET = "index-get"
LIST = "list"
OBJECT_GET = "object-get"
INDEX_PUT = "index-put"
OBJECT_PUT = "object-put"
#: swamp's layout (issue 11): ``_index/_meta.json``, ``_index/<partition>.json`` and the lock.
META_GET = "meta-get"
META_PUT = "meta-put"
SHARD_GET = "shard-get"
SHARD_PUT = "shard-put"
LOCK_GET = "lock-get"
LOCK_PUT = "lock-put"
LOCK_DELETE = "lock-delete"
OTHER = "other"


def _object_kind(name: str, get: bool) -> str:
    """What an object read or write is, from the object's full name (any prefix before the datastore's keys)."""
    if name.endswith(INDEX_NAME):
        return INDEX_GET if get else INDEX_PUT
    if name.endswith(META_NAME):
        return META_GET if get else META_PUT
    if name.endswith(LOCK_NAME):
        return LOCK_GET if get else LOCK_PUT
    if "_index/" in name and name.endswith(".json"):
        return SHARD_GET if get else SHARD_PUT
    return OBJECT_GET if get else OBJECT_PUT


_GCS_NAME = re.compile(rb'"name"\s*:\s*"((?:[^"\\]|\\.)*)"')


def request_kind(backend: str, method: str, path: str, body: bytes = b"") -> str:
    """Classify one request as seen on the wire (``body`` only matters for GCS uploads)."""
    parts = urlsplit(path)
    query = parse_qs(parts.query)
    if backend == "s3":
        segments = parts.path.lstrip("/").split("/", 1)
        key = unquote(segments[1]) if len(segments) > 1 else ""
        if method == "GET" and not key and "list-type" in query:
            return LIST
        if method == "GET" and key:
            return _object_kind(key, True)
        if method == "PUT" and key:
            return _object_kind(key, False)
        if method == "DELETE" and key.endswith(LOCK_NAME):
            return LOCK_DELETE
        return OTHER
    if backend == "gcs":
        if method == "GET" and parts.path.startswith("/download/storage/v1/b/"):
            name = unquote(parts.path.split("/o/", 1)[1])
            return _object_kind(name, True)
        if method == "GET" and re.fullmatch(r"/storage/v1/b/[^/]+/o/?", parts.path):
            return LIST
        if method == "POST" and parts.path.startswith("/upload/storage/v1/b/"):
            found = _GCS_NAME.search(body)
            name = found.group(1).decode() if found else query.get("name", [""])[0]
            return _object_kind(name, False)
        if method == "DELETE" and "/o/" in parts.path and unquote(parts.path).endswith(LOCK_NAME):
            return LOCK_DELETE
        return OTHER
    raise ValueError(backend)


def is_index_get(backend: str) -> Callable[[str, str], bool]:
    return lambda method, path: request_kind(backend, method, path) == INDEX_GET


def is_list(backend: str) -> Callable[[str, str], bool]:
    return lambda method, path: request_kind(backend, method, path) == LIST


def is_object_get(backend: str) -> Callable[[str, str], bool]:
    return lambda method, path: request_kind(backend, method, path) == OBJECT_GET


def is_write(backend: str) -> Callable[[str, str], bool]:
    """Any object write, index or data (on GCS the name is in the body, which faults do not see)."""
    if backend == "s3":
        return lambda method, path: method == "PUT"
    return lambda method, path: method == "POST" and path.startswith("/upload/storage/v1/b/")


def index_write_fault(backend: str, **options: Any) -> Fault:
    """A fault on writes of the index only (S3: by path; GCS: by the name in the upload's body)."""
    if backend == "s3":
        return Fault(lambda method, path: request_kind("s3", method, path) == INDEX_PUT, **options)
    return Fault(
        is_write("gcs"),
        body=lambda body: request_kind("gcs", "POST", "/upload/storage/v1/b/x/o", body) == INDEX_PUT,
        **options,
    )


def conditional_write_fault(backend: str, status: int, times: int | None = None) -> Fault:
    """A fault on every conditional write: ``If-None-Match``/``If-Match`` (S3), ``ifGenerationMatch`` (GCS)."""
    if backend == "s3":
        return Fault(
            match=lambda method, path: method == "PUT",
            headers=lambda h: "if-none-match" in h or "if-match" in h,
            status=status,
            times=times,
        )
    return Fault(
        match=lambda method, path: method == "POST" and "ifGenerationMatch=" in path,
        status=status,
        times=times,
    )


def kinds(backend: str, proxy: Proxy) -> list[tuple[str, Seen]]:
    return [(request_kind(backend, s.method, s.path, s.body), s) for s in proxy.seen]


def count(backend: str, proxy: Proxy, kind: str, status: int | None = None) -> int:
    """Requests of ``kind`` seen by the proxy (only those answered ``status`` when given)."""
    return sum(1 for k, s in kinds(backend, proxy) if k == kind and (status is None or s.status == status))


def proxied_env(backend: str, env: dict[str, str], proxy: Proxy, **extra: str) -> dict[str, str]:
    """The CLI's environment with the backend's endpoint pointed at the proxy."""
    out = dict(env)
    if backend == "s3":
        out["AWS_ENDPOINT_URL"] = proxy.endpoint
    elif backend == "gcs":
        out["STORAGE_EMULATOR_HOST"] = proxy.endpoint
    else:
        raise ValueError(backend)
    out.update(extra)
    return out

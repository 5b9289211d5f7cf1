"""swamp-shaped datastores, built from the documented layout (docs/swamp-layout.md, SPEC §2), and
swamp's readers, so the interop tests can ask "would swamp find this?" without swamp itself.

The builders write exactly the objects swamp's own writers leave: the monolith
``.datastore-index.json``, shards ``_index/<partition>.json`` (``JSON.stringify(shard)``, compact,
as swamp's S3 ``writeShard`` does), ``_index/_meta.json`` (``JSON.stringify(meta, null, 2)``) and the
lock ``.datastore.lock`` (``JSON.stringify(info, null, 2)``). The readers follow swamp's
``pullIndex`` / ``assembleIndexFromShards`` (whole pull) and ``pullPartitionedIndex`` (a pull scoped
to one model: its ``data--`` shard, falling back to the monolith in dual-write mode).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from syncops.layout import partition_key
from tests.conftest import Datastore

INDEX = ".datastore-index.json"
META = "_index/_meta.json"
LOCK = ".datastore.lock"
STAMP = "2026-05-04T11:59:00.000Z"

MONOLITH, DUAL_WRITE, SHARD_FIRST = "monolith", "dual-write", "shard-first"
MODES = (MONOLITH, DUAL_WRITE, SHARD_FIRST)

#: A small swamp datastore: two models, a workflow run, a root file.
FILES = {
    "data/command/shell/model-1/result/1/raw": b"model one, version 1",
    "data/command/shell/model-2/result/1/raw": b"model two",
    "workflow-runs/wf-1/run.yaml": b"status: done\n",
    "README.md": b"# a swamp repo\n",
}
MODEL_1 = "data--command--shell--model-1"
#: The partitions of FILES, as swamp's partitionKeyFromPath names them.
PARTITIONS = sorted({"data--command--shell--model-1", "data--command--shell--model-2", "workflow-runs--wf-1", "_root"})
MODEL_2 = "data--command--shell--model-2"


def shard_key(partition: str) -> str:
    return f"_index/{partition}.json"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry(key: str, data: bytes, **extra: Any) -> dict[str, Any]:
    """An entry as swamp records it (``localMtime`` too: swamp's pushes copy its local index)."""
    return {"key": key, "size": len(data), "lastModified": STAMP, **extra}


def js_compact(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def js_pretty(doc: Any) -> bytes:
    return json.dumps(doc, indent=2, ensure_ascii=False).encode()


def by_partition(entries: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    grouped: dict[str, dict[str, dict[str, Any]]] = {}
    for key, value in entries.items():
        partition = partition_key(key)
        assert partition is not None, key
        grouped.setdefault(partition, {})[key] = value
    return grouped


def build(
    ds: Datastore,
    mode: str,
    files: dict[str, bytes] | None = None,
    *,
    entries: dict[str, dict[str, Any]] | None = None,
    commit_seq: int = 3,
    stale_monolith: dict[str, dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Seed ``files`` and the index objects swamp keeps in ``mode``; returns the entries written.

    ``stale_monolith`` (shard-first only): a monolith left from before the migration, which swamp
    no longer updates and no reader may take for the truth.
    """
    files = FILES if files is None else files
    ds.seed(files)
    entries = entries or {k: entry(k, v) for k, v in files.items()}
    monolith = {"version": 1, "lastPulled": STAMP, "entries": entries}
    shards = by_partition(entries)
    if mode in (MONOLITH, DUAL_WRITE):
        ds.raw.put(ds.full(INDEX), js_pretty(monolith))
    if mode == DUAL_WRITE:
        for partition, members in shards.items():
            ds.raw.put(ds.full(shard_key(partition)), js_compact({"version": 1, "entries": members}))
        ds.raw.put(ds.full(META), js_pretty({"version": 1, "partitions": list(shards)}))
    if mode == SHARD_FIRST:
        for partition, members in shards.items():
            ds.raw.put(ds.full(shard_key(partition)), js_compact({"version": 1, "entries": members}))
        ds.raw.put(ds.full(META), js_pretty({"version": 2, "partitions": sorted(shards), "commitSeq": commit_seq}))
        if stale_monolith is not None:
            ds.raw.put(ds.full(INDEX), js_pretty({"version": 1, "lastPulled": STAMP, "entries": stale_monolith}))
    return entries


def get_json(ds: Datastore, key: str) -> Any:
    data = ds.raw.get(ds.full(key))
    return None if data is None else json.loads(data)


def meta(ds: Datastore) -> dict[str, Any] | None:
    return get_json(ds, META)


def shard(ds: Datastore, partition: str) -> dict[str, Any] | None:
    return get_json(ds, shard_key(partition))


def index_objects(ds: Datastore) -> dict[str, str | None]:
    """The version of every index object (monolith, meta, shards): what "nothing written" compares."""
    keys = [k for k in ds.raw.keys() if k.endswith(INDEX) or "_index/" in k]
    return {k: ds.raw.version(k) for k in keys}


# -- swamp's readers -------------------------------------------------------------------------------


def swamp_pull_whole(ds: Datastore) -> dict[str, dict[str, Any]]:
    """The entries swamp's whole pull sees: the union of the listed shards when ``_meta.json`` is
    version 2 (a missing listed shard is "index is corrupt"), else the monolith."""
    found = meta(ds)
    if found is not None and found.get("version") == 2:
        out: dict[str, dict[str, Any]] = {}
        for partition in found["partitions"]:
            body = shard(ds, partition)
            assert body is not None, f"swamp: index is corrupt ({shard_key(partition)} missing)"
            out.update(body["entries"])
        return out
    monolith = get_json(ds, INDEX)
    return {} if monolith is None else monolith["entries"]


def swamp_pull_model(ds: Datastore, partition: str) -> dict[str, dict[str, Any]]:
    """A pull scoped to one model (``pullPartitionedIndex``): its shard, read directly; in
    dual-write mode a missing shard falls back to the monolith's entries of that partition."""
    body = shard(ds, partition)
    if body is not None:
        return body["entries"]
    found = meta(ds)
    if found is not None and found.get("version") == 2:
        return {}
    return {k: v for k, v in swamp_pull_whole(ds).items() if partition_key(k) == partition}


# -- swamp's lock ----------------------------------------------------------------------------------


def lock_body(*, holder: str = "alice@laptop", ttl_ms: int = 30_000, acquired: datetime | None = None) -> bytes:
    """A lock as swamp's ``buildLockInfo`` + ``encodeLockInfo`` write it."""
    moment = acquired or datetime.now(timezone.utc)
    return js_pretty(
        {
            "holder": holder,
            "hostname": holder.split("@")[-1],
            "pid": 4242,
            "acquiredAt": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
            "ttlMs": ttl_ms,
            "nonce": str(uuid.uuid4()),
        }
    )


def hold_lock(ds: Datastore, **options: Any) -> bytes:
    body = lock_body(**options)
    ds.raw.put(ds.full(LOCK), body)
    return body


def an_hour_ago() -> datetime:
    return datetime.now(timezone.utc) - timedelta(hours=1)

"""Discovery of very large listings stays within bounded memory (SPEC §3: listing streamed; issue 6).

A backend whose ``list()`` yields objects from a generator stands in for a bucket of N objects, so
the real ``discover()`` runs over 100k or 1M listed objects without a server. Each measurement runs
in a fresh interpreter (``python -m tests.test_scale N``) so the peak RSS is that of discovery alone.
The 1M run is marked slow; ``make bench`` reports 10k / 100k / 1M in bench/results.md.
"""

from __future__ import annotations

import hashlib
import json
import resource
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import BinaryIO

import pytest

from syncops.errors import NotFound
from syncops.stores.base import Blob, DatastoreUrl, ObjectInfo

ROOT = Path(__file__).resolve().parent.parent
#: Chunks handed to ``put`` must stay small: the index is streamed, never built whole.
MAX_CHUNK = 1 << 20
_EPOCH = datetime(2026, 5, 4, 12, 0, tzinfo=timezone.utc)


def generated_key(i: int) -> str:
    return f"datasets/run-{i // 10_000:04d}/shard-{(i // 100) % 100:02d}/part-{i:08d}.parquet"


class GeneratedStore:
    """An ``ObjectStore`` over a bucket that exists only as a generator of ``count`` objects.

    ``list()`` yields each :class:`ObjectInfo` lazily; ``put`` consumes what it is given and keeps
    only its size and digest, and records whether it came as one ``bytes`` or as a stream of chunks.
    """

    def __init__(self, count: int) -> None:
        self.url = DatastoreUrl("s3", "generated-bucket", "")
        self.count = count
        self.written: dict[str, tuple[int, str]] = {}
        self.streamed = False
        self.largest_chunk = 0
        self.listed = 0

    def get(self, key: str) -> Blob:
        raise NotFound(f"{self.url.object_url(key)}: not found")

    def put(
        self, key: str, data: bytes | Iterable[bytes], *, if_absent: bool = False, if_token: str | None = None
    ) -> str:
        digest = hashlib.md5()
        size = 0
        chunks = [data] if isinstance(data, bytes) else data
        self.streamed = not isinstance(data, bytes)
        for chunk in chunks:
            self.largest_chunk = max(self.largest_chunk, len(chunk))
            digest.update(chunk)
            size += len(chunk)
        self.written[key] = (size, digest.hexdigest())
        return digest.hexdigest()

    def list(self) -> Iterator[ObjectInfo]:
        for i in range(self.count):
            self.listed += 1
            # Objects written in bulk: many share a second, as real uploads do.
            yield ObjectInfo(generated_key(i), 1024 + i % 4096, _EPOCH + timedelta(seconds=i // 37))

    def download(self, key: str, out: BinaryIO) -> int:
        raise NotImplementedError

    def upload(self, key: str, path: Path) -> None:
        raise NotImplementedError

    def credential_source(self) -> str:
        return "none (generated)"

    def close(self) -> None:
        pass


def peak_rss_kib() -> int:
    """This process's peak RSS: ``VmHWM`` (reset by exec, unlike ``ru_maxrss``, which also counts
    the parent a subprocess was forked from), ``ru_maxrss`` where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure(count: int) -> dict[str, float]:
    """Discover a generated listing of ``count`` objects in this process; time and peak RSS."""
    from syncops.discover import discover
    from syncops.keys import INDEX_KEY

    store = GeneratedStore(count)
    start = time.perf_counter()
    result = discover(store)
    seconds = time.perf_counter() - start
    peak_kib = peak_rss_kib()
    size, _ = store.written[INDEX_KEY]
    return {
        "count": count,
        "status": result.status,  # type: ignore[dict-item]
        "entries": len(result.index),
        "seconds": seconds,
        "peak_rss_mb": peak_kib / 1024,
        "index_bytes": size,
        "streamed": store.streamed,
        "largest_chunk": store.largest_chunk,
        "listed": store.listed,
    }


def measure_in_fresh_process(count: int) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.test_scale", str(count)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_discovery_publishes_a_generated_listing_as_a_stream_of_small_chunks() -> None:
    store = GeneratedStore(5_000)
    from syncops.discover import DISCOVERED, discover
    from syncops.keys import INDEX_KEY

    result = discover(store)
    assert result.status == DISCOVERED and len(result.index) == 5_000
    assert store.listed == 5_000
    assert store.streamed, "the index must reach the store as chunks, not one whole bytes object"
    assert 0 < store.largest_chunk <= MAX_CHUNK
    size, digest = store.written[INDEX_KEY]
    from syncops import index as idx

    whole = idx.serialize(result.index, with_local=False)
    assert (size, digest) == (len(whole), hashlib.md5(whole).hexdigest())


def test_discovery_of_100k_listed_objects_stays_under_100_mb() -> None:
    row = measure_in_fresh_process(100_000)
    assert row["entries"] == 100_000 and row["status"] == "discovered"
    assert row["streamed"] and row["largest_chunk"] <= MAX_CHUNK
    assert row["peak_rss_mb"] < 100, row


@pytest.mark.slow
def test_discovery_of_1m_listed_objects_stays_under_500_mb() -> None:
    row = measure_in_fresh_process(1_000_000)
    assert row["entries"] == 1_000_000 and row["status"] == "discovered"
    assert row["streamed"] and row["largest_chunk"] <= MAX_CHUNK
    assert row["peak_rss_mb"] < 500, row


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]))))

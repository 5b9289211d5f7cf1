"""Large objects in parallel ranged GETs, delivered in order to the caller's writer.

One GET stream is limited by one connection's throughput (and, on a server, one disk read at a
time); s5cmd and rclone read a big object as many ranges at once. Here the ranges are fetched by a
small pool of threads (the backend's client releases the GIL while it waits) and handed to ``out``
strictly in order, so whatever ``out`` does to the bytes — sha256 and MD5 while they stream, the
progress bar — sees the whole object once, in order. A writer with ``write_at(data, position)`` and
``landed(data)`` (:class:`syncops.transfer.HashingWriter`) has each part put at its offset by the
thread that fetched it, and only hashes in order: the disk writes then run beside the hashing, which
is the one step that cannot be parallel. Any other writer gets ``write(data)`` in order.

Every part must come from one version of the object: each part's version token (S3 ETag, GCS
generation) and total size are compared with the first part's, and parts requested once the first
answer is in carry it as a precondition (S3 ``If-Match``, GCS ``ifGenerationMatch``). A part of
another version, a 412, or a range that no longer exists raises :class:`ObjectChanged`; the backend
then reads the object again from byte 0, so a file is never spliced from two versions.

Memory is bounded: a part is one buffer from its request until the caller has written it, and the
buffers of all objects in flight together never exceed ``buffers`` parts (a semaphore shared by
every object of one store).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, BinaryIO

MiB = 1 << 20
#: Bytes per ranged GET. Measured on loopback SeaweedFS, 1 GiB, paired runs: 8 MiB x 8 in flight took
#: 0.83-0.92x the time of 4 MiB x 8 (the server spends less CPU per byte on fewer, larger ranges, and
#: the server shares the two cores), at about 200 MB peak instead of 130 MB; 16 MiB x 4 was 0.90x.
PART_SIZE = 8 * MiB
#: Parts of one object requested at once.
PARTS_PER_OBJECT = 8
#: Part buffers of all objects together (bounds memory: ``PART_BUFFERS * PART_SIZE``).
PART_BUFFERS = 16
#: Objects at least this big are read in ranges; smaller ones in one GET. Measured here (loopback, 2 busy
#: cores, paired runs against one GET per object): 1 x 1 GiB 1.0-1.08x, 1 x 256 MiB on GCS 0.97x, and
#: 4 x 256 MiB 1.10x with every object in ranges (1.04x at 8 MiB x 4): the sha256 of every byte, not
#: the network, bounds a big download on this machine, and parallel streams of several objects already
#: fill the link. So ranges are kept for objects big enough that one connection's throughput is the
#: limit on a real network (AWS and Google both advise ranged reads for throughput there).
RANGED_THRESHOLD = 512 * MiB


class ObjectChanged(Exception):
    """The object was replaced while its parts were being read: read it again, whole."""


class SizeChanged(ObjectChanged):
    """The object's size is not the size the caller expected (a stale index): plan again."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the object has {size} bytes")
        self.size = size


@dataclass(frozen=True)
class Part:
    """One ranged answer: its bytes, the whole object's size and version token, and its time."""

    data: Any  # bytes or any buffer (obstore's Bytes)
    total: int
    token: str
    modified: datetime | None = None
    hashes: str = ""  # the whole object's checksums as the server states them (GCS ``x-goog-hash``)


#: ``get_range(start, end, pin)``: bytes ``[start, end)`` of the object, of version ``pin`` when it is
#: not None; retries its own transient failures; raises :class:`ObjectChanged` on 412/416.
GetRange = Callable[[int, int, "str | None"], Part]


class RangedReader:
    """Parallel ranged reads for one store; the part pool is made on first use and shared by its objects."""

    def __init__(
        self,
        *,
        part_size: int | None = None,
        parts_per_object: int | None = None,
        buffers: int | None = None,
        name: str = "syncops-part",
    ) -> None:
        # Module constants read at construction, so tests can lower them for small objects.
        self.part_size = part_size or PART_SIZE
        self.parts_per_object = max(1, parts_per_object or PARTS_PER_OBJECT)
        self.buffers = max(self.parts_per_object, buffers or PART_BUFFERS)
        self._slots = threading.BoundedSemaphore(self.buffers)
        self._name = name
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def wanted(self, size: int | None) -> bool:
        """Whether an object of (expected) ``size`` bytes is worth reading in ranges."""
        return size is not None and size >= max(RANGED_THRESHOLD, 2 * self.part_size)

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.buffers, thread_name_prefix=self._name)
            return self._pool

    def read(self, get_range: GetRange, size: int, out: BinaryIO) -> Part:
        """Write the ``size`` bytes of an object to ``out`` in order; returns the first part's answer
        (its ``data`` dropped). Raises :class:`SizeChanged` before writing anything when the object
        is not ``size`` bytes, :class:`ObjectChanged` when its version changes between parts.

        Returns (or raises) only when no part of this object is still being fetched or written: a
        straggler writing at its offset after a retry truncated the file, or after the file was
        closed and its descriptor reused, would corrupt what comes next.
        """
        pool = self._executor()
        part_size = self.part_size
        count = -(-size // part_size)
        base = out.tell()
        write_at = getattr(out, "write_at", None)
        landed = getattr(out, "landed", None)
        put = write_at if write_at is not None and landed is not None else None
        if put is not None:
            out.flush()
        pending: deque[Future[Part]] = deque()
        submitted = 0
        first: Part | None = None
        pin: str | None = None
        try:
            for index in range(count):
                while submitted < count and len(pending) < self.parts_per_object:
                    # Block for a buffer only when this object holds none (so no object waits on
                    # another while holding buffers: no deadlock between objects).
                    if not self._slots.acquire(blocking=not pending):
                        break
                    start = submitted * part_size
                    end = min(size, start + part_size)
                    pending.append(pool.submit(_fetch_part, get_range, start, end, pin, put, base))
                    submitted += 1
                future = pending.popleft()
                try:
                    part = future.result()
                finally:
                    self._slots.release()
                expected = min(size, (index + 1) * part_size) - index * part_size
                if first is None:
                    if part.total != size:
                        raise SizeChanged(part.total)
                    first = replace(part, data=b"")
                    pin = part.token or None
                elif part.token != first.token or part.total != first.total:
                    raise ObjectChanged(f"part {index + 1} of {count} is of another version")
                if len(part.data) != expected:
                    raise ObjectChanged(f"part {index + 1} of {count} has {len(part.data)} bytes, not {expected}")
                if landed is not None and put is not None:
                    landed(part.data)
                else:
                    out.write(part.data)
                del part
            if put is not None:
                out.seek(base + size)
            assert first is not None
            return first
        finally:
            running = [future for future in pending if not future.cancel()]
            for _ in range(len(pending) - len(running)):
                self._slots.release()
            if running:
                wait(running)
                for _ in running:
                    self._slots.release()

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None


def _fetch_part(
    get_range: GetRange, start: int, end: int, pin: str | None, put: Callable[[Any, int], Any] | None, base: int
) -> Part:
    """One part, put at its offset when the writer takes positioned writes (in this fetching thread)."""
    part = get_range(start, end, pin)
    if put is not None and len(part.data) == end - start:
        put(part.data, base + start)
    return part

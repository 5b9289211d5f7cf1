"""Pieces every transfer shares: a writer that hashes what lands (and can take it back), and a bounded
pool that yields results as they finish. Used by hydrate (downloads) and seed (streamed copies)."""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO, TypeVar

from syncops.progress import Progress

T = TypeVar("T")
R = TypeVar("R")


class HashingWriter:
    """Hashes bytes as they land in ``out`` (a new, empty file) and feeds the progress bar.

    A rewind to the start (a retried read) starts the hash over and takes back the bytes it had
    reported, so the bar never overshoots. Positions are tracked here, not asked of the kernel.
    ``sync_every``: start writeback every so many bytes, so a big file's final fsync has little left.
    """

    def __init__(self, out: BinaryIO, progress: Progress, *, sync_every: int | None = None) -> None:
        self._out = out
        self._progress = progress
        self._sync_every = sync_every
        self._position = 0
        self._sha = hashlib.sha256()
        self._counted = 0
        self._unsynced = 0
        self._sync_lock = threading.Lock()

    def write(self, chunk: bytes) -> int:
        self._progress.advance(len(chunk))
        self._counted += len(chunk)
        self._sha.update(chunk)
        written = self._out.write(chunk)
        self._position += written
        if self._sync_every is not None:
            self._unsynced += written
            if self._unsynced >= self._sync_every:
                self._out.flush()
                os.fdatasync(self._out.fileno())
                self._unsynced = 0
        return written

    def write_at(self, data: Any, position: int) -> None:
        """Put ``data`` at file offset ``position`` without hashing or counting it (a part of a ranged
        download, from the thread that fetched it); :meth:`landed` accounts for it later, in order."""
        fd = self._out.fileno()
        view = memoryview(data)
        while view:
            written = os.pwrite(fd, view, position)
            view = view[written:]
            position += written
        if self._sync_every is not None:
            # The data sync is made here, in a fetching thread, not in the one thread that hashes.
            with self._sync_lock:
                self._unsynced += len(data)
                due = self._unsynced >= self._sync_every
                if due:
                    self._unsynced = 0
            if due:
                os.fdatasync(fd)

    def landed(self, data: Any) -> None:
        """Account, in order, for bytes already put in place by :meth:`write_at`: hash and progress.
        The caller seeks to the end of what landed when it is done."""
        self._progress.advance(len(data))
        self._counted += len(data)
        self._sha.update(data)
        self._position += len(data)

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = 0) -> int:
        self._position = self._out.seek(offset, whence)
        if self._position == 0:
            self.restart()
        return self._position

    def restart(self) -> None:
        self._progress.advance(-self._counted)
        self._counted = 0
        self._sha = hashlib.sha256()

    def hexdigest(self) -> str:
        return self._sha.hexdigest()

    def __getattr__(self, name: str) -> object:
        return getattr(self._out, name)


def bounded(work: Callable[[T], R], items: Iterable[T], concurrency: int, name: str) -> Iterator[R]:
    """``work(item)`` for every item, at most ``concurrency`` at once, results as each one finishes.

    Submission is bounded too (twice the pool), so a million items never become a million futures; the
    first exception stops the run (what is pending is cancelled) and propagates. Each future puts
    itself on a queue when done, so taking the next result costs the same however many are pending
    (``concurrent.futures.wait`` locks and unlocks every pending future on each call: with 64 pending
    and a result every millisecond, that was the main thread's largest cost in a small-file hydrate).
    """
    finished: queue.SimpleQueue[Future[R]] = queue.SimpleQueue()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=name) as pool:
        pending: set[Future[R]] = set()

        def next_result() -> R:
            future = finished.get()
            pending.discard(future)
            return future.result()

        try:
            for item in items:
                future = pool.submit(work, item)
                pending.add(future)
                future.add_done_callback(finished.put)
                if len(pending) >= 2 * concurrency:
                    yield next_result()
            while pending:
                yield next_result()
        except BaseException:
            for future in pending:
                future.cancel()
            raise

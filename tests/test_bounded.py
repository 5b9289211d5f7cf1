"""The bounded transfer pool (hydrate, seed): every item once, at most N running, submission bounded,
results as they finish, and the first failure stops the run. Lined up with events, never sleeps."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from syncops.transfer import bounded


def test_every_item_is_done_once_with_at_most_n_running_and_at_most_2n_taken_ahead():
    concurrency, total = 4, 50
    lock = threading.Lock()
    running = peak = taken = 0

    def items() -> Iterator[int]:
        nonlocal taken
        for i in range(total):
            taken += 1
            yield i

    def work(i: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        with lock:
            running -= 1
        return i * i

    seen = []
    for result in bounded(work, items(), concurrency, "test"):
        assert taken <= len(seen) + 1 + 2 * concurrency, "items are taken only as results are consumed"
        seen.append(result)
    assert sorted(seen) == [i * i for i in range(total)]
    assert 1 <= peak <= concurrency


def test_results_come_as_each_finishes_not_in_submission_order():
    release = {i: threading.Event() for i in range(3)}

    def work(i: int) -> int:
        release[i].wait(timeout=30)
        return i

    results = bounded(work, range(3), 3, "test")
    release[2].set()
    assert next(results) == 2, "the one that finished first comes first"
    release[0].set()
    assert next(results) == 0
    release[1].set()
    assert next(results) == 1
    assert list(results) == []


def test_the_first_failure_propagates_and_what_was_not_started_never_runs():
    started: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> int:
        with lock:
            started.append(i)
        if i == 0:
            raise ValueError("item 0 failed")
        return i

    with pytest.raises(ValueError, match="item 0 failed"):
        for _ in bounded(work, range(1000), 1, "test"):
            pass
    # One worker: item 0 fails; at most the two submitted behind it may have started.
    assert started[0] == 0 and len(started) <= 3

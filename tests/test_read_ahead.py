"""Listing pages read one ahead (``stores.base.read_ahead``): the same sequence, failures where they
happened, at most one page produced beyond the one in hand, and nothing more once the caller stops."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from syncops.errors import Unavailable
from syncops.stores.base import read_ahead


def test_items_arrive_in_order_and_complete():
    assert list(read_ahead(iter(range(1000)))) == list(range(1000))
    assert list(read_ahead(iter([]))) == []


def test_a_failure_is_raised_after_the_items_before_it():
    def pages() -> Iterator[int]:
        yield 1
        yield 2
        raise Unavailable("page 3 lied")

    got: list[int] = []
    with pytest.raises(Unavailable, match="page 3 lied"):
        for item in read_ahead(pages()):
            got.append(item)
    assert got == [1, 2]


def test_at_most_one_item_is_produced_ahead_and_none_after_the_caller_stops():
    """An item is begun only once the one two places before it reached the caller (one in hand, one
    waiting, one being produced), and once the caller stops the producer ends and lets go of the
    items. Lined up with events (their timeouts only guard a failure), no sleeps."""
    taken = [0]  # items the caller has received
    lag: list[int] = []  # for item n: n minus the items taken when the producer began it
    third_begun, finished = threading.Event(), threading.Event()

    def pages() -> Iterator[int]:
        try:
            for n in range(100):
                lag.append(n - taken[0])
                if n == 2:
                    third_begun.set()
                yield n
        finally:
            finished.set()

    reader = read_ahead(pages())
    assert next(reader) == 0
    taken[0] = 1
    assert third_begun.wait(5), "the producer runs ahead while the caller holds an item"
    for expected in range(1, 10):
        assert next(reader) == expected
        taken[0] += 1
    reader.close()
    assert finished.wait(5), "the producer stopped once the caller did"
    assert max(lag) <= 2, lag
    assert len(lag) <= taken[0] + 2, "nothing begun after the caller stopped but the item in hand"

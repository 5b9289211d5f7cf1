"""Listing pages read one ahead (``stores.base.read_ahead``): the same sequence, failures where they
happened, at most one page produced beyond the one in hand, and nothing more once the caller stops."""

from __future__ import annotations

import time
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
    produced: list[int] = []

    def pages() -> Iterator[int]:
        for n in range(100):
            produced.append(n)
            yield n

    reader = read_ahead(pages())
    assert next(reader) == 0
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and len(produced) < 3:
        time.sleep(0.01)
    assert len(produced) <= 3, "one in hand, one waiting, one being produced"
    reader.close()
    seen = len(produced)
    time.sleep(0.3)
    assert len(produced) <= seen + 1

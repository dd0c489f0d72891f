"""BoundedQueue: the three full-queue policies, drop counts, END handling, timeouts, threads."""

from __future__ import annotations

import threading
import time

import pytest

from stream.items import END
from stream.queues import BoundedQueue, Empty, Full, QueuePolicy


def drain(queue: BoundedQueue) -> list:
    items = []
    while True:
        try:
            items.append(queue.get(timeout=0))
        except Empty:
            return items


def test_block_policy_refuses_when_full_and_keeps_fifo_order():
    queue = BoundedQueue(3, QueuePolicy.BLOCK)
    for value in range(3):
        assert queue.put(value, timeout=0.01)
    started = time.monotonic()
    with pytest.raises(Full):
        queue.put(99, timeout=0.05)
    assert time.monotonic() - started >= 0.04
    assert drain(queue) == [0, 1, 2]
    assert queue.dropped == 0


def test_block_policy_waits_for_a_consumer():
    queue = BoundedQueue(1, "block")
    queue.put("first")
    taker = threading.Timer(0.1, queue.get)
    taker.start()
    queue.put("second", timeout=2.0)          # succeeds once the timer took "first"
    taker.join()
    assert drain(queue) == ["second"]


def test_drop_oldest_keeps_the_newest_and_counts_drops():
    queue = BoundedQueue(3, QueuePolicy.DROP_OLDEST)
    for value in range(10):
        assert queue.put(value, timeout=0)    # never waits, never refuses
    assert drain(queue) == [7, 8, 9]
    assert queue.dropped == 7


def test_drop_newest_keeps_the_oldest_and_counts_drops():
    queue = BoundedQueue(3, QueuePolicy.DROP_NEWEST)
    accepted = [queue.put(value) for value in range(10)]
    assert accepted == [True] * 3 + [False] * 7
    assert drain(queue) == [0, 1, 2]
    assert queue.dropped == 7


@pytest.mark.parametrize("policy", [QueuePolicy.DROP_OLDEST, QueuePolicy.DROP_NEWEST])
def test_end_always_gets_in_evicting_nothing_and_is_never_evicted(policy):
    queue = BoundedQueue(2, policy)
    queue.put("a")
    queue.put("b")
    assert queue.put(END)                      # over the limit: the last frames are kept
    assert queue.dropped == 0
    assert drain(queue) == ["a", "b", END]
    queue.put("a")
    queue.put(END)
    assert queue.put("c") in (True, False)     # a late item may be dropped, END may not
    assert END in drain(queue)


def test_get_times_out_with_empty():
    queue = BoundedQueue(2)
    started = time.monotonic()
    with pytest.raises(Empty):
        queue.get(timeout=0.05)
    assert 0.04 <= time.monotonic() - started < 1.0


def test_size_below_one_is_refused():
    with pytest.raises(ValueError):
        BoundedQueue(0)


def test_producer_and_consumer_threads_pass_every_item_in_order():
    queue = BoundedQueue(4, QueuePolicy.BLOCK)
    received = []

    def consume():
        while True:
            item = queue.get(timeout=5)
            if item is END:
                return
            received.append(item)

    consumer = threading.Thread(target=consume)
    consumer.start()
    for value in range(2000):
        queue.put(value, timeout=5)
    queue.put(END, timeout=5)
    consumer.join(5)
    assert received == list(range(2000))
    assert queue.dropped == 0
    assert 1 <= queue.high_water <= 4

"""Bounded queues between stages; the one place where the full-queue policy lives.

A :class:`BoundedQueue` holds at most ``size`` items.  What happens when a producer puts into a
full queue is the queue's :class:`QueuePolicy`, named by its effect:

- ``block``: the producer waits (back-pressure; no frame is lost).  File sources use it.
- ``drop_oldest``: the oldest queued item is discarded so the newest always gets in (latest frame
  wins).  Live sources use it.
- ``drop_newest``: the incoming item is discarded.

Dropped items are counted (``dropped``).  The end-of-stream sentinel ``END`` is never dropped and
never evicted, whatever the policy; under a drop policy it also evicts nothing (it may take one
place beyond ``size``), so the last frames of a live source are kept.  Every blocking call takes
a timeout so a stop request is honoured quickly.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from enum import Enum
from queue import Empty, Full
from typing import Any

from stream.items import END

__all__ = ["BoundedQueue", "Empty", "Full", "QueuePolicy"]


class QueuePolicy(str, Enum):
    """What a full queue does with a new item."""

    BLOCK = "block"
    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"


class BoundedQueue:
    """A thread-safe FIFO of at most ``size`` items with a full-queue ``policy``."""

    def __init__(self, size: int, policy: QueuePolicy | str = QueuePolicy.BLOCK, name: str = ""):
        if size < 1:
            raise ValueError(f"queue size must be >= 1, got {size}")
        self.size = size
        self.policy = QueuePolicy(policy)
        self.name = name
        self._items: deque[Any] = deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._dropped = 0
        self._high_water = 0

    def __repr__(self) -> str:
        return (f"BoundedQueue(name={self.name!r}, size={self.size}, policy={self.policy.value}, "
                f"queued={len(self)}, dropped={self.dropped})")

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def dropped(self) -> int:
        """How many items this queue has discarded so far."""
        with self._lock:
            return self._dropped

    @property
    def high_water(self) -> int:
        """The largest number of items queued at once."""
        with self._lock:
            return self._high_water

    def put(self, item: Any, timeout: float | None = None) -> bool:
        """Queue ``item`` according to the policy; True when it was queued.

        ``block`` waits up to ``timeout`` seconds (None = forever) for room and raises ``queue.Full``
        when none came.  ``drop_oldest`` evicts the oldest item and never waits.  ``drop_newest``
        discards ``item`` itself (returns False).  ``END`` always gets in: under a drop policy
        without evicting anything (one place over ``size``), under ``block`` it waits like any item.
        """
        with self._not_full:
            over_limit_end = item is END and self.policy is not QueuePolicy.BLOCK
            if len(self._items) >= self.size and not over_limit_end:
                if self.policy is QueuePolicy.DROP_NEWEST:
                    self._dropped += 1
                    return False
                evicted = self.policy is not QueuePolicy.BLOCK and self._evict_oldest()
                if not evicted and not self._wait_for_room(timeout):
                    raise Full
            self._items.append(item)
            self._high_water = max(self._high_water, len(self._items))
            self._not_empty.notify()
            return True

    def _evict_oldest(self) -> bool:
        """Remove the oldest item that is not END (lock held); True when one was removed."""
        for position, queued in enumerate(self._items):
            if queued is not END:
                del self._items[position]
                self._dropped += 1
                return True
        return False

    def _wait_for_room(self, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while len(self._items) >= self.size:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            self._not_full.wait(remaining)
        return True

    def get(self, timeout: float | None = None) -> Any:
        """The oldest item; waits up to ``timeout`` seconds (None = forever), else ``queue.Empty``."""
        with self._not_empty:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._items:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise Empty
                self._not_empty.wait(remaining)
            item = self._items.popleft()
            self._not_full.notify()
            return item


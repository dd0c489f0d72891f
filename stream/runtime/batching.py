"""Several sources, one inference stage: a lane per source in front of it, rounds through it.

::

    capture(cam0) ─q─► preprocess ─lane cam0─┐
    capture(cam1) ─q─► preprocess ─lane cam1─┼─► inference (rounds) ─q─► postprocess ─q─► render
    capture(cam2) ─q─► preprocess ─lane cam2─┘

Each source's frames wait in its own :class:`Lane` (a ``BoundedQueue`` with the source's policy),
so one source never waits behind another: a file blocks only its own capture thread, and a live
source's lane holds just its newest frame (``drop_oldest``, size 1).  The inference runner takes a
*round*: the frame at the head of every lane that has one, starting after the lane it served last
(round-robin, at most ``max_items`` frames), and runs it through ``stage.process_batch``.  The
inference stage groups a round by net-input shape, one forward per shape (see
:func:`group_by_shape`).  A lane ends with ``END``; the runner passes ``END`` on once every lane has
ended.

Whether batching pays depends on the device and input size: on a GPU it does; on a small CPU a
batch can cost more per frame than single frames (caches).  ``time_batches`` measures both, so the
pipeline can choose at start-up.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Hashable, Sequence

from stream.items import END
from stream.queues import BoundedQueue, Empty, QueuePolicy
from stream.stage import POLL_S, Crew, StageRunner

__all__ = ["BatchRunner", "Lane", "Lanes", "group_by_shape", "time_batches"]


def group_by_shape(items: Sequence[Any], key: Callable[[Any], Hashable],
                   max_size: int | None = None) -> list[list[int]]:
    """Positions of ``items`` grouped by ``key(item)`` (first-seen order), each group split into
    chunks of at most ``max_size`` (None = no limit).  Pure: ``[[0, 2], [1]]`` for keys a, b, a."""
    groups: dict[Hashable, list[int]] = {}
    for position, item in enumerate(items):
        groups.setdefault(key(item), []).append(position)
    step = max_size or max(1, len(items))
    return [positions[start:start + step] for positions in groups.values()
            for start in range(0, len(positions), step)]


class Lane:
    """The outbox of one source's last stage before inference.

    ``put`` queues into the lane's own ``BoundedQueue`` (its policy decides what a full lane does)
    and wakes the inference runner.
    """

    def __init__(self, name: str, queue: BoundedQueue, wake: Callable[[], None]):
        self.name = name
        self.queue = queue
        self._wake = wake

    def put(self, item: Any, timeout: float | None = None) -> bool:
        queued = self.queue.put(item, timeout)
        self._wake()
        return queued

    @property
    def dropped(self) -> int:
        return self.queue.dropped


class Lanes:
    """All lanes in front of the inference stage; the inference runners' inbox."""

    def __init__(self) -> None:
        self._lanes: list[Lane] = []
        self._ended: set[str] = set()
        self._next = 0
        self._ready = threading.Condition()

    def add(self, name: str, size: int, policy: QueuePolicy) -> Lane:
        """A new lane for source ``name`` holding at most ``size`` frames."""
        queue = BoundedQueue(size, policy, name=f"{name}:lane->inference")
        lane = Lane(name, queue, self._wake)
        self._lanes.append(lane)
        return lane

    @property
    def queues(self) -> list[BoundedQueue]:
        return [lane.queue for lane in self._lanes]

    def _wake(self) -> None:
        with self._ready:
            self._ready.notify_all()

    def take_round(self, timeout: float, max_items: int | None = None) -> list[Any] | Any:
        """The next round (at most one frame per lane, at most ``max_items``), ``END`` once every
        lane has ended; waits up to ``timeout`` seconds for a frame, else raises ``queue.Empty``."""
        deadline = time.monotonic() + timeout
        with self._ready:
            while True:
                taken = self._collect(max_items)
                if taken:
                    return taken
                if len(self._ended) == len(self._lanes):
                    return END
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Empty
                self._ready.wait(remaining)

    def _collect(self, max_items: int | None) -> list[Any]:
        """Head frames of the lanes in round-robin order (condition held)."""
        taken: list[Any] = []
        count = len(self._lanes)
        for step in range(count):
            position = (self._next + step) % count
            lane = self._lanes[position]
            if lane.name in self._ended:
                continue
            try:
                item = lane.queue.get(timeout=0)
            except Empty:
                continue
            if item is END:
                self._ended.add(lane.name)
                continue
            taken.append(item)
            if max_items is not None and len(taken) >= max_items:
                self._next = (position + 1) % count
                return taken
        if taken:
            self._next = (self._next + 1) % count
        return taken


class BatchRunner(StageRunner):
    """Runs a stage with ``process_batch(items) -> list`` on rounds taken from :class:`Lanes`.

    Each frame of a round is timed at its share of the call.  Run N-wide with a shared ``Crew``,
    rounds leave in the order they were taken, so each source's frames stay in order.
    """

    def __init__(self, stage: Any, lanes: Lanes, outbox: BoundedQueue | None, control: Any, timings: Any,
                 max_items: int | None = None, crew: Crew | None = None, worker: int = 0):
        super().__init__(stage, None, outbox, control, timings, crew=crew, worker=worker)
        self.lanes = lanes
        self.inbox = lanes            # not None: the base loop treats the runner as a consumer
        self.max_items = max_items

    def _take(self) -> Any:
        return self.lanes.take_round(POLL_S, self.max_items)

    def _work(self, items: list[Any]) -> list[Any]:
        started = time.perf_counter()
        results = self.stage.process_batch(items)
        share_s = (time.perf_counter() - started) / len(items)
        for _ in items:
            self.timings.record_stage(self.stage.name, share_s)
        return results


def time_batches(engine: Callable[[Any], Any], frames: int, height: int, width: int,
                 repeats: int = 2) -> tuple[float, float]:
    """Per-frame forward time in ms of one frame alone and of ``frames`` frames as one batch
    (best of ``repeats`` each, after one untimed batch), on zeros of [N,3,height,width]."""
    import numpy as np

    dummy = np.zeros((frames, 3, height, width), dtype=np.float32)
    engine(dummy)

    def per_frame_ms(count: int) -> float:
        best_s = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            engine(dummy[:count])
            best_s = min(best_s, time.perf_counter() - started)
        return 1000.0 * best_s / count

    return per_frame_ms(1), per_frame_ms(frames)

"""The one queue policy for event delivery: bounded, ordered, retried, never blocking the caller.

Every event output (MQTT, webhooks) hands its records to an ``Outbox``: one background thread per
destination sends them one at a time, in the order they were put. The pipeline's threads only call
``put``, which never waits: when the queue is full the *oldest* record is dropped (counted, and
logged once per burst), so a receiver that is down for a long time costs a bounded amount of memory
and the newest records survive. A send that fails is retried after an exponential back-off (capped)
and nothing behind it overtakes it, so records arrive in order once the receiver is back.

The send function decides what a failure means: it returns normally when the record was delivered,
raises ``Rejected`` when retrying cannot help (the record is dropped, counted, logged once), and
raises anything else to be retried. It may block (it runs in the outbox's thread); a send that waits
for something should give up when ``outbox.stopping`` is set (``close`` sets it when its time is up).
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class Rejected(Exception):
    """Raised by a send function when the receiver refused the record for good (no retry)."""


def payload_json(record: Any) -> str:
    """``record`` as compact JSON, the body every output sends (numpy values become plain ones);
    ``Rejected`` when it cannot be written as JSON (retrying would not help)."""
    def plain(value: Any) -> Any:
        if hasattr(value, "tolist"):
            return value.tolist()
        raise TypeError(f"{type(value).__name__} is not JSON serializable")

    try:
        return json.dumps(record, separators=(",", ":"), default=plain)
    except (TypeError, ValueError) as error:
        raise Rejected(f"the record is not JSON: {error}") from None


def backoff_delay(failures: int, initial_s: float, max_s: float) -> float:
    """Seconds to wait before the next try after ``failures`` failed tries in a row (≥ 1):
    ``initial_s`` doubled per further failure, never more than ``max_s``."""
    if failures <= 0:
        return 0.0
    return min(max_s, initial_s * (2.0 ** min(failures - 1, 32)))


class Outbox:
    """A bounded FIFO of records with one sender thread.

    ``name`` labels the log lines (never put secrets in it: it is logged). ``send(item)`` delivers
    one item (see the module docstring for its contract). ``capacity`` bounds the records waiting (≥ 1; one more may be in flight).
    """

    def __init__(self, name: str, send: Callable[[Any], None], *, capacity: int = 1000,
                 backoff_s: float = 0.5, backoff_max_s: float = 30.0):
        if capacity < 1:
            raise ValueError(f"outbox capacity must be >= 1, got {capacity}")
        self.name = name
        self.stopping = threading.Event()
        self._send = send
        self._capacity = capacity
        self._backoff_s = backoff_s
        self._backoff_max_s = backoff_max_s
        self._queue: collections.deque = collections.deque()
        self._inflight: tuple[Any] | None = None     # (item,) being sent, out of the queue
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._sent = 0
        self._dropped = 0
        self._burst_dropped = 0     # overflow drops since the last time the queue had room
        self._failures = 0          # failed tries of the head item in a row

    # -- caller side -----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the sender thread (idempotent)."""
        with self._cond:
            if self._thread is not None or self._closing:
                return
            self._thread = threading.Thread(target=self._run, name=f"outbox-{self.name}", daemon=True)
            self._thread.start()

    def put(self, item: Any) -> None:
        """Queue ``item``; never blocks. A full queue drops its oldest item; after ``close`` the
        item itself is dropped."""
        with self._cond:
            if self._closing:
                self._dropped += 1
                return
            if len(self._queue) >= self._capacity:
                self._queue.popleft()
                self._dropped += 1
                self._burst_dropped += 1
                if self._burst_dropped == 1:
                    log.warning("%s: event queue full (%d records): dropping the oldest records "
                                "until the receiver catches up", self.name, self._capacity)
            elif self._burst_dropped:
                log.warning("%s: %d records were dropped while the event queue was full",
                            self.name, self._burst_dropped)
                self._burst_dropped = 0
            self._queue.append(item)
            self._cond.notify_all()

    def close(self, timeout_s: float = 2.0) -> None:
        """Send what can be sent within ``timeout_s`` seconds, then stop; what is left is counted
        as dropped. Idempotent."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            with self._cond:
                while (self._queue or self._inflight is not None) and thread.is_alive():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(min(remaining, 0.05))
            self.stopping.set()
            with self._cond:
                self._cond.notify_all()
            thread.join(max(0.1, deadline - time.monotonic()))
        self.stopping.set()
        with self._cond:
            left = len(self._queue) + (self._inflight is not None)
            self._queue.clear()
            self._inflight = None
            self._dropped += left
        if left:
            log.warning("%s: %d event records were not delivered before closing", self.name, left)

    def counters(self) -> dict[str, int]:
        """``sent``, ``dropped`` (overflow, rejected, left at close) and ``queued`` (waiting,
        including one being sent)."""
        with self._cond:
            queued = len(self._queue) + (self._inflight is not None)
            return {"sent": self._sent, "dropped": self._dropped, "queued": queued}

    # -- sender thread ---------------------------------------------------------------------------
    def _next(self) -> tuple[bool, Any]:
        """The item to send: the one in flight (a retry), else the head of the queue; (False, None)
        when stopping."""
        with self._cond:
            if self._inflight is not None:
                return (False, None) if self.stopping.is_set() else (True, self._inflight[0])
            while not self._queue:
                if self._closing or self.stopping.is_set():
                    return False, None
                self._cond.wait()
            if self.stopping.is_set():
                return False, None
            self._inflight = (self._queue.popleft(),)
            return True, self._inflight[0]

    def _finish(self, delivered: bool) -> None:
        """The item in flight is done: delivered, or dropped for good."""
        with self._cond:
            if self._inflight is None:
                return      # close() gave up on it and counted it dropped already
            self._inflight = None
            if delivered:
                self._sent += 1
            else:
                self._dropped += 1
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            ok, item = self._next()
            if not ok:
                return
            try:
                self._send(item)
            except Rejected as error:
                log.warning("%s: the receiver refused an event record, dropped: %s", self.name, error)
                self._finish(delivered=False)
                continue
            except Exception as error:  # noqa: BLE001 - any other failure is retried
                if self.stopping.is_set():
                    return
                self._failures += 1
                delay = backoff_delay(self._failures, self._backoff_s, self._backoff_max_s)
                if self._failures == 1:
                    log.warning("%s: cannot deliver event records (%s); retrying with back-off",
                                self.name, error)
                else:
                    log.debug("%s: try %d failed (%s); next in %.1f s", self.name, self._failures,
                              error, delay)
                self.stopping.wait(delay)
                continue
            if self._failures:
                log.info("%s: delivering event records again after %d failed tries",
                         self.name, self._failures)
                self._failures = 0
            self._finish(delivered=True)

"""The one place where a live source is retried: :class:`Reconnecting`.

Sources never retry on their own.  ``Reconnecting`` wraps a factory of live sources; when the
current one reports a dead or stalled stream (a ``SourceError`` out of its iteration) it closes
it, waits a capped exponential back-off and opens a fresh one, counting reconnects and logging
each attempt.  Frames are renumbered so ``index`` keeps increasing from 0 and ``time`` counts
from the first frame, across reconnects.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator

from posestream_common.errors import SourceError
from stream.items import Frame
from stream.sources import Source, SourceState

log = logging.getLogger(__name__)

# Longest wait, when retiring a connection, for the reader of the one retired before it to end:
# at most one abandoned reader thread exists per Reconnecting (beside the live one).
STALE_READER_WAIT_S = 60.0


def backoff_delay_s(attempt: int, initial_s: float, max_s: float, factor: float = 2.0) -> float:
    """Wait before reconnect attempt ``attempt`` (1-based): initial_s·factor^(attempt−1), capped."""
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    return min(max_s, initial_s * factor ** (attempt - 1))


class Reconnecting(Source):
    """A live source that survives dead and stalled streams.

    open_inner: makes a new, unopened source (one per connection attempt) whose iteration raises
    ``SourceError`` when the stream dies or stalls.  label: the stream in messages (URL with any
    password hidden, or ``webcam N``).  reconnect=False: the first loss raises a ``SourceError``
    naming the stream.  max_reconnects: give up (``SourceError``) after this many failed attempts
    in a row (0 = never).  The first open is not retried: a stream that never opened is a user
    error.  Counts: ``reconnects`` (successful), ``reconnect_attempts``, ``dropped`` (frames the
    readers overwrote, over all connections).

    ``close()`` may be called from another thread: it wakes a waiting iteration (which then
    ends) and cuts a back-off short.
    """

    is_live = True

    def __init__(
        self,
        open_inner: Callable[[], Source],
        *,
        name: str,
        label: str,
        reconnect: bool = True,
        max_reconnects: int = 0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 8.0,
    ):
        super().__init__(name)
        self.label = label
        self.reconnect = reconnect
        self.max_reconnects = max_reconnects
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.reconnects = 0
        self.reconnect_attempts = 0
        self._open_inner = open_inner
        self._inner: Source | None = None
        self._stale: Source | None = None
        self._dropped_by_retired = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._next_index = 0
        self._first_capture_time: float | None = None
        self._recovering = False

    @property
    def state(self) -> SourceState:
        """``reconnecting`` from the moment a loss is noticed until a new connection gives a frame
        (a stream that opens but stays stalled is not live)."""
        state = super().state
        return SourceState.RECONNECTING if state is SourceState.LIVE and self._recovering else state

    @property
    def dropped(self) -> int:
        """Frames the readers overwrote before anyone took them, over every connection."""
        inner = self._inner
        return self._dropped_by_retired + (getattr(inner, "dropped", 0) if inner is not None else 0)

    def close(self) -> None:
        """Stop: close the current connection and wake any waiting iteration.  Idempotent."""
        self._stop.set()
        with self._lock:
            inner = self._inner
        if inner is not None:
            inner.close()
        super().close()

    def _open(self) -> None:
        self._connect()

    def _frames(self) -> Iterator[Frame]:
        while not self._stop.is_set():
            try:
                for frame in self._inner:
                    self._recovering = False
                    yield self._restamp(frame)
                reason = "the stream ended"
            except SourceError as exc:
                reason = str(exc)
            if self._stop.is_set() or not self._recover(reason):
                return

    def _restamp(self, frame: Frame) -> Frame:
        """Number frames across connections; ``time`` counts from the first frame's capture."""
        if self._first_capture_time is None:
            self._first_capture_time = frame.capture_time
        index = self._next_index
        self._next_index += 1
        return dataclasses.replace(frame, index=index, source=self.name,
                                   time=max(0.0, frame.capture_time - self._first_capture_time))

    def _connect(self) -> None:
        """Make and open a new connection; on failure it is retired and the error re-raised."""
        inner = self._open_inner()
        with self._lock:
            if self._stop.is_set():
                raise SourceError(f"{self.label}: source {self.name} is closed")
            self._inner = inner
        try:
            inner.open()
        except BaseException:
            with self._lock:
                self._inner = None
            self._retire(inner)
            raise
        self.fps = inner.fps

    def _retire(self, source: Source) -> None:
        """Close a connection; keep at most one abandoned reader alive (wait for the older one)."""
        source.close()
        self._dropped_by_retired += getattr(source, "dropped", 0)
        stale = self._stale
        if stale is not None and hasattr(stale, "wait_reader"):
            deadline = time.monotonic() + STALE_READER_WAIT_S
            while not stale.wait_reader(0.1):
                if self._stop.is_set() or time.monotonic() > deadline:
                    break
        self._stale = source

    def _recover(self, reason: str) -> bool:
        """Replace the lost connection: True when reconnected, False when closed meanwhile.

        Raises ``SourceError`` when reconnecting is off or ``max_reconnects`` attempts failed.
        """
        with self._lock:
            lost, self._inner = self._inner, None
        if lost is not None:
            self._retire(lost)
        if not self.reconnect:
            raise SourceError(f"{self.label}: {_without_label(reason, self.label)} "
                              "(source.reconnect is false)")
        log.warning("%s lost: %s; reconnecting", self.name, reason)
        self._recovering = True                 # until the new connection's first frame
        lost_at = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            if self.max_reconnects and attempt > self.max_reconnects:
                raise SourceError(
                    f"{self.label}: gave up after {self.max_reconnects} reconnect attempts "
                    f"(source.max_reconnects): {_without_label(reason, self.label)}"
                )
            delay_s = backoff_delay_s(attempt, self.backoff_initial_s, self.backoff_max_s)
            log.info("%s: reconnect attempt %d in %.2f s", self.name, attempt, delay_s)
            if self._stop.wait(delay_s):
                return False
            self.reconnect_attempts += 1
            try:
                self._connect()
            except SourceError as exc:
                if self._stop.is_set():
                    return False
                reason = str(exc)
                log.warning("%s: reconnect attempt %d failed: %s", self.name, attempt, reason)
                continue
            self.reconnects += 1
            log.warning(
                "%s: reconnected after %d attempt(s), %.1f s after the loss was noticed "
                "(%d reconnects so far)",
                self.name, attempt, time.monotonic() - lost_at, self.reconnects,
            )
            return True


def _without_label(reason: str, label: str) -> str:
    """``reason`` without a leading ``label: `` (messages name the stream once)."""
    prefix = f"{label}: "
    return reason[len(prefix):] if reason.startswith(prefix) else reason

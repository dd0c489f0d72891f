"""The one ``Stage`` base and the two loops that drive stages: threaded and sequential.

A stage only computes: it implements ``process(item) -> item | None`` (``None`` drops the item)
and, if it needs them, ``open()``/``close()``.  A producer stage (capture) implements
``read() -> item | END`` instead.  Stages never start threads, sleep or touch queues.

The loops own everything else: taking items, timing every call, passing the ``END`` sentinel
along, catching exceptions (the first one stops the whole run, named by its stage) and closing the
stage in ``finally``.  Every blocking queue call has a short timeout, so a stop request (signal,
error elsewhere) is honoured within a fraction of a second.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol, Sequence

from stream.items import END
from stream.queues import BoundedQueue, Empty, Full

log = logging.getLogger(__name__)

POLL_S = 0.05           # how long a blocked get/put waits before looking at the stop event again


class Stage:
    """Base of every pipeline stage.  Subclasses set ``name`` and override ``process``.

    ``batched``: the stage takes rounds of items through ``process_batch`` (inference serves
    several sources' frames at once); the loops run every other stage one item at a time.
    """

    name: str = "stage"
    batched: bool = False

    def open(self) -> None:
        """Acquire resources (files, models).  Called once, before the first item."""

    def process(self, item: Any) -> Any | None:
        """Turn one item into the next; ``None`` drops it."""
        return item

    def process_batch(self, items: Sequence[Any]) -> list[Any | None]:
        """A round of items, one result each; by default ``process`` item by item."""
        return [self.process(item) for item in items]

    def read(self) -> Any:
        """Producer stages only: the next item, or ``END`` when the stream is over."""
        raise NotImplementedError(f"stage {self.name!r} is not a producer")

    def interrupt(self) -> None:
        """Called from another thread when the run stops: wake a blocked ``read``/``process``
        (e.g. close a live source).  The default does nothing."""

    def close(self) -> None:
        """Release resources; must be safe to call twice."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class Timings(Protocol):
    """What the loops report to (implemented by ``stream.stats.StatsRecorder``)."""

    def record_stage(self, stage: str, seconds: float) -> None: ...

    def record_done(self, item: Any) -> None: ...


class RunControl:
    """The run's single stop event plus the first failure (stage name and exception), and the
    sources that failed for good without stopping the run (``source_failures``: name → error)."""

    def __init__(self, stop_event: threading.Event | None = None):
        self.stop_event = stop_event if stop_event is not None else threading.Event()
        self._lock = threading.Lock()
        self.failed_stage: str | None = None
        self.error: BaseException | None = None
        self.source_failures: dict[str, BaseException] = {}

    @property
    def stopping(self) -> bool:
        return self.stop_event.is_set()

    def stop(self) -> None:
        """Ask every loop to finish now (safe from signal handlers and any thread)."""
        self.stop_event.set()

    def fail(self, stage: str, error: BaseException) -> None:
        """Record ``error`` raised in ``stage`` (the first one wins) and stop the run."""
        with self._lock:
            if self.error is None:
                self.failed_stage, self.error = stage, error
                log.debug("stage %s failed", stage, exc_info=error)
        self.stop_event.set()

    def fail_source(self, source: str, error: BaseException) -> None:
        """Record that ``source`` failed for good; the run goes on with the other sources."""
        with self._lock:
            self.source_failures.setdefault(source, error)
        log.error("source %s failed and is ended; the other sources go on: %s", source, error)
        log.debug("source %s failure", source, exc_info=error)


class EndCountdown:
    """Lets several producers share one output queue: only the last one to finish passes END."""

    def __init__(self, producers: int):
        self._left = producers
        self._lock = threading.Lock()

    def arrive(self) -> bool:
        with self._lock:
            self._left -= 1
            return self._left == 0


class Crew:
    """Shared by the worker threads of one stage run N-wide: numbers the items as they are
    taken and lets results out strictly in that order, so frames still leave in order."""

    def __init__(self, workers: int):
        self.take_lock = threading.Lock()
        self.ended = False
        self._turn = threading.Condition()
        self._next_in = 0
        self._next_out = 0
        self._left = workers

    def number(self) -> int:
        """The next sequence number (call with ``take_lock`` held, right after taking an item)."""
        self._next_in += 1
        return self._next_in - 1

    def wait_turn(self, number: int, control: "RunControl") -> None:
        with self._turn:
            while self._next_out != number:
                if control.stopping:
                    raise _Stopped
                self._turn.wait(POLL_S)

    def done(self, number: int) -> None:
        with self._turn:
            self._next_out = number + 1
            self._turn.notify_all()

    def leave(self) -> bool:
        """A worker ends; True for the last one (which closes the stage)."""
        with self._turn:
            self._left -= 1
            return self._left == 0


class StageRunner(threading.Thread):
    """Runs one stage in its own thread between an inbox and an outbox.

    A producer (``inbox`` None) calls ``stage.read()`` until END; the last stage (``outbox`` None)
    hands each finished item to ``timings.record_done``.  Several runners may work one stage
    together when they share a :class:`Crew` (the stage's ``process`` must then be thread-safe).
    ``source_failure_ends``: a producer whose ``read`` raises ends its own stream (END, the failure
    recorded with ``control.fail_source`` under ``stage.source_name``) instead of stopping the run.
    """

    def __init__(self, stage: Stage, inbox: BoundedQueue | None, outbox: Any,
                 control: RunControl, timings: Timings, end_countdown: EndCountdown | None = None,
                 crew: Crew | None = None, worker: int = 0, source_failure_ends: bool = False):
        suffix = f"-{worker}" if crew is not None else ""
        super().__init__(name=f"stage-{stage.name}{suffix}", daemon=True)
        self.stage = stage
        self.inbox = inbox
        self.outbox = outbox
        self.control = control
        self.timings = timings
        self.end_countdown = end_countdown
        self.crew = crew
        self.source_failure_ends = source_failure_ends

    def run(self) -> None:
        try:
            if self.inbox is None:
                self._produce()
            elif self.crew is None:
                self._consume()
            else:
                self._consume_in_crew(self.crew)
        except _Stopped:
            pass
        except Exception as error:  # noqa: BLE001 - any failure stops the run, named by stage
            self.control.fail(self.stage.name, error)
        finally:
            if self.crew is None or self.crew.leave():
                _close(self.stage, self.control)

    def _produce(self) -> None:
        while not self.control.stopping:
            started = time.perf_counter()
            item = _read(self.stage, self.control, self.source_failure_ends)
            if item is END:
                if self.end_countdown is None or self.end_countdown.arrive():
                    self._emit(END)
                return
            self.timings.record_stage(self.stage.name, time.perf_counter() - started)
            self._emit(item)

    def _consume(self) -> None:
        while not self.control.stopping:
            try:
                taken = self._take()
            except Empty:
                continue
            if taken is END:
                self._emit(END)
                return
            for result in self._work(taken):
                self._emit_result(result)

    def _consume_in_crew(self, crew: Crew) -> None:
        while not self.control.stopping and not crew.ended:
            with crew.take_lock:
                if crew.ended:
                    return
                try:
                    taken = self._take()
                except Empty:
                    continue
                number = crew.number()
                if taken is END:
                    crew.ended = True
            results = [END] if taken is END else self._work(taken)
            crew.wait_turn(number, self.control)
            try:
                for result in results:
                    self._emit_result(result)
            finally:
                crew.done(number)

    def _take(self) -> Any:
        """The next thing to work on (``queue.Empty`` after a short wait): one item of the inbox."""
        return self.inbox.get(timeout=POLL_S)

    def _work(self, item: Any) -> list[Any]:
        """Results of what ``_take`` returned: the stage's result for the one item, timed."""
        started = time.perf_counter()
        result = self.stage.process(item)
        self.timings.record_stage(self.stage.name, time.perf_counter() - started)
        return [result]

    def _emit_result(self, result: Any) -> None:
        if result is not None:
            self._emit(result)

    def _emit(self, item: Any) -> None:
        if self.outbox is None:
            if item is not END:
                self.timings.record_done(item)
            return
        while True:
            try:
                self.outbox.put(item, timeout=POLL_S)
                return
            except Full:
                if self.control.stopping:
                    raise _Stopped from None


def run_sequential(producers: Sequence[Stage], stages: Sequence[Stage], control: RunControl,
                   timings: Timings, *, source_failure_ends: bool = False,
                   max_batch: int | None = None) -> None:
    """Run the very same stages one after another in the calling thread.

    Each round reads one item from every producer still going (until all have ended) and takes
    the round through ``stages`` in order: a stage with ``process_batch`` gets the whole round (in
    chunks of at most ``max_batch``), the others one item at a time.  ``source_failure_ends`` as
    in :class:`StageRunner`.  Stops on ``control``; every stage is closed on the way out.
    """
    active = list(producers)
    current = None
    try:
        while active and not control.stopping:
            items = []
            for producer in list(active):
                if control.stopping:
                    break
                current = producer
                started = time.perf_counter()
                item = _read(producer, control, source_failure_ends)
                if item is END:
                    active.remove(producer)
                    continue
                timings.record_stage(producer.name, time.perf_counter() - started)
                items.append(item)
            for stage in stages:
                if not items or control.stopping:
                    break
                current = stage
                items = _process_round(stage, items, timings, max_batch)
            else:
                for item in items:
                    timings.record_done(item)
    except Exception as error:  # noqa: BLE001 - named by the stage it came from
        control.fail(current.name if current is not None else "pipeline", error)
    finally:
        for stage in [*producers, *stages]:
            _close(stage, control)


def _process_round(stage: Stage, items: list[Any], timings: Timings, max_batch: int | None) -> list[Any]:
    """``items`` through one stage (batched when it can), timed per item; drops ``None`` results."""
    results: list[Any] = []
    batched = stage.batched
    step = (max_batch or len(items)) if batched else 1
    for start in range(0, len(items), step):
        chunk = items[start:start + step]
        started = time.perf_counter()
        results.extend(stage.process_batch(chunk) if batched else [stage.process(chunk[0])])
        share_s = (time.perf_counter() - started) / len(chunk)
        for _ in chunk:
            timings.record_stage(stage.name, share_s)
    return [result for result in results if result is not None]


def _read(producer: Stage, control: RunControl, failure_ends: bool) -> Any:
    """``producer.read()``; with ``failure_ends`` a failure is recorded and ends that producer."""
    if not failure_ends:
        return producer.read()
    try:
        return producer.read()
    except Exception as error:  # noqa: BLE001 - a dead source must not stop the others
        if not control.stopping:
            control.fail_source(getattr(producer, "source_name", producer.name), error)
        return END


def run_threaded(runners: Sequence[StageRunner], control: RunControl,
                 join_grace_s: float = 1.5) -> list[str]:
    """Start ``runners`` and wait until all have finished or the run is stopped.

    Waits in short slices so the main thread keeps handling signals.  After a stop, every stage
    still running is interrupted (woken from a blocking read) and the runners get ``join_grace_s``
    in total to finish; the names of those still alive are returned.
    """
    for runner in runners:
        runner.start()
    while not control.stopping:
        alive = [runner for runner in runners if runner.is_alive()]
        if not alive:
            break
        alive[-1].join(timeout=POLL_S)
    for runner in runners:
        if runner.is_alive():
            try:
                runner.stage.interrupt()
            except Exception as error:  # noqa: BLE001 - waking a stage must not mask the stop
                log.debug("interrupting %s: %s", runner.stage.name, error)
    deadline = time.monotonic() + join_grace_s
    for runner in runners:
        runner.join(timeout=max(0.0, deadline - time.monotonic()))
    stuck = [runner.stage.name for runner in runners if runner.is_alive()]
    if stuck:
        log.warning("stage(s) %s did not stop within %.1f s", ", ".join(stuck), join_grace_s)
    return stuck


def _close(stage: Stage, control: RunControl) -> None:
    try:
        stage.close()
    except Exception as error:  # noqa: BLE001 - a failing close is reported like any failure
        control.fail(stage.name, error)


class _Stopped(Exception):
    """Internal: a blocked put gave up because the run is stopping."""

"""Builds the pipeline from a ``Config`` and runs it, threaded or sequential.

::

    source ─► capture ─q─► preprocess ─lane─► inference ─q─► postprocess ─q─► render + sinks

Several sources: one capture and one preprocess thread per source, each source with its own
queue and lane (``stream/runtime/batching.py``), one inference stage that takes the newest frame of every
source as one round (batched per input size), then one postprocess and one render stage that keep
per-source state (trackers, sinks).  Queue policy is per source: a live source's edges up to
inference drop the oldest frame (its lane holds one frame, so inference always gets the newest),
a file's block.  A source that fails for good (a stream that cannot be reconnected, a file that
errors mid-way) is logged, counted in the stats and ended while the others go on; the run fails
only when every source failed.

``Pipeline.open()`` acquires everything that can fail on bad input — sources, engine (weights),
decoder, sinks — in that order, so a user error stops the run before any output file exists.
``run()`` drives the same Stage objects either in one thread per stage joined by bounded queues
(``threaded``) or one after another in the calling thread (``sequential``), then writes the stats
file.  The first exception in any stage stops everything (``StageError`` naming the stage);
``stop()`` (signals, a closed window) ends the run early with every output flushed and closed.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from posestream_common.errors import PoseStreamError, StageError
from stream.config import Config
from stream.outputs import build_sinks
from stream.events.wiring import attach_turned_look, events_report
from stream.queues import BoundedQueue, QueuePolicy
from stream.runtime import CaptureStage, build_stages, expected_input_size, load_engine, warm_up
from stream.runtime.batching import BatchRunner, Lanes
from stream.stage import Crew, RunControl, Stage, StageRunner, run_sequential, run_threaded
from stream.stats import StatsRecorder, format_summary, write_stats

log = logging.getLogger(__name__)

STOP_GRACE_S = 1.5      # after a stop, how long the stage threads get to finish and close


class Pipeline:
    """One run: ``open()``, ``run()`` (returns the stats report), ``stop()``; ``close()`` always.

    Usable as a context manager (``with Pipeline(config) as pipeline: pipeline.run()``).
    max_batch: most frames per inference call (default ``inference.max_batch``): 1 = unbatched
    (the sources served in turn), N ≥ the number of sources = a frame of every source at once;
    None = chosen at ``open()`` with several sources: batched when a timed batch costs less per
    frame than single frames.
    engine: a ready engine to run instead of the one ``inference.engine`` names (e.g. a wrapped
    one in benchmarks); it is warmed up at ``open()`` like a built one.
    """

    def __init__(self, config: Config, stop_event: threading.Event | None = None, *,
                 max_batch: int | None = None, engine: Any = None):
        self.config = config
        self._given_engine = engine
        self.max_batch = max_batch if max_batch is not None else config.inference.max_batch
        self.batch_timing: dict[str, float] | None = None
        self.control = RunControl(stop_event)
        self.sources: list[Any] = []
        self.engine: Any = None
        self.captures: list[CaptureStage] = []
        self.stages: list[Stage] = []
        self.queues: list[BoundedQueue] = []
        self.source_queues: dict[str, list[BoundedQueue]] = {}
        self.sinks: dict[str, Any] = {}
        self.report: dict[str, Any] | None = None
        self._progress: Any = None
        self.stats = StatsRecorder(on_done=self._advance_progress)

    # -- set-up ---------------------------------------------------------------------------------

    def open(self) -> "Pipeline":
        """Open sources, load the engine, build the stages, then the sinks (outputs last)."""
        try:
            self._open_sources()
            if self._given_engine is None:
                from stream.auto import resolve

                self.config = resolve(self.config)
                self.engine = load_engine(self.config)
            else:
                self.engine = self._given_engine
                warm_up(self.config, self.engine)
            if self.max_batch is None and len(self.sources) > 1:
                self._choose_batching()
            self.stages = build_stages(self.config, self.engine, self._open_sinks, max_batch=self.max_batch)
            for stage in self.stages:
                stage.open()
        except BaseException:
            self.close()
            raise
        return self

    def _open_sources(self) -> None:
        from stream.sources import open_source

        for name, settings in self.config.source_configs():
            self.sources.append(open_source(settings, name))
        run = self.config.run
        self.captures = [CaptureStage(source, run.max_frames, run.max_seconds) for source in self.sources]
        for source in self.sources:
            described = getattr(source, "label", None) or getattr(source, "path", None) or ""
            log.info("source %s: %s %s%s", source.name, type(source).__name__, described,
                     f", {source.frame_count} frames" if source.frame_count else "")

    def _open_sinks(self) -> dict[str, Any]:
        self.sinks = build_sinks(self.config, self.sources, self.stop, self.live_report)
        attach_turned_look(self.sinks, self.config, self.engine)
        return self.sinks

    def _choose_batching(self) -> None:
        """Batch the sources' frames only where that is faster per frame on this engine."""
        from stream.runtime.batching import time_batches

        height, width = expected_input_size(self.config, self.engine.preprocess)
        single_ms, batched_ms = time_batches(self.engine, len(self.sources), height, width)
        self.max_batch = len(self.sources) if batched_ms < single_ms else 1
        self.batch_timing = {"single_ms": round(single_ms, 2), "batched_ms": round(batched_ms, 2)}
        log.info("inference: %.1f ms per frame alone, %.1f ms in a batch of %d at %dx%d: %s",
                 single_ms, batched_ms, len(self.sources), width, height,
                 "batching the sources' frames" if self.max_batch > 1 else "one frame per forward")

    # -- running --------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the run to end now; outputs are still flushed and closed (safe from signal handlers)."""
        self.control.stop()

    def run(self) -> dict[str, Any]:
        """Run to the end of the stream (or a stop) and return the stats report.

        Raises ``StageError`` (or the stage's own user error) when a stage failed.
        """
        if not self.stages:
            self.open()
        self._start_progress()
        self.stats.start()
        try:
            if self.config.pipeline.mode == "sequential":
                run_sequential(self.captures, self.stages, self.control, self.stats,
                               source_failure_ends=True, max_batch=self.max_batch)
            else:
                run_threaded(self._runners(), self.control, STOP_GRACE_S)
        finally:
            self.stats.finish()
            self._close_progress()
            self.report = self._finish_report()
        self._raise_failure()
        return self.report

    def _runners(self) -> list[StageRunner]:
        """Per source: capture ─q─► the stages before inference ─► its lane; then inference
        (``engine.workers`` wide) on rounds from the lanes, and the stages after it in a line."""
        size = self.config.pipeline.queue_size
        split = next((position for position, stage in enumerate(self.stages) if stage.batched), 0)
        before, batch_stage, after = self.stages[:split], self.stages[split], self.stages[split + 1:]
        lanes = Lanes()
        runners: list[StageRunner] = []
        self.queues, self.source_queues = [], {}
        for capture in self.captures:
            name, policy = capture.source.name, self._policy_for(capture.source)
            queues = self.source_queues[name] = []
            producer, inbox = capture, None
            for stage in before:
                outbox = BoundedQueue(size, policy, name=f"{name}:{producer.name}->{stage.name}")
                queues.append(outbox)
                runners.append(StageRunner(producer, inbox, outbox, self.control, self.stats,
                                           source_failure_ends=producer is capture))
                producer, inbox = stage, outbox
            # A dropping lane holds one frame: inference always takes the newest.
            lane = lanes.add(name, size if policy is QueuePolicy.BLOCK else 1, policy)
            queues.append(lane.queue)
            runners.append(StageRunner(producer, inbox, lane, self.control, self.stats,
                                       source_failure_ends=producer is capture))
            for runner in runners[-len(before) - 1:]:
                runner.name = f"{runner.name}-{name}"
            self.queues.extend(queues)
        outboxes = [BoundedQueue(size, QueuePolicy.BLOCK, name=f"{stage.name}->{following.name}")
                    for stage, following in zip([batch_stage, *after], after)]
        self.queues.extend(outboxes)
        outboxes.append(None)                                  # the last stage has no outbox
        workers = getattr(self.engine, "workers", 1)
        crew = Crew(workers) if workers > 1 else None
        runners.extend(BatchRunner(batch_stage, lanes, outboxes[0], self.control, self.stats,
                                   max_items=self.max_batch, crew=crew, worker=worker)
                       for worker in range(workers))
        runners.extend(StageRunner(stage, inbox, outbox, self.control, self.stats)
                       for stage, inbox, outbox in zip(after, outboxes, outboxes[1:]))
        return runners

    def _policy_for(self, source: Any) -> QueuePolicy:
        """``pipeline.queue_policy``; ``auto`` = drop_oldest for a live source, else block."""
        chosen = self.config.pipeline.queue_policy
        if chosen != "auto":
            return QueuePolicy(chosen)
        return QueuePolicy.DROP_OLDEST if getattr(source, "is_live", False) else QueuePolicy.BLOCK

    def live_report(self) -> dict[str, Any]:
        """The stats report so far (any thread, e.g. the browser view's /stats.json)."""
        counts = {source.name: self._source_counts(source) for source in self.sources}
        per_source = len(self.sources) > 1 or bool(self.config.output.serve)
        report = self.stats.report(dropped=sum(count["dropped"] for count in counts.values()),
                                   reconnects=sum(count["reconnects"] for count in counts.values()),
                                   sources=counts if per_source else None)
        inference = next((stage for stage in self.stages if stage.batched), None)
        if inference is not None and inference.forwards:
            report["batches"] = {"forwards": inference.forwards,
                                 "mean_frames": round(inference.frames / inference.forwards, 3)}
        events = events_report(self.sinks)
        if events is not None:
            report["events"] = events
        return report

    def _source_counts(self, source: Any) -> dict[str, Any]:
        """One source's drops (its queues' and its reader's), reconnects, state and failure, if any."""
        queues = self.source_queues.get(source.name, [])
        failure = self.control.source_failures.get(source.name)
        state = "down" if failure is not None else getattr(getattr(source, "state", None), "value", "live")
        return {"dropped": sum(queue.dropped for queue in queues) + int(getattr(source, "dropped", 0) or 0),
                "reconnects": int(getattr(source, "reconnects", 0) or 0),
                "state": state,
                "error": None if failure is None else f"{type(failure).__name__}: {failure}"}

    def _finish_report(self) -> dict[str, Any]:
        report = self.live_report()
        dropped = report["dropped"]
        log.info("%s", format_summary(report))
        for name, section in report.get("sources", {}).items():
            log.info("source %s: %d frames, %.2f fps, dropped %d, latency p50 %.1f ms%s", name, section["frames"],
                     section["fps"], section["dropped"], section["latency_ms"]["p50"],
                     f", failed: {section['error']}" if section["error"] else "")
        if dropped:
            log.info("dropped %d frame(s) to keep up with the live source(s)", dropped)
        if self.config.output.stats:
            write_stats(self.config.output.stats, report)
            log.info("wrote stats to %s", self.config.output.stats)
        return report

    def _raise_failure(self) -> None:
        """Raise the run's failure: a stage's, else every source's (when none ended normally),
        else a sink's.  Sources that failed while others went on are only logged."""
        stage, error = self.control.failed_stage, self.control.error
        where = f"stage '{stage}'"
        failed_sources = self.control.source_failures
        if error is None and failed_sources and len(failed_sources) == len(self.sources):
            name, error = next(iter(failed_sources.items()))
            where = "stage 'capture'" if len(self.sources) == 1 else f"every source failed; source {name}"
        elif failed_sources:
            log.warning("%d of %d sources failed and ended early (%s); the others went on",
                        len(failed_sources), len(self.sources), ", ".join(failed_sources))
        if error is None:
            failures = {label: err for sink in _unique(self.sinks.values())
                        for label, err in getattr(sink, "failures", {}).items()}
            if failures:
                label, error = next(iter(failures.items()))
                raise StageError(f"stage 'render': sink {label} failed: {type(error).__name__}: {error}")
            return
        if isinstance(error, PoseStreamError) and not isinstance(error, StageError):
            raise type(error)(f"{where}: {error}") from error
        log.error("%s failed", where, exc_info=error)
        raise StageError(f"{where} failed: {type(error).__name__}: {error}") from error

    # -- progress and shutdown ------------------------------------------------------------------

    def _start_progress(self) -> None:
        if not self.config.run.progress or any(getattr(s, "is_live", False) for s in self.sources):
            return
        counts = [source.frame_count for source in self.sources]
        total = sum(counts) if all(counts) else None
        if total is not None and self.config.run.max_frames is not None:
            total = sum(min(count, self.config.run.max_frames) for count in counts)
        from tqdm import tqdm

        self._progress = tqdm(total=total, unit="frame", disable=None, dynamic_ncols=True)

    def _advance_progress(self, item: Any) -> None:
        if self._progress is not None:
            self._progress.update(1)

    def _close_progress(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None

    def close(self) -> None:
        """Close whatever is open (stages close themselves in the run loops; this covers the rest)."""
        for stage in [*self.captures, *self.stages]:
            try:
                stage.close()
            except Exception as error:  # noqa: BLE001 - best effort on the way out
                log.debug("closing %s: %s", stage.name, error)
        for source in self.sources:
            source.close()
        for sink in _unique(self.sinks.values()):
            try:
                sink.close()
            except Exception as error:  # noqa: BLE001
                log.debug("closing sink: %s", error)
        close_engine = getattr(self.engine, "close", None) if self._given_engine is None else None
        if close_engine is not None:        # e.g. int8's background quantization
            close_engine()

    def __enter__(self) -> "Pipeline":
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()


def run_pipeline(config: Config, stop_event: threading.Event | None = None) -> dict[str, Any]:
    """Open, run and close a pipeline; returns the stats report."""
    with Pipeline(config, stop_event) as pipeline:
        return pipeline.run()


def _unique(objects: Any) -> list[Any]:
    seen: dict[int, Any] = {}
    for obj in objects:
        seen.setdefault(id(obj), obj)
    return list(seen.values())

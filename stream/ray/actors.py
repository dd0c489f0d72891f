"""The camera actor of a Ray run: the local pipeline for one source, its engine the Ray pool.

A camera actor (:class:`CameraWorker`) runs the local :class:`~stream.pipeline.Pipeline` for its
one source — the same stages, queues and loops — with one change: the engine behind the local
``InferenceStage`` is a :class:`~stream.ray.inference.RemoteEngine`.  ``ray.in_flight`` threads
work that stage, so at most that many of the camera's frames are in the pool at once; when the
pool is slow the bounded queues in front of it fill up and a live source drops its oldest frames
(counted) while a file waits: the local back-pressure, unchanged.  The render stage draws (only
when the driver's sinks need images) and hands each finished frame to an :class:`Outbox` that the
driver empties with ``poll``.

A restarted camera actor starts fresh; the driver tells it where to carry on (:class:`Resume`).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from typing import Any, Iterator, Sequence

import numpy as np

from stream.config import Config
from stream.items import Posed
from stream.pipeline import Pipeline
from stream.ray.inference import WAIT_SLICE_S, RemoteEngine, configure_worker_logging
from stream.runtime import CaptureStage, build_stages
from stream.sinks.base import Sink
from stream.stats import StatsRecorder

log = logging.getLogger(__name__)

OUTBOX_FRAMES = 64      # finished frames a camera keeps for the driver before its pipeline waits


@dataclasses.dataclass(frozen=True)
class Resume:
    """Where a restarted camera carries on: after the last frame the driver received.

    after_index/after_time_s: that frame's index and time (-1 / 0.0: none yet).  gap_s: wall time
    since it arrived (a live stream's clock kept running).  frames_left/seconds_left: what is left
    of ``run.max_frames`` / ``run.max_seconds`` (None = no limit).
    """

    after_index: int = -1
    after_time_s: float = 0.0
    gap_s: float = 0.0
    frames_left: int | None = None
    seconds_left: float | None = None


class Resumed:
    """A source seen from a restarted camera: a file skips the frames already delivered; a live
    stream's frames are renumbered and re-timed to follow them.  Everything else is delegated."""

    def __init__(self, source: Any, resume: Resume):
        self.source = source
        self.resume = resume

    def __iter__(self) -> Iterator[Any]:
        resume = self.resume
        if not getattr(self.source, "is_live", False):
            return (frame for frame in self.source if frame.index > resume.after_index)
        index_shift = resume.after_index + 1
        time_shift = resume.after_time_s + resume.gap_s
        return (dataclasses.replace(frame, index=frame.index + index_shift, time=frame.time + time_shift)
                for frame in self.source)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.source, name)


class Outbox:
    """Finished frames waiting for the driver, with the stage timings recorded since the last
    ``take``.  Frames are slimmed to what the sinks read (no image, net input or maps).

    At most ``capacity`` frames wait: beyond that ``deliver`` blocks (until ``stop_event``), so a
    driver that falls behind slows the camera's pipeline, whose queues then drop or wait as usual.
    """

    def __init__(self, capacity: int = OUTBOX_FRAMES, stop_event: threading.Event | None = None):
        self.capacity = capacity
        self._stop = stop_event or threading.Event()
        self._ready = threading.Condition()
        self._results: list[tuple[Posed, np.ndarray | None, float, float]] = []
        self._samples: list[tuple[str, float]] = []
        self._images: dict[int, np.ndarray | None] = {}
        self._last_answer = 0.0
        self.captured = 0

    def record_stage(self, stage: str, seconds: float) -> None:
        with self._ready:
            self._samples.append((stage, seconds))
            if stage == "capture":
                self.captured += 1

    def keep_image(self, index: int, annotated: np.ndarray | None) -> None:
        with self._ready:
            self._images[index] = annotated

    def deliver(self, item: Posed) -> None:
        latency_s = max(0.0, time.monotonic() - item.capture_time)
        slim = dataclasses.replace(item, image=None, net_input=None, heatmaps=None, pafs=None)
        with self._ready:
            while len(self._results) >= self.capacity and not self._stop.is_set():
                self._ready.wait(WAIT_SLICE_S)
            annotated = self._images.pop(item.index, None)
            self._results.append((slim, annotated, latency_s, time.time()))
            self._ready.notify_all()

    def wake(self) -> None:
        with self._ready:
            self._ready.notify_all()

    def take(self, interval_s: float, done: threading.Event) -> tuple[list, list]:
        """The finished frames and samples so far.  Answers once a frame is ready and
        ``interval_s`` has passed since the previous answer (so a camera answers at most once per
        interval, each answer carrying every frame since), after ``interval_s`` with nothing, or
        as soon as ``done`` is set."""
        now = time.monotonic()
        earliest, deadline = self._last_answer + interval_s, now + interval_s
        with self._ready:
            while not done.is_set():
                now = time.monotonic()
                if now >= deadline or (self._results and now >= earliest):
                    break
                self._ready.wait(min(earliest if self._results else deadline, deadline) - now)
            results, self._results = self._results, []
            samples, self._samples = self._samples, []
            self._last_answer = time.monotonic()
            self._ready.notify_all()
        return results, samples


class OutboxSink(Sink):
    """The camera's only sink: keeps the annotated image (when the driver's sinks need it)."""

    name = "ray-outbox"

    def __init__(self, outbox: Outbox, send_images: bool):
        self.outbox = outbox
        self.send_images = send_images

    def write(self, item: Posed, annotated: np.ndarray) -> None:
        self.outbox.keep_image(item.index, annotated if self.send_images else None)

    def close(self) -> None:
        pass


class CameraStats(StatsRecorder):
    """The camera pipeline's stats recorder; also passes every sample and finished frame to the
    outbox, for the driver's recorders."""

    def __init__(self, outbox: Outbox):
        super().__init__()
        self.outbox = outbox

    def record_stage(self, stage: str, seconds: float) -> None:
        super().record_stage(stage, seconds)
        self.outbox.record_stage(stage, seconds)

    def record_done(self, item: Any) -> None:
        super().record_done(item)
        self.outbox.deliver(item)


class CameraPipeline(Pipeline):
    """The local pipeline for one already opened source, its engine being the Ray pool."""

    def __init__(self, config: Config, source: Any, engine: RemoteEngine, outbox: Outbox,
                 send_images: bool, resume: Resume | None, stop_event: threading.Event):
        super().__init__(config, stop_event)
        self.stats = CameraStats(outbox)
        self._source = source if resume is None else Resumed(source, resume)
        self._engine = engine
        self._outbox = outbox
        self._send_images = send_images
        self._resume = resume

    def open(self) -> "CameraPipeline":
        run, resume = self.config.run, self._resume
        frames_left = resume.frames_left if resume is not None else run.max_frames
        seconds_left = resume.seconds_left if resume is not None else run.max_seconds
        self.sources = [self._source]
        self.captures = [CaptureStage(self._source, frames_left, seconds_left)]
        self.engine = self._engine
        self.stages = build_stages(self.config, self._engine,
                                   {self._source.name: OutboxSink(self._outbox, self._send_images)},
                                   draw=self._send_images, governed=False)
        for stage in self.stages:
            stage.open()
        return self

    def counts(self) -> tuple[int, int]:
        """(dropped, reconnects) so far: the capture queue's drops plus the source's own."""
        source = self._source
        dropped = sum(queue.dropped for queue in self.queues) + int(getattr(source, "dropped", 0) or 0)
        return dropped, int(getattr(source, "reconnects", 0) or 0)


class CameraWorker:
    """One camera actor.  The driver calls ``open()`` (source info; user errors raise), then
    ``start(pool, preprocess, stride, resume)`` (failures come back from ``poll``), then ``poll(wait_s)`` until it reports ``ended``; ``stop()`` ends the run early.
    A restarted actor answers ``poll`` with state ``new`` and a new ``incarnation``."""

    def __init__(self, config_data: dict[str, Any], name: str, send_images: bool):
        self.config = Config.model_validate(config_data)
        configure_worker_logging(self.config.run.log_level)
        self.name = name
        self.settings = dict(self.config.source_configs())[name]
        self.send_images = send_images
        self.incarnation = uuid.uuid4().hex
        self._stopping = threading.Event()
        self.outbox = Outbox(stop_event=self._stopping)
        self.source: Any = None
        self.pipeline: CameraPipeline | None = None
        self.engine: RemoteEngine | None = None
        self.error: BaseException | None = None
        self._done = threading.Event()
        self._started = False

    def open(self) -> dict[str, Any]:
        if self.source is None:
            from stream.sources import open_source

            self.source = open_source(self.settings, self.name)
        return {"incarnation": self.incarnation, **describe_source(self.source)}

    def start(self, pool: Sequence[Any], preprocess: Any, stride: int, resume: Resume | None,
              offset: int = 0) -> None:
        """Build the camera's pipeline (stages opened) and run it in a thread.  Never raises: a
        failure is reported by ``poll``.  Returns once frames can flow, so the driver's clock
        starts, like a local run's, after set-up."""
        if self._started:
            return
        self._started = True
        try:
            self.open()
            self.engine = RemoteEngine(pool, preprocess, stride, self.config.ray.in_flight, self._stopping,
                                       offset, self.config.ray.restart_timeout_s)
            self.pipeline = CameraPipeline(self.config, self.source, self.engine, self.outbox,
                                           self.send_images, resume, self._stopping)
            self.pipeline.open()
        except BaseException as error:  # noqa: BLE001 - reported to the driver by poll
            self._finish(error)
            return
        threading.Thread(target=self._run, name=f"camera-{self.name}", daemon=True).start()

    def _run(self) -> None:
        error = None
        try:
            self.pipeline.run()
        except BaseException as failure:  # noqa: BLE001 - reported to the driver by poll
            error = failure
        self._finish(error)

    def _finish(self, error: BaseException | None) -> None:
        if error is not None and not self._stopping.is_set():
            log.debug("camera %s failed", self.name, exc_info=error)
            self.error = error
        for closable in (self.pipeline, self.source):
            try:
                if closable is not None:
                    closable.close()
            except Exception as failure:  # noqa: BLE001 - best effort on the way out
                log.debug("camera %s: closing: %s", self.name, failure)
        self._done.set()
        self.outbox.wake()

    def poll(self, wait_s: float) -> dict[str, Any]:
        """Finished frames since the last poll, stage samples, counters and state."""
        ended = self._done.is_set()      # before taking: then every frame is in this answer
        results, samples = self.outbox.take(wait_s, self._done) if self._started else ([], [])
        dropped, reconnects = self.pipeline.counts() if self.pipeline is not None else (0, 0)
        state = "new" if not self._started else ("ended" if ended else "running")
        return {"incarnation": self.incarnation, "state": state, "results": results, "samples": samples,
                "captured": self.outbox.captured, "dropped": dropped, "reconnects": reconnects,
                "inference_retries": self.engine.retries if self.engine is not None else 0,
                "error": self.error if state == "ended" else None}

    def stop(self) -> None:
        self._stopping.set()
        self.outbox.wake()


def describe_source(source: Any) -> dict[str, Any]:
    """What the driver needs to build a source's sinks (the source itself stays in the actor)."""
    path = getattr(source, "path", None)
    return {"kind": type(source).__name__, "path": str(path) if path is not None else None,
            "fps": source.fps, "frame_count": source.frame_count,
            "is_live": bool(getattr(source, "is_live", False)),
            "label": getattr(source, "label", None) or (str(path) if path is not None else None)}

"""The driver's bookkeeping in a Ray run: one :class:`CameraRecord` per camera actor, the stats
report, and turning remote failures back into the project's errors.

The report is the local one (``StatsRecorder.report``: frames, fps, dropped, reconnects, latency,
per-stage times, ``"sources"`` with several cameras, ``"batches"`` of the inference pool) plus
``"ray"``: the cluster address, the inference pool (actors, restarts, forward time) and per camera
its restarts, frames lost in flight and inference calls that had to go to another actor.

Failures follow the local rules: a camera whose source failed for good (or whose actor was lost)
ends, with its error in the stats, while the others go on; the run fails when every camera
failed, or when a camera failed for another reason (a bug).
"""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace
from typing import Any, Iterable, Mapping

from posestream_common.errors import PoseStreamError, SourceError, StageError
from stream.ray.actors import Resume
from stream.stats import StatsRecorder

log = logging.getLogger(__name__)

_COUNTERS = ("dropped", "reconnects", "inference_retries")


class CameraRecord:
    """What the driver knows about one camera: its actor, progress, counters and failure.

    Counters from a camera actor restart at zero with each incarnation; the record keeps the
    sum of the earlier ones.  ``lost`` counts a live camera's frames that were captured but not
    delivered when its actor died (a file camera re-reads them, so it loses none).
    """

    def __init__(self, name: str, handle: Any, position: int):
        self.name = name
        self.handle = handle
        self.position = position
        self.info: dict[str, Any] = {}
        self.incarnation: str | None = None
        self.frames = 0
        self.last_index = -1
        self.last_time_s = 0.0
        self.last_wall: float | None = None
        self.restarts = 0
        self.lost = 0
        self.done = False
        self.error: BaseException | None = None
        self.actor_lost = False                     # given up: its actor stopped answering
        self._earlier = dict.fromkeys(_COUNTERS, 0)
        self._current = dict.fromkeys(_COUNTERS, 0)
        self._captured = 0
        self._delivered_now = 0
        self._down_since: float | None = None

    @property
    def is_live(self) -> bool:
        return bool(self.info.get("is_live"))

    def total(self, counter: str) -> int:
        extra = self.lost if counter == "dropped" else 0
        return self._earlier[counter] + self._current[counter] + extra

    def delivered(self, item: Any) -> None:
        self.frames += 1
        self._delivered_now += 1
        self.last_index = int(item.index)
        self.last_time_s = float(item.time)
        self.last_wall = time.time()

    def counters(self, reply: Mapping[str, Any]) -> None:
        self._current = {counter: int(reply[counter]) for counter in _COUNTERS}
        self._captured = int(reply["captured"])

    def restarted(self, incarnation: str) -> None:
        """The actor answering is a new one: fold the old one's counters in."""
        if self.incarnation is not None:
            self.restarts += 1
            if self.is_live:
                self.lost += max(0, self._captured - self._delivered_now)
            for counter in _COUNTERS:
                self._earlier[counter] += self._current[counter]
            log.warning("ray: camera %s was restarted (%d restart(s)); it carries on after frame %d",
                        self.name, self.restarts, self.last_index)
        self.incarnation = incarnation
        self._current = dict.fromkeys(_COUNTERS, 0)
        self._captured = self._delivered_now = 0

    def resume(self, run: Any, elapsed_s: float) -> Resume:
        """Where the restarted camera carries on, and what is left of the run's limits."""
        frames_left = None
        if run.max_frames is not None:
            used = self.frames if self.is_live else self.last_index + 1
            frames_left = max(0, run.max_frames - used)
        seconds_left = None if run.max_seconds is None else max(1e-3, run.max_seconds - elapsed_s)
        gap_s = time.time() - self.last_wall if self.last_wall is not None else 0.0
        return Resume(self.last_index, self.last_time_s, gap_s, frames_left, seconds_left)

    def actor_down(self, error: BaseException, timeout_s: float) -> bool:
        """The actor did not answer; True when it has been gone too long (the camera then fails)."""
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
            log.warning("ray: camera %s: actor lost (%s); waiting for Ray to restart it",
                        self.name, type(error).__name__)
        if now - self._down_since <= timeout_s:
            return False
        self.done = self.actor_lost = True
        self.error = StageError(f"its actor has not answered for {timeout_s:g} s (ray.restart_timeout_s): {error}")
        return True

    @property
    def camera_failure(self) -> bool:
        """Failed in a way that ends only this camera (its source, or its actor)."""
        return self.error is not None and (self.actor_lost or isinstance(self.error, SourceError))

    def counts(self) -> dict[str, Any]:
        """This camera's entry for ``StatsRecorder.report(sources=…)``."""
        error = None if self.error is None else f"{type(self.error).__name__}: {self.error}"
        return {"dropped": self.total("dropped"), "reconnects": self.total("reconnects"), "error": error,
                "state": "down" if self.done or self.error is not None else "live"}

    def actor_up(self) -> None:
        self._down_since = None


def build_report(stats: StatsRecorder, records: Iterable[CameraRecord], ray_section: Mapping[str, Any],
                 batches: Mapping[str, Any] | None = None, per_source: bool = False) -> dict:
    """The local stats object over all cameras (``sources`` with several or ``per_source``), the
    pool's ``batches`` (forwards and mean frames per forward, as a local run reports its inference
    stage's), and the ``ray`` section."""
    records = list(records)
    counts = {record.name: record.counts() for record in records}
    report = stats.report(dropped=sum(count["dropped"] for count in counts.values()),
                          reconnects=sum(count["reconnects"] for count in counts.values()),
                          sources=counts if len(records) > 1 or per_source else None)
    if batches and batches.get("forwards"):
        report["batches"] = dict(batches)
    report["ray"] = {
        **ray_section,
        "cameras": {record.name: {"restarts": record.restarts, "lost_in_flight": record.lost,
                                  "inference_retries": record.total("inference_retries")}
                    for record in records},
    }
    return report


def raise_failures(records: Iterable[CameraRecord], sinks: Mapping[str, Any]) -> None:
    """Raise the run's failure, as a local run does: a camera's bug; else every camera's failure
    when none ended normally (a user error keeps its type); else a sink's.  Cameras that failed
    while others went on are only logged (their error is in the stats)."""
    records = list(records)
    failed = [record for record in records if record.error is not None]
    bug = next((record for record in failed if not record.camera_failure), None)
    if bug is None and failed and len(failed) < len(records):
        log.warning("%d of %d cameras failed and ended early (%s); the others went on",
                    len(failed), len(records), ", ".join(record.name for record in failed))
    elif failed:
        record = bug or failed[0]
        error = record.error
        if isinstance(error, PoseStreamError):
            raise type(error)(f"camera {record.name}: {error}") from error
        raise StageError(f"camera {record.name}: {type(error).__name__}: {error}") from error
    for sink in {id(sink): sink for sink in sinks.values()}.values():
        for label, error in getattr(sink, "failures", {}).items():
            raise StageError(f"stage 'render': sink {label} failed: {type(error).__name__}: {error}")


def user_error(error: BaseException) -> PoseStreamError | None:
    """The project error a remote call raised (Ray wraps it), else None."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, PoseStreamError) else None


def stand_in_source(name: str, info: Mapping[str, Any]) -> Any:
    """A driver-side stand-in for a camera's source, with what the sink builders read: image
    sources are their (unopened) classes, so image outputs go to a folder as in a local run."""
    from stream.sources import ImageFileSource, ImageFolderSource

    kinds = {"ImageFileSource": ImageFileSource, "ImageFolderSource": ImageFolderSource}
    if info.get("kind") in kinds and info.get("path"):
        source = kinds[info["kind"]](info["path"], name=name)
    else:
        source = SimpleNamespace(name=name, path=info.get("path"))
    source.fps = info.get("fps")
    source.frame_count = info.get("frame_count")
    source.is_live = bool(info.get("is_live"))
    return source

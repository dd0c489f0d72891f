"""Run statistics: per-stage timings, end-to-end latency and counts, turned into the stats JSON.

Stages only report raw numbers (through the loops in ``stream/stage.py``); this module keeps them
and computes the summary of the contract::

    {"frames", "wall_s", "fps", "dropped", "reconnects", "latency_ms": {"p50", "p95"},
     "stages": {name: {"mean_ms", "p50_ms", "p95_ms"}}}

Latency is the time from a frame's ``capture_time`` (time.monotonic() when it was read) to the
moment the last stage has finished with it.

With several sources (or when serving the live page) the report also holds ``"sources"``: per
source name ``{"frames", "wall_s", "fps", "fps_recent", "dropped", "reconnects", "latency_ms",
"latency_histogram", "people", "state", "up", "error"}``, where ``wall_s`` runs from the start to
that source's last finished frame (its own fps, even when it ended early), ``fps_recent`` is the
rate of its frames that finished in the last ``RECENT_WINDOW_S`` (0 when none did; see ``recent_rate``), ``people`` the number of
people in its last frame, ``state`` live / reconnecting / down (``up``: 1 when live, else 0),
``latency_histogram`` ``{"le_s": [bounds], "counts": [cumulative counts], "count", "sum_s"}``
and ``error`` why it failed, or null.  Each stage also reports its ``count`` of timed calls.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from array import array
from bisect import bisect_left
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

log = logging.getLogger(__name__)

STAGE_NAMES = ("capture", "preprocess", "inference", "postprocess", "render")
MAX_SAMPLES = 100_000   # per series; beyond it a uniform reservoir keeps percentiles honest
LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)  # histogram bounds
RECENT_FRAMES = 256     # fps_recent is measured over (at most) this many last frames ...
RECENT_WINDOW_S = 5.0   # ... that finished within this many seconds


class _Series:
    """Durations in seconds: exact count and mean, percentiles over (a reservoir of) samples."""

    def __init__(self, max_samples: int, seed: int):
        self.count = 0
        self.total_s = 0.0
        self.samples_s = array("d")
        self._max_samples = max_samples
        self._random = random.Random(seed)

    def add(self, seconds: float) -> None:
        self.count += 1
        self.total_s += seconds
        if len(self.samples_s) < self._max_samples:
            self.samples_s.append(seconds)
        else:
            slot = self._random.randrange(self.count)
            if slot < self._max_samples:
                self.samples_s[slot] = seconds

    def percentiles_ms(self, *quantiles: float) -> list[float]:
        if not self.samples_s:
            return [0.0 for _ in quantiles]
        values = np.percentile(np.frombuffer(self.samples_s, dtype=np.float64), quantiles)
        return [round(float(value) * 1000.0, 3) for value in values]

    def mean_ms(self) -> float:
        return round(1000.0 * self.total_s / self.count, 3) if self.count else 0.0


class _Histogram:
    """Counts per bucket (value <= bound; the last bucket is +Inf) and the sum, as Prometheus has."""

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.bucket_counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def add(self, value: float) -> None:
        self.bucket_counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def report(self) -> dict[str, Any]:
        cumulative, running = [], 0
        for count in self.bucket_counts[:-1]:
            running += count
            cumulative.append(running)
        return {"le_s": list(self.bounds), "counts": cumulative,
                "count": sum(self.bucket_counts), "sum_s": round(self.total, 6)}


class _SourceCounts:
    """One source's finished frames, latency, people in its last frame and when its recent frames
    finished."""

    def __init__(self, max_samples: int, seed: int):
        self.frames = 0
        self.last_done = 0.0
        self.people = 0
        self.latency = _Series(max_samples, seed=1000 + seed)
        self.latency_histogram = _Histogram(LATENCY_BUCKETS_S)
        self.recent: deque[tuple[float, float]] = deque(maxlen=RECENT_FRAMES)   # (done, captured)

    def add(self, done_at: float, latency_s: float | None, people: int | None) -> None:
        self.frames += 1
        self.last_done = done_at
        self.recent.append((done_at, done_at - latency_s if latency_s is not None else done_at))
        if people is not None:
            self.people = people
        if latency_s is not None:
            self.latency.add(latency_s)
            self.latency_histogram.add(latency_s)

    def recent_fps(self, now: float) -> float:
        return recent_rate(self.recent, now, RECENT_WINDOW_S)


def recent_rate(frames: Iterable[tuple[float, float]], now: float, window_s: float) -> float:
    """Frames per second of a source now: ``frames`` are (done, captured) times of its finished
    frames, oldest first.  Of those done in the last ``window_s``, the rate is (n - 1) over the
    span of their capture times, which a camera spaces evenly even when frames finish in bursts
    (batched inference finishes a round's frames together); all captured at once: n over the
    window.  0 with fewer than two.
    """
    recent = [captured for done, captured in frames if now - done <= window_s]
    if len(recent) < 2:
        return 0.0
    span = max(recent) - min(recent)
    return round((len(recent) - 1) / span if span > 0 else len(recent) / window_s, 3)


class StatsRecorder:
    """Collects what the stage loops report; thread-safe.

    ``on_done(item)`` (optional) is called for each finished item, e.g. to advance a progress bar.
    """

    def __init__(self, stage_names: Iterable[str] = STAGE_NAMES, max_samples: int = MAX_SAMPLES,
                 on_done: Callable[[Any], None] | None = None):
        self._lock = threading.Lock()
        self._max_samples = max_samples
        self._stages = {name: _Series(max_samples, seed) for seed, name in enumerate(stage_names)}
        self._latency = _Series(max_samples, seed=len(self._stages))
        self._sources: dict[str, _SourceCounts] = {}
        self._on_done = on_done
        self.frames = 0
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.first_done_at: float | None = None      # monotonic time the first item finished

    def start(self) -> None:
        self.started_at = time.monotonic()

    def finish(self) -> None:
        if self.finished_at is None:
            self.finished_at = time.monotonic()

    def record_stage(self, stage: str, seconds: float) -> None:
        with self._lock:
            series = self._stages.get(stage)
            if series is None:
                series = self._stages[stage] = _Series(self._max_samples, seed=len(self._stages))
            series.add(seconds)

    def record_done(self, item: Any) -> None:
        """One item left the last stage: count it and its latency from ``item.capture_time``."""
        now = time.monotonic()
        with self._lock:
            self.frames += 1
            if self.first_done_at is None:
                self.first_done_at = now
            capture_time = getattr(item, "capture_time", None)
            latency_s = None if capture_time is None else max(0.0, now - capture_time)
            if latency_s is not None:
                self._latency.add(latency_s)
            source = getattr(item, "source", None)
            if source is not None:
                counts = self._sources.get(source)
                if counts is None:
                    counts = self._sources[source] = _SourceCounts(self._max_samples, seed=len(self._sources))
                counts.add(now, latency_s, _people_count(item))
        if self._on_done is not None:
            self._on_done(item)

    def wall_s(self) -> float:
        if self.started_at is None:
            return 0.0
        end = self.finished_at if self.finished_at is not None else time.monotonic()
        return end - self.started_at

    def report(self, dropped: int = 0, reconnects: int = 0,
               sources: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
        """The contract's stats object.

        sources: source name → ``{"dropped", "reconnects", "error", "state"}`` (error: a message or
        None; state: "live" (the default), "reconnecting" or "down"); given, the report gets a ``"sources"``
        section with every named source.
        """
        with self._lock:
            wall_s = self.wall_s()
            latency_p50, latency_p95 = self._latency.percentiles_ms(50, 95)
            stages = {}
            for name, series in self._stages.items():
                p50, p95 = series.percentiles_ms(50, 95)
                stages[name] = {"mean_ms": series.mean_ms(), "p50_ms": p50, "p95_ms": p95,
                                "count": series.count}
            report: dict[str, Any] = {
                "frames": self.frames,
                "wall_s": round(wall_s, 4),
                "fps": round(self.frames / wall_s, 3) if wall_s > 0 else 0.0,
                "dropped": int(dropped),
                "reconnects": int(reconnects),
                "latency_ms": {"p50": latency_p50, "p95": latency_p95},
                "stages": stages,
            }
            if sources is not None:
                report["sources"] = {name: self._source_report(name, counts)
                                     for name, counts in sources.items()}
            return report

    def _source_report(self, name: str, counts: Mapping[str, Any]) -> dict[str, Any]:
        """One source's section (lock held)."""
        done = self._sources.get(name) or _SourceCounts(1, seed=0)
        frames = done.frames
        wall_s = max(0.0, done.last_done - self.started_at) if frames and self.started_at is not None else 0.0
        latency_p50, latency_p95 = done.latency.percentiles_ms(50, 95)
        state = counts.get("state", "live")
        return {
            "frames": frames,
            "wall_s": round(wall_s, 4),
            "fps": round(frames / wall_s, 3) if wall_s > 0 else 0.0,
            "fps_recent": done.recent_fps(time.monotonic()),
            "dropped": int(counts.get("dropped", 0)),
            "reconnects": int(counts.get("reconnects", 0)),
            "latency_ms": {"p50": latency_p50, "p95": latency_p95},
            "latency_histogram": done.latency_histogram.report(),
            "people": done.people,
            "state": state,
            "up": int(state == "live"),
            "error": counts.get("error"),
        }


def _people_count(item: Any) -> int | None:
    """How many people a finished item holds (None for items without ``people``)."""
    people = getattr(item, "people", None)
    return None if people is None else len(people)


def format_summary(report: dict[str, Any]) -> str:
    """One readable line: frames, fps and where the time goes."""
    stage_part = ", ".join(f"{name} {values['mean_ms']:.1f}" for name, values in report["stages"].items())
    return (f"{report['frames']} frames in {report['wall_s']:.2f} s ({report['fps']:.2f} fps), "
            f"dropped {report['dropped']}, latency p50 {report['latency_ms']['p50']:.1f} ms; "
            f"mean ms per stage: {stage_part}")


def write_stats(path: str | os.PathLike, report: dict[str, Any]) -> None:
    """Write ``report`` as JSON atomically (a temporary file renamed into place)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(temporary, target)

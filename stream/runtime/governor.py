"""Auto's crops plan kept within the target fps by measurement, not by estimate.

``stream.auto.pixel_budget`` sizes the crops plan from the engine's measured cost per net pixel;
what a canvas costs besides the engine (filling it, decoding its people, merging them) is not in
that figure and depends on the machine and the scene (on the 720p street clip, 2-core AMX Xeon:
about 9-11 core-ms a canvas, a third of the canvas's engine time, so 3 canvases ran 13 fps
against an estimate of 17).  The ``CanvasGovernor`` watches what frames really cost this process
(CPU time of every thread, per frame, over a window of frames) and moves the canvases a frame
may use by one at a time: fewer while a frame costs more than the cores afford at the target
fps, one more when the window's figure says the next canvas fits.

``next_canvases`` is the rule, a pure function; the class keeps the window.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

WINDOW_FRAMES = 24       # frames (all sources) a measurement spans
ACTIVE_S = 2.0           # a source with no frame for this long no longer shares the budget
GROW_MARGIN = 0.95       # one more canvas only when the frame's cost with it is this share of the budget
HOLD_WINDOWS = 8         # windows without growing after the first step down, doubled at each
MAX_HOLD_WINDOWS = 256   # later one (no see-saw; about 7 min at 15 fps)


def next_canvases(limit: int, cpu_ms: float, used: float, affordable_ms: float,
                  low: int, high: int) -> int:
    """The canvases a frame may use next: ``limit`` one lower (not below ``low``) when a frame
    cost ``cpu_ms`` core-ms, more than ``affordable_ms``; one higher (not above ``high``) when
    frames used about all ``limit`` canvases (``used`` on average) and one more, costing what
    each used canvas and the overview cost on average, keeps a frame within ``GROW_MARGIN`` of
    the budget; else ``limit``."""
    if cpu_ms > affordable_ms:
        return max(low, limit - 1)
    if limit < high and used >= limit - 0.5 and \
            cpu_ms * (used + 2.0) / (used + 1.0) <= GROW_MARGIN * affordable_ms:
        return limit + 1
    return limit


class CanvasGovernor:
    """The canvases auto's crops plan may use a frame, from the process's CPU time a frame.

    target_fps: ``run.target_fps`` per source; cores: the cores the pipeline may use;
    low/high: the canvases a frame uses at least/most.  ``limit(planned)`` starts at the plan's
    own figure; ``observe(source, canvases)`` is called once per frame prepared."""

    def __init__(self, target_fps: float, cores: int, low: int, high: int,
                 window: int = WINDOW_FRAMES, cpu_clock: Callable[[], float] = time.process_time,
                 clock: Callable[[], float] = time.monotonic):
        self.target_fps, self.cores, self.low, self.high = float(target_fps), int(cores), int(low), int(high)
        self.window = int(window)
        self._cpu_clock, self._clock = cpu_clock, clock
        self._lock = threading.Lock()
        self._limit: int | None = None
        self._seen: dict[str, float] = {}        # source -> when its last frame came
        self._started: float | None = None       # CPU clock at the window's start
        self._frames = 0
        self._canvases = 0
        self._skip = 1                           # windows to discard (start-up; after a change)
        self._hold = 0                           # windows left without growing
        self._next_hold = HOLD_WINDOWS

    def limit(self, planned: int) -> int:
        with self._lock:
            if self._limit is None:
                self._limit = int(min(max(planned, self.low), self.high))
            return self._limit

    def observe(self, source: str, canvases: int) -> None:
        now = self._clock()
        with self._lock:
            self._seen[source] = now
            if self._started is None:
                self._started = self._cpu_clock()
                return
            self._frames += 1
            self._canvases += int(canvases)
            if self._frames < self.window:
                return
            cpu_now = self._cpu_clock()
            cpu_ms = (cpu_now - self._started) * 1000.0 / self._frames
            used = self._canvases / self._frames
            self._started, self._frames, self._canvases = cpu_now, 0, 0
            if self._skip or self._limit is None:
                self._skip = max(0, self._skip - 1)
                return
            active = sum(1 for seen in self._seen.values() if now - seen <= ACTIVE_S)
            affordable = self.cores * 1000.0 / (self.target_fps * max(1, active))
            proposed = next_canvases(self._limit, cpu_ms, used, affordable, self.low, self.high)
            if proposed > self._limit and self._hold:
                self._hold -= 1
                return
            if proposed != self._limit:
                log.log(logging.INFO if proposed < self._limit else logging.DEBUG,
                        "crops: %d canvases a frame (a frame cost %.0f core-ms against %.0f that "
                        "%g fps allows on %d cores)", proposed, cpu_ms, affordable,
                        self.target_fps, self.cores)
                if proposed < self._limit:
                    self._hold, self._next_hold = self._next_hold, min(MAX_HOLD_WINDOWS, 2 * self._next_hold)
                self._limit, self._skip = proposed, 1
            elif self._hold:
                self._hold -= 1

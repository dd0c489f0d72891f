"""One plan of ``benchmarks.recall`` in a fresh process, so no engine, thread pool or allocator
state of one plan speeds or slows the next::

    python -m benchmarks.recall_worker CASE.json OUT.json

CASE: ``source`` (file or URL), ``values`` (dotted config key -> value: backbone, weights, frames),
``overrides`` (the plan's ``KEY=VALUE`` strings, applied last as ``--set`` would), ``json`` (where
the JSON lines go) and ``fingerprints`` (true for live sources: keep a small grey thumbnail of
every frame the pipeline processed, to find it again among the recorded frames).

The project's own ``stream.pipeline.Pipeline`` runs it, with tracking on and skeletons drawn (no
window, no video).  Opening (engine load, warm-up) is not timed.  The first ``SETTLE_FRAMES``
frames are not timed either: they pay one-time costs (the pipeline warms the engine up for a
640x480 frame, so OpenVINO compiles the model again for a larger clip's input on its first frame).
OUT: the stats report plus ``steady``: frames, seconds and this process's CPU seconds from the
``SETTLE_FRAMES``-th frame written to the last (fewer settling frames on short runs) and, for
live sources, ``fingerprints`` (frame index -> thumbnail, hex).
"""

from __future__ import annotations

import json
import logging
import resource
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

THUMBNAIL = (64, 36)            # width, height of a frame's fingerprint
SETTLE_FRAMES = 5


def thumbnail(image: np.ndarray) -> np.ndarray:
    """A frame's fingerprint: grey, area-resized to ``THUMBNAIL``, uint8."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    return cv2.resize(grey, THUMBNAIL, interpolation=cv2.INTER_AREA)


class MeasuringSink:
    """A sink that notes when each frame was written (monotonic time, process CPU time) and,
    with ``fingerprints``, keeps each frame's thumbnail by frame index."""

    name = "measuring"

    def __init__(self, fingerprints: bool) -> None:
        self.fingerprints = fingerprints
        self.thumbnails: dict[int, str] = {}
        self.marks: list[tuple[float, float]] = []

    def open(self) -> "MeasuringSink":
        return self

    def write(self, item: Any, annotated: np.ndarray) -> None:
        self.marks.append((time.monotonic(), cpu_seconds()))
        if self.fingerprints:
            self.thumbnails[int(item.index)] = thumbnail(item.image).tobytes().hex()

    def close(self) -> None:
        pass

    def steady(self) -> dict:
        """Frames, wall and CPU seconds after the settling frames (None with under 2 frames)."""
        if len(self.marks) < 2:
            return {"frames": 0, "wall_s": None, "cpu_s": None, "settle_frames": 0}
        first = min(SETTLE_FRAMES, len(self.marks) // 2)
        (t0, c0), (t1, c1) = self.marks[first], self.marks[-1]
        return {"frames": len(self.marks) - 1 - first, "wall_s": round(t1 - t0, 4),
                "cpu_s": round(c1 - c0, 4), "settle_frames": first + 1}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_case(case: dict) -> dict:
    from stream.config import load_config
    from stream.pipeline import Pipeline

    values = {"source.uri": case["source"], "output.json": case["json"], "output.display": False,
              "run.progress": False, "run.log_level": "WARNING", "tracking.enabled": True,
              "render.show": "skeleton", **case.get("values", {})}
    config = load_config(None, overrides=case.get("overrides", ()), values=values)
    sink = MeasuringSink(bool(case.get("fingerprints")))
    with Pipeline(config) as pipeline:
        for fan_out in pipeline.sinks.values():
            fan_out.sinks.append(sink)
        started_cpu = cpu_seconds()
        report = pipeline.run()
        report["cpu_s"] = round(cpu_seconds() - started_cpu, 3)
    report["steady"] = sink.steady()
    report["input_height"] = config.model.input_height
    report["backbone"] = config.model.backbone
    if sink.fingerprints:
        report["fingerprints"] = sink.thumbnails
    return report


def main(argv: list[str]) -> int:
    case_path, out_path = Path(argv[0]), Path(argv[1])
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from posestream_common.errors import PoseStreamError, one_line

    try:
        result = run_case(json.loads(case_path.read_text()))
    except PoseStreamError as error:
        print(one_line(error), file=sys.stderr)
        return 2
    out_path.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

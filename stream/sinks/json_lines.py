"""JSON lines output: one object per frame, written and flushed as soon as the frame is done.

Each line is ``{"frame": int, "time": float, "people": [{"person_id": int, "score": float,
"pose_keypoints_2d": [x0, y0, c0, ... x17, y17, c17]}]}`` in original-frame pixels, CMU-18 order,
with 0,0,0 for a missing keypoint and person_id -1 where tracking is off; ``score`` is the
decoder's confidence in the whole person (``Posed.person_scores``); image sources add ``"file"``,
and several sources add ``"source"`` (``include_source=True``).
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import IO

import numpy as np

from stages.skeleton import NUM_KEYPOINTS
from stream.items import Posed
from stream.sinks.base import Sink

log = logging.getLogger(__name__)

XY_DECIMALS = 2                 # coordinates: 1/100 px is far below any pose error
SCORE_DECIMALS = 4
TIME_DECIMALS = 6


def pose_record(item: Posed, include_source: bool = False) -> dict:
    """The contract's JSON object for one frame."""
    people = np.asarray(item.people, dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 3)
    ids = tuple(item.person_ids)
    scores = tuple(item.person_scores)
    record = {
        "frame": int(item.index),
        "time": round(float(item.time), TIME_DECIMALS),
        "people": [
            {"person_id": int(ids[i]) if i < len(ids) else -1,
             "score": person_score(scores[i] if i < len(scores) else 0.0),
             "pose_keypoints_2d": keypoints_flat(person)}
            for i, person in enumerate(people)
        ],
    }
    if item.file is not None:
        record["file"] = item.file
    if include_source:
        record["source"] = item.source
    return record


def person_score(score: float) -> float:
    """A person's score for the JSON: rounded, 0.0 where unknown or not finite."""
    score = float(score)
    return round(score, SCORE_DECIMALS) if math.isfinite(score) else 0.0


def keypoints_flat(person: np.ndarray) -> list[float]:
    """[18,3] keypoints → 54 floats; a keypoint with score ≤ 0 or a non-finite value → 0,0,0."""
    flat: list[float] = []
    for x, y, score in np.asarray(person, dtype=np.float64).tolist():     # Python floats: faster
        if score > 0 and math.isfinite(x) and math.isfinite(y) and math.isfinite(score):
            flat += [round(float(x), XY_DECIMALS), round(float(y), XY_DECIMALS),
                     round(float(score), SCORE_DECIMALS)]
        else:
            flat += [0.0, 0.0, 0.0]
    return flat


class JsonLinesSink(Sink):
    """Writes ``pose_record`` lines to ``path`` (created with its folder at the first frame)."""

    def __init__(self, path: str | os.PathLike, include_source: bool = False):
        self.path = Path(path)
        self.include_source = include_source
        self.name = f"json:{self.path}"
        self.lines_written = 0
        self._file: IO[str] | None = None
        self._closed = False

    def write(self, item: Posed, annotated: np.ndarray | None = None) -> None:
        if self._closed:
            raise RuntimeError(f"{self.name} is closed")
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", encoding="utf-8")
        self._file.write(json.dumps(pose_record(item, self.include_source)) + "\n")
        self._file.flush()
        self.lines_written += 1

    def close(self) -> None:
        self._closed = True
        if self._file is not None:
            self._file.close()
            self._file = None
            log.info("wrote %d JSON lines to %s", self.lines_written, self.path)

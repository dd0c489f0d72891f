"""The people of each source's latest frames, from postprocess back to preprocess.

The crops plan (``stages.plan``) looks where people were: postprocess ``put``s each frame's
people, preprocess ``get``s the latest for the next frame it prepares.  Thread-safe, latest only
(a frame never waits for the previous one's people: with frames in flight the crops come from a
frame or two back, which the crops' margins allow for).  People missed for a frame or two are
kept (``stages.plan_merge.remember``), so one miss does not lose a person's crop.
"""

from __future__ import annotations

import threading

import numpy as np

from stages.plan_merge import remember

REMEMBER_FRAMES = 3


class PeopleFeedback:
    """Per source: the people to look for (frame pixels [P,18,3]) and the frame they are from."""

    def __init__(self, remember_frames: int = REMEMBER_FRAMES):
        self.remember_frames = remember_frames
        self._lock = threading.Lock()
        self._people: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}

    def put(self, source: str, people: np.ndarray, index: int = 0) -> None:
        """The people of the source's frame ``index``."""
        with self._lock:
            previous = self._people.get(source)
        if previous is None:
            previous = (np.zeros((0, 18, 3), np.float32), np.zeros(0, int), index)
        merged = remember(previous[0], previous[1], people, self.remember_frames)
        with self._lock:
            self._people[source] = (*merged, index)

    def get(self, source: str) -> tuple[np.ndarray, int] | None:
        """(people, the index of the frame they were seen in), or None before any."""
        with self._lock:
            found = self._people.get(source)
        return None if found is None else (found[0], found[2])

    def forget(self, source: str) -> None:
        with self._lock:
            self._people.pop(source, None)

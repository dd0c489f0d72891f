"""Turned looks: finding people lying on the floor, whom networks trained on upright people miss.

When a source with a ``person_down`` rule has shown fewer people for ``MISSING_S`` than it
steadily showed (for ``STEADY_S``) within the last ``MEMORY_S`` (someone may have gone down),
``TurnedLook.update`` runs the network on the frame turned 90° each way (at most once per
``LOOK_EVERY_S`` of stream time); in a turned frame a lying person stands upright.  A person
missed for a frame or two, or a stray extra one, starts no look.
The people found there are mapped back to the frame, and those seen whole (a score of at least
``rules.MIN_SCORE``) whose torso lies within ``rules.DOWN_ANGLE_DEG`` of horizontal are handed to
the person_down rule, tracked by a tracker of their own; their ids start at ``TURNED_IDS`` so
they never clash with the main tracker's.  Nothing runs while everyone seen lately is found.

``turn_back(people, rotation, height, width)`` (pure) maps keypoints of a turned frame back.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import cv2
import numpy as np

from stream.events import rules as geo

LOOK_EVERY_S = 0.3        # at most one turned look per source this often (stream time)
MISSING_S = 0.3           # fewer people than expected for this long starts looks
STEADY_S = 1.0            # a number of people seen for this long is expected ...
MEMORY_S = 10.0           # ... for this long
TURNED_IDS = 100000       # ids of people found in turned looks start here
ROTATIONS = (cv2.ROTATE_90_COUNTERCLOCKWISE, cv2.ROTATE_90_CLOCKWISE)


@dataclass
class _SourceState:
    first: float
    seen: deque = field(default_factory=deque)      # (time, found upright, present) within STEADY_S
    steady: deque = field(default_factory=deque)    # (time, people held through STEADY_S) within MEMORY_S
    last_look: float = -1e9
    lying: int = 0                                  # people found lying at the last look
    tracker: Any = None


def turn_back(people: np.ndarray, rotation: int, height: int, width: int) -> np.ndarray:
    """Keypoints [P,18,3] found in the frame turned by ``rotation`` (a cv2 ROTATE_90_*), in the
    pixels of the original ``height`` x ``width`` frame; missing keypoints stay (0, 0, 0)."""
    back = np.array(people, dtype=np.float32, copy=True).reshape(-1, 18, 3)
    u, v = back[..., 0].copy(), back[..., 1].copy()
    if rotation == cv2.ROTATE_90_CLOCKWISE:          # (x, y) was turned to (H-1-y, x)
        back[..., 0], back[..., 1] = v, height - 1 - u
    else:                                            # (x, y) was turned to (y, W-1-x)
        back[..., 0], back[..., 1] = width - 1 - v, u
    back[back[..., 2] <= 0] = 0.0
    return back


class TurnedLook:
    """Per source: ``update(source, image, time_s, found)`` → [(id, keypoints)] of the people
    found lying in a turned look this frame ([] when no look ran).

    find_people(image) -> (people [P,18,3] in that image's pixels, scores [P]): the network.
    make_tracker() -> a ``stages.tracking.Tracker`` for the people found lying.
    """

    def __init__(self, find_people: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
                 make_tracker: Callable[[], Any]):
        self.find_people = find_people
        self.make_tracker = make_tracker
        self.looks = 0
        self._sources: dict[str, _SourceState] = {}

    def update(self, source: str, image: np.ndarray, time_s: float, found: int) -> list[tuple[int, np.ndarray]]:
        """found: the people the rules count in this frame (as the network sees it upright)."""
        state = self._sources.get(source)
        if state is None:
            state = self._sources[source] = _SourceState(first=time_s)
        present = found + state.lying                 # those found lying at the last look are still there
        state.seen.append((time_s, found, present))
        while time_s - state.seen[0][0] > STEADY_S + 1e-9:
            state.seen.popleft()
        while state.steady and time_s - state.steady[0][0] > MEMORY_S:
            state.steady.popleft()
        expected = max((count for _, count in state.steady), default=0)
        if time_s - state.first >= STEADY_S - 1e-9:    # the number held through the last STEADY_S
            state.steady.append((time_s, min(count for _, _, count in state.seen)))
        lately = max(count for t, count, _ in state.seen if time_s - t <= MISSING_S + 1e-9)
        if lately >= expected:
            state.lying = 0                           # everyone expected is seen upright
            return []
        if time_s - state.last_look < LOOK_EVERY_S - 1e-9:
            return []
        state.last_look = time_s
        self.looks += 1
        lying = self.look(image)
        if state.tracker is None:
            state.tracker = self.make_tracker()
        ids = state.tracker.update(lying, time_s)
        result = [(TURNED_IDS + int(person_id), keypoints) for person_id, keypoints in zip(ids, lying)
                  if person_id >= 0]
        state.lying = len(result)
        return result

    def look(self, image: np.ndarray) -> np.ndarray:
        """The people lying in ``image`` [P,18,3] (frame pixels), found in it turned both ways."""
        height, width = image.shape[:2]
        found = []
        for rotation in ROTATIONS:
            people, scores = self.find_people(cv2.rotate(image, rotation))
            for keypoints, score in zip(turn_back(people, rotation, height, width), scores):
                if score >= geo.MIN_SCORE and geo.is_down(keypoints):
                    found.append(keypoints)
        return np.array(found, np.float32).reshape(-1, 18, 3)


def network_people(engine: Any, input_height: int | None, scale: float | None,
                   decoder_params: dict) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """image → (people in its pixels, scores) through ``engine``, as the pipeline decodes."""
    from stages.postprocess import decode_people, to_frame
    from stages.preprocess import prepare

    def find(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        net_input, net_scale, pad = prepare(image, engine.preprocess, input_height, scale)
        heatmaps, pafs = engine(net_input[np.newaxis])
        people, scores = decode_people(heatmaps[0], pafs[0], stride=engine.stride, **decoder_params)
        return np.asarray(to_frame(people, net_scale, pad), np.float32), np.asarray(scores)

    return find

"""Turned looks: finding people lying on the floor, whom networks trained on upright people miss.

When a source with a ``person_down`` rule shows fewer people than it did lately (someone may
have gone down), ``TurnedLook.update`` runs the network on the frame turned 90° each way (at
most once per ``LOOK_EVERY_S`` of stream time); in a turned frame a lying person stands upright.
The people found there are mapped back to the frame, and those seen whole (a score of at least
``rules.MIN_SCORE``) whose torso lies within ``rules.DOWN_ANGLE_DEG`` of horizontal are handed to
the person_down rule, tracked by a tracker of their own; their ids start at ``TURNED_IDS`` so
they never clash with the main tracker's.  Nothing runs while everyone seen lately is found.

``turn_back(people, rotation, height, width)`` (pure) maps keypoints of a turned frame back.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

import cv2
import numpy as np

from stream.events import rules as geo

LOOK_EVERY_S = 0.3        # at most one turned look per source this often (stream time)
MEMORY_S = 10.0           # people found within this long are expected still
TURNED_IDS = 100000       # ids of people found in turned looks start here
ROTATIONS = (cv2.ROTATE_90_COUNTERCLOCKWISE, cv2.ROTATE_90_CLOCKWISE)


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
        self._seen: dict[str, deque] = {}
        self._last_look: dict[str, float] = {}
        self._trackers: dict[str, Any] = {}

    def update(self, source: str, image: np.ndarray, time_s: float, found: int) -> list[tuple[int, np.ndarray]]:
        seen = self._seen.setdefault(source, deque())
        while seen and time_s - seen[0][0] > MEMORY_S:
            seen.popleft()
        expected = max((count for _, count in seen), default=0)
        seen.append((time_s, found))
        if found >= expected or time_s - self._last_look.get(source, -1e9) < LOOK_EVERY_S - 1e-9:
            return []
        self._last_look[source] = time_s
        self.looks += 1
        lying = self.look(image)
        tracker = self._trackers.get(source)
        if tracker is None:
            tracker = self._trackers[source] = self.make_tracker()
        ids = tracker.update(lying, time_s)
        result = [(TURNED_IDS + int(person_id), keypoints) for person_id, keypoints in zip(ids, lying)
                  if person_id >= 0]
        seen[-1] = (time_s, found + len(result))         # those lying are still expected
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

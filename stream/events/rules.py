"""Pure geometry and pose tests behind the event rules (numpy, no state, no I/O).

A person is ``keypoints`` float [18, 3] (x, y, score) in frame pixels, CMU-18 order; a keypoint
with score <= 0 is missing.  Image y grows downwards.

The thresholds users see (README, section Events):

- ``MIN_SCORE``: people whose decoder score (the JSON ``"score"``) is below it trigger no rule —
  fragments of a few keypoints score below it, a well-seen person well above.
- ``DOWN_ANGLE_DEG``: a person is down when their torso (neck → mid-hip) is within this many
  degrees of horizontal, or when their hips are within ``HIPS_AT_ANKLES`` torso lengths of their
  ankles' height (lying towards the camera, where the torso looks short and upright).
- hands up: both wrists above the nose (above the neck when the nose is missing).
- ``LINE_MARGIN``: a ground point closer to a line than this fraction of the frame height is on
  neither side of it, so jitter on the line counts no crossing.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

MIN_SCORE = 0.2
DOWN_ANGLE_DEG = 45.0
HIPS_AT_ANKLES = 0.25
LINE_MARGIN = 0.02

NOSE, NECK, R_WRIST, L_WRIST, R_HIP, R_ANKLE, L_HIP, L_ANKLE = 0, 1, 4, 7, 8, 10, 11, 13


def mean_point(keypoints: np.ndarray, parts: Sequence[int]) -> np.ndarray | None:
    """The mean (x, y) of the present keypoints among ``parts``; None when none is present."""
    found = [keypoints[part, :2] for part in parts if keypoints[part, 2] > 0]
    return np.mean(found, axis=0) if found else None


def ground_point(keypoints: np.ndarray) -> np.ndarray | None:
    """Where the person stands: between the ankles, else between the hips (the ones found)."""
    point = mean_point(keypoints, (R_ANKLE, L_ANKLE))
    return point if point is not None else mean_point(keypoints, (R_HIP, L_HIP))


def person_box(keypoints: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) around the present keypoints; zeros when there are none."""
    found = keypoints[keypoints[:, 2] > 0, :2]
    if not len(found):
        return (0.0, 0.0, 0.0, 0.0)
    x0, y0 = found.min(axis=0)
    x1, y1 = found.max(axis=0)
    return (float(x0), float(y0), float(x1), float(y1))


def torso_angle_deg(keypoints: np.ndarray) -> float | None:
    """Angle between the torso (neck → mid-hip) and the horizontal, 0 (lying) to 90 (upright);
    None without a neck or a hip."""
    hip = mean_point(keypoints, (R_HIP, L_HIP))
    if keypoints[NECK, 2] <= 0 or hip is None:
        return None
    dx, dy = hip - keypoints[NECK, :2]
    if dx == 0 and dy == 0:
        return None
    return math.degrees(math.atan2(abs(dy), abs(dx)))


def is_down(keypoints: np.ndarray) -> bool:
    """Torso within ``DOWN_ANGLE_DEG`` of horizontal, or hips at the ankles' height."""
    angle = torso_angle_deg(keypoints)
    if angle is None:
        return False
    if angle <= DOWN_ANGLE_DEG:
        return True
    hip = mean_point(keypoints, (R_HIP, L_HIP))
    ankle = mean_point(keypoints, (R_ANKLE, L_ANKLE))
    if ankle is None:
        return False
    torso = float(np.hypot(*(hip - keypoints[NECK, :2])))
    return abs(float(ankle[1] - hip[1])) <= HIPS_AT_ANKLES * torso


def hands_up(keypoints: np.ndarray) -> bool:
    """Both wrists above the nose (the neck when no nose is found)."""
    if keypoints[R_WRIST, 2] <= 0 or keypoints[L_WRIST, 2] <= 0:
        return False
    head = NOSE if keypoints[NOSE, 2] > 0 else NECK
    if keypoints[head, 2] <= 0:
        return False
    top = keypoints[head, 1]
    return bool(keypoints[R_WRIST, 1] < top and keypoints[L_WRIST, 1] < top)


def to_pixels(points: Sequence[Sequence[float]], width: int, height: int) -> np.ndarray:
    """A rule's points in frame pixels: every value within 0–1 means fractions of the frame,
    anything else pixels.  float [N, 2]."""
    array = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if np.all((array >= 0) & (array <= 1)):
        array = array * (width, height)
    return array


def inside_polygon(point: Sequence[float], polygon: np.ndarray) -> bool:
    """Whether ``point`` lies inside ``polygon`` [N, 2] (even-odd rule; edges of any direction)."""
    x, y = float(point[0]), float(point[1])
    inside = False
    count = len(polygon)
    for index in range(count):
        (x0, y0), (x1, y1) = polygon[index], polygon[(index + 1) % count]
        if (y0 > y) != (y1 > y) and x < x0 + (y - y0) * (x1 - x0) / (y1 - y0):
            inside = not inside
    return inside


def signed_distance(point: Sequence[float], a: np.ndarray, b: np.ndarray) -> float:
    """Distance of ``point`` from the line through a and b, positive on one side, negative on
    the other (a ≠ b)."""
    direction = b - a
    offset = np.asarray(point, dtype=np.float64) - a
    return float(direction[0] * offset[1] - direction[1] * offset[0]) / float(np.hypot(*direction))


def line_side(point: Sequence[float], a: np.ndarray, b: np.ndarray, margin: float) -> int:
    """+1 or -1 for the side of the line ``point`` is on, 0 within ``margin`` of it or beyond the
    segment's ends (a crossing must pass between a and b)."""
    direction = b - a
    along = float(np.dot(np.asarray(point, dtype=np.float64) - a, direction)) / float(np.dot(direction, direction))
    if not 0.0 <= along <= 1.0:
        return 0
    distance = signed_distance(point, a, b)
    return 0 if abs(distance) <= margin else (1 if distance > 0 else -1)


def crossing_direction(before: Sequence[float], after: Sequence[float], a: np.ndarray, b: np.ndarray) -> str:
    """The on-screen direction of a crossing of the line a–b: ``left``/``right`` for a line more
    upright than flat, else ``up``/``down``; it is the sign of the movement across the line."""
    normal = np.array([-(b - a)[1], (b - a)[0]], dtype=np.float64)   # perpendicular to the line
    movement = np.asarray(after, dtype=np.float64) - np.asarray(before, dtype=np.float64)
    across = normal * np.sign(float(np.dot(movement, normal)) or 1.0)
    if abs(b[1] - a[1]) >= abs(b[0] - a[0]):
        return "right" if across[0] > 0 else "left"
    return "down" if across[1] > 0 else "up"

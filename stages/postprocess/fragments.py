"""Fragments: a few keypoints without a neck, split off a body next to them.

When a limb that ties an arm, a leg or a head to its body fails (a weak PAF, a competing
candidate), grouping leaves a small neckless "person" beside the body: a head, an arm, a leg.
Each such fragment (2 to ``max_parts`` keypoints, no neck) is

- joined to a body (a person with a neck) when the body has none of the fragment's parts, the
  shortest skeleton limb between a fragment part and a body part is no longer than
  ``join_distance`` times the body's size (the larger side of its keypoints' box) and, when it
  spans a map cell or more, its PAF does not contradict it (mean alignment at least
  ``min_alignment``; a limb that failed the usual PAF criteria may still pass this lower bar, a
  limb pointing elsewhere does not): the closest such body wins;
- dropped when it cannot be joined and duplicates a body: one of its parts lies within
  ``duplicate_distance`` times the body's size of the body's own keypoint of that part (a ghost
  limb beside the real one);
- kept otherwise (a partly visible person on their own, e.g. the legs of someone hidden
  behind another person).

Pure function of peak ids and positions; ``group_scored_people`` applies the decisions.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from stages.skeleton import LIMBS, Limb, keypoint_index

NECK = keypoint_index("neck")
KEEP, DROP = -1, -2
MIN_CHECKED_CELLS = 1.0   # a joining limb shorter than this (map cells) is not checked on the PAF

# alignment(limb, start, end): mean PAF alignment along a limb from part_a at start to part_b at
# end (map cells), as ``limbs.line_integrals`` measures it
Alignment = Callable[[Limb, np.ndarray, np.ndarray], float]


def fragment_targets(members: np.ndarray, peaks: np.ndarray, max_parts: int,
                     join_distance: float, duplicate_distance: float,
                     limbs: Sequence[Limb] = LIMBS, alignment: Alignment | None = None,
                     min_alignment: float = 0.1) -> np.ndarray:
    """What becomes of each person: int64 (P,), ``KEEP`` (-1), ``DROP`` (-2) or the index of the
    body it joins.

    members (P,18) peak ids (-1 missing) from grouping; peaks (K,4) part, x, y, score (map cells).
    alignment: the PAF check of a joining limb (None: geometry only).  Fragments are decided
    largest first; a body that took one fragment has those parts for the next.  Bodies never
    join anything; a fragment never takes another fragment.
    """
    members = np.asarray(members)
    targets = np.full(len(members), KEEP, dtype=np.int64)
    if max_parts < 2 or len(members) < 2:
        return targets
    present = members >= 0
    counts = present.sum(axis=1)
    is_body = present[:, NECK]
    fragments = np.flatnonzero(~is_body & (counts >= 2) & (counts <= max_parts))
    bodies = np.flatnonzero(is_body)
    if len(fragments) == 0 or len(bodies) == 0:
        return targets
    body_parts = present[bodies].copy()                 # grows as fragments join
    body_points = [_points(members[body], peaks) for body in bodies]
    sizes = np.array([_size(points) for points in body_points])

    for fragment in fragments[np.argsort(-counts[fragments], kind="stable")]:
        own = present[fragment]
        points = _points(members[fragment], peaks)
        best, best_reach = KEEP, np.inf
        duplicate = False
        for row in range(len(bodies)):
            shared = own & body_parts[row]
            if np.any(shared):
                gaps = np.hypot(*(points[shared] - body_points[row][shared]).T)
                duplicate |= gaps.min() <= duplicate_distance * sizes[row]
                continue
            length, limb, start, end = _shortest_link(points, body_points[row], own,
                                                      body_parts[row], limbs)
            reach = length / max(sizes[row], 1e-6)
            if reach > join_distance or reach >= best_reach:
                continue
            if alignment is not None and length >= MIN_CHECKED_CELLS \
                    and alignment(limb, start, end) < min_alignment:
                continue
            best, best_reach = row, reach
        if best != KEEP:
            targets[fragment] = bodies[best]
            body_parts[best] |= own
            body_points[best] = np.where(own[:, None], points, body_points[best])
        elif duplicate:
            targets[fragment] = DROP
    return targets


def _points(row: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """(18,2) x, y in map cells of a person's parts, NaN where missing."""
    points = np.full((len(row), 2), np.nan)
    present = row >= 0
    points[present] = peaks[row[present], 1:3]
    return points


def _size(points: np.ndarray) -> float:
    """The larger side of the box around a person's keypoints (map cells)."""
    known = points[~np.isnan(points[:, 0])]
    return float(np.ptp(known, axis=0).max()) if len(known) else 0.0


def _shortest_link(fragment: np.ndarray, body: np.ndarray, fragment_parts: np.ndarray,
                   body_parts: np.ndarray, limbs: Sequence[Limb]) -> tuple:
    """The shortest skeleton limb between a fragment part and a body part: (length in map cells,
    limb, part_a's point, part_b's point); length inf and no limb if none."""
    best: tuple = (np.inf, None, None, None)
    for limb in limbs:
        for mine, theirs in ((limb.part_a, limb.part_b), (limb.part_b, limb.part_a)):
            if fragment_parts[mine] and body_parts[theirs]:
                length = float(np.hypot(*(fragment[mine] - body[theirs])))
                if length < best[0]:
                    ends = (fragment[mine], body[theirs])
                    best = (length, limb) + (ends if mine == limb.part_a else ends[::-1])
    return best

"""The recall benchmark's arithmetic: people of a plan against the reference's, and id lifetimes.

Pure numpy on people arrays ``[P,18,3]`` (x, y, confidence in frame pixels; a missing keypoint is
0,0,0), no I/O, so every rule is testable on synthetic people.

Matching one frame (``compare_frame``):

- a *full* person has at least ``min_keypoints`` (8) keypoints; only full people are counted;
- the distance between two people is the mean pixel distance over the keypoints both have (at
  least ``MIN_COMMON`` of them, else they cannot match);
- a pair may match only when that distance is at most ``match_fraction`` (0.2) × the reference
  person's size, the larger side of the box around its keypoints (a 100 px tall walker matches
  within 20 px, a 40 px one within 8 px);
- full reference people and full plan people are paired one to one by the Hungarian method on
  distance / size (``match``): each pair is a reference person *found*; recall = found / full
  reference people;
- a full plan person left unpaired is an *extra* unless it pairs (again one to one, same rule)
  with a reference person not yet paired, full or not (the reference saw someone there, only
  with fewer keypoints); a second copy of a found person (a duplicate at a crop border) is extra;
- offsets: the distances of every keypoint both people of a found pair have.

Ids (``id_figures``): over the full people with their tracked ids and the frames' times, the share
of detections whose id lasts at least ``min_seconds`` (an id's life: from its first to its last
frame, plus one frame period; a full person at id -1 counts as not lasting) and the ids a minute.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

MIN_KEYPOINTS = 8
MATCH_FRACTION = 0.2
MIN_COMMON = 3
_INFEASIBLE = 1e6


def keypoint_counts(people: np.ndarray) -> np.ndarray:
    """Keypoints present (confidence > 0) of each person, [P]."""
    people = as_people(people)
    return (people[..., 2] > 0).sum(axis=1)


def as_people(people: np.ndarray | Sequence) -> np.ndarray:
    """``people`` as a float64 [P,18,3] array (an empty list gives [0,18,3])."""
    return np.asarray(people, dtype=np.float64).reshape(-1, 18, 3)


def person_sizes(people: np.ndarray) -> np.ndarray:
    """The larger side of the box around each person's keypoints, px [P] (0 without keypoints)."""
    people = as_people(people)
    sizes = np.zeros(len(people))
    for index, person in enumerate(people):
        points = person[person[:, 2] > 0, :2]
        if len(points):
            sizes[index] = float((points.max(axis=0) - points.min(axis=0)).max())
    return sizes


def pair_distances(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean distance over the keypoints both have [A,B] (inf without any), common keypoints [A,B])."""
    a, b = as_people(a), as_people(b)
    both = (a[:, None, :, 2] > 0) & (b[None, :, :, 2] > 0)                     # [A,B,18]
    distances = np.linalg.norm(a[:, None, :, :2] - b[None, :, :, :2], axis=-1)  # [A,B,18]
    common = both.sum(axis=-1)
    total = np.where(both, distances, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(common > 0, total / np.maximum(common, 1), np.inf)
    return mean, common


def match(reference: np.ndarray, plan: np.ndarray, match_fraction: float = MATCH_FRACTION,
          min_common: int = MIN_COMMON) -> list[tuple[int, int]]:
    """One-to-one pairs (reference index, plan index) of people within ``match_fraction`` × the
    reference person's size, chosen by the Hungarian method on distance / size (most pairs
    first, then the smallest total)."""
    from scipy.optimize import linear_sum_assignment

    reference, plan = as_people(reference), as_people(plan)
    if not len(reference) or not len(plan):
        return []
    mean, common = pair_distances(reference, plan)
    sizes = np.maximum(person_sizes(reference), 1.0)[:, None]
    relative = mean / sizes
    feasible = (common >= min_common) & (relative <= match_fraction)
    cost = np.where(feasible, relative, _INFEASIBLE)
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if feasible[r, c]]


@dataclass(frozen=True)
class FrameComparison:
    """One frame: full reference people, those found, full plan people, extras, and the keypoint
    offsets (px) of the found pairs."""

    reference_people: int
    found: int
    plan_people: int
    extra: int
    offsets: tuple[float, ...]


def compare_frame(reference: np.ndarray, plan: np.ndarray, min_keypoints: int = MIN_KEYPOINTS,
                  match_fraction: float = MATCH_FRACTION, min_common: int = MIN_COMMON) -> FrameComparison:
    """The plan's people of one frame against the reference's (see the module's rules)."""
    reference, plan = as_people(reference), as_people(plan)
    ref_full = np.flatnonzero(keypoint_counts(reference) >= min_keypoints)
    plan_full = np.flatnonzero(keypoint_counts(plan) >= min_keypoints)
    pairs = [(ref_full[r], plan_full[p])
             for r, p in match(reference[ref_full], plan[plan_full], match_fraction, min_common)]
    offsets: list[float] = []
    for r, p in pairs:
        both = (reference[r, :, 2] > 0) & (plan[p, :, 2] > 0)
        offsets += np.linalg.norm(reference[r, both, :2] - plan[p, both, :2], axis=-1).tolist()
    paired_ref = {r for r, _ in pairs}
    paired_plan = {p for _, p in pairs}
    ref_left = np.array([i for i in range(len(reference)) if i not in paired_ref], dtype=int)
    plan_left = np.array([i for i in plan_full if i not in paired_plan], dtype=int)
    explained = match(reference[ref_left], plan[plan_left], match_fraction, min_common) \
        if len(ref_left) and len(plan_left) else []
    return FrameComparison(reference_people=len(ref_full), found=len(pairs), plan_people=len(plan_full),
                           extra=len(plan_left) - len(explained), offsets=tuple(offsets))


def summarise(comparisons: Sequence[FrameComparison]) -> dict:
    """recall, extra people (% of the reference's full people), median keypoint offset (px) and
    people a frame over the frames compared (None where undefined)."""
    reference = sum(c.reference_people for c in comparisons)
    found = sum(c.found for c in comparisons)
    extra = sum(c.extra for c in comparisons)
    offsets = [o for c in comparisons for o in c.offsets]
    frames = len(comparisons)
    return {
        "frames_compared": frames,
        "reference_people": reference,
        "found": found,
        "recall": round(found / reference, 4) if reference else None,
        "extra": extra,
        "extra_percent": round(100.0 * extra / reference, 2) if reference else None,
        "median_offset_px": round(float(np.median(offsets)), 3) if offsets else None,
        "people_per_frame": round(sum(c.plan_people for c in comparisons) / frames, 3) if frames else None,
        "reference_people_per_frame": round(reference / frames, 3) if frames else None,
    }


def id_figures(times: Sequence[float], people: Sequence[np.ndarray], ids: Sequence[Sequence[int]],
               min_keypoints: int = MIN_KEYPOINTS, min_seconds: float = 3.0) -> dict:
    """Tracking figures of one run: per frame its time (s), people [P,18,3] and ids [P].

    lasting_share: detections (full people) on ids that last >= ``min_seconds``; ids_per_minute:
    different ids of full people per minute of the run; both None when the run is shorter than
    ``min_seconds`` (no id could last that long, and a few frames say little per minute)."""
    times = [float(t) for t in times]
    if not times:
        return {"detections": 0, "ids": 0, "window_s": 0.0, "lasting_share": None, "ids_per_minute": None,
                "untracked": 0}
    steps = np.diff(times)
    period = float(np.median(steps)) if len(steps) else 0.0
    window_s = times[-1] - times[0] + period
    first: dict[int, float] = {}
    last: dict[int, float] = {}
    detections: list[int] = []
    for time_s, frame_people, frame_ids in zip(times, people, ids):
        counts = keypoint_counts(frame_people)
        for count, person_id in zip(counts, frame_ids):
            if person_id >= 0:
                first.setdefault(person_id, time_s)
                last[person_id] = time_s
            if count >= min_keypoints:
                detections.append(int(person_id))
    life = {pid: last[pid] - first[pid] + period for pid in first}
    full_ids = {pid for pid in detections if pid >= 0}
    lasting = sum(1 for pid in detections if pid >= 0 and life[pid] >= min_seconds - 1e-9)
    long_enough = window_s >= min_seconds - 1e-9
    return {
        "detections": len(detections),
        "ids": len(full_ids),
        "untracked": sum(1 for pid in detections if pid < 0),
        "window_s": round(window_s, 3),
        "lasting_share": round(lasting / len(detections), 4) if detections and long_enough else None,
        "ids_per_minute": round(60.0 * len(full_ids) / window_s, 2) if long_enough else None,
    }

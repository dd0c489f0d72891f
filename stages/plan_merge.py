"""One list of people from the overview's and the crops' decodings of a frame.

A person may come out twice: from two overlapping crops, or from a crop and the overview, and
a crop's edge may cut a person whose whole body another crop (or the overview) holds.  Two
people are the same when enough of the keypoints they share lie close together (``same_person``);
of such a pair the one held whole stays (not cut by a crop's side), then the more complete one
(more keypoints; then the preferred source: the crops for people smaller than the plan's
``big_px``, the overview for bigger ones; then the higher score).

The overview sees small people at a scale too coarse to place their keypoints well, and a crop's
side cuts its neighbours and newcomers in part: the pipeline publishes neither the overview's
people shorter than ``big_px`` / 2 nor people cut by a crop's side (``published``), and looks at
them through their own crops from the next frame on.

Pure numpy; people float [P, 18, 3] in frame pixels (x, y, score), score <= 0 = missing.
"""

from __future__ import annotations

import numpy as np

CLOSE = 0.1          # keypoints closer than this share of the person's height are the same point
MIN_CLOSE_PX = 4.0


def _heights(people: np.ndarray) -> np.ndarray:
    heights = np.zeros(len(people))
    for index, pose in enumerate(people):
        visible = pose[:, 2] > 0
        if visible.any():
            span = np.ptp(pose[visible, :2], axis=0)
            heights[index] = max(span[1], span[0] * 0.5)
    return heights


def same_person(a: np.ndarray, b: np.ndarray, height: float) -> bool:
    """Whether two poses [18,3] are one person: at least half of the smaller one's keypoints
    (and at least 2, or 1 when it has only 1) are shared and within ``CLOSE`` x ``height``."""
    shared = (a[:, 2] > 0) & (b[:, 2] > 0)
    smaller = int(min((a[:, 2] > 0).sum(), (b[:, 2] > 0).sum()))
    if smaller == 0 or not shared.any():
        return False
    distance = np.linalg.norm(a[shared, :2] - b[shared, :2], axis=1)
    close = int((distance <= max(MIN_CLOSE_PX, CLOSE * height)).sum())
    return close >= max(min(2, smaller), (smaller + 1) // 2)


def merge_people(overview: np.ndarray, overview_scores: np.ndarray, crops: np.ndarray,
                 crop_scores: np.ndarray, big_px: float, crop_cut: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(people [P,18,3], scores [P], from_overview bool [P], cut bool [P]) without duplicates,
    from the overview's and the crops' people (frame pixels; ``crop_cut`` [C]: cut by their crop's
    side).  Order: kept people in the order of their rank (whole, then most complete, first)."""
    overview = np.asarray(overview, dtype=np.float32).reshape(-1, 18, 3)
    crops = np.asarray(crops, dtype=np.float32).reshape(-1, 18, 3)
    people = np.concatenate([overview, crops])
    scores = np.concatenate([np.asarray(overview_scores, dtype=np.float32).reshape(-1),
                             np.asarray(crop_scores, dtype=np.float32).reshape(-1)])
    cut = np.concatenate([np.zeros(len(overview), dtype=bool),
                          np.zeros(len(crops), dtype=bool) if crop_cut is None
                          else np.asarray(crop_cut, dtype=bool).reshape(-1)])
    if len(people) == 0:
        return people, scores, np.zeros(0, dtype=bool), cut
    from_overview = np.arange(len(people)) < len(overview)
    heights = _heights(people)
    counts = (people[..., 2] > 0).sum(axis=1)
    preferred = np.where(heights >= big_px, from_overview, ~from_overview)
    order = sorted(range(len(people)), key=lambda i: (cut[i], -counts[i], not preferred[i], -scores[i]))
    kept: list[int] = []
    for index in order:
        if counts[index] == 0:
            continue
        if any(same_person(people[index], people[other], max(heights[index], heights[other]))
               for other in kept):
            continue
        kept.append(index)
    return people[kept], scores[kept], from_overview[kept], cut[kept]


def published(people: np.ndarray, from_overview: np.ndarray, big_px: float,
              cut: np.ndarray | None = None) -> np.ndarray:
    """Which of the merged people [P] to publish: all but the overview's people shorter than
    ``big_px`` / 2 and those cut by a crop's side (candidates, for the crops of the next frames)."""
    people = np.asarray(people, dtype=np.float32).reshape(-1, 18, 3)
    shown = ~np.asarray(from_overview, dtype=bool) | (_heights(people) >= big_px / 2.0)
    return shown if cut is None else shown & ~np.asarray(cut, dtype=bool)


def remember(previous: np.ndarray, ages: np.ndarray, people: np.ndarray,
             max_age: int) -> tuple[np.ndarray, np.ndarray]:
    """The people to look for next frame: this frame's (age 0) plus the earlier ones nobody
    this frame is close to (``same_person`` loosened to their boxes' centres within half a
    height), aged by one, up to ``max_age`` frames: a person the network missed once still
    gets a crop.  Returns (people [Q,18,3], ages [Q])."""
    people = np.asarray(people, dtype=np.float32).reshape(-1, 18, 3)
    previous = np.asarray(previous, dtype=np.float32).reshape(-1, 18, 3)
    kept, kept_ages = [], []
    centres = [_centre(pose) for pose in people]
    for pose, age in zip(previous, np.asarray(ages).reshape(-1)):
        if age + 1 > max_age or not (pose[:, 2] > 0).any():
            continue
        centre, height = _centre(pose), max(_heights(pose[None])[0], 1.0)
        if any(np.linalg.norm(centre - other) < 0.5 * height for other in centres):
            continue
        kept.append(pose)
        kept_ages.append(age + 1)
    all_people = np.concatenate([people, np.asarray(kept, np.float32).reshape(-1, 18, 3)])
    return all_people, np.concatenate([np.zeros(len(people), int), np.asarray(kept_ages, int)])


def _centre(pose: np.ndarray) -> np.ndarray:
    visible = pose[:, 2] > 0
    if not visible.any():
        return np.array([np.inf, np.inf])
    return (pose[visible, :2].min(axis=0) + pose[visible, :2].max(axis=0)) / 2.0

"""Do two runs find the same people?  Per-frame counts and matched keypoint distances.

People are (P,K,3) x, y, score arrays in frame pixels (score 0 = missing).  Two frames' people are
paired by the assignment of least mean distance over the keypoints both have (Hungarian); a pair
counts only when that mean is under ``MATCH_PX``.  The summary says on what fraction of frames
both found the same number of people, how many people each found that the other did not, the
distances of the matched keypoints (median, p95), and the same counts for *whole* people only
(at least ``WHOLE_PERSON_KEYPOINTS`` keypoints): 3-5-keypoint fragments sit at the decoder's
thresholds and come and go with any numerical change (even another resize interpolation), while
whole people are what a user sees.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

MATCH_PX = 40.0                      # a pair further apart than this is two different people
WHOLE_PERSON_KEYPOINTS = 6


def pair_people(first: np.ndarray, second: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
    """(index in first, index in second, distances of their shared keypoints) per matched pair."""
    if len(first) == 0 or len(second) == 0:
        return []
    shared = (first[:, None, :, 2] > 0) & (second[None, :, :, 2] > 0)           # (P,Q,K)
    distance = np.linalg.norm(first[:, None, :, :2] - second[None, :, :, :2], axis=-1)
    counts = shared.sum(-1)
    mean = np.where(counts > 0, (distance * shared).sum(-1) / np.maximum(counts, 1), np.inf)
    rows, cols = linear_sum_assignment(np.where(np.isfinite(mean), mean, 1e9))
    return [(int(r), int(c), distance[r, c][shared[r, c]]) for r, c in zip(rows, cols)
            if mean[r, c] < MATCH_PX]


def agreement(candidate: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> dict:
    """How far ``candidate``'s people agree with ``reference``'s, over their common frames."""
    frames = min(len(candidate), len(reference))
    same_count = extra = missing = matched = 0
    whole_reference = whole_matched = whole_extra = 0
    distances = []
    for ours, theirs in zip(candidate[:frames], reference[:frames]):
        ours, theirs = np.asarray(ours), np.asarray(theirs)
        pairs = pair_people(ours, theirs)
        same_count += len(ours) == len(theirs)
        matched += len(pairs)
        extra += len(ours) - len(pairs)
        missing += len(theirs) - len(pairs)
        distances.extend(d for _, _, pair_distances in pairs for d in pair_distances)
        whole_ours, whole_theirs = _whole(ours), _whole(theirs)
        paired_ours, paired_theirs = {i for i, _, _ in pairs}, {j for _, j, _ in pairs}
        whole_reference += int(whole_theirs.sum())
        whole_matched += sum(1 for j in paired_theirs if whole_theirs[j])
        whole_extra += sum(1 for i in range(len(ours)) if whole_ours[i] and i not in paired_ours)
    distances = np.asarray(distances, dtype=np.float64)
    return {
        "frames": frames,
        "same_count_fraction": round(same_count / frames, 4) if frames else None,
        "matched_people": matched, "extra_people": extra, "missing_people": missing,
        "whole_people": whole_reference,
        "whole_matched_fraction": round(whole_matched / whole_reference, 4) if whole_reference else None,
        "whole_extra": whole_extra,
        "keypoint_px": ({"p50": round(float(np.median(distances)), 2),
                         "p95": round(float(np.percentile(distances, 95)), 2)}
                        if len(distances) else None),
    }


def _whole(people: np.ndarray) -> np.ndarray:
    """Per person: does it have at least WHOLE_PERSON_KEYPOINTS keypoints?"""
    if len(people) == 0:
        return np.zeros(0, dtype=bool)
    return (people[..., 2] > 0).sum(-1) >= WHOLE_PERSON_KEYPOINTS


def people_count_histogram(frames: Sequence[np.ndarray]) -> dict[str, int]:
    """{people per frame: number of frames}."""
    counts: dict[str, int] = {}
    for people in frames:
        key = str(len(people))
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: int(item[0])))


def keeps_same_people(summary: dict | None, min_matched: float = 0.95, max_p50_px: float = 3.0) -> bool:
    """The verdict used to pick the default engine: at least 95 % of the reference's whole people
    found again, no more than 5 % whole people the reference does not have, and matched keypoints
    within 3 px (median)."""
    if not summary or not summary.get("frames") or not summary.get("whole_people"):
        return False
    keypoints = summary.get("keypoint_px") or {}
    return (summary["whole_matched_fraction"] >= min_matched
            and summary["whole_extra"] <= (1 - min_matched) * summary["whole_people"]
            and keypoints.get("p50", float("inf")) <= max_p50_px)

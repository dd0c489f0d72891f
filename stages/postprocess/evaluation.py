"""Scoring decoded people against ground truth (used by the tests and benchmarks/decoder.py).

Each true person is paired one-to-one with the predicted person that has the most of its labelled
keypoints within ``max_error_px`` (Hungarian assignment).  A true person is *complete* when every
labelled keypoint is found within that distance; a predicted person is *false* when it is paired
with nobody, or fewer than half of its keypoints lie on its partner.  Keypoint errors are the
distances of the found keypoints of paired people.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
from scipy.optimize import linear_sum_assignment


@dataclass(frozen=True)
class SceneScore:
    """Counts for one scene; ``errors_px`` holds one distance per found keypoint."""

    people_true: int
    people_complete: int
    people_predicted: int
    false_people: int
    errors_px: np.ndarray


def score_scene(predicted: np.ndarray, truth: np.ndarray, max_error_px: float = 10.0) -> SceneScore:
    """Compare predicted (P,18,3) x, y, score with truth (G,18,3) x, y, labelled (0/1)."""
    labelled = truth[:, :, 2] > 0                                  # (G,18)
    present = np.any(predicted != 0, axis=-1)                      # (P,18)
    distance = np.hypot(truth[:, None, :, 0] - predicted[None, :, :, 0],
                        truth[:, None, :, 1] - predicted[None, :, :, 1])   # (G,P,18)
    found = labelled[:, None, :] & present[None, :, :] & (distance <= max_error_px)
    hits = found.sum(axis=2)                                       # (G,P)

    true_ids, predicted_ids = linear_sum_assignment(-hits) if hits.size else ((), ())
    complete, errors, genuine = 0, [], np.zeros(len(predicted), dtype=bool)
    for true_id, predicted_id in zip(true_ids, predicted_ids):
        count = hits[true_id, predicted_id]
        if count == 0:
            continue
        complete += int(count == labelled[true_id].sum())
        errors.append(distance[true_id, predicted_id][found[true_id, predicted_id]])
        genuine[predicted_id] = 2 * count >= present[predicted_id].sum()
    return SceneScore(
        people_true=len(truth), people_complete=complete, people_predicted=len(predicted),
        false_people=int(len(predicted) - genuine.sum()),
        errors_px=np.concatenate(errors) if errors else np.zeros(0),
    )


def summarize(scores: Iterable[SceneScore]) -> dict[str, float]:
    """Totals and rates over scenes: complete_fraction, mean_error_px, false_fraction, counts."""
    scores = list(scores)
    people_true = sum(s.people_true for s in scores)
    people_predicted = sum(s.people_predicted for s in scores)
    errors = np.concatenate([s.errors_px for s in scores]) if scores else np.zeros(0)
    false_people = sum(s.false_people for s in scores)
    return {
        "scenes": len(scores),
        "people_true": people_true,
        "people_complete": sum(s.people_complete for s in scores),
        "people_predicted": people_predicted,
        "false_people": false_people,
        "complete_fraction": sum(s.people_complete for s in scores) / max(people_true, 1),
        "false_fraction": false_people / max(people_predicted, 1),
        "mean_error_px": float(errors.mean()) if len(errors) else float("nan"),
        "keypoints_found": int(len(errors)),
    }

"""The person score: the decoder's own confidence in a whole person, in [0, 1].

One pure function, so it can be retuned in one place.  It ranks people as COCO keypoint
evaluation does (higher = more sure): a person's keypoints are trusted as much as their heatmap
peaks and the PAF alignment of the limbs that join them, and a person with more parts found is
more likely a real, well-seen person than a small fragment.
"""

from __future__ import annotations

import numpy as np

from stages.skeleton import NUM_KEYPOINTS


def person_scores(peak_totals: np.ndarray, limb_totals: np.ndarray, part_counts: np.ndarray,
                  limb_counts: np.ndarray, num_parts: int = NUM_KEYPOINTS) -> np.ndarray:
    """float32 (P,) scores in [0, 1], one per person.

    peak_totals (P,): summed heatmap peak values of each person's parts; limb_totals (P,): summed
    PAF scores of the limbs that joined them; part_counts / limb_counts (P,): how many of each.
    score = mean(mean peak value, mean limb score) x parts found / num_parts, each mean clipped
    to [0, 1] (a person without limbs counts its peaks only).  A person with no part scores 0.
    """
    peak_totals, limb_totals, part_counts, limb_counts = (
        np.asarray(values, dtype=np.float64)
        for values in (peak_totals, limb_totals, part_counts, limb_counts))
    peak_mean = np.clip(peak_totals / np.maximum(part_counts, 1), 0.0, 1.0)
    limb_mean = np.clip(limb_totals / np.maximum(limb_counts, 1), 0.0, 1.0)
    quality = np.where(limb_counts > 0, 0.5 * (peak_mean + limb_mean), peak_mean)
    completeness = np.clip(part_counts / num_parts, 0.0, 1.0)
    return (quality * completeness).astype(np.float32)

"""People: grow skeletons from the matched limbs, in limb order.

Each connection (a limb between two peaks) either starts a person, adds its free end to the person
that owns the other end, merges two people that own one end each (when they share no part), or is
dropped.  A peak-to-person lookup makes each step O(1) (a merge O(parts)), so grouping costs
O(connections) = O(limbs x people) instead of OpenPose's scan of every person per connection.
Then neckless fragments are joined to their body or dropped (fragments.py), weak and small people
are dropped, and each person gets its score (scoring.py).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from stages.postprocess.fragments import KEEP, fragment_targets
from stages.postprocess.limbs import line_integrals
from stages.postprocess.params import DecoderParams
from stages.postprocess.scoring import person_scores
from stages.skeleton import LIMBS, NUM_DRAWN_LIMBS, NUM_KEYPOINTS, Limb


def group_people(connections: np.ndarray, peaks: np.ndarray,
                 params: DecoderParams = DecoderParams(), limbs: Sequence[Limb] = LIMBS,
                 num_parts: int = NUM_KEYPOINTS, starting_limbs: int = NUM_DRAWN_LIMBS,
                 pafs: Any = None) -> np.ndarray:
    """Peak ids of each person: int64 (P, num_parts), -1 where a part is missing.

    connections (C,4) from ``score_limbs`` (limb, peak a, peak b, score), in limb order; peaks
    (K,4) from ``find_peaks``.  Only the first ``starting_limbs`` limbs may start a new person (the
    shoulder-ear limbs only join parts to people).  Small neckless fragments are then joined to
    the body beside them or dropped (``fragments.fragment_targets``; given the ``pafs``, a
    joining limb is checked on them).  People with fewer than
    ``params.min_parts`` parts, or a summed peak + limb score per part below
    ``params.min_mean_score``, are dropped.
    """
    return group_scored_people(connections, peaks, params, limbs, num_parts, starting_limbs,
                               pafs)[0]


def group_scored_people(connections: np.ndarray, peaks: np.ndarray,
                        params: DecoderParams = DecoderParams(), limbs: Sequence[Limb] = LIMBS,
                        num_parts: int = NUM_KEYPOINTS, starting_limbs: int = NUM_DRAWN_LIMBS,
                        pafs: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """``group_people``'s members plus each person's score: float32 (P,) in [0, 1] from
    ``scoring.person_scores`` (peak and limb scores, parts found)."""
    peak_scores = peaks[:, 3].tolist()
    owner = [-1] * len(peaks)                     # peak id -> person index
    members: list[list[int] | None] = []          # person -> peak id per part (-1 = missing)
    peak_totals: list[float] = []                 # person -> summed peak scores
    limb_totals: list[float] = []                 # person -> summed limb scores
    limb_counts: list[int] = []                   # person -> limbs that joined its parts

    for limb_id, peak_a, peak_b, score in connections.tolist():
        limb = limbs[int(limb_id)]
        peak_a, peak_b = int(peak_a), int(peak_b)
        person_a, person_b = owner[peak_a], owner[peak_b]
        if person_a >= 0 and person_b >= 0:
            if person_a != person_b and _disjoint(members[person_a], members[person_b]):
                for totals in (peak_totals, limb_totals, limb_counts):
                    totals[person_a] += totals[person_b]
                _merge(members, owner, person_a, person_b)
                limb_totals[person_a] += score
                limb_counts[person_a] += 1
        elif person_a >= 0 or person_b >= 0:
            person, peak, part = ((person_a, peak_b, limb.part_b) if person_a >= 0
                                  else (person_b, peak_a, limb.part_a))
            if members[person][part] < 0:
                members[person][part] = peak
                owner[peak] = person
                peak_totals[person] += peak_scores[peak]
                limb_totals[person] += score
                limb_counts[person] += 1
        elif limb_id < starting_limbs:
            row = [-1] * num_parts
            row[limb.part_a], row[limb.part_b] = peak_a, peak_b
            owner[peak_a] = owner[peak_b] = len(members)
            members.append(row)
            peak_totals.append(peak_scores[peak_a] + peak_scores[peak_b])
            limb_totals.append(score)
            limb_counts.append(1)

    alive = [person for person, row in enumerate(members) if row is not None]
    rows = np.array([members[person] for person in alive], dtype=np.int64).reshape(-1, num_parts)
    totals = np.array([[peak_totals[p], limb_totals[p], limb_counts[p]] for p in alive],
                      dtype=np.float64).reshape(-1, 3)     # peak score, limb score, limb count
    rows, totals = _resolve_fragments(rows, totals, peaks, params, limbs, pafs)

    counts = (rows >= 0).sum(axis=1)
    mean_scores = (totals[:, 0] + totals[:, 1]) / np.maximum(counts, 1)
    kept = (counts >= params.min_parts) & (mean_scores >= params.min_mean_score)
    rows, totals = rows[kept], totals[kept]
    scores = person_scores(totals[:, 0], totals[:, 1], counts[kept], totals[:, 2], num_parts)
    return rows, scores


def _resolve_fragments(rows: np.ndarray, totals: np.ndarray, peaks: np.ndarray,
                       params: DecoderParams, limbs: Sequence[Limb],
                       pafs: Any) -> tuple[np.ndarray, np.ndarray]:
    """Join or drop the neckless fragments as ``fragments.fragment_targets`` decides."""
    alignment = None
    if pafs is not None:
        def alignment(limb: Limb, start: np.ndarray, end: np.ndarray) -> float:
            mean, _ = line_integrals(pafs, start[None].astype(np.float32),
                                     end[None].astype(np.float32),
                                     np.array([[limb.paf_x, limb.paf_y]]), params.paf_samples,
                                     params.paf_threshold)
            return float(mean[0])
    targets = fragment_targets(rows, peaks, params.fragment_max_parts,
                               params.fragment_join_distance, params.fragment_duplicate_distance,
                               limbs, alignment, params.fragment_min_alignment)
    if np.all(targets == KEEP):
        return rows, totals
    rows, totals = rows.copy(), totals.copy()
    for fragment, body in enumerate(targets.tolist()):
        if body >= 0:
            present = rows[fragment] >= 0
            rows[body, present] = rows[fragment, present]
            totals[body] += totals[fragment]
    kept = targets == KEEP
    return rows[kept], totals[kept]


def _disjoint(first: list[int], second: list[int]) -> bool:
    return all(a < 0 or b < 0 for a, b in zip(first, second))


def _merge(members: list, owner: list[int], keep: int, drop: int) -> None:
    """Move every part of person ``drop`` into person ``keep`` (working state of group_people)."""
    for part, peak in enumerate(members[drop]):
        if peak >= 0:
            members[keep][part] = peak
            owner[peak] = keep
    members[drop] = None

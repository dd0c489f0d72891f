"""Limbs: score every candidate pair of peaks by the PAF line integral, then match them.

For each limb type, every (part_a peak, part_b peak) pair is a candidate.  The candidates of all
limbs are scored at once: ``paf_samples`` points per pair, bilinear PAF values at those points,
their component along the pair's direction.  A pair is kept when enough samples are aligned and
its mean alignment, lowered for very long limbs, is positive (OpenPose's criteria).  Each limb
type is then matched one-to-one as a bipartite graph: by default the matching with the largest
total score (Hungarian algorithm), or OpenPose's greedy best-score-first matching.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from stages.postprocess import arrays
from stages.postprocess.params import DecoderParams
from stages.skeleton import LIMBS, Limb

_MIN_LENGTH_MAP = 1e-3   # shorter pairs have no direction; their alignment is 0


def candidate_pairs(peaks: np.ndarray, limbs: Sequence[Limb] = LIMBS) -> np.ndarray:
    """All candidate pairs: int64 (N,3) of limb index, peak id of part_a, peak id of part_b, in
    limb order, each limb's by peak a then peak b.

    peaks (K,4) must be grouped by part in ascending order, as ``find_peaks`` returns them.
    """
    parts = np.array([(limb.part_a, limb.part_b) for limb in limbs], dtype=np.int64).reshape(-1, 2)
    bounds = np.searchsorted(peaks[:, 0], np.arange(parts.max(initial=0) + 2), side="left")
    first, count = bounds[parts], bounds[parts + 1] - bounds[parts]        # (L,2) each
    sizes = count[:, 0] * count[:, 1]
    limb_ids = np.repeat(np.arange(len(parts)), sizes)
    offsets = np.arange(len(limb_ids)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    per_b = count[limb_ids, 1]
    return np.stack([limb_ids, first[limb_ids, 0] + offsets // np.maximum(per_b, 1),
                     first[limb_ids, 1] + offsets % np.maximum(per_b, 1)], axis=1)


def line_integrals(pafs: Any, starts_map: np.ndarray, ends_map: np.ndarray,
                   paf_channels: np.ndarray, samples: int,
                   threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean PAF alignment and count of aligned samples along N segments, all at once.

    pafs (2L,h,w) numpy or torch; starts_map/ends_map (N,2) segment ends in map cells;
    paf_channels (N,2) the x and y PAF channels of each segment's limb.  Each segment is sampled at
    ``samples`` evenly spaced points (ends included), the PAF is read bilinearly and projected on
    the unit vector from start to end.  Returns ``alignment`` (N,) the mean projection and
    ``aligned`` (N,) how many projections exceed ``threshold``.  On a torch device the segments go
    up as one small array and only the two (N,) results come back.
    """
    if len(starts_map) == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    height, width = pafs.shape[-2:]
    vectors = (ends_map - starts_map).astype(np.float32)
    lengths = np.hypot(vectors[:, 0], vectors[:, 1])
    units = vectors / np.maximum(lengths, _MIN_LENGTH_MAP)[:, None]
    units[lengths < _MIN_LENGTH_MAP] = 0.0
    segments = arrays.like(np.concatenate([starts_map, vectors, units, paf_channels], axis=1)
                           .astype(np.float32), pafs)
    steps = arrays.like(np.linspace(0.0, 1.0, samples, dtype=np.float32), pafs)

    # (N,S) sample points in map cells, the 4 cells around each and their bilinear weights
    points_x = segments[:, 0:1] + steps * segments[:, 2:3]
    points_y = segments[:, 1:2] + steps * segments[:, 3:4]
    cell_x, cell_y = arrays.floor(points_x), arrays.floor(points_y)
    frac_x, frac_y = points_x - cell_x, points_y - cell_y
    cols = [arrays.to_index((cell_x + dx).clip(0, width - 1)) for dx in (0, 1)]
    rows = [arrays.to_index((cell_y + dy).clip(0, height - 1)) * width for dy in (0, 1)]
    weights_x, weights_y = (1 - frac_x, frac_x), (1 - frac_y, frac_y)

    flat_pafs = pafs.reshape(-1)
    channel_x = arrays.to_index(segments[:, 6:7]) * (height * width)        # (N,1) flat offsets
    channel_y = arrays.to_index(segments[:, 7:8]) * (height * width)
    paf_x = paf_y = 0
    for dy in (0, 1):
        for dx in (0, 1):
            cells = rows[dy] + cols[dx]
            weight = weights_x[dx] * weights_y[dy]
            paf_x = paf_x + flat_pafs[channel_x + cells] * weight
            paf_y = paf_y + flat_pafs[channel_y + cells] * weight
    projections = paf_x * segments[:, 4:5] + paf_y * segments[:, 5:6]          # (N,S)
    alignment = projections.mean(axis=1)
    aligned = (projections > threshold).sum(axis=1)
    return arrays.to_numpy(alignment), arrays.to_numpy(aligned)


def score_limbs(pafs: Any, peaks: np.ndarray, params: DecoderParams = DecoderParams(),
                limbs: Sequence[Limb] = LIMBS) -> np.ndarray:
    """Connections between peaks: float32 (C,4) of limb index, peak id a, peak id b, score.

    pafs (2L,h,w) numpy or torch; peaks (K,4) from ``find_peaks`` (part, x_map, y_map, score).
    Rows are in limb order, best score first within a limb; each peak appears at most once per
    limb (``params.matching`` chooses how).  ``score`` is the mean PAF alignment with OpenPose's
    long-limb penalty.
    """
    pairs = candidate_pairs(peaks, limbs)
    if len(pairs) == 0:
        return np.empty((0, 4), dtype=np.float32)
    channel_table = np.array([(limb.paf_x, limb.paf_y) for limb in limbs], dtype=np.int64)
    starts, ends = peaks[pairs[:, 1], 1:3], peaks[pairs[:, 2], 1:3]
    alignment, aligned = line_integrals(pafs, starts, ends, channel_table[pairs[:, 0]],
                                        params.paf_samples, params.paf_threshold)
    lengths = np.maximum(np.hypot(*(ends - starts).T), _MIN_LENGTH_MAP)
    map_height = pafs.shape[-2]
    scores = alignment + np.minimum(params.long_limb_fraction * map_height / lengths - 1.0, 0.0)
    keep = (aligned > params.min_aligned_fraction * params.paf_samples) & (scores > 0)
    match = match_optimal if params.matching == "optimal" else match_greedy
    return match(pairs[keep], scores[keep])


def match_greedy(pairs: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """One-to-one matching per limb, best score first: (C,4) limb, peak a, peak b, score."""
    order = np.lexsort((-scores, pairs[:, 0]))
    used: set[tuple[int, int]] = set()
    chosen = []
    for row, (limb_id, peak_a, peak_b) in zip(order.tolist(), pairs[order].tolist()):
        if (limb_id, peak_a) in used or (limb_id, peak_b) in used:
            continue
        used.add((limb_id, peak_a))
        used.add((limb_id, peak_b))
        chosen.append(row)
    return _connections(pairs, scores, chosen)


def match_optimal(pairs: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """One-to-one matching per limb with the largest total score (Hungarian algorithm), rows in
    limb order, best score first: (C,4) limb, peak a, peak b, score.  ``pairs`` in limb order,
    each limb's by peak a (as ``candidate_pairs`` makes them), all scores positive.

    A limb whose candidates share no peak is already a matching, and the best one (every score is
    positive), so only limbs with a contested peak go through the assignment solver.
    """
    if len(pairs) == 0:
        return _connections(pairs, scores, [])
    chosen = ~_contested(pairs)
    contested_limbs = np.unique(pairs[~chosen, 0])
    for limb_id in contested_limbs.tolist():
        rows = np.flatnonzero(pairs[:, 0] == limb_id)
        peak_a, peak_b = pairs[rows, 1], pairs[rows, 2]
        local_a, local_b = peak_a - peak_a.min(), peak_b - peak_b.min()
        table = np.zeros((local_a.max() + 1, local_b.max() + 1))
        table[local_a, local_b] = scores[rows]
        candidate = np.full(table.shape, -1, dtype=np.int64)
        candidate[local_a, local_b] = rows
        picked = candidate[linear_sum_assignment(table, maximize=True)]
        chosen[picked[picked >= 0]] = True
    rows = np.flatnonzero(chosen)
    return _connections(pairs, scores, rows[np.lexsort((-scores[rows], pairs[rows, 0]))].tolist())


def _contested(pairs: np.ndarray) -> np.ndarray:
    """(N,) bool: rows of the limbs in which some peak is in more than one candidate pair."""
    size = int(pairs[:, 1:].max()) + 1
    shared = np.zeros(len(pairs), dtype=bool)
    for column in (1, 2):
        _, inverse, counts = np.unique(pairs[:, 0] * size + pairs[:, column],
                                       return_inverse=True, return_counts=True)
        shared |= counts[inverse] > 1
    return np.isin(pairs[:, 0], pairs[shared, 0])


def _connections(pairs: np.ndarray, scores: np.ndarray, chosen: list[int]) -> np.ndarray:
    connections = np.empty((len(chosen), 4), dtype=np.float32)
    connections[:, :3] = pairs[chosen]
    connections[:, 3] = scores[chosen]
    return connections

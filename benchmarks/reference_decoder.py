"""The straightforward PAF decoder the original projects use, as the benchmark's baseline.

Written after the method of CMU OpenPose's Python demo and its PyTorch ports (not their code):
every map is resized x8 with bicubic interpolation to the net-input size, each heatmap is blurred
with a Gaussian (sigma 3 px) and searched with a 4-neighbour peak test, every candidate pair of
every limb is scored in a Python loop over 10 rounded sample points, and limbs are grouped into
people by scanning every person for every connection.  Same thresholds as ours (DecoderParams);
output in the same layout: (P,18,3) x, y, score in net-input pixels.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter

from stages.postprocess import DecoderParams, person_scores
from stages.skeleton import LIMBS, NUM_DRAWN_LIMBS, NUM_KEYPOINTS

BLUR_SIGMA_PX = 3.0


def reference_decode(heatmaps: np.ndarray, pafs: np.ndarray, stride: int = 8,
                     params: DecoderParams = DecoderParams()) -> np.ndarray:
    """People (P,18,3) in net-input pixels from maps (19,h,w) and (38,h,w), the original way."""
    return reference_decode_people(heatmaps, pafs, stride, params)[0]


def reference_decode_people(heatmaps: np.ndarray, pafs: np.ndarray, stride: int = 8,
                            params: DecoderParams = DecoderParams()) -> tuple[np.ndarray, np.ndarray]:
    """``reference_decode``'s people and their scores (P,), as ``decode_people`` gives them."""
    heatmaps_up = _resize(heatmaps, stride)
    pafs_up = _resize(pafs, stride)
    candidates = find_candidates(heatmaps_up, params.peak_threshold)
    connections = [connect_limb(pafs_up, candidates, limb, params) for limb in LIMBS]
    return group_scored_candidates(candidates, connections, params)


def _resize(maps: np.ndarray, stride: int) -> np.ndarray:
    """(C,h,w) -> (h*stride, w*stride, C), bicubic, as the original resizes to the input size."""
    channels_last = np.ascontiguousarray(maps.transpose(1, 2, 0))
    return cv2.resize(channels_last, None, fx=stride, fy=stride, interpolation=cv2.INTER_CUBIC)


def find_candidates(heatmaps_up: np.ndarray, threshold: float) -> list[list[tuple]]:
    """Per part, a list of (x, y, score, id) with globally increasing ids."""
    candidates, next_id = [], 0
    for part in range(NUM_KEYPOINTS):
        original = heatmaps_up[:, :, part]
        blurred = gaussian_filter(original, sigma=BLUR_SIGMA_PX)
        padded = np.pad(blurred, 1, constant_values=0.0)
        centre = padded[1:-1, 1:-1]
        is_peak = ((centre >= padded[1:-1, :-2]) & (centre >= padded[1:-1, 2:])
                   & (centre >= padded[:-2, 1:-1]) & (centre >= padded[2:, 1:-1])
                   & (centre > threshold))
        ys, xs = np.nonzero(is_peak)
        part_peaks = []
        for x, y in zip(xs, ys):
            part_peaks.append((float(x), float(y), float(original[y, x]), next_id))
            next_id += 1
        candidates.append(part_peaks)
    return candidates


def connect_limb(pafs_up: np.ndarray, candidates: list, limb, params: DecoderParams) -> list[tuple]:
    """Matched (id_a, id_b, score, index_a, index_b) of one limb, best first, one use per peak."""
    cands_a, cands_b = candidates[limb.part_a], candidates[limb.part_b]
    height = pafs_up.shape[0]
    scored = []
    for i, (xa, ya, _, _) in enumerate(cands_a):
        for j, (xb, yb, _, _) in enumerate(cands_b):
            dx, dy = xb - xa, yb - ya
            norm = max(math.sqrt(dx * dx + dy * dy), 1e-3)
            ux, uy = dx / norm, dy / norm
            projections = []
            for k in range(params.paf_samples):
                t = k / (params.paf_samples - 1)
                px, py = int(round(xa + t * dx)), int(round(ya + t * dy))
                projections.append(pafs_up[py, px, limb.paf_x] * ux
                                   + pafs_up[py, px, limb.paf_y] * uy)
            mean = sum(projections) / len(projections)
            score = mean + min(params.long_limb_fraction * height / norm - 1.0, 0.0)
            aligned = sum(1 for p in projections if p > params.paf_threshold)
            if aligned > params.min_aligned_fraction * len(projections) and score > 0:
                scored.append((score, i, j))
    scored.sort(key=lambda item: item[0], reverse=True)
    chosen, used_a, used_b = [], set(), set()
    for score, i, j in scored:
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        chosen.append((cands_a[i][3], cands_b[j][3], score, i, j))
        if len(chosen) >= min(len(cands_a), len(cands_b)):
            break
    return chosen


def group_candidates(candidates: list, connections: list, params: DecoderParams) -> np.ndarray:
    """Greedy grouping, scanning every person for each connection (OpenPose's ``subset``)."""
    return group_scored_candidates(candidates, connections, params)[0]


def group_scored_candidates(candidates: list, connections: list,
                            params: DecoderParams) -> tuple[np.ndarray, np.ndarray]:
    """``group_candidates``' people plus their scores (``person_scores``)."""
    flat = {peak[3]: peak for part_peaks in candidates for peak in part_peaks}
    people = []   # each: [ids per part (-1 missing), peak total, limb total, part count, limb count]
    for limb_id, (limb, matched) in enumerate(zip(LIMBS, connections)):
        for id_a, id_b, score, _, _ in matched:
            owners = [p for p in people if p[0][limb.part_a] == id_a or p[0][limb.part_b] == id_b]
            if len(owners) == 1:
                person = owners[0]
                for part, peak_id in ((limb.part_b, id_b), (limb.part_a, id_a)):
                    if person[0][part] == -1:
                        person[0][part] = peak_id
                        person[1] += flat[peak_id][2]
                        person[2] += score
                        person[3] += 1
                        person[4] += 1
                        break
            elif len(owners) == 2:
                first, second = owners
                if all(a == -1 or b == -1 for a, b in zip(first[0], second[0])):
                    first[0] = [a if a != -1 else b for a, b in zip(first[0], second[0])]
                    for total in (1, 2, 3, 4):
                        first[total] += second[total]
                    first[2] += score
                    first[4] += 1
                    people.remove(second)
            elif limb_id < NUM_DRAWN_LIMBS:
                ids = [-1] * NUM_KEYPOINTS
                ids[limb.part_a], ids[limb.part_b] = id_a, id_b
                people.append([ids, flat[id_a][2] + flat[id_b][2], score, 2, 1])
    kept = [p for p in people if p[3] >= params.min_parts and (p[1] + p[2]) / p[3] >= params.min_mean_score]
    result = np.zeros((len(kept), NUM_KEYPOINTS, 3), dtype=np.float32)
    for row, (ids, *_totals) in enumerate(kept):
        for part, peak_id in enumerate(ids):
            if peak_id >= 0:
                result[row, part] = flat[peak_id][:3]
    totals = np.array([p[1:] for p in kept], dtype=np.float64).reshape(len(kept), 4)
    scores = person_scores(totals[:, 0], totals[:, 1], totals[:, 2], totals[:, 3])
    return result, scores

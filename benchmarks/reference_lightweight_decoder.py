"""The decoder of the lightweight-OpenPose demo, as the benchmark's second baseline.

Written after the method of Osokin's lightweight-human-pose-estimation.pytorch demo (not its
code): the network's maps are resized x4 with bicubic interpolation (stride 8 → 2 px cells);
each part's heatmap is thresholded at 0.1 and searched with a strict 4-neighbour peak test,
peaks sorted by x and, in a Python loop, any peak closer than 6 cells to a kept one dropped;
each limb's candidate pairs are scored at once by 10 rounded samples along the segment (PAF
component > 0.05 counted, more than 80 % needed, mean of the counted ones > 0), pairs taken best
first one use per peak, and limbs grown into people entry by entry (the last two limbs, ear to
shoulder, only fill gaps); people with fewer than 3 parts or a mean score below 0.2 are dropped.
Output in this project's layout: (P,18,3) x, y, score in *upsampled-map* cells (divide by the
upsample factor and multiply by the stride for net-input pixels).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from stages.skeleton import LIMBS, NUM_KEYPOINTS

UPSAMPLE = 4
PEAK_THRESHOLD = 0.1
PEAK_MIN_DISTANCE = 6
PAF_SAMPLES = 10
PAF_THRESHOLD = 0.05
MIN_ALIGNED_FRACTION = 0.8
MIN_PARTS = 3
MIN_MEAN_SCORE = 0.2
GAP_ONLY_LIMBS = (17, 18)      # ear-shoulder limbs: only fill a missing end, never start people


def upsample_maps(maps_chw: np.ndarray, factor: int = UPSAMPLE) -> np.ndarray:
    """(C,h,w) network maps → (h*factor, w*factor, C), bicubic, as the demo resizes them."""
    return cv2.resize(np.ascontiguousarray(maps_chw.transpose(1, 2, 0)), None, fx=factor,
                      fy=factor, interpolation=cv2.INTER_CUBIC)


def lightweight_decode(heatmaps_up: np.ndarray, pafs_up: np.ndarray) -> np.ndarray:
    """People (P,18,3) from upsampled maps (H,W,19) and (H,W,38), the demo's way."""
    peaks_by_part, next_id = [], 0
    for part in range(NUM_KEYPOINTS):
        part_peaks = _part_peaks(heatmaps_up[:, :, part], next_id)
        peaks_by_part.append(part_peaks)
        next_id += len(part_peaks)
    all_peaks = np.concatenate([p for p in peaks_by_part if len(p)] or [np.zeros((0, 4), np.float32)])
    entries = []
    for limb_id, limb in enumerate(LIMBS):
        peaks_a, peaks_b = peaks_by_part[limb.part_a], peaks_by_part[limb.part_b]
        if len(peaks_a) == 0 or len(peaks_b) == 0:
            continue
        connections = _connect(pafs_up[:, :, (limb.paf_x, limb.paf_y)], peaks_a, peaks_b)
        if connections:
            _grow(entries, connections, limb_id, limb, all_peaks)
    return _people(entries, all_peaks)


def _part_peaks(heatmap: np.ndarray, first_id: int) -> np.ndarray:
    """(K,4) x, y, score, id of one part's peaks after the demo's threshold and suppression."""
    kept_map = np.where(heatmap < PEAK_THRESHOLD, 0.0, heatmap)
    padded = np.pad(kept_map, 2)
    centre = padded[1:-1, 1:-1]
    is_peak = ((centre > padded[1:-1, 2:]) & (centre > padded[1:-1, :-2])
               & (centre > padded[2:, 1:-1]) & (centre > padded[:-2, 1:-1]))[1:-1, 1:-1]
    ys, xs = np.nonzero(is_peak)
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    found, dropped = [], [False] * len(order)
    for rank, i in enumerate(order):
        if dropped[rank]:
            continue
        for later in range(rank + 1, len(order)):
            j = order[later]
            if math.hypot(float(xs[i] - xs[j]), float(ys[i] - ys[j])) < PEAK_MIN_DISTANCE:
                dropped[later] = True
        found.append((xs[i], ys[i], kept_map[ys[i], xs[i]], first_id + len(found)))
    return np.asarray(found, dtype=np.float32).reshape(-1, 4)


def _connect(limb_pafs: np.ndarray, peaks_a: np.ndarray, peaks_b: np.ndarray) -> list[tuple]:
    """(id_a, id_b, score) of one limb: all pairs scored at once, then best first, one use per peak."""
    starts = np.broadcast_to(peaks_a[None, :, :2], (len(peaks_b), len(peaks_a), 2)).reshape(-1, 2)
    vectors = (peaks_b[:, None, :2] - peaks_a[None, :, :2]).reshape(-1, 2)
    steps = np.arange(PAF_SAMPLES, dtype=np.float32)[None, :, None] / (PAF_SAMPLES - 1)
    points = np.round(starts[:, None, :] + steps * vectors[:, None, :]).astype(np.int32)
    samples = limb_pafs[points[..., 1], points[..., 0]]                    # (pairs, samples, 2)
    unit = vectors / (np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-6)
    alignment = (samples * unit[:, None, :]).sum(-1)
    aligned = alignment > PAF_THRESHOLD
    counted = aligned.sum(1)
    mean_score = (alignment * aligned).sum(1) / (counted + 1e-6)
    valid = np.flatnonzero((mean_score > 0) & (counted / PAF_SAMPLES > MIN_ALIGNED_FRACTION))
    chosen, used_a, used_b = [], set(), set()
    for pair in valid[np.argsort(-mean_score[valid], kind="stable")]:
        index_b, index_a = divmod(int(pair), len(peaks_a))
        if index_a in used_a or index_b in used_b:
            continue
        used_a.add(index_a)
        used_b.add(index_b)
        chosen.append((int(peaks_a[index_a, 3]), int(peaks_b[index_b, 3]), float(mean_score[pair])))
    return chosen


def _grow(entries: list, connections: list, limb_id: int, limb, all_peaks: np.ndarray) -> None:
    """Add one limb's connections to the people entries (ids per part, -1 missing; score; count)."""
    if limb_id == 0:                       # the first limb starts one person per connection
        entries.clear()
    for id_a, id_b, score in connections:
        if limb_id in GAP_ONLY_LIMBS:
            for entry in entries:
                if entry[0][limb.part_a] == id_a and entry[0][limb.part_b] == -1:
                    entry[0][limb.part_b] = id_b
                elif entry[0][limb.part_b] == id_b and entry[0][limb.part_a] == -1:
                    entry[0][limb.part_a] = id_a
            continue
        joined = False
        for entry in entries if limb_id else ():
            if entry[0][limb.part_a] == id_a:
                entry[0][limb.part_b] = id_b
                entry[1] += all_peaks[id_b, 2] + score
                entry[2] += 1
                joined = True
        if not joined:
            ids = [-1] * NUM_KEYPOINTS
            ids[limb.part_a], ids[limb.part_b] = id_a, id_b
            entries.append([ids, all_peaks[id_a, 2] + all_peaks[id_b, 2] + score, 2])


def _people(entries: list, all_peaks: np.ndarray) -> np.ndarray:
    kept = [entry for entry in entries
            if entry[2] >= MIN_PARTS and entry[1] / entry[2] >= MIN_MEAN_SCORE]
    people = np.zeros((len(kept), NUM_KEYPOINTS, 3), dtype=np.float32)
    for row, (ids, _, _) in enumerate(kept):
        for part, peak_id in enumerate(ids):
            if peak_id >= 0:
                people[row, part] = all_peaks[peak_id, :3]
    return people

"""The decoder's steps alone on hand-built arrays: find_peaks, score_limbs, group_people, params."""

from __future__ import annotations

import numpy as np
import pytest

from stages.postprocess import DecoderParams, find_peaks, group_people, score_limbs
from stages.postprocess.limbs import candidate_pairs, line_integrals, match_greedy, match_optimal
from stages.postprocess.peaks import local_maxima
from stages.skeleton import LIMBS, NUM_PAFS, keypoint_index, limb_index

SIGMA_CELLS = 7.0 / 8.0


def gaussian(height: int, width: int, x: float, y: float, sigma: float = SIGMA_CELLS) -> np.ndarray:
    rows, cols = np.mgrid[0:height, 0:width]
    return np.exp(-((cols - x) ** 2 + (rows - y) ** 2) / (2 * sigma ** 2)).astype(np.float32)


def peaks_of(parts_xy: list[tuple[int, float, float]]) -> np.ndarray:
    """peaks (K,4) from (part, x_map, y_map), score 1, sorted by part as find_peaks returns."""
    rows = sorted((float(p), x, y, 1.0) for p, x, y in parts_xy)
    return np.array(rows, dtype=np.float32).reshape(-1, 4)


def paf_along(pafs: np.ndarray, limb_id: int, start, end, radius: float = 1.0) -> None:
    """Write a unit-vector field for LIMBS[limb_id] from start to end (map cells) into pafs."""
    limb = LIMBS[limb_id]
    rows, cols = np.mgrid[0:pafs.shape[1], 0:pafs.shape[2]]
    start, end = np.asarray(start, float), np.asarray(end, float)
    length = np.linalg.norm(end - start)
    unit = (end - start) / length
    along = np.clip((cols - start[0]) * unit[0] + (rows - start[1]) * unit[1], 0, length)
    near = np.hypot(cols - start[0] - along * unit[0], rows - start[1] - along * unit[1]) <= radius
    pafs[limb.paf_x][near] = unit[0]
    pafs[limb.paf_y][near] = unit[1]


# ---------------------------------------------------------------- find_peaks

@pytest.mark.parametrize("x, y", [(5.0, 4.0), (5.3, 4.6), (6.45, 3.55), (2.12, 7.81)])
def test_gaussian_fit_recovers_subpixel_position(x, y):
    peaks = find_peaks(gaussian(10, 12, x, y)[None])
    assert peaks.shape == (1, 4)
    assert peaks[0, 1] == pytest.approx(x, abs=0.01)
    assert peaks[0, 2] == pytest.approx(y, abs=0.01)


def test_refine_methods_rank_as_expected():
    maps = gaussian(10, 12, 5.3, 4.6)[None]
    error = {method: np.hypot(*(find_peaks(maps, refine=method)[0, 1:3] - (5.3, 4.6)))
             for method in ("gaussian", "quadratic", "none")}
    assert error["gaussian"] < 0.01 < error["quadratic"] < error["none"]
    assert tuple(find_peaks(maps, refine="none")[0, 1:3]) == (5.0, 5.0)


@pytest.mark.parametrize("x, y", [(-0.3, 4.2), (11.35, 3.0), (4.0, -0.4), (6.2, 9.45)])
def test_peaks_on_the_border_use_the_other_axis_curvature(x, y):
    peaks = find_peaks(gaussian(10, 12, x, y)[None])
    assert len(peaks) == 1
    assert np.hypot(peaks[0, 1] - x, peaks[0, 2] - y) < 0.05


def test_corner_peak_uses_the_typical_curvature_of_other_peaks():
    maps = np.maximum(gaussian(10, 12, -0.3, -0.2), gaussian(10, 12, 6.0, 5.0))[None]
    corner = find_peaks(maps)[0]
    assert np.hypot(corner[1] + 0.3, corner[2] + 0.2) < 0.05


def test_plateau_gives_exactly_one_peak():
    maps = np.zeros((1, 6, 6), np.float32)
    maps[0, 2, 2:4] = 0.7          # two equal neighbours
    maps[0, 4:6, 0] = 0.5          # two equal neighbours on the border, vertically
    peaks = find_peaks(maps)
    assert len(peaks) == 2
    assert peaks[0, 1] == pytest.approx(2.5) and peaks[0, 2] == pytest.approx(2.0)


def test_threshold_and_channels():
    maps = np.stack([gaussian(8, 8, 2, 2) * 0.09, gaussian(8, 8, 5, 5), gaussian(8, 8, 1, 6)])
    peaks = find_peaks(maps, threshold=0.1)
    assert peaks[:, 0].tolist() == [1.0, 2.0]
    assert peaks[:, 3] == pytest.approx([1.0, 1.0], abs=1e-6)
    assert len(find_peaks(maps, threshold=0.05)) == 3


def test_local_maxima_does_not_touch_input_and_matches_brute_force():
    rng = np.random.default_rng(3)
    maps = rng.random((3, 9, 11)).astype(np.float32)
    before = maps.copy()
    mask = local_maxima(maps, 0.2)
    assert np.array_equal(maps, before)
    padded = np.pad(maps, ((0, 0), (1, 1), (1, 1)), constant_values=-1)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(1, 2))
    expected = (maps == windows.max(axis=(-1, -2))) & (maps > 0.2)   # no ties in random data
    assert np.array_equal(mask, expected)


def test_find_peaks_same_on_torch_tensors():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    maps = np.stack([gaussian(20, 24, *rng.uniform(0, 20, 2)) for _ in range(5)])
    assert np.array_equal(find_peaks(torch.from_numpy(maps)), find_peaks(maps))


# ---------------------------------------------------------------- score_limbs

def test_line_integral_of_aligned_and_reversed_field():
    pafs = np.zeros((NUM_PAFS, 12, 16), np.float32)
    paf_along(pafs, 0, (2, 3), (10, 7))
    channels = np.array([[LIMBS[0].paf_x, LIMBS[0].paf_y]] * 3)
    starts = np.array([[2, 3], [10, 7], [2, 9]], np.float32)
    ends = np.array([[10, 7], [2, 3], [10, 9]], np.float32)
    alignment, aligned = line_integrals(pafs, starts, ends, channels, 10, 0.05)
    assert alignment[0] == pytest.approx(1.0, abs=1e-5) and aligned[0] == 10
    assert alignment[1] == pytest.approx(-1.0, abs=1e-5) and aligned[1] == 0
    assert aligned[2] < 10 and alignment[2] < 0.5


def test_score_limbs_pairs_side_by_side_limbs_correctly():
    limb_id = limb_index("r_shoulder-r_elbow")
    pafs = np.zeros((NUM_PAFS, 20, 20), np.float32)
    paf_along(pafs, limb_id, (3, 4), (3, 10))
    paf_along(pafs, limb_id, (8, 4), (8, 10))
    shoulder, elbow = keypoint_index("r_shoulder"), keypoint_index("r_elbow")
    peaks = peaks_of([(shoulder, 3, 4), (shoulder, 8, 4), (elbow, 3, 10), (elbow, 8, 10)])
    connections = score_limbs(pafs, peaks, DecoderParams())
    pairs = {(int(a), int(b)) for _, a, b, _ in connections}
    assert connections[:, 0].tolist() == [limb_id, limb_id]
    assert pairs == {(0, 2), (1, 3)}
    assert np.all(connections[:, 3] > 0.9)


def test_score_limbs_without_field_finds_nothing():
    peaks = peaks_of([(1, 3, 4), (2, 6, 4), (5, 0, 4)])
    assert score_limbs(np.zeros((NUM_PAFS, 10, 10), np.float32), peaks).shape == (0, 4)
    assert score_limbs(np.zeros((NUM_PAFS, 10, 10), np.float32), peaks_of([])).shape == (0, 4)


def test_long_limbs_are_penalised():
    limb_id = limb_index("neck-r_hip")
    pafs = np.zeros((NUM_PAFS, 40, 20), np.float32)
    paf_along(pafs, limb_id, (5, 1), (5, 17))
    peaks = peaks_of([(1, 5, 1), (8, 5, 17)])
    normal = score_limbs(pafs, peaks, DecoderParams())                     # 16 < 0.5 * 40
    strict = score_limbs(pafs, peaks, DecoderParams(long_limb_fraction=0.3))  # 16 > 0.3 * 40
    assert normal[0, 3] == pytest.approx(1.0, abs=1e-5)
    assert len(strict) == 1 and strict[0, 3] == pytest.approx(1.0 + 0.3 * 40 / 16 - 1, abs=1e-5)


def test_optimal_matching_resolves_collinear_limbs_that_greedy_gets_wrong():
    # two forearms on one line: elbow0 -> wrist0, gap, elbow1 -> wrist1; the long candidate
    # elbow0 -> wrist1 scores best alone, but the two short ones together score more
    limb_id = limb_index("r_elbow-r_wrist")
    pairs = np.array([[limb_id, 0, 2], [limb_id, 0, 3], [limb_id, 1, 3]])
    scores = np.array([0.90, 0.95, 0.93])
    greedy = match_greedy(pairs, scores)
    optimal = match_optimal(pairs, scores)
    assert [(int(a), int(b)) for _, a, b, _ in greedy] == [(0, 3)]
    assert [(int(a), int(b)) for _, a, b, _ in optimal] == [(1, 3), (0, 2)]
    assert optimal[:, 3] == pytest.approx([0.93, 0.90])


def test_score_limbs_same_on_torch_tensors():
    torch = pytest.importorskip("torch")
    from benchmarks.synthetic import degrade_maps, make_scene

    scene = make_scene(21, 8)
    heatmaps, pafs = degrade_maps(scene.heatmaps, scene.pafs, 0)   # noisy: no tied scores
    peaks = find_peaks(heatmaps[:18])
    expected = score_limbs(pafs, peaks)
    assert len(expected) > 50
    np.testing.assert_allclose(score_limbs(torch.from_numpy(pafs), peaks), expected,
                               rtol=0, atol=1e-5)


def test_candidate_pairs_cover_every_combination():
    peaks = peaks_of([(1, 0, 0), (2, 1, 1), (2, 2, 2), (5, 3, 3)])
    pairs = candidate_pairs(peaks)
    assert {tuple(row) for row in pairs.tolist()} == {(0, 0, 1), (0, 0, 2), (1, 0, 3)}



def test_candidate_pairs_in_limb_then_peak_order_like_a_plain_loop():
    rng = np.random.default_rng(3)
    peaks = peaks_of([(int(part), 0, 0) for part in rng.integers(0, 18, 40)])
    expected = [(limb_id, a, b) for limb_id, limb in enumerate(LIMBS)
                for a in np.flatnonzero(peaks[:, 0] == limb.part_a).tolist()
                for b in np.flatnonzero(peaks[:, 0] == limb.part_b).tolist()]
    assert candidate_pairs(peaks).tolist() == [list(row) for row in expected]


def best_total(pairs: list[tuple[int, int]], scores: list[float]) -> float:
    """The largest total score of a one-to-one subset, by trying every subset (a few pairs)."""
    best = 0.0
    for mask in range(1 << len(pairs)):
        chosen = [i for i in range(len(pairs)) if mask >> i & 1]
        ends_a, ends_b = [pairs[i][0] for i in chosen], [pairs[i][1] for i in chosen]
        if len(set(ends_a)) == len(chosen) == len(set(ends_b)):
            best = max(best, sum(scores[i] for i in chosen))
    return best


@pytest.mark.parametrize("seed", range(6))
def test_optimal_matching_is_best_per_limb_whether_contested_or_not(seed):
    rng = np.random.default_rng(seed)
    rows, scores = [], []
    for limb_id in range(0, 19, 2):                     # some limbs share a peak, some do not
        peaks_a, peaks_b = 10 * limb_id + np.arange(3), 10 * limb_id + 5 + np.arange(3)
        kept = [(a, b) for a in peaks_a for b in peaks_b if rng.random() < 0.35]
        rows += [(limb_id, a, b) for a, b in kept]
        scores += rng.uniform(0.05, 1.0, len(kept)).tolist()
    pairs, scores = np.array(rows, dtype=np.int64).reshape(-1, 3), np.array(scores)
    connections = match_optimal(pairs, scores)
    assert connections[:, 0].tolist() == sorted(connections[:, 0].tolist())
    for limb_id in np.unique(pairs[:, 0]).tolist():
        mine = connections[connections[:, 0] == limb_id]
        assert len(set(mine[:, 1].tolist())) == len(mine) == len(set(mine[:, 2].tolist()))
        assert mine[:, 3].tolist() == sorted(mine[:, 3].tolist(), reverse=True)
        of_limb = pairs[:, 0] == limb_id
        candidates = [(int(a), int(b)) for a, b in pairs[of_limb, 1:]]
        assert mine[:, 3].sum() == pytest.approx(best_total(candidates, scores[of_limb].tolist()),
                                                 rel=1e-6)

# ---------------------------------------------------------------- group_people

def chain_connections(links: list[tuple[str, int, int]]) -> np.ndarray:
    rows = [(limb_index(name), a, b, 1.0) for name, a, b in links]
    return np.array(sorted(rows), dtype=np.float32).reshape(-1, 4)


def test_group_people_builds_and_filters():
    # peaks: 0 neck, 1 r_shoulder, 2 r_elbow, 3 r_wrist; 4 neck, 5 l_shoulder (a 2-part person)
    peaks = peaks_of([(1, 0, 0), (2, 0, 0), (3, 0, 0), (4, 0, 0), (1, 9, 9), (5, 9, 9)])
    peaks = peaks[np.argsort(peaks[:, 0], kind="stable")]
    connections = chain_connections([("neck-r_shoulder", 0, 1), ("r_shoulder-r_elbow", 1, 3),
                                     ("r_elbow-r_wrist", 3, 5), ("neck-l_shoulder", 2, 4)])
    members = group_people(connections, peaks, DecoderParams(min_parts=3))
    assert members.shape == (1, 18)
    assert members[0, [1, 2, 3, 4]].tolist() == [0, 1, 3, 5]
    assert group_people(connections, peaks, DecoderParams(min_parts=2)).shape == (2, 18)


def test_group_people_merges_fragments_and_ear_limbs_only_join():
    # r_eye-r_ear starts a fragment (no nose); r_shoulder-r_ear then merges it into the body
    peaks = peaks_of([(1, 0, 0), (2, 0, 0), (14, 0, 0), (16, 0, 0), (17, 5, 5), (5, 5, 5)])
    connections = chain_connections([("neck-r_shoulder", 0, 1), ("r_eye-r_ear", 4, 5),
                                     ("r_shoulder-r_ear", 1, 5), ("l_shoulder-l_ear", 2, 3)])
    members = group_people(connections, peaks, DecoderParams(min_parts=1))
    assert members.shape == (1, 18)              # the l_shoulder-l_ear pair starts nobody
    assert members[0, [1, 2, 14, 16]].tolist() == [0, 1, 4, 5]


def test_group_people_drops_low_scores():
    peaks = peaks_of([(1, 0, 0), (2, 0, 0), (3, 0, 0)])
    peaks[:, 3] = 0.1
    connections = chain_connections([("neck-r_shoulder", 0, 1), ("r_shoulder-r_elbow", 1, 2)])
    connections[:, 3] = 0.1
    # (3 peaks + 2 limbs) x 0.1 over 3 parts = 0.167 per part
    assert len(group_people(connections, peaks, DecoderParams(min_mean_score=0.16))) == 1
    assert len(group_people(connections, peaks, DecoderParams(min_mean_score=0.17))) == 0


def test_group_people_empty():
    assert group_people(np.zeros((0, 4), np.float32), peaks_of([])).shape == (0, 18)


# ---------------------------------------------------------------- DecoderParams

def test_params_defaults_are_openpose_but_two_chosen_by_coco_ap():
    params = DecoderParams()
    assert (params.paf_threshold, params.paf_samples) == (0.05, 10)
    assert (params.min_parts, params.min_mean_score) == (3, 0.4)
    # chosen on the even COCO ids (benchmarks.accuracy_tune, issue 14); OpenPose: 0.1, 0.8
    assert (params.peak_threshold, params.min_aligned_fraction) == (0.075, 0.5)


@pytest.mark.parametrize("field, value", [
    ("peak_threshold", -0.1), ("peak_threshold", "high"), ("paf_samples", 1),
    ("paf_samples", 2.5), ("min_parts", 0), ("min_parts", 19), ("min_aligned_fraction", 1.5),
    ("long_limb_fraction", 0.0), ("refine", "bicubic"), ("min_mean_score", -1),
    ("matching", "hungarian"), ("split_close_peaks", "yes"), ("split_close_peaks", 1),
    ("close_peak_excess", 0.0), ("close_peak_excess", 11), ("close_peak_min_distance", 0.5),
    ("close_peak_min_distance", 100), ("close_peak_fit_error", 1.5), ("fragment_max_parts", 18), ("fragment_max_parts", 1.5),
    ("fragment_join_distance", -0.1), ("fragment_duplicate_distance", 11),
    ("fragment_min_alignment", 1.5),
])
def test_params_reject_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        DecoderParams(**{field: value})


def test_params_are_frozen():
    with pytest.raises(AttributeError):
        DecoderParams().peak_threshold = 0.5

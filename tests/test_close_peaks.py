"""Close peaks: a second same-type peak hidden in a grid peak's neighbourhood, found or not."""

from __future__ import annotations

import numpy as np
import pytest

from stages.postprocess import decode, find_peaks
from stages.postprocess.close_peaks import split_close_peaks
from benchmarks.synthetic import label_maps

NET_SIZE = (96, 128)
STRIDE = 8


def part_maps(points_px, heights=None, sigma_px: float = 7.0) -> np.ndarray:
    """(1,h,w) max-merged Gaussians (the training labels' shape) at net-input pixels."""
    if not points_px:
        return np.zeros((1, NET_SIZE[0] // STRIDE, NET_SIZE[1] // STRIDE), np.float32)
    rows, cols = NET_SIZE[0] // STRIDE, NET_SIZE[1] // STRIDE
    cell_y, cell_x = np.mgrid[0:rows, 0:cols] * STRIDE + (STRIDE - 1) / 2
    heights = heights or [1.0] * len(points_px)
    maps = [height * np.exp(-((cell_x - x) ** 2 + (cell_y - y) ** 2) / (2 * sigma_px ** 2))
            for (x, y), height in zip(points_px, heights)]
    return np.max(maps, axis=0)[None].astype(np.float32)


# Other parts' peaks, each alone: they show the split how wide one peak is (as a real image's
# other keypoints do), and that nothing is split unasked.
CONTEXT = [[(15.0, 15.0)], [(110.0, 20.0)], [(20.0, 80.0)], [(100.0, 85.0)]]


def with_context(heatmaps: np.ndarray) -> np.ndarray:
    return np.concatenate([heatmaps] + [part_maps(points) for points in CONTEXT])


def peaks_px(heatmaps: np.ndarray, **options) -> np.ndarray:
    """Net-input pixels of the peaks of channel 0, found with the context channels."""
    maps = with_context(heatmaps)
    peaks = split_close_peaks(maps, find_peaks(maps, 0.1), 0.1, **options)
    assert peaks[:, 0].tolist().count(0) == len(peaks) - len(CONTEXT)
    return peaks[peaks[:, 0] == 0, 1:3] * STRIDE + (STRIDE - 1) / 2


def assert_found(found: np.ndarray, truth, tolerance_px: float) -> None:
    assert len(found) == len(truth)
    for point in truth:
        assert np.hypot(*(found - point).T).min() <= tolerance_px, (point, found)


@pytest.mark.parametrize("second", [(60.0, 40.0), (57.0, 47.0), (52.5, 48.5), (61.0, 37.0)])
def test_two_peaks_10_px_apart_are_both_found(second):
    truth = [(51.0, 41.0), second]                    # 10 px apart, one grid peak between them
    heatmaps = part_maps(truth)
    assert len(find_peaks(heatmaps, 0.1)) == 1        # the grid alone sees one peak
    assert_found(peaks_px(heatmaps), truth, tolerance_px=1.5)


def test_a_weaker_neighbour_is_found_too():
    truth = [(51.0, 41.0), (60.0, 45.0)]
    assert_found(peaks_px(part_maps(truth, heights=[0.9, 0.5])), truth, tolerance_px=2.5)


@pytest.mark.parametrize("points", [
    [(51.0, 41.0)],                                   # one peak
    [(51.0, 41.0), (71.0, 41.0)],                     # two peaks the grid separates already
    [(30.0, 30.0), (44.0, 36.0), (100.0, 70.0)],      # 15 px apart: each its own grid peak
    [(3.0, 50.0)],                                    # at the border
])
def test_separate_peaks_are_left_as_they_are(points):
    heatmaps = with_context(part_maps(points))
    plain = find_peaks(heatmaps, 0.1)
    split = split_close_peaks(heatmaps, plain, 0.1)
    np.testing.assert_array_equal(split, plain)


def test_noise_and_blur_do_not_invent_peaks():
    rng = np.random.default_rng(3)
    from scipy.ndimage import gaussian_filter

    centres = [(20.0 + 25 * i, 20.0 + 14 * (i % 4)) for i in range(5)]
    heatmaps = gaussian_filter(with_context(part_maps(centres)), (0, 0.5, 0.5)) * 0.8
    heatmaps = np.clip(heatmaps + rng.normal(0, 0.02, heatmaps.shape), 0, 1).astype(np.float32)
    plain = find_peaks(heatmaps, 0.1)
    assert len(plain) == len(centres) + len(CONTEXT)
    np.testing.assert_array_equal(split_close_peaks(heatmaps, plain, 0.1), plain)


def test_min_distance_and_excess_limit_the_split():
    truth = [(51.0, 41.0), (60.0, 40.0)]              # 9 px apart
    heatmaps = part_maps(truth)
    assert len(peaks_px(heatmaps, min_distance=8 / STRIDE)) == 2
    assert len(peaks_px(heatmaps, min_distance=12 / STRIDE)) == 1
    assert len(peaks_px(heatmaps, excess=5.0)) == 1
    assert len(peaks_px(heatmaps, fit_error=0.0)) == 1


def test_parts_stay_grouped_and_a_torch_tensor_gives_the_same_peaks():
    torch = pytest.importorskip("torch")
    heatmaps = np.concatenate([part_maps([(51.0, 41.0), (60.0, 40.0)]), part_maps([(20.0, 20.0)]),
                               part_maps([(90.0, 60.0), (99.0, 62.0)]), part_maps([(20.0, 80.0)])])
    peaks = split_close_peaks(heatmaps, find_peaks(heatmaps, 0.1), 0.1)
    assert peaks[:, 0].tolist() == [0, 0, 1, 2, 2, 3]
    on_torch = split_close_peaks(torch.from_numpy(heatmaps),
                                 find_peaks(torch.from_numpy(heatmaps), 0.1), 0.1)
    np.testing.assert_allclose(on_torch, peaks, atol=1e-4)


def test_two_close_people_are_both_complete_only_with_the_split():
    """Two people side by side, every same-type keypoint pair 10 px apart."""
    from tests.test_person_score import person_at

    first = person_at((60, 40), height_px=60, seed=8)
    second = first.copy()
    second[:, 0] += 10.0
    heatmaps, pafs = label_maps(np.stack([first, second]), (96, 128))
    complete = {split: sum(int((person[:, 2] > 0).sum() == 18)
                           for person in decode(heatmaps, pafs, split_close_peaks=split))
                for split in (False, True)}
    assert complete[True] == 2 > complete[False]

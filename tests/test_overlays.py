"""Heatmap and PAF overlays: placement on the frame, colours, input left alone, errors."""

from __future__ import annotations

import numpy as np
import pytest

from stages.overlays import draw_heatmap, draw_paf
from stages.skeleton import LIMBS, keypoint_index, limb_index

MAP_H, MAP_W = 12, 16


def grey_frame(height: int, width: int) -> np.ndarray:
    return np.full((height, width, 3), 100, np.uint8)


def frame_position(gx: float, gy: float, scale: float, pad=(0, 0), stride: int = 8):
    top, left = pad
    return ((stride * gx + (stride - 1) / 2 - left) / scale,
            (stride * gy + (stride - 1) / 2 - top) / scale)


def hot_cell_heatmaps(gx: int, gy: int, part: int) -> np.ndarray:
    heatmaps = np.zeros((19, MAP_H, MAP_W), np.float32)
    heatmaps[18] = 1.0
    heatmaps[part, gy, gx] = 1.0
    heatmaps[18, gy, gx] = 0.0
    return heatmaps


def centre_of_change(image: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """(x, y) centroid of how much ``image`` differs from ``baseline``, pixel by pixel."""
    change = np.abs(image.astype(float) - baseline).sum(axis=2)
    rows, cols = np.mgrid[0:change.shape[0], 0:change.shape[1]]
    return np.array([(cols * change).sum(), (rows * change).sum()]) / change.sum()


@pytest.mark.parametrize("scale, pad, frame_size", [
    (1.0, (0, 0), (96, 128)),       # net input = frame
    (0.5, (0, 0), (192, 256)),      # frame twice the net input
    (2.0, (0, 0), (48, 64)),        # frame half the net input
    (0.5, (8, 16), (176, 224)),     # padding before the frame
])
def test_heatmap_peak_lands_where_the_cell_maps_on_the_frame(scale, pad, frame_size):
    part = keypoint_index("l_wrist")
    image = grey_frame(*frame_size)
    out = draw_heatmap(image, hot_cell_heatmaps(9, 4, part), part, scale, pad)
    cold = draw_heatmap(image, np.zeros((19, MAP_H, MAP_W), np.float32), part, scale, pad)
    expected = frame_position(9, 4, scale, pad)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.hypot(*(centre_of_change(out, cold) - expected)) <= 0.5


def test_heatmap_channel_choice_and_background():
    part = keypoint_index("nose")
    heatmaps = hot_cell_heatmaps(5, 5, part)
    image = grey_frame(96, 128)
    nose, neck = draw_heatmap(image, heatmaps, part, 1.0), draw_heatmap(image, heatmaps, 1, 1.0)
    background = draw_heatmap(image, heatmaps, 18, 1.0)
    x, y = (int(round(v)) for v in frame_position(5, 5, 1.0))
    assert nose[y, x, 2] > nose[y, x, 0]          # hot: red over blue
    assert neck[y, x, 0] > neck[y, x, 2]          # cold: blue over red
    assert background[y, x, 0] > background[y, x, 2] and background[5, 5, 2] > background[5, 5, 0]


def test_overlays_never_modify_the_input():
    image = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    before = image.copy()
    heatmaps = np.random.default_rng(1).random((19, MAP_H, MAP_W)).astype(np.float32)
    pafs = np.random.default_rng(2).normal(0, 0.7, (38, MAP_H, MAP_W)).astype(np.float32)
    heatmaps_before, pafs_before = heatmaps.copy(), pafs.copy()
    outputs = [draw_heatmap(image, heatmaps, 3, 1.0), draw_paf(image, pafs, 4, 1.0),
               draw_paf(image, pafs, 4, 0.25)]
    assert np.array_equal(image, before)
    assert np.array_equal(heatmaps, heatmaps_before) and np.array_equal(pafs, pafs_before)
    assert all(out is not image and not np.array_equal(out, image) for out in outputs)


def test_alpha_zero_leaves_the_frame_visible_unchanged():
    image = grey_frame(96, 128)
    heatmaps = hot_cell_heatmaps(3, 3, 0)
    assert np.array_equal(draw_heatmap(image, heatmaps, 0, 1.0, alpha=0.0), image)
    pafs = np.zeros((38, MAP_H, MAP_W), np.float32)
    assert np.array_equal(draw_paf(image, pafs, 0, 1.0), image)   # no field: bare frame


def test_paf_direction_sets_the_hue_and_limb_picks_the_channels():
    limb_id = limb_index("neck-r_shoulder")
    limb = LIMBS[limb_id]
    image = grey_frame(96, 128)
    right, left = (np.zeros((38, MAP_H, MAP_W), np.float32) for _ in range(2))
    right[limb.paf_x, 4:7, 3:12] = 1.0
    left[limb.paf_x, 4:7, 3:12] = -1.0
    x, y = (int(round(v)) for v in frame_position(7.3, 5.4, 1.0))    # between the arrows
    pointing_right = draw_paf(image, right, limb_id, 1.0)[y, x].astype(int)
    pointing_left = draw_paf(image, left, limb_id, 1.0)[y, x].astype(int)
    assert pointing_right[2] > pointing_right[0] + 50     # red
    assert pointing_left[0] > pointing_left[2] + 50        # cyan: blue/green over red
    other_limb = draw_paf(image, right, limb_index("neck-l_shoulder"), 1.0)
    assert np.array_equal(other_limb, image)
    far_x, far_y = (int(round(v)) for v in frame_position(14, 10, 1.0))
    assert np.array_equal(draw_paf(image, right, limb_id, 1.0)[far_y, far_x], image[far_y, far_x])


def test_overlays_accept_torch_tensors():
    torch = pytest.importorskip("torch")
    heatmaps = hot_cell_heatmaps(6, 2, 4)
    pafs = np.random.default_rng(5).normal(0, 0.5, (38, MAP_H, MAP_W)).astype(np.float32)
    image = grey_frame(96, 128)
    assert np.array_equal(draw_heatmap(image, torch.from_numpy(heatmaps), 4, 1.0),
                          draw_heatmap(image, heatmaps, 4, 1.0))
    assert np.array_equal(draw_paf(image, torch.from_numpy(pafs), 2, 1.0),
                          draw_paf(image, pafs, 2, 1.0))


@pytest.mark.parametrize("call, message", [
    (lambda img, h, p: draw_heatmap(img, h, 19, 1.0), r"part_index .* \[0, 18\]"),
    (lambda img, h, p: draw_heatmap(img, h, -1, 1.0), "part_index"),
    (lambda img, h, p: draw_paf(img, p, 19, 1.0), r"limb_index .* \[0, 18\]"),
    (lambda img, h, p: draw_heatmap(img, h[0], 0, 1.0), r"heatmaps must have shape"),
    (lambda img, h, p: draw_heatmap(img.astype(np.float32), h, 0, 1.0), "uint8"),
    (lambda img, h, p: draw_heatmap(img[:, :, 0], h, 0, 1.0), "HxWx3"),
    (lambda img, h, p: draw_paf(img, p, 0, 0.0), "scale"),
    (lambda img, h, p: draw_heatmap(img, h, 0, 1.0, alpha=1.5), "alpha"),
    (lambda img, h, p: draw_paf(img, p[:10], 0, 1.0), "channels"),
])
def test_bad_arguments_raise_value_errors(call, message):
    image = grey_frame(96, 128)
    heatmaps = np.zeros((19, MAP_H, MAP_W), np.float32)
    pafs = np.zeros((38, MAP_H, MAP_W), np.float32)
    with pytest.raises(ValueError, match=message):
        call(image, heatmaps, pafs)

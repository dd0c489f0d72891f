"""decode() end to end: accuracy against synthetic ground truth, degenerate input, the API."""

from __future__ import annotations

import numpy as np
import pytest

from stages.postprocess import DecoderParams, decode, to_frame
from benchmarks.synthetic import NET_SIZE, degrade_maps, label_maps, make_scene, random_pose, score_scene, summarize

MAP_SHAPE = (NET_SIZE[0] // 8, NET_SIZE[1] // 8)
SCENE_SEEDS = range(45)            # people counts cycle 1..15: 45 scenes, ~350 people


def people_count(seed: int) -> int:
    return 1 + seed % 15


@pytest.fixture(scope="module")
def scenes():
    return [make_scene(seed, people_count(seed)) for seed in SCENE_SEEDS]


def standing_person(neck_xy, height_px: float = 120.0, seed: int = 0) -> np.ndarray:
    """Keypoints (18,3) of a random pose with every part labelled, neck at ``neck_xy``."""
    pose = random_pose(np.random.default_rng(seed))
    person = np.ones((18, 3))
    person[:, :2] = pose[:, :2] * height_px + neck_xy
    return person


# ---------------------------------------------------------------- accuracy

def test_accuracy_on_ground_truth_scenes(scenes):
    summary = summarize(score_scene(decode(s.heatmaps, s.pafs), s.keypoints) for s in scenes)
    assert summary["people_true"] > 300
    assert summary["complete_fraction"] >= 0.97
    assert summary["mean_error_px"] <= 2.0
    assert summary["false_fraction"] <= 0.03


def test_accuracy_on_network_like_maps(scenes):
    """Blurred, weaker, noisy maps: the sub-pixel fit is no longer exact but stays accurate."""
    results = []
    for seed, scene in zip(SCENE_SEEDS, scenes):
        heatmaps, pafs = degrade_maps(scene.heatmaps, scene.pafs, seed)
        results.append(score_scene(decode(heatmaps, pafs), scene.keypoints))
    summary = summarize(results)
    assert summary["complete_fraction"] >= 0.9
    assert summary["mean_error_px"] <= 1.0
    assert summary["false_fraction"] <= 0.03


def test_at_least_as_accurate_as_the_reference_decoder():
    reference_decoder = pytest.importorskip("benchmarks.reference_decoder")
    scenes = [make_scene(500 + seed, 10) for seed in range(6)]
    ours = summarize(score_scene(decode(s.heatmaps, s.pafs), s.keypoints) for s in scenes)
    reference = summarize(score_scene(reference_decoder.reference_decode(s.heatmaps, s.pafs),
                                      s.keypoints) for s in scenes)
    assert ours["complete_fraction"] >= reference["complete_fraction"]
    assert ours["mean_error_px"] <= reference["mean_error_px"]
    assert ours["false_people"] <= reference["false_people"]


def test_one_person():
    keypoints = standing_person((250.0, 120.0))[None]
    heatmaps, pafs = label_maps(keypoints)
    people = decode(heatmaps, pafs)
    assert people.shape == (1, 18, 3) and people.dtype == np.float32
    assert np.abs(people[0, :, :2] - keypoints[0, :, :2]).max() < 0.5
    assert np.all(people[0, :, 2] > 0.5)


@pytest.mark.parametrize("neck_xy", [(1.0, 150.0), (494.5, 200.0), (250.0, 0.5), (3.0, 1.0)])
def test_people_touching_the_border(neck_xy):
    person = standing_person(neck_xy, seed=7)
    inside = ((person[:, 0] >= 0) & (person[:, 0] <= NET_SIZE[1] - 1)
              & (person[:, 1] >= 0) & (person[:, 1] <= NET_SIZE[0] - 1))
    person[~inside] = 0
    heatmaps, pafs = label_maps(person[None])
    score = score_scene(decode(heatmaps, pafs), person[None], max_error_px=10.0)
    neck = decode(heatmaps, pafs)[:, 1, :2]
    assert score.people_predicted >= 1
    assert np.min(np.hypot(*(neck - neck_xy).T)) < 1.0
    assert score.errors_px.mean() < 1.0


# ---------------------------------------------------------------- degenerate input

def test_empty_maps_give_no_people():
    people = decode(np.zeros((19, *MAP_SHAPE), np.float32), np.zeros((38, *MAP_SHAPE), np.float32))
    assert people.shape == (0, 18, 3) and people.dtype == np.float32


def test_all_ones_maps_do_not_crash():
    people = decode(np.ones((19, *MAP_SHAPE), np.float32), np.ones((38, *MAP_SHAPE), np.float32))
    assert people.ndim == 3 and people.shape[1:] == (18, 3) and len(people) <= 1
    assert np.all(np.isfinite(people))


@pytest.mark.parametrize("which, value", [("heatmaps", np.nan), ("pafs", np.inf)])
def test_nonfinite_maps_raise_a_clear_error(which, value):
    maps = {"heatmaps": np.zeros((19, 4, 5), np.float32), "pafs": np.zeros((38, 4, 5), np.float32)}
    maps[which][3, 1, 2] = value
    with pytest.raises(ValueError, match=f"{which} contain 1 NaN/inf"):
        decode(maps["heatmaps"], maps["pafs"])


@pytest.mark.parametrize("heat_shape, paf_shape, message", [
    ((18, 4, 5), (38, 4, 5), r"heatmaps must have shape \(19,h,w\), got \(18, 4, 5\)"),
    ((19, 4, 5), (38, 4), r"pafs must have shape \(38,h,w\), got \(38, 4\)"),
    ((1, 19, 4, 5), (1, 38, 4, 5), r"heatmaps must have shape"),
    ((19, 4, 5), (38, 4, 6), r"differ in map size"),
])
def test_wrong_shapes_are_named(heat_shape, paf_shape, message):
    with pytest.raises(ValueError, match=message):
        decode(np.zeros(heat_shape, np.float32), np.zeros(paf_shape, np.float32))


def test_tiny_maps():
    heatmaps = np.zeros((19, 1, 1), np.float32)
    heatmaps[:18] = 1.0
    assert decode(heatmaps, np.zeros((38, 1, 1), np.float32)).shape == (0, 18, 3)


# ---------------------------------------------------------------- API

def test_params_by_keyword_and_object(scenes):
    scene = scenes[14]
    default = decode(scene.heatmaps, scene.pafs)
    assert np.array_equal(decode(scene.heatmaps, scene.pafs, params=DecoderParams()), default)
    strict = decode(scene.heatmaps, scene.pafs, min_parts=18)
    assert len(strict) < len(default)
    assert np.all((strict[:, :, 2] > 0).sum(axis=1) == 18)
    assert np.array_equal(decode(scene.heatmaps, scene.pafs, params=DecoderParams(min_parts=18)),
                          strict)
    assert len(decode(scene.heatmaps, scene.pafs, peak_threshold=1.0)) == 0


def test_unknown_parameter_is_named():
    maps = np.zeros((19, 4, 5), np.float32), np.zeros((38, 4, 5), np.float32)
    with pytest.raises(ValueError, match="peak_treshold"):
        decode(*maps, peak_treshold=0.2)
    with pytest.raises(ValueError, match="paf_samples"):
        decode(*maps, paf_samples=0)
    with pytest.raises(ValueError, match="stride"):
        decode(*maps, stride=0)


def test_inputs_are_not_modified(scenes):
    scene = scenes[9]
    heatmaps, pafs = scene.heatmaps.copy(), scene.pafs.copy()
    decode(heatmaps, pafs)
    assert np.array_equal(heatmaps, scene.heatmaps) and np.array_equal(pafs, scene.pafs)


def test_stride_sets_the_cell_to_pixel_mapping(scenes):
    scene = scenes[5]
    at_8, at_4 = decode(scene.heatmaps, scene.pafs), decode(scene.heatmaps, scene.pafs, stride=4)
    present = at_8[:, :, 2] > 0
    cells = (at_8[present][:, :2] - 3.5) / 8
    assert np.allclose(at_4[present][:, :2], 4 * cells + 1.5, atol=1e-4)
    assert np.array_equal(at_4[:, :, 2], at_8[:, :, 2])


def test_torch_tensors_decode_like_numpy(scenes):
    torch = pytest.importorskip("torch")
    for scene in scenes[:15:4]:
        expected = decode(scene.heatmaps, scene.pafs)
        tensors = torch.from_numpy(scene.heatmaps), torch.from_numpy(scene.pafs)
        assert np.array_equal(decode(*tensors), expected)
        half = decode(tensors[0].half(), tensors[1].half())     # fp16 network output
        assert len(half) == len(expected)


def test_to_frame_maps_back_and_keeps_missing_zero():
    people = np.zeros((2, 18, 3), np.float32)
    people[0, 1] = (103.5, 55.5, 0.9)
    people[1, 4] = (8.0, 12.0, 0.5)
    frame = to_frame(people, scale=0.5, pad=(4, 2))
    assert frame[0, 1].tolist() == [203.0, 103.0, pytest.approx(0.9)]
    assert frame[1, 4].tolist() == [12.0, 16.0, 0.5]
    assert np.count_nonzero(frame[:, :, 2]) == 2 and np.count_nonzero(frame) == 6
    assert people[0, 1, 0] == 103.5                          # input untouched
    assert to_frame(np.zeros((0, 18, 3)), 1.0).shape == (0, 18, 3)
    with pytest.raises(ValueError, match="scale"):
        to_frame(people, scale=0.0)
    with pytest.raises(ValueError, match="shape"):
        to_frame(np.zeros((2, 17, 3)), scale=1.0)

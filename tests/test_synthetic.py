"""The ground-truth generator and the evaluation that the decoder's accuracy tests rely on."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.synthetic import (
    CROWD, NET_SIZE, degrade_maps, label_maps, make_crowd, make_scene, random_people, score_scene, summarize,
)
from stages.skeleton import LIMBS, NUM_KEYPOINTS, keypoint_index, limb_index

HEIGHT, WIDTH = NET_SIZE


@pytest.fixture(scope="module")
def crowds():
    """Keypoints of 40 seeded scenes of 1-15 people."""
    return [random_people(np.random.default_rng(seed), 1 + seed % 15) for seed in range(40)]


def connected(labelled: np.ndarray) -> bool:
    start = int(np.flatnonzero(labelled)[0])
    reached, stack = {start}, [start]
    while stack:
        part = stack.pop()
        for limb in LIMBS:
            for a, b in ((limb.part_a, limb.part_b), (limb.part_b, limb.part_a)):
                if a == part and labelled[b] and b not in reached:
                    reached.add(b)
                    stack.append(b)
    return len(reached) == labelled.sum()


# ---------------------------------------------------------------- people

def test_scenes_are_seeded():
    first, again, other = make_scene(7, 5), make_scene(7, 5), make_scene(8, 5)
    assert np.array_equal(first.heatmaps, again.heatmaps)
    assert np.array_equal(first.keypoints, again.keypoints)
    assert not np.array_equal(first.keypoints, other.keypoints)


def test_people_are_plausible(crowds):
    people = np.concatenate(crowds)
    labelled = people[:, :, 2] > 0
    assert all(len(c) == 1 + seed % 15 for seed, c in enumerate(crowds))   # all could be placed
    xy = people[:, :, :2][labelled]
    assert np.all((xy >= 0) & (xy <= (WIDTH - 1, HEIGHT - 1)))
    assert np.all(people[~labelled] == 0)
    assert np.all(labelled.sum(axis=1) >= 3) and np.all(labelled[:, keypoint_index("neck")])
    assert all(connected(row) for row in labelled)
    # sizes: neck to the lower of the ankles spans a plausible share of a 40-200 px person
    both = labelled[:, keypoint_index("neck")] & labelled[:, keypoint_index("r_ankle")]
    span = people[both, keypoint_index("r_ankle"), 1] - people[both, keypoint_index("neck"), 1]
    assert 15 < span.min() and span.max() < 200 and np.ptp(span) > 80


def test_people_have_unlabelled_parts_overlaps_and_border_contact(crowds):
    people = np.concatenate(crowds)
    labelled = people[:, :, 2] > 0
    assert 0.05 < 1 - labelled.mean() < 0.4                 # some keypoints are not labelled
    assert (labelled.sum(axis=1) == NUM_KEYPOINTS).mean() > 0.1
    xy = np.where(labelled[..., None], people[:, :, :2], np.nan)
    near_border = np.nanmin(np.minimum(xy, (WIDTH - 1, HEIGHT - 1) - xy), axis=(1, 2)) < 8
    assert near_border.sum() >= 10
    overlapping = 0
    for crowd in crowds:
        boxes = [(p[p[:, 2] > 0, :2].min(0), p[p[:, 2] > 0, :2].max(0)) for p in crowd]
        overlapping += sum(np.all(np.minimum(hi1, hi2) > np.maximum(lo1, lo2))
                           for i, (lo1, hi1) in enumerate(boxes) for lo2, hi2 in boxes[i + 1:])
    assert overlapping >= 20


def test_same_parts_of_different_people_stay_apart(crowds):
    for crowd in crowds:
        for i, first in enumerate(crowd):
            for second in crowd[i + 1:]:
                both = (first[:, 2] > 0) & (second[:, 2] > 0)
                assert np.all(np.hypot(*(first[both, :2] - second[both, :2]).T) >= 16.0)


def test_crowds_are_many_small_people_with_same_parts_closer_than_two_cells():
    scenes = [make_crowd(seed) for seed in range(4)]
    assert all(len(scene.keypoints) == CROWD["num_people"] for scene in scenes)
    closest = []
    for scene in scenes:
        people = scene.keypoints
        labelled = people[:, :, 2] > 0
        head_to_toe = [np.ptp(person[person[:, 2] > 0, 1]) for person in people]
        assert max(head_to_toe) <= 120.0
        for part in range(NUM_KEYPOINTS):
            points = people[labelled[:, part], part, :2]
            distance = np.hypot(*(points[:, None] - points[None]).transpose(2, 0, 1))
            closest.extend(distance[np.triu_indices(len(points), 1)].tolist())
    closest = np.array(closest)
    assert closest.min() >= 10.0 and (closest < 16.0).sum() >= 10


# ---------------------------------------------------------------- label maps

def test_heatmaps_are_gaussians_at_cell_centres():
    keypoints = np.zeros((1, 18, 3))
    keypoints[0, 1] = (100.0, 60.0, 1)
    heatmaps, pafs = label_maps(keypoints)
    assert heatmaps.shape == (19, HEIGHT // 8, WIDTH // 8) and pafs.shape == (38, 46, 62)
    assert heatmaps.dtype == np.float32 == pafs.dtype
    for gx, gy in ((12, 7), (13, 7), (11, 6), (12, 8)):
        distance2 = (8 * gx + 3.5 - 100.0) ** 2 + (8 * gy + 3.5 - 60.0) ** 2
        assert heatmaps[1, gy, gx] == pytest.approx(np.exp(-distance2 / (2 * 7.0 ** 2)), rel=1e-5)
    assert heatmaps[1, 9, 14] == 0.0                        # exp(-4.9) < 0.01: cut
    assert np.count_nonzero(np.delete(heatmaps, [1, 18], axis=0)) == 0
    np.testing.assert_allclose(heatmaps[18], 1 - heatmaps[1], atol=1e-6)
    assert not pafs.any()                                    # one part, no limb


def test_heatmaps_max_merge_people():
    keypoints = np.zeros((2, 18, 3))
    keypoints[0, 0] = (100.0, 100.0, 1)
    keypoints[1, 0] = (116.0, 100.0, 1)
    merged = label_maps(keypoints)[0][0]
    alone = [label_maps(keypoints[i:i + 1])[0][0] for i in range(2)]
    np.testing.assert_array_equal(merged, np.maximum(*alone))


def test_pafs_are_unit_vectors_near_the_limb_and_averaged_where_limbs_overlap():
    keypoints = np.zeros((2, 18, 3))
    keypoints[0, 1] = (100 + 3.5, 40 + 3.5, 1)                 # neck at cell (12.5, 5)
    keypoints[0, 8] = (100 + 3.5, 200 + 3.5, 1)                # r_hip straight below
    limb = LIMBS[limb_index("neck-r_hip")]
    pafs = label_maps(keypoints[:1])[1]
    assert pafs[limb.paf_y, 10, 12] == pytest.approx(1.0) and pafs[limb.paf_x, 10, 12] == 0.0
    assert pafs[limb.paf_y, 10, 14] == 0.0                     # two cells away from the segment
    assert np.count_nonzero(np.delete(pafs, [limb.paf_x, limb.paf_y], axis=0)) == 0
    keypoints[1, 1] = (100 + 3.5, 200 + 3.5, 1)                # a second, upward neck-r_hip
    keypoints[1, 8] = (100 + 3.5, 40 + 3.5, 1)
    both = label_maps(keypoints)[1]
    assert both[limb.paf_y, 10, 12] == pytest.approx(0.0)      # opposite vectors average out
    assert both[limb.paf_y, 10, 12] != pafs[limb.paf_y, 10, 12]


def test_degraded_maps_are_new_blurred_noisy_copies():
    scene = make_scene(3, 4)
    before = scene.heatmaps.copy()
    heatmaps, pafs = degrade_maps(scene.heatmaps, scene.pafs, 0)
    assert np.array_equal(scene.heatmaps, before)
    assert heatmaps.shape == scene.heatmaps.shape and pafs.shape == scene.pafs.shape
    assert 0.5 < heatmaps[:18].max() < 0.95 and heatmaps.min() >= 0.0
    assert np.abs(pafs - scene.pafs).mean() > 0.01


# ---------------------------------------------------------------- evaluation

def test_evaluation_of_perfect_shifted_extra_and_missing_people():
    truth = make_scene(11, 6).keypoints
    perfect = score_scene(truth.copy(), truth)
    assert (perfect.people_complete, perfect.false_people) == (len(truth), 0)
    assert perfect.errors_px.max() == 0.0

    shifted = truth.copy()
    shifted[0, :, 0] = np.where(truth[0, :, 2] > 0, truth[0, :, 0] + 11, 0)   # beyond 10 px
    shifted[1, :, 0] = np.where(truth[1, :, 2] > 0, truth[1, :, 0] + 3, 0)    # within 10 px
    score = score_scene(shifted, truth)
    assert score.people_complete == len(truth) - 1
    assert score.errors_px.max() == pytest.approx(3.0, abs=1e-4)

    extra = np.concatenate([truth, np.full((1, 18, 3), 5.0)])                 # a ghost
    missing = truth[1:]
    assert score_scene(extra, truth).false_people == 1
    assert score_scene(missing, truth).people_complete == len(truth) - 1
    summary = summarize([score_scene(extra, truth), score_scene(missing, truth)])
    assert summary["false_fraction"] == pytest.approx(1 / (2 * len(truth)))
    assert summary["complete_fraction"] == pytest.approx((2 * len(truth) - 1) / (2 * len(truth)))
    empty = score_scene(np.zeros((0, 18, 3)), truth)
    assert (empty.people_complete, empty.people_predicted) == (0, 0)

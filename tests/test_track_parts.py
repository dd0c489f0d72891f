"""The pure functions under the tracker: boxes, fragments, parts, explained fraction, metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stages.skeleton import NUM_KEYPOINTS
from benchmarks.track_metrics import (
    frames_from_json_lines, frames_with_tracked_people, id_switches, ids_of_full_people, jitter_px,
    untracked_full_people,
)
from stages.track_parts import (
    box_iou, boxes_touch, find_fragments, find_parts, fraction_inside, grow_boxes, pose_boxes,
)
from stages.track_similarity import CMU_OKS_SIGMAS, explained_fraction
from tests.helpers_tracking import PIECES, skeleton, split_off

SIGMAS = np.array(CMU_OKS_SIGMAS)


def test_boxes_iou_touching_and_inside():
    boxes = np.array([[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0], [11.0, 0.0, 20.0, 10.0],
                      [np.nan] * 4])
    iou = box_iou(boxes, boxes)
    assert iou[0, 0] == pytest.approx(1.0)
    assert iou[0, 1] == pytest.approx(50.0 / 150.0)
    assert iou[0, 2] == 0.0 and iou[3, 3] == 0.0
    touch = boxes_touch(boxes, boxes)
    assert touch[0, 1] and not touch[0, 2] and not touch[3].any()
    assert boxes_touch(grow_boxes(boxes[:1], 0.1, 1.0), boxes[2:3])[0, 0]     # 1 px apart, grown 1 px
    people = np.zeros((2, NUM_KEYPOINTS, 3))
    people[0, :2] = [(2.0, 2.0, 1.0), (12.0, 2.0, 1.0)]
    assert fraction_inside(people, boxes[:1]).tolist() == [[0.5], [0.0]]
    np.testing.assert_array_equal(pose_boxes(people)[0], [2.0, 2.0, 12.0, 2.0])
    assert np.isnan(pose_boxes(people)[1]).all()


def test_fragments_touch_a_tracked_box_have_few_keypoints_and_no_neck():
    body = skeleton((300.0, 300.0))
    trunk, arm = split_off(body, PIECES["right_arm"])
    _, far_arm = split_off(skeleton((900.0, 300.0)), PIECES["right_arm"])
    _, leg_with_hip = split_off(body, PIECES["right_leg"])
    people = np.array([trunk, arm, far_arm, leg_with_hip, body])
    tracked = pose_boxes(trunk[None])
    assert find_fragments(people, tracked, 5, 0.2).tolist() == [False, True, False, True, False]
    assert find_fragments(people, tracked, 2, 0.2).tolist() == [False] * 5      # 3 keypoints > 2
    assert find_fragments(people, np.zeros((0, 4)), 5, 0.2).tolist() == [False] * 5


def test_parts_are_no_bigger_and_mostly_inside_a_present_person():
    body = skeleton((300.0, 300.0))
    upper, _ = split_off(body, PIECES["right_leg"] + PIECES["left_leg"])
    beside = skeleton((300.0 + 150.0, 300.0))
    people = np.array([upper, beside, body, upper + (5.0, 5.0, 0.0)])
    present_boxes = pose_boxes(upper[None])
    inside = find_parts(people, present_boxes, np.array([12]), 0.8, 0.2)
    assert inside.tolist() == [True, False, False, True]      # the whole body is bigger
    assert find_parts(people, present_boxes, np.array([11]), 0.8, 0.2).tolist() == [False] * 4


def test_explained_fraction_prefers_the_whole_body_over_a_piece():
    track = skeleton((300.0, 300.0))[None]
    body = skeleton((303.0, 300.0))
    _, head = split_off(skeleton((300.0, 300.0)), PIECES["head"])
    explained = explained_fraction(track, np.array([body, head]), SIGMAS)[0]
    assert explained[1] == pytest.approx(3.0 / NUM_KEYPOINTS)      # a perfect fit of 3 keypoints
    assert explained[0] > 0.5 > explained[1]


def frame(people_ids, keypoints=NUM_KEYPOINTS, x_px=0.0):
    poses = np.zeros((len(people_ids), NUM_KEYPOINTS, 3))
    for row in range(len(people_ids)):
        poses[row, :keypoints] = (x_px + 100.0 * row, 50.0, 1.0)
    return poses, list(people_ids)


def test_clip_metrics_count_ids_coverage_switches_and_jitter(tmp_path):
    clip = [frame([0, 1]), frame([0, 2]), frame([0, -1]), frame([0, 3], keypoints=5)]
    assert dict(ids_of_full_people(clip)) == {0: 3, 1: 1, 2: 1}       # the 5-keypoint one is not
    assert frames_with_tracked_people(clip) == 2
    assert untracked_full_people(clip) == 1
    assert id_switches({"a": [0, 0, -1, 0], "b": [1, 2, -1, 2, 3]}) == 2
    steady = [frame([0], x_px=10.0 * index) for index in range(5)]
    assert jitter_px(steady)[0] == pytest.approx(0.0)
    shaky = [frame([0], x_px=10.0 * index + (3.0 if index % 2 else 0.0)) for index in range(5)]
    size, steps = jitter_px(shaky)
    assert size == pytest.approx(6.0) and len(steps) == 3 * NUM_KEYPOINTS
    assert jitter_px(shaky, {next(iter(steps))})[0] == pytest.approx(6.0)
    lines = tmp_path / "poses.jsonl"
    lines.write_text("".join(json.dumps({"frame": index, "people": [
        {"person_id": person_id, "score": 1.0, "pose_keypoints_2d": pose.ravel().tolist()}
        for pose, person_id in zip(*item)]}) + "\n" for index, item in enumerate(clip)))
    read = frames_from_json_lines(lines)
    assert [ids for _, ids in read] == [ids for _, ids in clip]
    np.testing.assert_array_equal(read[3][0], clip[3][0])

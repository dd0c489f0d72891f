"""The person score: the pure formula, its path through grouping and decode_people, and the JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stages.postprocess import (decode, decode_people, group_people, group_scored_people,
                                person_scores)
from benchmarks.synthetic import label_maps, random_pose
from stages.skeleton import limb_index
from stream.items import Posed
from stream.sinks import JsonLinesSink, pose_record
from tests.test_decoder_steps import chain_connections, peaks_of

NET_SIZE = (184, 248)


def person_at(neck_xy, height_px: float = 110.0, seed: int = 0) -> np.ndarray:
    person = np.ones((18, 3))
    person[:, :2] = random_pose(np.random.default_rng(seed))[:, :2] * height_px + neck_xy
    return person


# ---------------------------------------------------------------- the formula

def test_scores_stay_in_0_1_whatever_the_sums():
    rng = np.random.default_rng(0)
    parts = rng.integers(0, 19, 500)
    limbs = rng.integers(0, 19, 500)
    scores = person_scores(rng.uniform(-5, 40, 500), rng.uniform(-5, 40, 500), parts, limbs)
    assert scores.dtype == np.float32 and scores.shape == (500,)
    assert np.all((scores >= 0) & (scores <= 1))
    assert person_scores([0.0], [0.0], [0], [0])[0] == 0.0
    assert person_scores([18.0], [17.0], [18], [17])[0] == pytest.approx(1.0)


def test_scores_rise_with_parts_peaks_and_limbs():
    base = person_scores([4.0], [3.0], [8], [6])[0]          # peak mean 0.5, limb mean 0.5
    assert person_scores([6.0], [4.5], [12], [9])[0] > base  # same means, more parts
    assert person_scores([6.0], [3.0], [8], [6])[0] > base   # stronger peaks
    assert person_scores([4.0], [5.0], [8], [6])[0] > base   # better aligned limbs
    assert person_scores([4.0], [0.0], [8], [0])[0] == pytest.approx(0.5 * 8 / 18)  # no limbs


# ---------------------------------------------------------------- grouping

def test_each_grouped_person_gets_its_own_score():
    # peak ids by part: 0, 1 necks; 2-4 r_shoulder, r_elbow, r_wrist; 5, 6 l_shoulder, l_elbow
    peaks = peaks_of([(1, 0, 0), (2, 0, 0), (3, 0, 0), (4, 0, 0), (1, 9, 9), (5, 9, 9), (6, 9, 9)])
    peaks = peaks[np.argsort(peaks[:, 0], kind="stable")]
    weak = [1, 5, 6]                                         # the second neck, l_shoulder, l_elbow
    peaks[weak, 3] = 0.5
    connections = chain_connections([("neck-r_shoulder", 0, 2), ("r_shoulder-r_elbow", 2, 3),
                                     ("r_elbow-r_wrist", 3, 4), ("neck-l_shoulder", 1, 5),
                                     ("l_shoulder-l_elbow", 5, 6)])
    connections[[row for row, (limb, *_) in enumerate(connections) if limb in (
        limb_index("neck-l_shoulder"), limb_index("l_shoulder-l_elbow"))], 3] = 0.5
    members, scores = group_scored_people(connections, peaks)
    np.testing.assert_array_equal(members, group_people(connections, peaks))
    assert len(members) == 2 and scores.shape == (2,)
    strong = 0 if members[0, 2] >= 0 else 1
    assert scores[strong] == pytest.approx(4 / 18)           # perfect peaks and limbs, 4 parts
    assert scores[1 - strong] == pytest.approx(0.5 * 3 / 18)


def test_a_merged_fragment_adds_its_parts_and_limbs_to_the_score():
    peaks = peaks_of([(1, 0, 0), (2, 0, 0), (14, 0, 0), (16, 0, 0)])
    connections = chain_connections([("neck-r_shoulder", 0, 1), ("r_eye-r_ear", 2, 3),
                                     ("r_shoulder-r_ear", 1, 3)])
    members, scores = group_scored_people(connections, peaks)
    assert len(members) == 1 and (members[0] >= 0).sum() == 4
    assert scores[0] == pytest.approx(4 / 18)


# ---------------------------------------------------------------- decode_people

def test_decode_people_is_decode_plus_a_score_per_person():
    keypoints = np.stack([person_at((60, 50), seed=1), person_at((180, 50), seed=2)])
    heatmaps, pafs = label_maps(keypoints, NET_SIZE)
    people, scores = decode_people(heatmaps, pafs, matching="greedy")
    np.testing.assert_array_equal(people, decode(heatmaps, pafs, matching="greedy"))
    assert scores.dtype == np.float32 and scores.shape == (len(people),) == (2,)
    assert np.all((scores > 0.5) & (scores <= 1))


def test_weaker_and_partial_people_score_lower_than_a_clear_whole_person():
    whole, partial, weak = person_at((50, 50), seed=3), person_at((125, 50), seed=3), \
        person_at((200, 50), seed=3)
    partial[8:14] = 0                                        # hips and legs unseen
    maps = [label_maps(person[None], NET_SIZE) for person in (whole, partial, weak)]
    heatmaps = np.maximum.reduce([maps[0][0], maps[1][0], 0.5 * maps[2][0]])
    pafs = maps[0][1] + maps[1][1] + 0.5 * maps[2][1]
    people, scores = decode_people(heatmaps, pafs)
    assert len(people) == 3
    order = np.argsort([person[person[:, 2] > 0, 0].mean() for person in people])
    whole_score, partial_score, weak_score = scores[order]
    assert whole_score > partial_score and whole_score > weak_score


# ---------------------------------------------------------------- the item and the JSON

def posed(people, scores=(), ids=()) -> Posed:
    return Posed(image=None, index=4, capture_time=0.0, time=0.16, net_input=None, scale=1.0,
                 heatmaps=None, pafs=None, people=np.asarray(people, np.float32),
                 person_ids=tuple(ids), person_scores=tuple(scores))


def test_json_lines_carry_each_persons_score(tmp_path):
    people = np.stack([person_at((60, 50), seed=4), person_at((180, 50), seed=5)])
    with JsonLinesSink(tmp_path / "poses.jsonl") as sink:
        sink.write(posed(people, scores=(0.123456, 0.9), ids=(3, 8)), None)
    record = json.loads((tmp_path / "poses.jsonl").read_text())
    assert [(p["person_id"], p["score"]) for p in record["people"]] == [(3, 0.1235), (8, 0.9)]
    assert all(list(p) == ["person_id", "score", "pose_keypoints_2d"] for p in record["people"])
    unknown = pose_record(posed(people))
    assert [p["score"] for p in unknown["people"]] == [0.0, 0.0]
    assert pose_record(posed(people, scores=(float("nan"), 1.0)))["people"][0]["score"] == 0.0


def test_posed_refuses_scores_that_do_not_match_its_people():
    people = np.zeros((2, 18, 3), np.float32)
    with pytest.raises(ValueError, match="1 person_scores for 2 people"):
        posed(people, scores=(0.5,))

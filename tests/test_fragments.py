"""Fragments: a neckless head, arm or leg beside its body is joined to it or dropped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stages.postprocess import decode
from stages.postprocess.fragments import DROP, KEEP, fragment_targets
from benchmarks.synthetic import label_maps
from stages.skeleton import LIMBS, keypoint_index, limb_index
from tests.test_person_score import person_at

NET_SIZE = (184, 248)
ARM = [keypoint_index(name) for name in ("r_shoulder", "r_elbow", "r_wrist")]
LEG = [keypoint_index(name) for name in ("l_hip", "l_knee", "l_ankle")]


def cut(pafs: np.ndarray, *limb_names: str) -> np.ndarray:
    """A copy of ``pafs`` without the named limbs' fields."""
    pafs = pafs.copy()
    for name in limb_names:
        limb = LIMBS[limb_index(name)]
        pafs[[limb.paf_x, limb.paf_y]] = 0.0
    return pafs


def weaken(pafs: np.ndarray, person: np.ndarray, limb_name: str, kept: float = 0.4) -> np.ndarray:
    """A copy of ``pafs`` whose named limb of ``person`` keeps its field only on the first
    ``kept`` of its length (from part_a): too few aligned samples for a limb, yet a PAF that
    points along it, as a network's weak limb does."""
    pafs = pafs.copy()
    limb = LIMBS[limb_index(limb_name)]
    start, end = ((person[[limb.part_a, limb.part_b], :2] - 3.5) / 8.0)      # map cells
    rows, cols = np.mgrid[0:pafs.shape[1], 0:pafs.shape[2]]
    along = ((cols - start[0]) * (end - start)[0] + (rows - start[1]) * (end - start)[1]) \
        / np.sum((end - start) ** 2)
    for channel in (limb.paf_x, limb.paf_y):
        pafs[channel][along > kept] = 0.0
    return pafs


def parts_of(people: np.ndarray) -> list[int]:
    return sorted(int((person[:, 2] > 0).sum()) for person in people)


# ---------------------------------------------------------------- on decoded maps

def test_an_arm_weakly_tied_to_its_body_is_joined_back():
    body = person_at((90, 50), seed=1)
    heatmaps, pafs = label_maps(body[None], NET_SIZE)
    pafs = cut(weaken(pafs, body, "neck-r_shoulder"), "r_shoulder-r_ear")
    assert parts_of(decode(heatmaps, pafs, fragment_max_parts=0)) == [3, 15]
    people = decode(heatmaps, pafs)
    assert parts_of(people) == [18]
    np.testing.assert_allclose(people[0, :, :2], body[:, :2], atol=1.0)


def test_an_arm_whose_paf_points_nowhere_is_not_joined():
    body = person_at((90, 50), seed=1)
    heatmaps, pafs = label_maps(body[None], NET_SIZE)
    pafs = cut(pafs, "neck-r_shoulder", "r_shoulder-r_ear")     # nothing ties the arm on
    assert parts_of(decode(heatmaps, pafs)) == [3, 15]
    assert parts_of(decode(heatmaps, pafs, fragment_min_alignment=-1.0)) == [18]


def test_a_head_weakly_tied_to_its_body_is_joined_back():
    body = person_at((90, 50), seed=2)
    heatmaps, pafs = label_maps(body[None], NET_SIZE)
    pafs = cut(weaken(pafs, body, "neck-nose"), "r_shoulder-r_ear", "l_shoulder-l_ear")
    assert parts_of(decode(heatmaps, pafs, fragment_max_parts=0)) == [5, 13]
    assert parts_of(decode(heatmaps, pafs)) == [5, 13]          # 5 parts: not a fragment
    assert parts_of(decode(heatmaps, pafs, fragment_max_parts=5)) == [18]


def test_a_duplicate_arm_beside_a_whole_body_is_dropped():
    body = person_at((90, 50), seed=1)
    ghost = np.zeros_like(body)
    ghost[ARM] = body[ARM] + (0.0, 25.0, 0.0)                  # the arm again, lower down
    heatmaps, pafs = label_maps(np.stack([body, ghost]), NET_SIZE)
    assert parts_of(decode(heatmaps, pafs, fragment_max_parts=0)) == [3, 18]
    assert parts_of(decode(heatmaps, pafs)) == [18]


def test_a_partial_person_far_from_any_body_is_kept():
    body = person_at((60, 50), height_px=80, seed=3)
    legs = np.zeros_like(body)
    legs[LEG] = person_at((200, 40), height_px=110, seed=4)[LEG]
    heatmaps, pafs = label_maps(np.stack([body, legs]), NET_SIZE)
    assert parts_of(decode(heatmaps, pafs)) == [3, 18]


# ---------------------------------------------------------------- fragment_targets alone

def people_and_peaks(people_points: list[dict[str, tuple[float, float]]]):
    """members (P,18) and peaks (K,4) from {part name: (x, y)} per person (map cells)."""
    rows, members = [], np.full((len(people_points), 18), -1, dtype=np.int64)
    for person, points in enumerate(people_points):
        for name, (x, y) in points.items():
            members[person, keypoint_index(name)] = len(rows)
            rows.append((keypoint_index(name), x, y, 1.0))
    return members, np.array(rows, dtype=np.float32)


BODY = {"neck": (10, 10), "l_shoulder": (13, 10), "l_hip": (12, 20), "r_hip": (8, 20),
        "r_knee": (8, 26)}


def test_targets_join_the_closest_body_that_lacks_the_parts():
    far_body = {name: (x + 30, y) for name, (x, y) in BODY.items()}
    arm = {"r_shoulder": (7, 10), "r_elbow": (6, 14)}
    members, peaks = people_and_peaks([far_body, BODY, arm])
    assert fragment_targets(members, peaks, 4, 1.0, 0.5).tolist() == [KEEP, KEEP, 1]


def test_targets_drop_a_duplicate_and_keep_what_is_far_or_too_big():
    duplicate = {"l_shoulder": (14, 11), "l_elbow": (16, 15)}        # the body has a l_shoulder
    far = {"l_knee": (80, 40), "l_ankle": (80, 46)}                  # too far to join
    big = {"nose": (12, 5), "r_eye": (11, 4), "l_eye": (13, 4), "r_ear": (10, 5), "l_ear": (14, 5)}
    members, peaks = people_and_peaks([BODY, duplicate, far, big])
    assert fragment_targets(members, peaks, 4, 1.0, 0.5).tolist() == [KEEP, DROP, KEEP, KEEP]
    assert fragment_targets(members, peaks, 5, 1.0, 0.5).tolist() == [KEEP, DROP, KEEP, 0]
    assert fragment_targets(members, peaks, 0, 1.0, 0.5).tolist() == [KEEP] * 4


def test_another_persons_parts_beside_a_body_are_kept():
    legs = {"r_hip": (24, 20), "r_knee": (25, 27)}                   # 16 cells from the body's
    members, peaks = people_and_peaks([BODY, legs])
    assert fragment_targets(members, peaks, 4, 1.0, 0.5).tolist() == [KEEP, KEEP]
    assert fragment_targets(members, peaks, 4, 1.0, 1.1).tolist() == [KEEP, DROP]


def test_two_fragments_join_one_body_while_their_parts_stay_free():
    arm = {"r_shoulder": (7, 10), "r_elbow": (6, 14)}
    same_arm_again = {"r_shoulder": (6, 11), "r_wrist": (5, 18)}
    leg = {"l_knee": (12, 26), "l_ankle": (12, 31)}
    members, peaks = people_and_peaks([BODY, arm, same_arm_again, leg])
    assert fragment_targets(members, peaks, 4, 1.0, 0.5).tolist() == [KEEP, 0, DROP, 0]


def test_a_limb_longer_than_the_join_distance_does_not_join():
    arm = {"r_shoulder": (7, 10), "r_elbow": (6, 14)}
    members, peaks = people_and_peaks([BODY, arm])
    # body size 16 cells, neck to r_shoulder 3 cells (also the arm's closest approach)
    assert fragment_targets(members, peaks, 4, 0.25, 0.5).tolist() == [KEEP, 0]
    assert fragment_targets(members, peaks, 4, 0.15, 0.5).tolist() == [KEEP, KEEP]


def test_a_joining_limb_needs_a_paf_that_does_not_contradict_it_unless_it_is_very_short():
    arm = {"r_shoulder": (7, 10), "r_elbow": (6, 14)}              # neck-r_shoulder: 3 cells
    on_the_neck = {"r_shoulder": (10.5, 10), "r_elbow": (10, 14)}  # 0.5 cells
    asked = []

    def alignment(value):
        def measure(limb, start, end):
            asked.append((LIMBS.index(limb), tuple(start), tuple(end)))
            return value
        return measure

    members, peaks = people_and_peaks([BODY, arm])
    assert fragment_targets(members, peaks, 4, 1.0, 0.5, alignment=alignment(0.3)).tolist() \
        == [KEEP, 0]
    assert asked == [(limb_index("neck-r_shoulder"), (10.0, 10.0), (7.0, 10.0))]   # a to b
    assert fragment_targets(members, peaks, 4, 1.0, 0.5, alignment=alignment(0.05)).tolist() \
        == [KEEP, KEEP]
    assert fragment_targets(members, peaks, 4, 1.0, 0.5, alignment=alignment(0.05),
                            min_alignment=0.0).tolist() == [KEEP, 0]
    members, peaks = people_and_peaks([BODY, on_the_neck])
    assert fragment_targets(members, peaks, 4, 1.0, 0.5, alignment=alignment(-1.0)).tolist() \
        == [KEEP, 0]


# ---------------------------------------------------------------- real frames

TORCH_THREADS = 2   # intra-op threads while these tests run (tests/conftest.py)
DANCE_FRAMES = (6, 13, 54, 57, 60, 92)     # two dancers; arms and legs split off them there


@pytest.fixture(scope="module")
def dance_maps(media):
    """mobilenet_thin maps (real weights, net input height 368) of dance2.mp4 frames."""
    import cv2
    import torch

    import backbones
    from stages.preprocess import prepare

    weights = Path(__file__).resolve().parents[1] / "weights" / "mobilenet_thin.pth"
    if not weights.exists():
        pytest.skip(f"missing {weights}")
    network = backbones.build("mobilenet_thin", weights).eval()
    spec = backbones.get_spec("mobilenet_thin").preprocess
    capture = cv2.VideoCapture(str(media("dance2.mp4")))
    maps = []
    for index in range(max(DANCE_FRAMES) + 1):
        ok, frame = capture.read()
        assert ok, f"dance2.mp4 ended before frame {index}"
        if index in DANCE_FRAMES:
            net_input, _, _ = prepare(frame, spec, 368)
            with torch.inference_mode():
                heatmaps, pafs = network(torch.from_numpy(net_input)[None])
            maps.append((heatmaps[0].numpy(), pafs[0].numpy()))
    capture.release()
    return maps


def fragments(people: np.ndarray) -> int:
    """People without a neck and with 2 to 4 keypoints."""
    present = people[:, :, 2] > 0
    counts = present.sum(axis=1)
    return int(np.sum(~present[:, keypoint_index("neck")] & (counts >= 2) & (counts <= 4)))


def test_dance2_fragments_are_joined_or_dropped_and_two_dancers_remain(dance_maps):
    before = [decode(*maps, fragment_max_parts=0) for maps in dance_maps]
    after = [decode(*maps) for maps in dance_maps]
    assert sum(fragments(people) for people in before) >= len(DANCE_FRAMES)
    assert sum(fragments(people) for people in after) <= 1
    assert sum(len(people) == 2 for people in before) <= 1
    assert sum(len(people) == 2 for people in after) >= len(DANCE_FRAMES) - 1
    # what was kept of the bodies is unchanged: joining only adds keypoints
    for kept, full in zip(before, after):
        bodies = kept[kept[:, keypoint_index("neck"), 2] > 0]
        for body in bodies:
            match = [np.all(person[body[:, 2] > 0] == body[body[:, 2] > 0]) for person in full]
            assert any(match)

"""Tracker: ids stay stable on synthetic moving, crossing and disappearing skeletons."""

from __future__ import annotations

import numpy as np
import pytest

from stages.skeleton import NUM_KEYPOINTS
from stages.tracking import (
    CMU_OKS_SIGMAS, Tracker, TrackerParams, keypoint_similarity, match_pairs, pose_scales,
)
from tests.helpers_tracking import FPS, HEIGHT_PX, POSE_TEMPLATE, run_sequence, skeleton

def test_moving_people_keep_their_ids_with_noise_dropouts_and_shuffling():
    rng = np.random.default_rng(1)
    starts = {"a": (100.0, 250.0), "b": (500.0, 200.0), "c": (320.0, 420.0)}
    velocities = {"a": (150.0, 0.0), "b": (-100.0, 50.0), "c": (0.0, -80.0)}
    frames = []
    for frame_index in range(90):
        time_s = frame_index / FPS
        frames.append([(name, skeleton(np.add(start, np.multiply(velocities[name], time_s)),
                                       rng, noise_px=2.0, dropout=0.15))
                       for name, start in starts.items()])
    seen = run_sequence(Tracker(TrackerParams()), frames, rng)
    ids = {name: set(person_ids) for name, person_ids in seen.items()}
    assert all(len(person_ids) == 1 for person_ids in ids.values()), ids
    assert len(set.union(*ids.values())) == 3


def crossing_frames(rng, hide_back_person: bool, same_depth: bool = False):
    """Two people walking towards each other; their paths cross at frame 30.

    "b" walks further from the camera (smaller, a little higher in the image) unless
    ``same_depth``, when both are the same size on one line and coincide at frame 30.  With
    ``hide_back_person`` only "a" is detected for frames 27..33 (b is behind a).
    """
    b_height_px, b_y_px = (HEIGHT_PX, 300.0) if same_depth else (0.85 * HEIGHT_PX, 285.0)
    frames = []
    for frame_index in range(61):
        offset_px = 7.0 * (frame_index - 30)
        frame = [("a", skeleton((320.0 + offset_px, 300.0), rng, noise_px=1.5, dropout=0.1))]
        if not (hide_back_person and 27 <= frame_index <= 33):
            frame.append(("b", skeleton((320.0 - offset_px, b_y_px), rng, noise_px=1.5, dropout=0.1,
                                        height_px=b_height_px)))
        frames.append(frame)
    return frames


@pytest.mark.parametrize("hide_back_person", [False, True])
@pytest.mark.parametrize("seed", [2, 3, 4, 5])
def test_people_crossing_paths_keep_their_ids(hide_back_person, seed):
    rng = np.random.default_rng(seed)
    seen = run_sequence(Tracker(TrackerParams(max_age=10)), crossing_frames(rng, hide_back_person), rng)
    assert len(set(seen["a"])) == 1, seen["a"]
    assert len(set(seen["b"])) == 1, seen["b"]
    assert seen["a"][0] != seen["b"][0]


@pytest.mark.parametrize("hide_back_person", [False, True])
@pytest.mark.parametrize("seed", [2, 3, 4, 5])
def test_identical_people_passing_through_each_other_keep_their_ids_after(hide_back_person, seed):
    """At the one frame where both poses coincide either assignment is right; elsewhere the ids
    must hold, which needs the tracks' velocities.  When b is hidden, a alone at the crossing
    point fits both tracks equally and must keep the id of the track seen last frame."""
    rng = np.random.default_rng(seed)
    frames = crossing_frames(rng, hide_back_person, same_depth=True)
    seen = run_sequence(Tracker(TrackerParams(max_age=10)), frames, rng)
    if hide_back_person:
        a_ids, b_ids = seen["a"], seen["b"]
    else:
        a_ids, b_ids = seen["a"][:30] + seen["a"][31:], seen["b"][:30] + seen["b"][31:]
    assert len(set(a_ids)) == 1, seen["a"]
    assert len(set(b_ids)) == 1, seen["b"]
    assert a_ids[0] != b_ids[0]


@pytest.mark.parametrize("same_depth", [False, True])
def test_crossing_is_what_motion_prediction_solves(same_depth):
    """Without motion prediction the hidden person comes out of the crossing under the wrong id
    (so the crossing tests above really exercise the tracker)."""
    rng = np.random.default_rng(2)
    seen = run_sequence(Tracker(TrackerParams(max_age=10, predict_motion=False)),
                        crossing_frames(rng, hide_back_person=True, same_depth=same_depth), rng)
    assert len(set(seen["a"])) > 1 or len(set(seen["b"])) > 1


@pytest.mark.parametrize("gap_frames, same_id", [(1, True), (5, True), (6, False), (20, False)])
def test_person_missing_for_up_to_max_age_frames_keeps_id_longer_gets_a_new_one(gap_frames, same_id):
    tracker = Tracker(TrackerParams(max_age=5))
    rng = np.random.default_rng(5)
    stays, leaves = (150.0, 300.0), (450.0, 300.0)
    ids_before = ids_after = None
    for frame_index in range(10 + gap_frames + 10):
        frame = [skeleton(stays, rng, noise_px=1.0)]
        away = 10 <= frame_index < 10 + gap_frames
        if not away:
            frame.append(skeleton(leaves, rng, noise_px=1.0))
        ids = tracker.update(np.array(frame), frame_index / FPS)
        if frame_index == 9:
            ids_before = ids
        if frame_index == 10 + gap_frames:
            ids_after = ids
    assert ids_after[0] == ids_before[0]
    if same_id:
        assert ids_after[1] == ids_before[1]
    else:
        assert ids_after[1] not in ids_before  # a new id, never a reused one
        assert ids_after[1] > max(ids_before)


def test_ids_are_never_reused_and_state_stays_bounded_with_many_short_lived_tracks():
    params = TrackerParams(max_age=3)
    tracker = Tracker(params)
    rng = np.random.default_rng(6)
    first_seen_order: list[int] = []
    most_tracks = 0
    for frame_index in range(600):
        # each frame: 0-4 people at random places, each seen once (a new person every time)
        count = int(rng.integers(0, 5))
        people = np.array([skeleton(rng.uniform((100, 100), (2000, 2000)), rng, noise_px=1.0)
                           for _ in range(count)]).reshape(-1, NUM_KEYPOINTS, 3)
        ids = tracker.update(people, frame_index / FPS)
        for person_id in ids:
            if person_id >= 0 and person_id not in first_seen_order:   # -1: inside someone else
                first_seen_order.append(person_id)
        most_tracks = max(most_tracks, tracker.num_tracks)
    assert first_seen_order == sorted(first_seen_order)       # ids only ever grow
    assert len(first_seen_order) > 500                        # nearly every person was new
    assert most_tracks <= 4 * (params.max_age + 1)
    for frame_index in range(600, 600 + params.max_age + 1):
        tracker.update(np.zeros((0, NUM_KEYPOINTS, 3)), frame_index / FPS)
    assert tracker.num_tracks == 0


def test_reset_forgets_tracks_but_never_reuses_ids():
    tracker = Tracker()
    people = np.array([skeleton((200.0, 300.0)), skeleton((500.0, 300.0))])
    first = tracker.update(people, 0.0)
    assert tracker.update(people, 1 / FPS) == first
    tracker.reset()
    assert tracker.num_tracks == 0
    again = tracker.update(people, 2 / FPS)
    assert set(again).isdisjoint(first)


def test_two_trackers_do_not_share_state():
    people = np.array([skeleton((200.0, 300.0))])
    assert Tracker().update(people, 0.0) == Tracker().update(people, 0.0)


def test_empty_frames_and_people_without_keypoints():
    tracker = Tracker()
    assert tracker.update(np.zeros((0, NUM_KEYPOINTS, 3)), 0.0) == ()
    ids = tracker.update(np.zeros((2, NUM_KEYPOINTS, 3)), 0.1)
    assert ids == (-1, -1)           # nobody is there: no track, no id used up
    assert tracker.num_tracks == 0
    assert tracker.update(skeleton((200.0, 300.0))[None], 0.2) == (0,)


def test_update_leaves_input_unchanged_and_checks_shape():
    tracker = Tracker()
    people = np.array([skeleton((200.0, 300.0))], dtype=np.float32)
    copy = people.copy()
    tracker.update(people, 0.0)
    tracker.update(people, 0.1)
    np.testing.assert_array_equal(people, copy)
    with pytest.raises(ValueError, match="shape"):
        tracker.update(np.zeros((1, 17, 3)), 0.2)


def small_walkers(rng, jitter_px: float):
    """Two people 60 px tall walking side by side 30 px apart at 10 fps, their keypoints placed with
    the decoder's few-pixel noise (what a 768x576 walkway camera gives)."""
    return [[(name, skeleton((200.0 + 4.0 * index + offset, 300.0), rng, noise_px=jitter_px,
                             dropout=0.1, height_px=60.0))
             for name, offset in (("a", 0.0), ("b", 30.0))] for index in range(60)]


def test_small_people_keep_their_ids_through_the_decoders_pixel_noise():
    # COCO's σ alone give a 60 px person 1-3 px of tolerance: 4 px of placement noise broke their
    # ids every few frames before noise_px (checked below); it must not swap the two either.
    def total_ids(params, seed):
        seen = run_sequence(Tracker(params), small_walkers(np.random.default_rng(seed), 4.0))
        assert set(seen["a"]).isdisjoint(seen["b"]) or params.noise_px == 0.0
        return len(set(seen["a"])) + len(set(seen["b"]))

    assert [total_ids(TrackerParams(), seed) for seed in range(5)] == [2] * 5
    assert sum(total_ids(TrackerParams(noise_px=0.0), seed) for seed in range(5)) > 12


def test_similarity_is_one_for_equal_poses_and_falls_with_distance_and_scale():
    near = np.array([skeleton((300.0, 300.0))])
    moved = np.array([skeleton((300.0 + shift, 300.0)) for shift in (0.0, 5.0, 20.0, 80.0)])
    sigmas = np.array(CMU_OKS_SIGMAS)
    similarity = keypoint_similarity(near, moved, sigmas)[0]
    assert similarity[0] == pytest.approx(1.0)
    assert np.all(np.diff(similarity) < 0)
    assert similarity[-1] < 0.05
    # the same 20 px shift matters less for a person twice the size
    big = np.array([skeleton((300.0, 300.0), height_px=400.0)])
    big_moved = np.array([skeleton((320.0, 300.0), height_px=400.0)])
    assert keypoint_similarity(big, big_moved, sigmas)[0, 0] > similarity[2]
    # the decoder's noise widens every keypoint's tolerance alike
    assert keypoint_similarity(near, moved, sigmas, noise_px=4.0)[0, 1] > similarity[1]


def test_similarity_uses_only_shared_keypoints():
    full = skeleton((300.0, 300.0))
    partial = full.copy()
    partial[8:] = 0.0                      # legs and face missing
    sigmas = np.array(CMU_OKS_SIGMAS)
    assert keypoint_similarity(full[None], partial[None], sigmas)[0, 0] == pytest.approx(1.0)
    one_shared = np.zeros_like(full)
    one_shared[0] = full[0]
    assert keypoint_similarity(full[None], one_shared[None], sigmas, min_shared=2)[0, 0] == 0.0
    assert keypoint_similarity(full[None], np.zeros((1, NUM_KEYPOINTS, 3)), sigmas)[0, 0] == 0.0


def test_pose_scales_and_match_pairs():
    scales = pose_scales(np.array([skeleton((300.0, 300.0)), np.zeros((NUM_KEYPOINTS, 3))]), 16.0)
    width, height = np.ptp(POSE_TEMPLATE[:, 0]) * HEIGHT_PX, np.ptp(POSE_TEMPLATE[:, 1]) * HEIGHT_PX
    assert scales[0] == pytest.approx(np.sqrt(width * height))
    assert scales[1] == 16.0
    similarity = np.array([[0.9, 0.8], [0.85, 0.1]])
    assert sorted(match_pairs(similarity, 0.3)) == [(0, 1), (1, 0)]   # best total, not greedy
    assert match_pairs(similarity, 0.86) == [(0, 0)]
    prefer_second_row = np.array([[0.5, 0.8], [0.85, 0.1]]) * similarity
    assert sorted(match_pairs(similarity, 0.3, prefer_second_row)) == [(0, 1), (1, 0)]
    assert match_pairs(np.array([[0.9], [0.9]]), 0.3, np.array([[0.8], [0.9]])) == [(1, 0)]
    assert match_pairs(np.zeros((0, 3)), 0.3) == []


@pytest.mark.parametrize("field, value", [
    ("oks_threshold", 0.0), ("oks_threshold", 1.5), ("min_scale_px", float("nan")), ("max_age", -1), ("sigmas", (0.1,) * 17),
    ("sigmas", (0.0,) * 18), ("min_scale_px", 0.0), ("min_shared_keypoints", 0),
    ("velocity_smoothing", 0.0), ("velocity_smoothing", 1.5), ("lost_discount", -0.1),
    ("lost_discount", 1.0), ("fragment_max_keypoints", -1), ("fragment_max_keypoints", 18),
    ("fragment_margin", -0.1), ("part_min_inside", 0.0), ("part_min_inside", 1.5),
    ("extent_memory_s", -1.0), ("fallback_iou", 1.5), ("noise_px", -1.0),
])
def test_params_out_of_range_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        TrackerParams(**{field: value})

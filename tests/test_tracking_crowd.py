"""Tracking crowds of small people: a shaking camera moves everyone alike by more than a small
person's keypoint tolerance (the tracker follows the scene's shift), and a person with enough
keypoints to be a whole person always gets an id even inside someone else's box."""

import numpy as np
import pytest

from stages.track_similarity import scene_shift
from stages.tracking import Tracker, TrackerParams
from tests.helpers_tracking import FPS, skeleton


def shaking_row(frames, rng, people=6, height=80.0, shake_px=12.0):
    """``frames`` frames of a row of small people walking right, the camera shaking."""
    offsets = np.cumsum(rng.uniform(-shake_px, shake_px, (frames, 2)), axis=0)
    return [np.stack([skeleton((100.0 + 70.0 * i + 1.0 * t + offsets[t, 0], 300.0 + offsets[t, 1]),
                               rng, noise_px=1.0, height_px=height) for i in range(people)])
            for t in range(frames)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_small_people_keep_their_ids_when_the_camera_shakes(seed):
    frames = shaking_row(30, np.random.default_rng(seed))
    kept = {}
    for follow in (True, False):
        tracker = Tracker(TrackerParams(scene_motion=follow))
        ids = [tracker.update(people, index / FPS) for index, people in enumerate(frames)]
        kept[follow] = all(frame_ids == ids[0] for frame_ids in ids)
    assert kept[True]
    assert not kept[False]          # the shake is beyond the keypoint tolerance without it


def test_scene_shift_is_the_common_step_and_zero_for_few_people():
    before = np.stack([skeleton((100.0 + 90 * i, 200.0), height_px=80) for i in range(5)])
    after = before.copy()
    after[..., :2] += (9.0, -4.0)
    after[0, :, :2] += 30.0         # one walks off on their own
    assert np.allclose(scene_shift(before, after), (9.0, -4.0))
    assert np.allclose(scene_shift(before[:2], after[:2]), 0.0)
    assert np.allclose(scene_shift(before, np.zeros((0, 18, 3))), 0.0)


def test_a_whole_person_inside_a_bigger_persons_box_gets_an_id():
    tracker = Tracker(TrackerParams())
    front = skeleton((300.0, 300.0), height_px=300)
    behind = skeleton((320.0, 280.0), height_px=120)      # all of them inside the front box
    for index in range(5):
        ids = tracker.update(np.stack([front, behind]), index / FPS)
        assert min(ids) >= 0 and ids[0] != ids[1]


def test_full_keypoints_is_checked():
    with pytest.raises(ValueError, match="full_keypoints"):
        TrackerParams(full_keypoints=0)

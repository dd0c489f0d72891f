"""One-Euro smoother: less jitter on a still pose, little lag on a moving one, bounded state."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from stages.skeleton import NUM_KEYPOINTS
from stages.smoothing import Smoother, SmootherParams, one_euro_step, smoothing_factor

logger = logging.getLogger(__name__)

FPS = 30.0


def base_pose(rng) -> np.ndarray:
    """One person [1, 18, 3] with keypoints spread over a 200 x 400 px box."""
    pose = np.empty((1, NUM_KEYPOINTS, 3))
    pose[0, :, 0] = rng.uniform(200.0, 400.0, NUM_KEYPOINTS)
    pose[0, :, 1] = rng.uniform(100.0, 500.0, NUM_KEYPOINTS)
    pose[0, :, 2] = 0.8
    return pose


def errors_on_track(params, noise_px, speed_px_s, seconds=10.0, warm_up_s=1.0, seed=0):
    """Run a pose moving along x at ``speed_px_s`` with Gaussian noise through a smoother.

    Returns (raw_errors, smoothed_errors), each [frames after warm-up, 18, 2] in px.
    """
    rng = np.random.default_rng(seed)
    start = base_pose(rng)
    smoother = Smoother(params)
    raw_errors, smoothed_errors = [], []
    for frame_index in range(int(seconds * FPS)):
        time_s = frame_index / FPS
        truth = start.copy()
        truth[0, :, 0] += speed_px_s * time_s
        noisy = truth.copy()
        noisy[0, :, :2] += rng.normal(0.0, noise_px, (NUM_KEYPOINTS, 2))
        smoothed = smoother.update(noisy, [7], time_s)
        if time_s >= warm_up_s:
            raw_errors.append(noisy[0, :, :2] - truth[0, :, :2])
            smoothed_errors.append(smoothed[0, :, :2] - truth[0, :, :2])
    return np.array(raw_errors), np.array(smoothed_errors)


@pytest.mark.parametrize("seed", [0, 1])
def test_jitter_on_a_noisy_still_pose_drops_at_least_threefold(seed):
    raw, smoothed = errors_on_track(SmootherParams(), noise_px=2.0, speed_px_s=0.0, seed=seed)
    reduction = raw.std() / smoothed.std()
    logger.info("still pose, 2 px noise: jitter %.2f px -> %.2f px (%.2fx)",
                raw.std(), smoothed.std(), reduction)
    assert reduction >= 3.0        # measured 3.5x with the defaults at 30 fps


def test_lag_on_a_constant_velocity_pose_is_under_one_frame_of_motion():
    speed_px_s = 200.0
    _, smoothed = errors_on_track(SmootherParams(), noise_px=0.0, speed_px_s=speed_px_s)
    lag_px = -smoothed[..., 0].mean()          # the estimate trails behind the truth
    logger.info("200 px/s: lag %.2f px (%.2f frames)", lag_px, lag_px / (speed_px_s / FPS))
    assert 0.0 < lag_px < speed_px_s / FPS           # measured 5.5 px, one frame is 6.7 px
    assert np.abs(smoothed[..., 1]).max() < 1e-6     # no motion along y, no error there
    # the speed-dependent cutoff is what keeps the lag small: without it (beta 0) it is far larger
    _, fixed_cutoff = errors_on_track(SmootherParams(beta=0.0), noise_px=0.0, speed_px_s=speed_px_s)
    assert -fixed_cutoff[..., 0].mean() > 5 * lag_px


def test_noisy_moving_pose_stays_close_to_the_truth():
    raw, smoothed = errors_on_track(SmootherParams(), noise_px=2.0, speed_px_s=100.0)
    rms_raw, rms_smoothed = np.sqrt((raw ** 2).mean()), np.sqrt((smoothed ** 2).mean())
    logger.info("100 px/s with 2 px noise: rms error %.2f px raw, %.2f px smoothed", rms_raw, rms_smoothed)
    assert rms_smoothed < 2.0 * rms_raw
    assert smoothed[..., 1].std() < 0.5 * raw[..., 1].std()   # across the motion: jitter removed


def test_one_euro_step_with_zero_beta_is_a_first_order_low_pass():
    params = SmootherParams(min_cutoff=2.0, beta=0.0)
    previous = np.array([[10.0, 20.0]])
    new = np.array([[14.0, 12.0]])
    filtered, speed = one_euro_step(new, previous, np.zeros((1, 2)), 0.05, params)
    alpha = 1.0 / (1.0 + 1.0 / (2.0 * np.pi * 2.0 * 0.05))
    np.testing.assert_allclose(filtered, previous + alpha * (new - previous))
    assert smoothing_factor(2.0, 0.05) == pytest.approx(alpha)
    alpha_speed = smoothing_factor(params.d_cutoff, 0.05)
    np.testing.assert_allclose(speed, alpha_speed * (new - previous) / 0.05)


def test_missing_keypoint_resets_its_filter_and_stays_missing():
    smoother = Smoother()
    pose = base_pose(np.random.default_rng(3))
    for frame_index in range(10):
        smoother.update(pose, [0], frame_index / FPS)
    gone = pose.copy()
    gone[0, 4] = 0.0
    out = smoother.update(gone, [0], 10 / FPS)
    np.testing.assert_array_equal(out[0, 4], 0.0)
    back = pose.copy()
    back[0, 4, :2] += 60.0                     # reappears somewhere else
    out = smoother.update(back, [0], 11 / FPS)
    np.testing.assert_allclose(out[0, 4], back[0, 4])       # taken as is, not blended with the old
    jumped = pose.copy()
    jumped[0, 5, :2] += 60.0                   # a keypoint that stayed visible is filtered
    out = smoother.update(jumped, [0], 12 / FPS)
    assert 0.0 < out[0, 5, 0] - pose[0, 5, 0] < 60.0


def test_untracked_people_pass_through_and_input_is_never_modified():
    rng = np.random.default_rng(4)
    smoother = Smoother()
    people = np.concatenate([base_pose(rng), base_pose(rng)]).astype(np.float32)
    for frame_index in range(5):
        noisy = people + rng.normal(0.0, 2.0, people.shape).astype(np.float32)
        noisy[..., 2] = 0.8
        before = noisy.copy()
        out = smoother.update(noisy, [-1, 3], frame_index / FPS)
        np.testing.assert_array_equal(noisy, before)
        assert out is not noisy and out.dtype == np.float32 and out.shape == noisy.shape
        np.testing.assert_array_equal(out[0], noisy[0])            # id -1 untouched
        np.testing.assert_array_equal(out[1, :, 2], noisy[1, :, 2])  # scores untouched
    assert not np.array_equal(out[1], noisy[1])                   # the tracked one was filtered
    assert smoother.num_tracks == 1


def test_each_track_is_filtered_on_its_own_whatever_the_order():
    rng = np.random.default_rng(5)
    first, second = base_pose(rng), base_pose(rng) + np.array([300.0, 0.0, 0.0])
    in_order, swapped = Smoother(), Smoother()
    for frame_index in range(20):
        jitter = rng.normal(0.0, 2.0, (2, NUM_KEYPOINTS, 3)) * np.array([1.0, 1.0, 0.0])
        people = np.concatenate([first, second]) + jitter
        time_s = frame_index / FPS
        out = in_order.update(people, [1, 2], time_s)
        out_swapped = swapped.update(people[::-1], [2, 1], time_s)
        np.testing.assert_allclose(out, out_swapped[::-1])
    alone = Smoother()
    for frame_index in range(3):
        alone.update(first, [1], frame_index / FPS)
    assert alone.num_tracks == 1


def test_state_stays_bounded_with_many_short_lived_tracks():
    params = SmootherParams(forget_after_s=0.5)
    smoother = Smoother(params)
    rng = np.random.default_rng(6)
    most_tracks = 0
    for frame_index in range(3000):           # 100 s at 30 fps, a new track id every frame
        smoother.update(base_pose(rng), [frame_index], frame_index / FPS)
        most_tracks = max(most_tracks, smoother.num_tracks)
    assert most_tracks <= params.forget_after_s * FPS + 2
    smoother.update(np.zeros((0, NUM_KEYPOINTS, 3)), [], 3000 / FPS + 1.0)
    assert smoother.num_tracks == 0


def test_a_forgotten_track_or_time_going_back_starts_afresh():
    rng = np.random.default_rng(7)
    pose, moved = base_pose(rng), base_pose(rng)
    smoother = Smoother(SmootherParams(forget_after_s=1.0))
    smoother.update(pose, [0], 0.0)
    smoother.update(np.zeros((0, NUM_KEYPOINTS, 3)), [], 2.0)        # track 0 forgotten
    np.testing.assert_array_equal(smoother.update(moved, [0], 2.1), moved)
    smoother.update(moved, [0], 2.2)
    np.testing.assert_array_equal(smoother.update(pose, [0], 0.5), pose)  # stream restarted
    smoother.reset()
    assert smoother.num_tracks == 0


def test_same_time_twice_repeats_the_estimate():
    rng = np.random.default_rng(8)
    pose = base_pose(rng)
    smoother = Smoother()
    smoother.update(pose, [0], 0.0)
    first = smoother.update(pose + np.array([10.0, 0.0, 0.0]), [0], 0.1)
    again = smoother.update(pose + np.array([30.0, 0.0, 0.0]), [0], 0.1)
    np.testing.assert_allclose(again, first)


def test_bad_arguments():
    smoother = Smoother()
    with pytest.raises(ValueError, match="person_ids"):
        smoother.update(np.zeros((2, NUM_KEYPOINTS, 3)), [1], 0.0)
    with pytest.raises(ValueError, match="shape"):
        smoother.update(np.zeros((2, NUM_KEYPOINTS, 2)), [1, 2], 0.0)


@pytest.mark.parametrize("field, value", [
    ("min_cutoff", 0.0), ("beta", -0.1), ("d_cutoff", 0.0), ("forget_after_s", 0.0),
    ("min_cutoff", float("nan")),
])
def test_params_out_of_range_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        SmootherParams(**{field: value})

"""Synthetic people for the tracking tests: a standing skeleton, pieces split off it, a runner."""

from __future__ import annotations

import numpy as np

from stages.skeleton import KEYPOINTS, NUM_KEYPOINTS

FPS = 30.0
HEIGHT_PX = 200.0

# A standing person in CMU-18 order, in person heights, origin at the middle of the hips.
POSE_TEMPLATE = np.array([
    (0.0, -0.42), (0.0, -0.33),                                   # nose, neck
    (-0.10, -0.33), (-0.13, -0.18), (-0.14, -0.04),                # right arm
    (0.10, -0.33), (0.13, -0.18), (0.14, -0.04),                   # left arm
    (-0.06, 0.0), (-0.07, 0.22), (-0.07, 0.44),                    # right leg
    (0.06, 0.0), (0.07, 0.22), (0.07, 0.44),                       # left leg
    (-0.02, -0.44), (0.02, -0.44), (-0.04, -0.43), (0.04, -0.43),  # eyes, ears
])


def skeleton(center_px, rng=None, noise_px=0.0, dropout=0.0, height_px=HEIGHT_PX) -> np.ndarray:
    """One synthetic person [18, 3] centred at ``center_px``, with pixel noise and dropped keypoints."""
    pose = np.empty((NUM_KEYPOINTS, 3))
    pose[:, :2] = np.asarray(center_px) + POSE_TEMPLATE * height_px
    pose[:, 2] = 0.8
    if rng is not None:
        pose[:, :2] += rng.normal(0.0, noise_px, (NUM_KEYPOINTS, 2))
        dropped = rng.random(NUM_KEYPOINTS) < dropout
        pose[dropped] = 0.0
    return pose


def run_sequence(tracker, frames, rng=None):
    """Feed ``frames`` (lists of (true_name, pose)) shuffled; return {true_name: [id per frame seen]}."""
    seen: dict[str, list[int]] = {}
    for frame_index, frame in enumerate(frames):
        order = rng.permutation(len(frame)) if rng is not None else np.arange(len(frame))
        names = [frame[i][0] for i in order]
        people = np.array([frame[i][1] for i in order]).reshape(-1, NUM_KEYPOINTS, 3)
        ids = tracker.update(people, frame_index / FPS)
        assert len(ids) == len(people)
        tracked = [person_id for person_id in ids if person_id >= 0]
        assert len(set(tracked)) == len(tracked), f"duplicate ids {ids} in frame {frame_index}"
        for name, person_id in zip(names, ids):
            seen.setdefault(name, []).append(person_id)
    return seen


# Pieces a bottom-up decoder splits off a body (keypoint names, CMU-18): none has a neck.
PIECES = {
    "head": ("nose", "r_eye", "l_eye"),
    "head_and_ears": ("nose", "r_eye", "l_eye", "r_ear", "l_ear"),
    "right_arm": ("r_shoulder", "r_elbow", "r_wrist"),
    "left_arm": ("l_elbow", "l_wrist"),
    "right_leg": ("r_hip", "r_knee", "r_ankle"),
    "left_leg": ("l_hip", "l_knee", "l_ankle"),
}


def split_off(pose: np.ndarray, names, shift_px=(0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """``pose`` split in two as a decoder may report it: (the body without the named keypoints,
    a piece holding only them, moved by ``shift_px``)."""
    indices = [KEYPOINTS.index(name) for name in names]
    body, piece = pose.copy(), np.zeros_like(pose)
    piece[indices] = pose[indices]
    piece[indices, :2] += np.asarray(shift_px)
    piece[pose[:, 2] <= 0] = 0.0
    body[indices] = 0.0
    return body, piece

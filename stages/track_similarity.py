"""Keypoint similarity between poses, and the assignment of people to tracks.

Pure functions over arrays, used by :mod:`stages.tracking`.  Arrays: poses / people float
[N, 18, 3] in frame pixels (x, y, score), CMU-18 order; a keypoint with score <= 0 is missing.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from stages.skeleton import NUM_KEYPOINTS

# COCO keypoint OKS sigmas (pycocotools) mapped to CMU-18 order; COCO has no neck, so the neck
# takes the shoulders' value (it lies between them and is about as well localised).
_COCO_SIGMAS = {
    "nose": 0.026, "eye": 0.025, "ear": 0.035, "shoulder": 0.079, "elbow": 0.072,
    "wrist": 0.062, "hip": 0.107, "knee": 0.087, "ankle": 0.089,
}
CMU_OKS_SIGMAS: tuple[float, ...] = tuple(_COCO_SIGMAS[part] for part in (
    "nose", "shoulder",                      # nose, neck (from the shoulders)
    "shoulder", "elbow", "wrist",            # right arm
    "shoulder", "elbow", "wrist",            # left arm
    "hip", "knee", "ankle",                  # right leg
    "hip", "knee", "ankle",                  # left leg
    "eye", "eye", "ear", "ear",              # r_eye, l_eye, r_ear, l_ear
))


def check_people(people: np.ndarray) -> np.ndarray:
    """``people`` as a float64 [P, 18, 3] array; ValueError on another shape."""
    people = np.asarray(people, dtype=np.float64)
    if people.ndim != 3 or people.shape[1:] != (NUM_KEYPOINTS, 3):
        raise ValueError(f"people must have shape [P, {NUM_KEYPOINTS}, 3], got {people.shape}")
    return people


def pose_scales(people: np.ndarray, min_scale_px: float) -> np.ndarray:
    """Scale of each person [P]: sqrt of their visible keypoints' bounding-box area, floored."""
    visible = people[..., 2] > 0
    big, small = np.inf, -np.inf
    x_min = np.where(visible, people[..., 0], big).min(axis=1, initial=big)
    x_max = np.where(visible, people[..., 0], small).max(axis=1, initial=small)
    y_min = np.where(visible, people[..., 1], big).min(axis=1, initial=big)
    y_max = np.where(visible, people[..., 1], small).max(axis=1, initial=small)
    area = np.clip(x_max - x_min, 0, None) * np.clip(y_max - y_min, 0, None)
    area = np.where(visible.any(axis=1), area, 0.0)
    return np.maximum(np.sqrt(area), min_scale_px)


def _per_keypoint_similarity(poses_a: np.ndarray, poses_b: np.ndarray, sigmas: np.ndarray,
                             min_scale_px: float, noise_px: float = 0.0) -> np.ndarray:
    """[A, B, 18]: exp(-d² / (2 ((s 2σ)² + noise²))) per keypoint visible in both poses, else 0."""
    shared = (poses_a[:, None, :, 2] > 0) & (poses_b[None, :, :, 2] > 0)      # [A,B,K]
    dist_sq = ((poses_a[:, None, :, :2] - poses_b[None, :, :, :2]) ** 2).sum(axis=-1)
    scale = np.maximum(pose_scales(poses_a, min_scale_px)[:, None],
                       pose_scales(poses_b, min_scale_px)[None, :])            # [A,B]
    tolerance_sq = 2.0 * ((scale[..., None] ** 2) * (2.0 * np.asarray(sigmas)) ** 2 + noise_px ** 2)
    return np.where(shared, np.exp(-dist_sq / tolerance_sq), 0.0)


def keypoint_similarity(poses_a: np.ndarray, poses_b: np.ndarray, sigmas: np.ndarray,
                        min_scale_px: float = 16.0, min_shared: int = 1, noise_px: float = 0.0) -> np.ndarray:
    """OKS-like similarity [A, B] in 0..1 between two sets of poses [A,18,3] and [B,18,3].

    Per keypoint visible in both: exp(-d² / (2 ((s 2σ)² + noise²))) with s the larger of the two
    poses' scales (see :func:`pose_scales`) and ``noise_px`` the decoder's own placement noise
    (pixels, whatever the person's size: COCO's σ describe annotators on big people, and a small
    person's keypoints move by a few pixels from frame to frame while the person stands still);
    the similarity is the mean over the shared keypoints, and 0 when fewer than ``min_shared``
    keypoints are shared.
    """
    return similarity_and_explained(poses_a, poses_b, sigmas, min_scale_px, min_shared, noise_px)[0]


def explained_fraction(tracks: np.ndarray, people: np.ndarray, sigmas: np.ndarray,
                       min_scale_px: float = 16.0) -> np.ndarray:
    """How much of each track each person explains [T, P] in 0..1: the per-keypoint similarity
    of :func:`keypoint_similarity` summed over the keypoints both show, divided by the number of
    keypoints the track shows.  A piece of a body (an arm, a head) fits its few keypoints as
    well as the body does but explains a small part of the track, so the whole body wins."""
    return similarity_and_explained(tracks, people, sigmas, min_scale_px)[1]


def similarity_and_explained(tracks: np.ndarray, people: np.ndarray, sigmas: np.ndarray,
                             min_scale_px: float = 16.0, min_shared: int = 1,
                             noise_px: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """:func:`keypoint_similarity` and :func:`explained_fraction` [T, P] in one pass."""
    if len(tracks) == 0 or len(people) == 0:
        empty = np.zeros((len(tracks), len(people)))
        return empty, empty.copy()
    per_keypoint = _per_keypoint_similarity(tracks, people, sigmas, min_scale_px, noise_px)
    total = per_keypoint.sum(axis=-1)
    shared_count = ((tracks[:, None, :, 2] > 0) & (people[None, :, :, 2] > 0)).sum(axis=-1)
    similarity = np.where(shared_count >= min_shared, total / np.maximum(shared_count, 1), 0.0)
    track_keypoints = (tracks[..., 2] > 0).sum(axis=-1)
    return similarity, total / np.maximum(track_keypoints, 1)[:, None]


def match_pairs(similarity: np.ndarray, threshold: float,
                preference: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Hungarian matching of rows to columns; pairs below ``threshold`` are dropped.

    The assignment maximises the total of ``preference`` (default: ``similarity``) over the
    pairs whose similarity reaches the threshold.
    """
    if similarity.size == 0:
        return []
    preference = similarity if preference is None else preference
    usable = np.where(similarity >= threshold, preference, 0.0)
    rows, cols = linear_sum_assignment(usable, maximize=True)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if similarity[r, c] >= threshold]


def scene_shift(tracks: np.ndarray, people: np.ndarray, min_scale_px: float = 16.0,
                max_fraction: float = 1.0, min_pairs: int = 3) -> np.ndarray:
    """The displacement [2] (px) the whole scene shares between the tracks' expected poses
    [T,18,3] and this frame's people [P,18,3]: a panning or shaking camera moves everyone
    alike.  Pairs are mutual nearest neighbours (keypoint boxes' centres) no further apart than
    ``max_fraction`` of the track's scale; each pair's displacement is the median over the
    keypoints both show; the shift is the median over pairs, or zero with fewer than
    ``min_pairs`` pairs (a few people walking their own ways move no scene)."""
    if len(tracks) < min_pairs or len(people) < min_pairs:
        return np.zeros(2)
    centres_t, centres_p = _box_centres(tracks), _box_centres(people)
    distance = np.linalg.norm(centres_t[:, None] - centres_p[None], axis=-1)
    distance = np.where(np.isfinite(distance), distance, np.inf)
    nearest_p, nearest_t = distance.argmin(axis=1), distance.argmin(axis=0)
    limit = max_fraction * pose_scales(tracks, min_scale_px)
    steps = []
    for track, person in enumerate(nearest_p):
        if nearest_t[person] != track or not distance[track, person] <= limit[track]:
            continue
        shared = (tracks[track, :, 2] > 0) & (people[person, :, 2] > 0)
        if shared.any():
            steps.append(np.median(people[person, shared, :2] - tracks[track, shared, :2], axis=0))
    return np.median(steps, axis=0) if len(steps) >= min_pairs else np.zeros(2)


def _box_centres(poses: np.ndarray) -> np.ndarray:
    """Centre [N, 2] of each pose's visible keypoints' box; inf for a pose without any."""
    visible = poses[..., 2] > 0
    low = np.where(visible[..., None], poses[..., :2], np.inf).min(axis=1)
    high = np.where(visible[..., None], poses[..., :2], -np.inf).max(axis=1)
    return np.where(visible.any(axis=1)[:, None], (low + high) / 2.0, np.inf)

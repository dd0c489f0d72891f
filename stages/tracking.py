"""Person tracking: give each decoded person an id that stays the same across frames.

Each frame's people are matched to the current tracks by an OKS-like keypoint similarity with
the Hungarian algorithm; a pair is accepted only when its similarity reaches
``TrackerParams.oks_threshold``.  Unmatched people start new tracks with new ids (ids are never
reused); a track that goes unmatched for more than ``max_age`` updates is dropped.  Each track
carries a constant-velocity estimate so two people whose paths cross keep their ids.

Arrays: ``people`` float [P, 18, 3] in frame pixels (x, y, score), CMU-18 order, a missing
keypoint is (0, 0, 0) (any keypoint with score <= 0 counts as missing).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from stages.skeleton import NUM_KEYPOINTS

logger = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class TrackerParams:
    """Settings of :class:`Tracker`.

    oks_threshold: least keypoint similarity (0 < t <= 1) for a person to continue a track.
    max_age: updates a track may go unmatched and still be continued; after more it is dropped.
    sigmas: per-keypoint OKS falloff (18 values > 0, CMU order), as a fraction of the person's
        scale; defaults to COCO's values with the neck taken from the shoulders.
    min_scale_px: floor on a person's scale (sqrt of the keypoint bounding-box area), so people
        with one or two visible keypoints still get a sensible tolerance.
    min_shared_keypoints: least number of keypoints visible in both poses for them to be compared.
    predict_motion: move each track by its estimated velocity before matching (keeps the ids of
        people whose paths cross).
    velocity_smoothing: weight (0..1) of the newest displacement in a track's velocity estimate.
    lost_discount: fraction (0..1) by which a track's similarity is discounted per update it has
        gone unmatched, when choosing pairs (not when checking the threshold): of two tracks that
        fit a person equally, the one seen more recently wins.
    """

    oks_threshold: float = 0.3
    max_age: int = 10
    sigmas: tuple[float, ...] = CMU_OKS_SIGMAS
    min_scale_px: float = 16.0
    min_shared_keypoints: int = 1
    predict_motion: bool = True
    velocity_smoothing: float = 0.5
    lost_discount: float = 0.02

    def __post_init__(self) -> None:
        if not 0.0 < self.oks_threshold <= 1.0:
            raise ValueError(f"oks_threshold must be in (0, 1], got {self.oks_threshold}")
        if self.max_age < 0:
            raise ValueError(f"max_age must be >= 0, got {self.max_age}")
        if len(self.sigmas) != NUM_KEYPOINTS or not min(self.sigmas) > 0:
            raise ValueError(f"sigmas must be {NUM_KEYPOINTS} values > 0, got {self.sigmas}")
        if not self.min_scale_px > 0:
            raise ValueError(f"min_scale_px must be > 0, got {self.min_scale_px}")
        if not 1 <= self.min_shared_keypoints <= NUM_KEYPOINTS:
            raise ValueError(
                f"min_shared_keypoints must be in [1, {NUM_KEYPOINTS}], got {self.min_shared_keypoints}")
        if not 0.0 < self.velocity_smoothing <= 1.0:
            raise ValueError(f"velocity_smoothing must be in (0, 1], got {self.velocity_smoothing}")
        if not 0.0 <= self.lost_discount < 1.0:
            raise ValueError(f"lost_discount must be in [0, 1), got {self.lost_discount}")


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


def keypoint_similarity(poses_a: np.ndarray, poses_b: np.ndarray, sigmas: np.ndarray,
                        min_scale_px: float = 16.0, min_shared: int = 1) -> np.ndarray:
    """OKS-like similarity [A, B] in 0..1 between two sets of poses [A,18,3] and [B,18,3].

    Per keypoint visible in both: exp(-d² / (2 s² (2σ)²)) with s the larger of the two poses'
    scales (see :func:`pose_scales`); the similarity is the mean over the shared keypoints, and 0
    when fewer than ``min_shared`` keypoints are shared.
    """
    if len(poses_a) == 0 or len(poses_b) == 0:
        return np.zeros((len(poses_a), len(poses_b)))
    visible_a = poses_a[:, None, :, 2] > 0                          # [A,1,K]
    visible_b = poses_b[None, :, :, 2] > 0                          # [1,B,K]
    shared = visible_a & visible_b                                  # [A,B,K]
    dist_sq = ((poses_a[:, None, :, :2] - poses_b[None, :, :, :2]) ** 2).sum(axis=-1)
    scale = np.maximum(pose_scales(poses_a, min_scale_px)[:, None],
                       pose_scales(poses_b, min_scale_px)[None, :])  # [A,B]
    tolerance_sq = 2.0 * (scale[..., None] ** 2) * (2.0 * np.asarray(sigmas)) ** 2
    per_keypoint = np.where(shared, np.exp(-dist_sq / tolerance_sq), 0.0)
    shared_count = shared.sum(axis=-1)
    similarity = per_keypoint.sum(axis=-1) / np.maximum(shared_count, 1)
    return np.where(shared_count >= min_shared, similarity, 0.0)


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


class _Track:
    """One tracked person: last observed pose, velocity (px/s), when last seen, misses."""

    __slots__ = ("track_id", "pose", "velocity", "has_velocity", "time_s", "misses")

    def __init__(self, track_id: int, pose: np.ndarray, time_s: float) -> None:
        self.track_id = track_id
        self.pose = pose
        self.velocity = np.zeros(2)
        self.has_velocity = False
        self.time_s = time_s
        self.misses = 0

    def predicted(self, time_s: float) -> np.ndarray:
        """The last pose moved by the velocity to ``time_s`` (missing keypoints stay missing)."""
        shift = self.velocity * max(time_s - self.time_s, 0.0)
        moved = self.pose.copy()
        moved[..., :2] += np.where(self.pose[..., 2:] > 0, shift, 0.0)
        return moved

    def observe(self, pose: np.ndarray, time_s: float, smoothing: float) -> None:
        """Continue the track with ``pose``; update the velocity from the shared keypoints."""
        elapsed_s = time_s - self.time_s
        shared = (pose[:, 2] > 0) & (self.pose[:, 2] > 0)
        if elapsed_s > 0 and shared.any():
            step = (pose[shared, :2] - self.pose[shared, :2]).mean(axis=0) / elapsed_s
            weight = smoothing if self.has_velocity else 1.0
            self.velocity = weight * step + (1.0 - weight) * self.velocity
            self.has_velocity = True
        self.pose, self.time_s, self.misses = pose, time_s, 0


class Tracker:
    """Assigns stable person ids across frames (see the module docstring).

    ``update(people, time_s)`` returns one id per person, in the order given.  The tracker owns
    all its state; ``reset()`` forgets every track but keeps counting ids, so ids are never reused.
    """

    def __init__(self, params: TrackerParams = TrackerParams()) -> None:
        self.params = params
        self._sigmas = np.asarray(params.sigmas, dtype=np.float64)
        self._tracks: list[_Track] = []
        self._next_id = 0

    @property
    def num_tracks(self) -> int:
        """Tracks currently held (matched this update or lost for at most ``max_age`` updates)."""
        return len(self._tracks)

    def reset(self) -> None:
        """Forget all tracks (ids already given out are still never reused)."""
        self._tracks = []

    def update(self, people: np.ndarray, time_s: float) -> tuple[int, ...]:
        """Match ``people`` [P,18,3] (frame px) seen at ``time_s`` to the tracks; return their ids."""
        people = check_people(people)
        params = self.params
        if self._tracks and params.predict_motion:
            expected = np.stack([track.predicted(time_s) for track in self._tracks])
        elif self._tracks:
            expected = np.stack([track.pose for track in self._tracks])
        else:
            expected = np.zeros((0, NUM_KEYPOINTS, 3))
        similarity = keypoint_similarity(expected, people, self._sigmas, params.min_scale_px,
                                         params.min_shared_keypoints)
        misses = np.array([track.misses for track in self._tracks], dtype=np.float64)
        preference = similarity * (1.0 - params.lost_discount) ** misses[:, None]
        pairs = match_pairs(similarity, params.oks_threshold, preference)

        ids = [-1] * len(people)
        matched_tracks = set()
        for track_index, person_index in pairs:
            track = self._tracks[track_index]
            track.observe(people[person_index].copy(), time_s, params.velocity_smoothing)
            ids[person_index] = track.track_id
            matched_tracks.add(track_index)

        kept = []
        for track_index, track in enumerate(self._tracks):
            if track_index not in matched_tracks:
                track.misses += 1
            if track.misses <= params.max_age:
                kept.append(track)
        dropped = len(self._tracks) - len(kept)
        self._tracks = kept

        for person_index, person_id in enumerate(ids):
            if person_id < 0:
                ids[person_index] = self._start_track(people[person_index].copy(), time_s)
        logger.debug("tracking at %.3fs: %d people, %d matched, %d tracks dropped, %d held",
                     time_s, len(people), len(pairs), dropped, len(self._tracks))
        return tuple(ids)

    def _start_track(self, pose: np.ndarray, time_s: float) -> int:
        """A new id; a track is kept only for a pose with a visible keypoint (others never match)."""
        track_id = self._next_id
        self._next_id += 1
        if (pose[:, 2] > 0).any():
            self._tracks.append(_Track(track_id, pose, time_s))
        return track_id

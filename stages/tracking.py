"""Person tracking: give each decoded person an id that stays the same across frames.

Each frame's people are matched to the current tracks with the Hungarian algorithm.  A pair is
allowed when its OKS-like keypoint similarity (mean over the keypoints both show) reaches
``TrackerParams.oks_threshold``; among allowed pairs the assignment prefers the person who
explains the most of the track (similarity summed over the track's keypoints), so a whole body
wins its track over a head or an arm that fits a few keypoints just as well.  Each track carries
a constant-velocity estimate, so people whose paths cross keep their ids, and a person missed for
up to ``max_age`` updates gets their id back when they reappear near where motion predicts.

Pieces of a tracked person that the decoder reports as people of their own (see
:mod:`stages.track_parts`: *fragments*, few keypoints and no neck, touching a track; *parts*,
people no bigger than a person tracked in the same frame and mostly inside their box) never take a track nor start
one: their id is -1, as is a person without any visible keypoint.  Other unmatched people start new tracks with new ids; ids are never reused;
a track unmatched for more than ``max_age`` updates is dropped.

Arrays: ``people`` float [P, 18, 3] in frame pixels (x, y, score), CMU-18 order, a missing
keypoint is (0, 0, 0) (any keypoint with score <= 0 counts as missing).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from stages.skeleton import NUM_KEYPOINTS
from stages.track_parts import (
    box_iou, find_fragments, find_parts, headless_few, keypoint_counts, pose_boxes,
)
from stages.track_similarity import (  # noqa: F401 - re-exported: the tracker's public helpers
    CMU_OKS_SIGMAS, check_people, explained_fraction, keypoint_similarity, match_pairs, pose_scales,
    scene_shift, similarity_and_explained,
)

logger = logging.getLogger(__name__)


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
    noise_px: the decoder's keypoint placement noise (frame pixels, >= 0), added to every
        keypoint's tolerance: a small person's keypoints wander by a few pixels between frames
        however still they stand, more than COCO's σ allow for someone 60 px tall (on the
        768x576 walkway clip, 4 px cut the ids of 80 s by a third; see docs/architecture.md).
    predict_motion: move each track by its estimated velocity before matching (keeps the ids of
        people whose paths cross).
    velocity_smoothing: weight (0..1) of the newest displacement in a track's velocity estimate.
    lost_discount: fraction (0..1) by which a track's preference is discounted per update it has
        gone unmatched, when choosing pairs (not when checking the threshold): of two tracks that
        fit a person equally, the one seen more recently wins.
    fragment_max_keypoints: a person with at most this many keypoints (0-17) and no neck, inside
        or touching a track's box, is a fragment of that person (id -1); 0 turns this off.
    fragment_margin: how far (a fraction of the tracked person's scale, 0-10) a box is grown for
        "touching".
    part_min_inside: a person unmatched this frame with no more keypoints than a person matched
        to a track, and at least this fraction (0 < f <= 1) of their keypoints inside that track's box
        (grown by ``fragment_margin``), is a part of that person (id -1, starts no track).
    extent_memory_s: a track's box covers the keypoints seen in the last ``extent_memory_s``
        seconds (>= 0; moved by the track's velocity), not only the last frame's: a body seen
        without its head still owns the space where the head was.
    fallback_iou: tracks seen in the previous update and people left unpaired by keypoint
        similarity are paired when the track's box and the person's box overlap by at least this
        intersection over union (0-1; 0 = no second round).  Keeps the id when the decoder puts keypoints on the wrong
        limbs for a frame, so the poses differ while the person stays where they were.
    scene_motion: before matching, move the tracks seen last update by the shift the whole
        scene shares beyond their own motion (``track_similarity.scene_shift``): a shaking or
        panning camera moves small people further between frames than their keypoint
        tolerance.
    full_keypoints: a person with at least this many keypoints (1-18) is never taken for a
        piece of someone: they always get an id.
    """

    oks_threshold: float = 0.3
    max_age: int = 10
    sigmas: tuple[float, ...] = CMU_OKS_SIGMAS
    min_scale_px: float = 16.0
    min_shared_keypoints: int = 1
    noise_px: float = 4.0
    predict_motion: bool = True
    velocity_smoothing: float = 0.5
    lost_discount: float = 0.02
    fragment_max_keypoints: int = 5
    fragment_margin: float = 0.2
    part_min_inside: float = 0.8
    extent_memory_s: float = 0.5
    fallback_iou: float = 0.5
    scene_motion: bool = True
    full_keypoints: int = 8

    def __post_init__(self) -> None:
        if not 0.0 < self.oks_threshold <= 1.0:
            raise ValueError(f"oks_threshold must be in (0, 1], got {self.oks_threshold}")
        if self.max_age < 0:
            raise ValueError(f"max_age must be >= 0, got {self.max_age}")
        if len(self.sigmas) != NUM_KEYPOINTS or not min(self.sigmas) > 0:
            raise ValueError(f"sigmas must be {NUM_KEYPOINTS} values > 0, got {self.sigmas}")
        if not self.min_scale_px > 0:
            raise ValueError(f"min_scale_px must be > 0, got {self.min_scale_px}")
        if not self.noise_px >= 0.0:
            raise ValueError(f"noise_px must be >= 0, got {self.noise_px}")
        if not 1 <= self.min_shared_keypoints <= NUM_KEYPOINTS:
            raise ValueError(
                f"min_shared_keypoints must be in [1, {NUM_KEYPOINTS}], got {self.min_shared_keypoints}")
        if not 0.0 < self.velocity_smoothing <= 1.0:
            raise ValueError(f"velocity_smoothing must be in (0, 1], got {self.velocity_smoothing}")
        if not 0.0 <= self.lost_discount < 1.0:
            raise ValueError(f"lost_discount must be in [0, 1), got {self.lost_discount}")
        if not 0 <= self.fragment_max_keypoints < NUM_KEYPOINTS:
            raise ValueError(f"fragment_max_keypoints must be in [0, {NUM_KEYPOINTS - 1}], "
                             f"got {self.fragment_max_keypoints}")
        if not 0.0 <= self.fragment_margin <= 10.0:
            raise ValueError(f"fragment_margin must be in [0, 10], got {self.fragment_margin}")
        if not 0.0 < self.part_min_inside <= 1.0:
            raise ValueError(f"part_min_inside must be in (0, 1], got {self.part_min_inside}")
        if not 0.0 <= self.fallback_iou <= 1.0:
            raise ValueError(f"fallback_iou must be in [0, 1], got {self.fallback_iou}")
        if not 1 <= self.full_keypoints <= NUM_KEYPOINTS:
            raise ValueError(f"full_keypoints must be in [1, {NUM_KEYPOINTS}], got {self.full_keypoints}")
        if not self.extent_memory_s >= 0.0:
            raise ValueError(f"extent_memory_s must be >= 0, got {self.extent_memory_s}")


class _Track:
    """One tracked person: last observed pose, velocity (px/s), when last seen, misses, and
    each keypoint's last seen position and time (for the track's box)."""

    __slots__ = ("track_id", "pose", "velocity", "has_velocity", "time_s", "misses", "scene_at",
                 "recent_xy", "recent_s")

    def __init__(self, track_id: int, pose: np.ndarray, time_s: float) -> None:
        self.track_id = track_id
        self.pose = pose
        self.velocity = np.zeros(2)
        self.has_velocity = False
        self.time_s = time_s
        self.misses = 0
        self.scene_at = np.zeros(2)      # the scene's position (Tracker._scene) when last seen
        self.recent_xy = pose[:, :2].copy()
        self.recent_s = np.where(pose[:, 2] > 0, time_s, -np.inf)

    def predicted(self, time_s: float) -> np.ndarray:
        """The last pose moved by the velocity to ``time_s`` (missing keypoints stay missing)."""
        shift = self.velocity * max(time_s - self.time_s, 0.0)
        moved = self.pose.copy()
        moved[..., :2] += np.where(self.pose[..., 2:] > 0, shift, 0.0)
        return moved

    def extent(self, time_s: float, memory_s: float, move: bool = True) -> np.ndarray:
        """Box [4] of the keypoints seen within ``memory_s`` of the last sighting, each moved by
        the velocity to ``time_s`` (unless ``move`` is False)."""
        fresh = self.recent_s >= self.time_s - memory_s
        elapsed_s = np.maximum(time_s - self.recent_s[fresh], 0.0)
        moved = self.recent_xy[fresh] + (self.velocity * elapsed_s[:, None] if move else 0.0)
        return np.concatenate([moved.min(axis=0), moved.max(axis=0)])

    def observe(self, pose: np.ndarray, time_s: float, smoothing: float) -> None:
        """Continue the track with ``pose``; blend the velocity (weight ``smoothing``; 0 = keep
        it: the pose was paired by its box, its keypoints are not to be trusted) with the step
        measured by :func:`_step_px`."""
        elapsed_s = time_s - self.time_s
        if elapsed_s > 0 and smoothing > 0:
            step = _step_px(self.pose, pose, self.velocity * elapsed_s)
            if step is not None:
                weight = smoothing if self.has_velocity else 1.0
                self.velocity = weight * step / elapsed_s + (1.0 - weight) * self.velocity
                self.has_velocity = True
        visible = pose[:, 2] > 0
        self.recent_xy[visible] = pose[visible, :2]
        self.recent_s[visible] = time_s
        self.pose, self.time_s, self.misses = pose, time_s, 0


# A keypoint whose displacement is this far (a fraction of the person's scale) from the predicted
# one is taken for the decoder's mistake (on the wrong limb) when the body's step is measured.
_STEP_INLIER_SCALE = 0.2
_MIN_STEP_INLIERS = 3


def _step_px(before: np.ndarray, after: np.ndarray, expected_px: np.ndarray) -> np.ndarray | None:
    """The body's displacement [2] from pose ``before`` to ``after`` (px): the median over the
    keypoints both show whose displacement is near ``expected_px`` (when at least three are),
    else over all of them, so a few keypoints put on the wrong limb cannot fling the track;
    None when no keypoint is shared."""
    shared = (before[:, 2] > 0) & (after[:, 2] > 0)
    if not shared.any():
        return None
    moves = after[shared, :2] - before[shared, :2]
    tolerance_px = _STEP_INLIER_SCALE * pose_scales(before[None], 1.0)[0]
    inliers = np.hypot(*(moves - expected_px).T) <= tolerance_px
    return np.median(moves[inliers] if inliers.sum() >= _MIN_STEP_INLIERS else moves, axis=0)


class Tracker:
    """Assigns stable person ids across frames (see the module docstring).

    ``update(people, time_s)`` returns one id per person, in the order given (-1 for a piece of
    a tracked person).  The tracker owns all its state; ``reset()`` forgets every track but keeps
    counting ids, so ids are never reused.
    """

    def __init__(self, params: TrackerParams = TrackerParams()) -> None:
        self.params = params
        self._sigmas = np.asarray(params.sigmas, dtype=np.float64)
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._scene = np.zeros(2)        # how far the scene has moved since the first update (px)

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
        fragments = self._fragments(people, time_s)
        candidates = np.flatnonzero(~fragments)
        pairs = self._match(people, candidates, time_s)

        ids = [-1] * len(people)
        for track_index, person_index, by_keypoints in pairs:
            track = self._tracks[track_index]
            track.observe(people[person_index].copy(), time_s,
                          params.velocity_smoothing if by_keypoints else 0.0)
            track.scene_at = self._scene.copy()
            ids[person_index] = track.track_id
        matched = [self._tracks[track_index] for track_index, _, _ in pairs]
        dropped = self._age_unmatched({id(track) for track in matched})

        # Unmatched people, largest first, start tracks unless they are part of someone present.
        counts = keypoint_counts(people)
        present, parts = matched, 0
        for person_index in sorted((index for index in candidates if ids[index] < 0),
                                   key=lambda index: -counts[index]):
            if counts[person_index] == 0:
                continue
            if counts[person_index] < params.full_keypoints and \
                    self._is_part(people[person_index], present, time_s):
                parts += 1
                continue
            ids[person_index] = self._start_track(people[person_index].copy(), time_s)
            present.append(self._tracks[-1])
        logger.debug("tracking at %.3fs: %d people (%d fragments, %d parts), %d matched, "
                     "%d tracks dropped, %d held", time_s, len(people), int(fragments.sum()),
                     parts, len(pairs), dropped, len(self._tracks))
        return tuple(ids)

    def _is_part(self, pose: np.ndarray, present: list[_Track], time_s: float) -> bool:
        """``pose`` [18,3] is a part of one of the ``present`` tracks' people (those seen now)."""
        if not present:
            return False
        params = self.params
        boxes = self._extents(present, time_s)
        counts = keypoint_counts(np.stack([track.pose for track in present]))
        return bool(find_parts(pose[None], boxes, counts, params.part_min_inside,
                               params.fragment_margin, params.min_scale_px)[0])

    def _fragments(self, people: np.ndarray, time_s: float) -> np.ndarray:
        """[P]: few-keypoint headless people touching a track's box or the box of a person of
        this frame who is not such a piece."""
        params = self.params
        looks_like = headless_few(people, params.fragment_max_keypoints)
        if not looks_like.any():
            return looks_like
        tracked_boxes = np.concatenate([self._extents(self._tracks, time_s),
                                        pose_boxes(people[~looks_like])])
        return find_fragments(people, tracked_boxes, params.fragment_max_keypoints,
                              params.fragment_margin, params.min_scale_px)

    def _match(self, people: np.ndarray, candidates: np.ndarray,
               time_s: float) -> list[tuple[int, int, bool]]:
        """(track index, person index, paired by keypoints rather than by box) between the tracks
        and ``people[candidates]``."""
        if not self._tracks or len(candidates) == 0:
            return []
        params = self.params
        if params.predict_motion:
            expected = np.stack([track.predicted(time_s) for track in self._tracks])
        else:
            expected = np.stack([track.pose for track in self._tracks])
        chosen = people[candidates]
        still = self._follow_scene(expected, chosen) if params.scene_motion else None
        similarity, explained = self._similarity(expected, chosen)
        if still is not None:
            other = self._similarity(still, chosen)
            similarity, explained = np.maximum(similarity, other[0]), np.maximum(explained, other[1])
        misses = np.array([track.misses for track in self._tracks], dtype=np.float64)
        preference = explained * (1.0 - params.lost_discount) ** misses[:, None]
        by_keypoints = match_pairs(similarity, params.oks_threshold, preference)
        by_box = self._match_boxes(chosen, by_keypoints, time_s) if params.fallback_iou > 0 else []
        return [(track_index, int(candidates[chosen_index]), keypoints)
                for keypoints, pairs in ((True, by_keypoints), (False, by_box))
                for track_index, chosen_index in pairs]

    def _similarity(self, expected: np.ndarray, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        params = self.params
        return similarity_and_explained(expected, chosen, self._sigmas, params.min_scale_px,
                                        params.min_shared_keypoints, params.noise_px)

    def _follow_scene(self, expected: np.ndarray, chosen: np.ndarray) -> np.ndarray | None:
        """Move the expected poses by the shift the whole scene shares (``scene_shift``), in
        place.  Tracks seen last update: by the shift beyond what they expect, in two groups
        (with a velocity, and without one yet: a shaking camera moves both alike, but only the
        first already expect some of it).  Lost tracks: by how far the scene has moved since they
        were last seen; returned besides: the expected poses with the lost tracks where they
        were last seen (moved with the scene only: the shake their velocity learnt is no guide),
        None when no track is lost.  The matching takes the better of the two."""
        fresh = np.array([track.misses == 0 for track in self._tracks])
        moving = np.array([track.has_velocity for track in self._tracks])
        step = np.zeros(2)
        if fresh.sum() >= 3:
            last = np.stack([track.pose for track in self._tracks])[fresh]
            step = scene_shift(last, chosen, self.params.min_scale_px)
        self._scene = self._scene + step
        for group in (fresh & moving, fresh & ~moving):
            if group.sum() >= 3:
                shift = scene_shift(expected[group], chosen, self.params.min_scale_px)
                expected[group, :, :2] += np.where(expected[group, :, 2:] > 0, shift, 0.0)
        if fresh.all():
            return None
        still = expected.copy()
        for index in np.flatnonzero(~fresh):
            track = self._tracks[index]
            since = np.where(track.pose[:, 2:] > 0, self._scene - track.scene_at, 0.0)
            expected[index, :, :2] += since
            still[index, :, :2] = track.pose[:, :2] + since
        return still

    def _match_boxes(self, chosen: np.ndarray, pairs: list[tuple[int, int]],
                     time_s: float) -> list[tuple[int, int]]:
        """Second round: tracks seen last update and people left unpaired by keypoints, paired
        by box overlap (a track already lost must get its person back by keypoints)."""
        tracks_left = sorted({index for index, track in enumerate(self._tracks) if track.misses == 0}
                             - {track for track, _ in pairs})
        people_left = sorted(set(range(len(chosen))) - {person for _, person in pairs})
        if not tracks_left or not people_left:
            return []
        boxes = self._extents([self._tracks[index] for index in tracks_left], time_s)
        overlap = box_iou(boxes, pose_boxes(chosen[people_left]))
        return [(tracks_left[row], people_left[column])
                for row, column in match_pairs(overlap, self.params.fallback_iou)]

    def _extents(self, tracks: list[_Track], time_s: float) -> np.ndarray:
        """Boxes [T, 4] where ``tracks`` are expected at ``time_s`` (see ``_Track.extent``)."""
        boxes = [track.extent(time_s, self.params.extent_memory_s, self.params.predict_motion)
                 for track in tracks]
        return np.reshape(boxes, (-1, 4))

    def _age_unmatched(self, matched: set[int]) -> int:
        """Count a miss for each unmatched track; drop those past ``max_age``; return how many."""
        kept = []
        for track in self._tracks:
            if id(track) not in matched:
                track.misses += 1
            if track.misses <= self.params.max_age:
                kept.append(track)
        dropped = len(self._tracks) - len(kept)
        self._tracks = kept
        return dropped

    def _start_track(self, pose: np.ndarray, time_s: float) -> int:
        """A new track for ``pose`` (which has a visible keypoint); returns its new id."""
        track_id = self._next_id
        self._next_id += 1
        self._tracks.append(_Track(track_id, pose, time_s))
        self._tracks[-1].scene_at = self._scene.copy()
        return track_id

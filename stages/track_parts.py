"""Pieces of a tracked person that a decoder reports as people of their own.

A bottom-up decoder sometimes splits one body: a head, an arm or a leg comes out as a separate
"person" of a few keypoints beside the body it belongs to, or a second neck starts a smaller copy
of part of the body.  Such pieces must not start tracks nor take the body's track.  Two kinds:

- a *fragment*: at most ``max_keypoints`` keypoints, no neck, and a box inside or touching the
  box of a tracked person (grown by ``margin`` times that person's scale);
- a *part*: a person with no more keypoints than a person matched to a track in the same frame,
  with at least ``min_inside`` of their keypoints inside that track's box (grown the same way).

Pure functions over arrays.  Arrays: people float [P, 18, 3] (frame px, score <= 0 = missing);
boxes float [N, 4] as (x_min, y_min, x_max, y_max), NaN for a person without keypoints.
"""

from __future__ import annotations

import numpy as np

from stages.skeleton import KEYPOINTS

NECK = KEYPOINTS.index("neck")


def keypoint_counts(people: np.ndarray) -> np.ndarray:
    """Visible keypoints of each person [P]."""
    return (np.asarray(people)[..., 2] > 0).sum(axis=-1)


def pose_boxes(people: np.ndarray) -> np.ndarray:
    """Bounding box [P, 4] of each person's visible keypoints; NaN for a person without any."""
    boxes = np.full((len(people), 4), np.nan)
    for index, pose in enumerate(people):
        visible = pose[:, 2] > 0
        if visible.any():
            boxes[index, :2] = pose[visible, :2].min(axis=0)
            boxes[index, 2:] = pose[visible, :2].max(axis=0)
    return boxes


def box_scales(boxes: np.ndarray, min_scale_px: float) -> np.ndarray:
    """Scale [N] of each box: sqrt of its area, floored at ``min_scale_px`` (also for NaN)."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return np.maximum(np.sqrt(np.nan_to_num(area, nan=0.0)), min_scale_px)


def grow_boxes(boxes: np.ndarray, margin: float, min_scale_px: float) -> np.ndarray:
    """Each box grown on every side by ``margin`` times its scale (see :func:`box_scales`)."""
    margins_px = margin * box_scales(boxes, min_scale_px)
    return boxes + np.stack([-margins_px, -margins_px, margins_px, margins_px], axis=-1)


def boxes_touch(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """[A, B]: box a overlaps or touches box b (False where either is NaN)."""
    return ((boxes_a[:, None, 0] <= boxes_b[None, :, 2]) & (boxes_b[None, :, 0] <= boxes_a[:, None, 2])
            & (boxes_a[:, None, 1] <= boxes_b[None, :, 3]) & (boxes_b[None, :, 1] <= boxes_a[:, None, 3]))


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """[A, B]: intersection over union of each pair of boxes (0 where either is NaN or empty)."""
    width = np.minimum(boxes_a[:, None, 2], boxes_b[None, :, 2]) - np.maximum(boxes_a[:, None, 0], boxes_b[None, :, 0])
    height = np.minimum(boxes_a[:, None, 3], boxes_b[None, :, 3]) - np.maximum(boxes_a[:, None, 1], boxes_b[None, :, 1])
    overlap = np.clip(np.nan_to_num(width), 0, None) * np.clip(np.nan_to_num(height), 0, None)
    area_a = np.nan_to_num((boxes_a[:, 2] - boxes_a[:, 0]) * (boxes_a[:, 3] - boxes_a[:, 1]))
    area_b = np.nan_to_num((boxes_b[:, 2] - boxes_b[:, 0]) * (boxes_b[:, 3] - boxes_b[:, 1]))
    union = area_a[:, None] + area_b[None, :] - overlap
    return np.where(union > 0, overlap / np.where(union > 0, union, 1.0), 0.0)


def fraction_inside(people: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """[P, N]: the fraction of person p's visible keypoints inside box n (0 for no keypoints)."""
    visible = people[:, None, :, 2] > 0                                       # [P,1,K]
    x, y = people[:, None, :, 0], people[:, None, :, 1]
    inside = ((boxes[None, :, 0, None] <= x) & (x <= boxes[None, :, 2, None])
              & (boxes[None, :, 1, None] <= y) & (y <= boxes[None, :, 3, None]) & visible)
    return inside.sum(axis=-1) / np.maximum(visible.sum(axis=-1), 1)


def headless_few(people: np.ndarray, max_keypoints: int) -> np.ndarray:
    """[P]: at most ``max_keypoints`` keypoints and no neck (what a fragment looks like)."""
    return (keypoint_counts(people) <= max_keypoints) & (people[:, NECK, 2] <= 0)


def find_fragments(people: np.ndarray, tracked_boxes: np.ndarray, max_keypoints: int,
                   margin: float, min_scale_px: float = 16.0) -> np.ndarray:
    """[P]: fragments (see the module docstring) of the people whose boxes are ``tracked_boxes``."""
    looks_like = headless_few(people, max_keypoints)
    if len(tracked_boxes) == 0 or not looks_like.any():
        return np.zeros(len(people), dtype=bool)
    grown = grow_boxes(tracked_boxes, margin, min_scale_px)
    return looks_like & boxes_touch(grown, pose_boxes(people)).any(axis=0)


def find_parts(people: np.ndarray, matched_boxes: np.ndarray, matched_counts: np.ndarray,
               min_inside: float, margin: float, min_scale_px: float = 16.0) -> np.ndarray:
    """[P]: parts (see the module docstring) of the people matched to tracks this frame, whose
    tracks' boxes are ``matched_boxes`` [M, 4] and keypoint counts ``matched_counts`` [M]."""
    if len(matched_boxes) == 0 or len(people) == 0:
        return np.zeros(len(people), dtype=bool)
    inside = fraction_inside(people, grow_boxes(matched_boxes, margin, min_scale_px))   # [P,M]
    smaller = keypoint_counts(people)[:, None] <= np.asarray(matched_counts)[None, :]
    return ((inside >= min_inside) & smaller & (keypoint_counts(people)[:, None] > 0)).any(axis=1)

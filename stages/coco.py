"""CMU-18 <-> COCO-17 keypoint order: the one place the two skeletons are mapped.

posestream writes people in the CMU-18 order of ``stages.skeleton.KEYPOINTS`` (with a neck); COCO
keypoint ground truth, pycocotools and Intel's OpenPose wrapper use the 17 COCO keypoints (no
neck).  ``to_coco17`` drops the neck and reorders; ``from_coco17`` goes back, the neck being the
midpoint of the two shoulders where both are present (as the CMU model was trained).
Arrays are (P,18,3) / (P,17,3): x, y and a score or visibility, 0,0,0 for a missing keypoint.
"""

from __future__ import annotations

import numpy as np

from stages.skeleton import KEYPOINTS, NUM_KEYPOINTS, keypoint_index

COCO_KEYPOINTS: tuple[str, ...] = (
    "nose", "l_eye", "r_eye", "l_ear", "r_ear",
    "l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_wrist", "r_wrist",
    "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle",
)
NUM_COCO_KEYPOINTS = len(COCO_KEYPOINTS)          # 17

# COCO keypoint i is CMU keypoint CMU_OF_COCO[i].
CMU_OF_COCO: tuple[int, ...] = tuple(keypoint_index(name) for name in COCO_KEYPOINTS)
NECK = keypoint_index("neck")
_SHOULDERS = (keypoint_index("l_shoulder"), keypoint_index("r_shoulder"))


def to_coco17(people: np.ndarray) -> np.ndarray:
    """(P,18,3) in CMU order -> (P,17,3) in COCO order, the neck dropped (a new array)."""
    people = np.asarray(people, dtype=np.float32).reshape(-1, NUM_KEYPOINTS, 3)
    return people[:, CMU_OF_COCO, :].copy()


def from_coco17(people: np.ndarray) -> np.ndarray:
    """(P,17,3) in COCO order -> (P,18,3) in CMU order; the neck is the shoulders' midpoint
    (its third value their mean) where both shoulders are present (third value > 0), else 0,0,0."""
    people = np.asarray(people, dtype=np.float32).reshape(-1, NUM_COCO_KEYPOINTS, 3)
    cmu = np.zeros((len(people), NUM_KEYPOINTS, 3), dtype=np.float32)
    cmu[:, CMU_OF_COCO, :] = people
    left, right = cmu[:, _SHOULDERS[0]], cmu[:, _SHOULDERS[1]]
    both = (left[:, 2] > 0) & (right[:, 2] > 0)
    cmu[both, NECK] = (left[both] + right[both]) / 2.0
    return cmu


assert sorted(CMU_OF_COCO + (NECK,)) == list(range(len(KEYPOINTS)))

"""The CMU-18 body skeleton as data: keypoint names, limbs and their PAF channels.

Every piece that needs the skeleton (decoder, render, overlays, tracking, JSON) reads it from
here.  Indices are 0-based.

- ``KEYPOINTS``: the 18 part names in CMU order (heatmap channel i is ``KEYPOINTS[i]``;
  heatmap channel 18 is the background).
- ``LIMBS``: the 19 connections of the CMU model, in its mapIdx order.  Each is a :class:`Limb`
  with the two part indices and the two PAF channels (x component, y component) of the 38-channel
  PAF tensor.  The first 17 are the body limbs that are drawn; the last two (shoulder-ear) exist in
  the network's output and help grouping but are not drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

KEYPOINTS: tuple[str, ...] = (
    "nose", "neck",
    "r_shoulder", "r_elbow", "r_wrist",
    "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle",
    "l_hip", "l_knee", "l_ankle",
    "r_eye", "l_eye", "r_ear", "l_ear",
)
NUM_KEYPOINTS = len(KEYPOINTS)          # 18
BACKGROUND = "background"
NUM_HEATMAPS = NUM_KEYPOINTS + 1        # 19: parts + background
NUM_PAFS = 38                           # 19 limbs x (x, y)


@dataclass(frozen=True)
class Limb:
    part_a: int
    part_b: int
    paf_x: int
    paf_y: int

    @property
    def name(self) -> str:
        return f"{KEYPOINTS[self.part_a]}-{KEYPOINTS[self.part_b]}"


# (part_a, part_b, paf_x, paf_y) in the CMU model's mapIdx order.
_LIMB_TABLE = (
    (1, 2, 12, 13), (1, 5, 20, 21), (2, 3, 14, 15), (3, 4, 16, 17),
    (5, 6, 22, 23), (6, 7, 24, 25), (1, 8, 0, 1), (8, 9, 2, 3),
    (9, 10, 4, 5), (1, 11, 6, 7), (11, 12, 8, 9), (12, 13, 10, 11),
    (1, 0, 28, 29), (0, 14, 30, 31), (14, 16, 34, 35), (0, 15, 32, 33),
    (15, 17, 36, 37), (2, 16, 18, 19), (5, 17, 26, 27),
)
LIMBS: tuple[Limb, ...] = tuple(Limb(*row) for row in _LIMB_TABLE)
NUM_DRAWN_LIMBS = 17                     # LIMBS[:17] are drawn; the two shoulder-ear ones are not


def keypoint_index(name: str) -> int:
    """Heatmap channel of a part name (``background`` gives 18); ValueError lists valid names."""
    names = KEYPOINTS + (BACKGROUND,)
    if name not in names:
        raise ValueError(f"unknown part {name!r}; valid parts: {', '.join(names)}")
    return names.index(name)


def limb_index(name: str) -> int:
    """Index into LIMBS of ``A-B`` (either order); ValueError lists valid names."""
    for i, limb in enumerate(LIMBS):
        a, b = KEYPOINTS[limb.part_a], KEYPOINTS[limb.part_b]
        if name in (f"{a}-{b}", f"{b}-{a}"):
            return i
    valid = ", ".join(limb.name for limb in LIMBS)
    raise ValueError(f"unknown limb {name!r}; valid limbs: {valid}")

"""Draw skeletons on a frame: the 17 drawn CMU limbs, one colour per limb, keypoints and ids.

Render only draws what the decoder (and tracker) produced: ``people`` float [P,18,3] (x, y, score)
in frame pixels, a keypoint with score ≤ 0 being missing.  It never parses and never edits its
input image.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from stages.skeleton import LIMBS, NUM_DRAWN_LIMBS, NUM_KEYPOINTS

Colour = tuple[int, int, int]          # BGR, 0-255
MAX_COORD_PX = 1 << 15                 # far outside any frame; keeps OpenCV's integer maths safe


def spread_colours(count: int, saturation: float = 1.0, value: float = 1.0) -> tuple[Colour, ...]:
    """``count`` distinct BGR colours with hues evenly spaced round the colour wheel."""
    colours = []
    for i in range(count):
        red, green, blue = colorsys.hsv_to_rgb(i / count, saturation, value)
        colours.append((round(blue * 255), round(green * 255), round(red * 255)))
    return tuple(colours)


@dataclass(frozen=True)
class RenderStyle:
    """How skeletons look.  ``limb_colours``: one BGR colour per drawn limb (``LIMBS[:17]``);
    ``keypoint_colours``: one per keypoint; ``id_colour``: text of the person id labels."""

    line_width: int = 3
    point_radius: int = 4
    draw_ids: bool = True
    limb_colours: tuple[Colour, ...] = field(default_factory=lambda: spread_colours(NUM_DRAWN_LIMBS))
    keypoint_colours: tuple[Colour, ...] = field(
        default_factory=lambda: spread_colours(NUM_KEYPOINTS, saturation=0.6))
    id_colour: Colour = (255, 255, 255)

    def __post_init__(self):
        if len(self.limb_colours) < NUM_DRAWN_LIMBS:
            raise ValueError(f"limb_colours needs {NUM_DRAWN_LIMBS} colours, got {len(self.limb_colours)}")
        if len(self.keypoint_colours) < NUM_KEYPOINTS:
            raise ValueError(f"keypoint_colours needs {NUM_KEYPOINTS} colours, got {len(self.keypoint_colours)}")

    @classmethod
    def from_config(cls, render_cfg) -> RenderStyle:
        """The style from a ``RenderConfig`` (``line_width``, ``point_radius``, ``draw_ids``)."""
        return cls(line_width=render_cfg.line_width, point_radius=render_cfg.point_radius,
                   draw_ids=render_cfg.draw_ids)


def draw_people(image: np.ndarray, people: np.ndarray, person_ids: Sequence[int] = (),
                style: RenderStyle = RenderStyle()) -> np.ndarray:
    """A copy of ``image`` (HxWx3 uint8 BGR) with every person's skeleton drawn on it.

    people: [P,18,3] (x, y, score) in frame pixels; a limb is drawn when both its keypoints have
    score > 0, a keypoint when its own score is.  person_ids: one per person; an id ≥ 0 is written
    next to the person when ``style.draw_ids``.
    """
    canvas = image.copy()
    people = np.asarray(people, dtype=np.float32).reshape(-1, NUM_KEYPOINTS, 3)
    for person_index, person in enumerate(people):
        present = (person[:, 2] > 0) & np.isfinite(person).all(axis=1)
        xy_px = np.clip(np.round(np.where(present[:, None], person[:, :2], 0)), -MAX_COORD_PX, MAX_COORD_PX)
        points = [tuple(point) for point in xy_px.astype(int).tolist()]
        _draw_limbs(canvas, points, present, style)
        _draw_keypoints(canvas, points, present, style)
        if style.draw_ids and person_index < len(person_ids) and person_ids[person_index] >= 0:
            _draw_id(canvas, int(person_ids[person_index]), points, present, style)
    return canvas


def _draw_limbs(canvas: np.ndarray, points: list[tuple[int, int]], present: np.ndarray,
                style: RenderStyle) -> None:
    if style.line_width <= 0:
        return
    for limb, colour in zip(LIMBS[:NUM_DRAWN_LIMBS], style.limb_colours):
        if present[limb.part_a] and present[limb.part_b]:
            cv2.line(canvas, points[limb.part_a], points[limb.part_b], colour,
                     style.line_width, cv2.LINE_AA)


def _draw_keypoints(canvas: np.ndarray, points: list[tuple[int, int]], present: np.ndarray,
                    style: RenderStyle) -> None:
    if style.point_radius <= 0:
        return
    for part in np.flatnonzero(present):
        cv2.circle(canvas, points[part], style.point_radius, style.keypoint_colours[part],
                   cv2.FILLED, cv2.LINE_AA)


def _draw_id(canvas: np.ndarray, person_id: int, points: list[tuple[int, int]], present: np.ndarray,
             style: RenderStyle) -> None:
    """The id above the person's highest keypoint, on a dark box so it reads on any background."""
    if not present.any():
        return
    visible = [point for point, shown in zip(points, present) if shown]
    left = min(x for x, _ in visible)
    top = min(y for _, y in visible)
    text = str(person_id)
    font_scale = 0.6
    thickness = 2
    (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
    bottom = max(top - 6, height + 4)
    cv2.rectangle(canvas, (left - 2, bottom - height - 4), (left + width + 2, bottom + baseline - 2),
                  (0, 0, 0), cv2.FILLED)
    cv2.putText(canvas, text, (left, bottom - 2), cv2.FONT_HERSHEY_SIMPLEX, font_scale, style.id_colour,
                thickness, cv2.LINE_AA)

"""Crops of a frame packed into fixed-size canvases, and the way back to frame pixels.

``pack(regions, plan)`` merges overlapping regions of one scale (when the union costs no more
pixels than the two apart and still fits a canvas), clips them to the frame and places them on
shelves in at most ``plan.max_canvases`` canvases, in priority order: what does not fit is left
out (the lowest priorities: the scan window, then motion, then people, largest first).  A
``Crop`` says where its frame region went: net = (frame - box corner) * scale + offset.

Pure functions over numpy arrays; boxes are (x_min, y_min, x_max, y_max) in frame pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stages.plan import SHELF_GAP as GAP
from stages.plan import MOTION, Plan

CUT_PX = 4.0           # net pixels: a keypoint this near a crop's top or bottom side was cut there



@dataclass(frozen=True)
class Crop:
    """A frame region on a canvas: ``box`` (frame pixels), its ``scale``, the ``canvas`` index
    and the ``offset`` (x, y) in net pixels of the box's top-left corner there; ``size`` (height,
    width) in net pixels."""

    box: tuple[float, float, float, float]
    scale: float
    canvas: int
    offset: tuple[int, int]
    size: tuple[int, int]

    def to_frame(self, people_net: np.ndarray) -> np.ndarray:
        """People [P,18,3] in canvas pixels → frame pixels (missing keypoints stay 0,0,0)."""
        people = np.array(people_net, dtype=np.float32, copy=True).reshape(-1, 18, 3)
        visible = people[..., 2] > 0
        for axis in (0, 1):
            per_net = (self.box[axis + 2] - self.box[axis]) / self.size[1 - axis]
            mapped = (people[..., axis] - self.offset[axis]) * per_net + self.box[axis]
            people[..., axis] = np.where(visible, mapped, 0.0)
        return people

    def holds(self, points_net: np.ndarray) -> np.ndarray:
        """Which canvas points [N,2] lie inside this crop."""
        points = np.asarray(points_net, dtype=np.float64).reshape(-1, 2)
        x, y = points[:, 0] - self.offset[0], points[:, 1] - self.offset[1]
        return (x >= 0) & (y >= 0) & (x < self.size[1]) & (y < self.size[0])


def box_area(box: np.ndarray) -> float:
    return float(max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1]))


def union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])])


def overlaps(a: np.ndarray, b: np.ndarray) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def clip(box: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    height, width = frame_size
    return np.array([max(0.0, box[0]), max(0.0, box[1]), min(float(width), box[2]),
                     min(float(height), box[3])])


def net_size(box: np.ndarray, scale: float) -> tuple[int, int]:
    """(height, width) in net pixels of a frame box at ``scale``."""
    return (max(1, math.ceil((box[3] - box[1]) * scale)), max(1, math.ceil((box[2] - box[0]) * scale)))


def fits(box: np.ndarray, scale: float, canvas: tuple[int, int]) -> bool:
    height, width = net_size(box, scale)
    return height <= canvas[0] and width <= canvas[1]


def merge_regions(regions: list[tuple[np.ndarray, float, int]], plan: Plan) -> list[tuple[np.ndarray, float, int]]:
    """Merge (box, scale, priority) regions of one scale that overlap across while their union
    still fits a shelf (and a canvas's width); the merged region keeps the better (lower)
    priority.  Every crop is one shelf tall, so what a crop costs is its width: two that
    overlap across cost less as one."""
    shelf_h, canvas_w = plan.shelf - GAP, plan.canvas[1] - GAP
    items = [(np.asarray(box, dtype=np.float64), float(scale), int(priority))
             for box, scale, priority in regions]
    merged = True
    while merged:
        merged = False
        for i in range(len(items)):
            for j in range(i + 1, len(items)):
                (a, scale_a, pa), (b, scale_b, pb) = items[i], items[j]
                if scale_a != scale_b or not (a[0] < b[2] and b[0] < a[2]):
                    continue
                joined = union(a, b)
                if fits(joined, scale_a, (shelf_h, canvas_w)):
                    items[i] = (joined, scale_a, min(pa, pb))
                    del items[j]
                    merged = True
                    break
            if merged:
                break
    return items


def to_shelf(box: np.ndarray, scale: float, plan: Plan) -> np.ndarray | None:
    """The box made one shelf tall (grown around its centre, moved inside the frame), no wider
    than a canvas, clipped to the frame; None when nothing of it is inside the frame."""
    height, width = plan.frame_size
    tall = min(float(height), math.floor((plan.shelf - GAP) / scale))
    wide = min(box[2] - box[0], (plan.canvas[1] - GAP) / scale)
    centre_x, centre_y = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
    y0 = math.floor(min(max(0.0, centre_y - tall / 2.0), height - tall))
    x0, x1 = max(0, math.floor(centre_x - wide / 2.0)), min(width, math.ceil(centre_x + wide / 2.0))
    shaped = np.array([x0, y0, x1, y0 + tall], dtype=np.float64)
    return shaped if box_area(shaped) > 0 else None


def pack(regions: list[tuple[np.ndarray, float, int]], plan: Plan) -> tuple[Crop, ...]:
    """Regions (box, scale, priority: lower first) → crops side by side on at most
    ``plan.max_canvases`` canvases (first fit, by priority then width), merged first (see
    :func:`merge_regions`); what does not fit is left out.  The scan window (priority
    ``SCAN``) only fills a canvas opened for something else, or the first when none is."""
    items = []
    for box, scale, priority in merge_regions(regions, plan):
        shaped = to_shelf(box, scale, plan)
        if shaped is not None:
            items.append((shaped, scale, priority))
    items.sort(key=lambda item: (item[2], -net_size(item[0], item[1])[1]))
    used: list[int] = []                    # width used on each open canvas
    crops: list[Crop] = []
    for box, scale, priority in items:
        height, width = net_size(box, scale)
        height = min(height, plan.shelf - GAP)
        may_open = len(used) < plan.max_canvases and (priority < MOTION or not used)
        spot = next((index for index, taken in enumerate(used)
                     if taken + width + GAP <= plan.canvas[1]), None)
        if spot is None and may_open and width + GAP <= plan.canvas[1]:
            used.append(0)
            spot = len(used) - 1
        if spot is None:
            continue
        crops.append(Crop(tuple(float(v) for v in box), scale, spot, (used[spot], 0), (height, width)))
        used[spot] += width + GAP
    return tuple(crops)


def canvases_used(crops: tuple[Crop, ...]) -> int:
    return 1 + max((crop.canvas for crop in crops), default=-1)


def split_people(people_net: np.ndarray, crops: tuple[Crop, ...], canvas: int,
                 scores: np.ndarray | None = None, frame_height: int | None = None,
                 frame_width: int | None = None) -> list[tuple[Crop, np.ndarray, np.ndarray, np.ndarray]]:
    """People decoded on one canvas (and their scores [P]) → (crop, people in frame pixels,
    their scores, cut [P] bool) per crop of that canvas: a person belongs to the crop holding the
    centre of their keypoints' box; people in the gaps between crops are dropped, and, given the
    frame's height, people reaching a crop's top or bottom side inside the frame (someone taller
    than the crop, cut by it: the overview or their own crop holds them whole).  Given the
    frame's width, people reaching a crop's left or right side inside the frame are marked
    ``cut``: a neighbour's half, or a newcomer the scan window caught in part; their own crop
    holds them whole from the next frame on."""
    people_net = np.asarray(people_net, dtype=np.float32).reshape(-1, 18, 3)
    scores = np.ones(len(people_net), np.float32) if scores is None else np.asarray(scores, np.float32)
    low = np.full((len(people_net), 2), -1.0)
    high = np.full((len(people_net), 2), -1.0)
    for index, pose in enumerate(people_net):
        visible = pose[:, 2] > 0
        if visible.any():
            low[index], high[index] = pose[visible, :2].min(axis=0), pose[visible, :2].max(axis=0)
    centres = (low + high) / 2.0
    result = []
    for crop in crops:
        if crop.canvas != canvas:
            continue
        keep = crop.holds(centres)
        if frame_height is not None:
            top, bottom = crop.offset[1] + CUT_PX, crop.offset[1] + crop.size[0] - CUT_PX
            if crop.box[1] > 0:
                keep &= low[:, 1] > top
            if crop.box[3] < frame_height:
                keep &= high[:, 1] < bottom
        cut = np.zeros(len(people_net), dtype=bool)
        if frame_width is not None:
            left, right = crop.offset[0] + CUT_PX, crop.offset[0] + crop.size[1] - CUT_PX
            if crop.box[0] > 0:
                cut |= low[:, 0] <= left
            if crop.box[2] < frame_width:
                cut |= high[:, 0] >= right
        result.append((crop, crop.to_frame(people_net[keep]), scores[keep], cut[keep]))
    return result

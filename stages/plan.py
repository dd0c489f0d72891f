"""The inference plan: where in a frame the network looks, and at what scale.

A whole-frame pass at one scale spends the same network pixels on empty street as on people.
The ``crops`` plan spends them where people are, in two parts per frame:

- an *overview*: the whole frame at a low scale, which finds the big people (and candidates of
  small ones);
- *crops* around the people of the previous frames (each at the scale its height calls for), the
  regions that moved, and a window that scans the frame in turn (so people standing still that
  nobody has seen yet are found too), packed into a few canvases of one fixed size, so the
  engine sees two shapes only (overview and canvas), each compiled once.

The people decoded on each canvas are mapped back to frame pixels, pooled with the overview's,
and duplicates (one person seen by two crops, or by a crop and the overview) are removed keeping
the more complete one (:mod:`stages.plan_merge`).

The scale rule: a network finds a person reliably when the person is at least
``reliable_px`` net-input pixels tall (measured per network on real footage, the table
``RELIABLE_PX``); the finest scale is ``reliable_px / min_person_px``, never above the frame's
own resolution.  Small frames (where the network's default input height is close to the rule's
scale: webcams, 480p clips, photos) keep the plain ``whole`` plan at that height, so nothing gets
slower or less accurate there (see :func:`make_plan`).

Pure functions (numpy only), testable on synthetic boxes and people.  Boxes are float
(x_min, y_min, x_max, y_max) in frame pixels; people float [P, 18, 3] (x, y, score).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

# Net-input height (pixels, as person_frames estimates it) of a person the network finds about as
# well as at the frame's own resolution: mobilenet_thin measured on a 720p street clip (scales
# 0.5-1.0 against 1.0, see docs/architecture.md); the others assumed alike until measured.
RELIABLE_PX = {"mobilenet_thin": 130.0, "mobilenet": 130.0, "cmu": 110.0, "omz": 130.0}
DEFAULT_RELIABLE_PX = 130.0
DEFAULT_HEIGHTS = {"mobilenet_thin": 368, "mobilenet": 368, "cmu": 368, "omz": 256}
WHOLE_SHARE = 0.75          # auto: the whole frame at the default input when that is this share of the rule's scale
OVERVIEW_SHARE = 0.2        # overview scale as a share of the crop scale
CANVAS = (232, 576)         # canvas (height, width) in net pixels, multiples of 8: one shelf of crops
MAX_CANVASES = 4            # canvases a frame at most
MIN_BUDGET_CANVASES = 2     # auto: crops on fewer canvases than this do not pay (whole frame instead)
BUDGET_SHARE = 0.9          # auto: the share of the budget a whole frame sized to fit it may use
                            # (auto's fps estimate ran 5-15 % high at 720p)
EXPECTED_CANVASES = 3       # canvases a frame of a busy street uses on average (auto's estimate)
SHELF_GAP = 8               # net pixels of padding between crops
MARGIN = 0.2                # context around a person, a share of the person's height
MULTIPLE = 8


@dataclass(frozen=True)
class Plan:
    """How one source's frames go through the network.

    kind: ``whole`` (the frame at ``scale``) or ``crops``.  scale: the finest scale (net pixels
    per frame pixel).  overview_scale: the crops plan's whole-frame pass.  canvas: (height, width)
    of a canvas in net pixels (one shelf: every crop is a canvas tall); max_canvases: canvases
    per frame at most.  big_px: people at
    least this tall (frame pixels) are taken from the overview.  min_person_px: the rule's input.
    """

    kind: str
    frame_size: tuple[int, int]
    scale: float
    overview_scale: float = 0.0
    canvas: tuple[int, int] = CANVAS
    max_canvases: int = MAX_CANVASES
    margin: float = MARGIN
    big_px: float = math.inf
    min_person_px: float = 60.0
    reliable_px: float = DEFAULT_RELIABLE_PX

    @property
    def shelf(self) -> int:
        """Net height of every crop: a canvas's height."""
        return self.canvas[0]

    @property
    def whole_pixels(self) -> int:
        """Net pixels of the whole frame at ``scale``."""
        height, width = self.frame_size
        return padded_pixels(height * self.scale, width * self.scale)

    @property
    def overview_pixels(self) -> int:
        height, width = self.frame_size
        return padded_pixels(height * self.overview_scale, width * self.overview_scale)

    @property
    def pixels(self) -> int:
        """Net-input pixels a frame is expected to cost (what ``auto`` compares): the whole
        frame, or the overview plus ``EXPECTED_CANVASES`` canvases."""
        if self.kind == "whole":
            return self.whole_pixels
        return self.overview_pixels + min(self.max_canvases, EXPECTED_CANVASES) * self.canvas[0] * self.canvas[1]

    @property
    def max_pixels(self) -> int:
        """Net-input pixels a frame costs at most."""
        if self.kind == "whole":
            return self.whole_pixels
        return self.overview_pixels + self.max_canvases * self.canvas[0] * self.canvas[1]


def padded_pixels(height: float, width: float, multiple: int = MULTIPLE) -> int:
    """Pixels of a (height, width) input rounded to whole pixels, then up to ``multiple``."""
    return (math.ceil(max(1, round(height)) / multiple) * multiple) * \
        (math.ceil(max(1, round(width)) / multiple) * multiple)


def rule_scale(min_person_px: float, reliable_px: float) -> float:
    """The scale that makes a person of ``min_person_px`` frame pixels ``reliable_px`` tall in
    the network's input, never above the frame's own resolution (1.0)."""
    if not min_person_px > 0:
        raise ValueError(f"min_person_px must be > 0, got {min_person_px}")
    return min(1.0, reliable_px / float(min_person_px))


def make_plan(frame_size: tuple[int, int], min_person_px: float, network: str, mode: str = "auto",
              default_height: int | None = None, still: bool = False,
              budget_pixels: int | None = None) -> Plan:
    """The plan for frames of ``frame_size`` (height, width).

    mode: ``whole`` (the frame at the rule's scale, but not below the network's default input
    height), ``crops``, or ``auto``: that ``whole`` plan where it fits ``budget_pixels`` (the net
    pixels a frame may cost at the target fps on this machine, ``stream.auto``: the whole frame
    finds everyone the rule asks for, with nothing to merge); else the whole frame at the
    default input height (``default_height``: auto's choice for the target fps) where that
    scale is at least ``WHOLE_SHARE`` of the rule's (small frames: webcams, 480p clips keep
    today's plan and cost); without a budget, ``crops`` where they cost fewer pixels than the
    whole frame at the rule's scale, else that whole frame (with a budget: the default height);
    with a budget (the full pass is too slow here), ``crops`` on as many canvases as it pays for
    (at least ``MIN_BUDGET_CANVASES``), else the whole frame as fine as ``BUDGET_SHARE`` of it
    allows.  still: the frames are unrelated photos (no earlier frame says where people
    are): never ``crops`` (``crops`` becomes ``whole``, ``auto`` its whole-frame choices).
    """
    if mode not in ("auto", "whole", "crops"):
        raise ValueError(f"plan mode must be auto, whole or crops, got {mode!r}")
    height, width = int(frame_size[0]), int(frame_size[1])
    reliable = RELIABLE_PX.get(network, DEFAULT_RELIABLE_PX)
    default = int(default_height or DEFAULT_HEIGHTS.get(network, 368))
    fine = rule_scale(min_person_px, reliable)
    whole_scale = max(fine, default / height)
    whole = Plan("whole", (height, width), whole_scale, min_person_px=float(min_person_px),
                 reliable_px=reliable)
    overview = max(fine * OVERVIEW_SHARE, min(1.0, 128 / height))
    crops = Plan("crops", (height, width), fine, overview_scale=overview, canvas=CANVAS,
                 max_canvases=MAX_CANVASES, margin=MARGIN,
                 big_px=reliable / overview, min_person_px=float(min_person_px), reliable_px=reliable)
    if mode == "whole" or (still and mode == "crops"):
        return whole
    if mode == "crops":
        return crops
    at_default = Plan("whole", (height, width), default / height, min_person_px=float(min_person_px),
                      reliable_px=reliable)
    if still:
        return at_default
    if budget_pixels is not None and whole.pixels <= budget_pixels:
        return whole
    if at_default.scale >= WHOLE_SHARE * fine:
        return at_default
    if crops.pixels >= whole.pixels:         # a small frame: crops do not pay
        return whole if budget_pixels is None else at_default
    if budget_pixels is None:
        return crops
    # the full-resolution pass is too slow here: crops where they fit the budget (on fewer
    # canvases if need be), else the whole frame as fine as the budget allows
    affordable = (budget_pixels - crops.overview_pixels) // (crops.canvas[0] * crops.canvas[1])
    if affordable >= MIN_BUDGET_CANVASES:
        return replace(crops, max_canvases=int(min(MAX_CANVASES, affordable)))
    return within_budget(at_default, whole.scale, int(BUDGET_SHARE * budget_pixels))


def within_budget(plan: Plan, finest: float, budget_pixels: int) -> Plan:
    """The whole-frame ``plan`` at the finest scale up to ``finest`` whose pixels fit
    ``budget_pixels`` (never coarser than ``plan``'s own)."""
    height, width = plan.frame_size
    scale = min(finest, math.sqrt(budget_pixels / float(height * width)))
    while scale > plan.scale and padded_pixels(height * scale, width * scale) > budget_pixels:
        scale -= MULTIPLE / float(height)
    return replace(plan, scale=max(plan.scale, scale))


# --- crops: where to look ------------------------------------------------------------------

NOSE, NECK, R_SHOULDER, L_SHOULDER, R_HIP, L_HIP = 0, 1, 2, 5, 8, 11
HEIGHT_PER = {"extent": 1.15, "torso": 3.3, "shoulders": 4.0, "head": 6.0}   # body proportions


def person_frames(people: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Each person's estimated (height [P], top [P]) in frame pixels, from whatever of the body
    is seen: the keypoints' vertical extent, the torso (neck to hips), the shoulders' width and
    the head (nose to neck), by the usual body proportions, the largest, at least ``floor``;
    top: where the head begins (from the neck when it is seen, so a person seen down to the
    waist still gets a box down to the feet), NaN for a person without keypoints."""
    people = np.asarray(people, dtype=np.float64).reshape(-1, 18, 3)
    heights = np.full(len(people), float(floor))
    tops = np.full(len(people), np.nan)
    for index, pose in enumerate(people):
        seen = pose[:, 2] > 0
        if not seen.any():
            continue
        candidates = [floor, np.ptp(pose[seen, 1]) * HEIGHT_PER["extent"]]
        if seen[NECK] and (seen[R_HIP] or seen[L_HIP]):
            hips = pose[[R_HIP, L_HIP]][seen[[R_HIP, L_HIP]], :2].mean(axis=0)
            candidates.append(np.linalg.norm(hips - pose[NECK, :2]) * HEIGHT_PER["torso"])
        if seen[R_SHOULDER] and seen[L_SHOULDER]:
            candidates.append(np.linalg.norm(pose[R_SHOULDER, :2] - pose[L_SHOULDER, :2]) * HEIGHT_PER["shoulders"])
        if seen[NOSE] and seen[NECK]:
            candidates.append(np.linalg.norm(pose[NOSE, :2] - pose[NECK, :2]) * HEIGHT_PER["head"])
        height = heights[index] = min(max(candidates), 3.0 * max(candidates[:2]))
        top = pose[seen, 1].min()
        tops[index] = min(top, pose[NECK, 1] - 0.18 * height) if seen[NECK] else top
    return heights, tops


def person_regions(people: np.ndarray, plan: Plan) -> list[tuple[np.ndarray, float]]:
    """(box, scale) to crop for each person smaller than ``plan.big_px``: the keypoints' box
    grown to a person's shape (width at least half the height) plus ``plan.margin`` of the
    height on every side (context, and room for the person to move), at the scale that makes
    it one shelf tall (``plan.shelf`` net pixels), but never finer than ``plan.scale``."""
    people = np.asarray(people, dtype=np.float64).reshape(-1, 18, 3)
    heights, tops = person_frames(people, plan.min_person_px * 0.5)
    regions = []
    for pose, height, top in zip(people, heights, tops):
        visible = pose[:, 2] > 0
        if not visible.any() or height >= plan.big_px:
            continue
        low, high = pose[visible, :2].min(axis=0), pose[visible, :2].max(axis=0)
        centre = np.array([(low[0] + high[0]) / 2.0, top + height / 2.0])
        half_w = max(high[0] - low[0], 0.5 * height) / 2.0 + plan.margin * height
        half_h = height / 2.0 + plan.margin * height
        scale = min(plan.scale, (plan.shelf - SHELF_GAP) / (2.0 * half_h))
        regions.append((np.array([centre[0] - half_w, centre[1] - half_h,
                                  centre[0] + half_w, centre[1] + half_h]), float(scale)))
    return regions


def scan_box(plan: Plan, index: int) -> np.ndarray:
    """The ``index``-th window of the scan over the frame (raster order, wrapping): half a
    canvas wide and one shelf tall at ``plan.scale``, clipped to the frame."""
    height, width = plan.frame_size
    box_w = (plan.canvas[1] / 2 - SHELF_GAP) / plan.scale
    box_h = (plan.shelf - SHELF_GAP) / plan.scale
    cols = max(1, math.ceil(width / box_w))
    rows = max(1, math.ceil(height / box_h))
    row, col = divmod(index % (cols * rows), cols)
    x0 = min(col * box_w, max(0.0, width - box_w))
    y0 = min(row * box_h, max(0.0, height - box_h))
    return np.array([x0, y0, min(width, x0 + box_w), min(height, y0 + box_h)])


def motion_boxes(previous: np.ndarray, current: np.ndarray, frame_size: tuple[int, int],
                 threshold: float = 12.0, block: int = 8, min_share: float = 0.1) -> list[np.ndarray]:
    """Boxes (frame pixels) of the ``block`` x ``block`` cells of two small grey images (same
    size, any scale of the frame) where at least ``min_share`` of pixels changed by more than
    ``threshold``; one box per cell, to be merged like the people's."""
    if previous is None or np.shape(previous) != np.shape(current):
        return []
    changed = np.abs(current.astype(np.int16) - previous.astype(np.int16)) > threshold
    rows, cols = changed.shape[0] // block, changed.shape[1] // block
    if rows == 0 or cols == 0:
        return []
    share = changed[:rows * block, :cols * block].reshape(rows, block, cols, block).mean(axis=(1, 3))
    fy, fx = frame_size[0] / changed.shape[0], frame_size[1] / changed.shape[1]
    return [np.array([c * block * fx, r * block * fy, (c + 1) * block * fx, (r + 1) * block * fy])
            for r, c in zip(*np.nonzero(share >= min_share))]


PEOPLE, MOTION, SCAN = 0, 1, 2
MAX_MOTION_CELLS = 64     # region priorities (lower is packed first)


def choose_regions(plan: Plan, people: np.ndarray, motion: list[np.ndarray],
                   scan_index: int) -> list[tuple[np.ndarray, float, int]]:
    """The regions (box, scale, priority) to crop this frame: the people seen lately (each at
    their own scale), moving cells no person region covers (grown to a small person's size, at
    ``plan.scale``), and the scan window."""
    regions = [(box, scale, PEOPLE) for box, scale in person_regions(people, plan)]
    grow = plan.min_person_px * (0.5 + plan.margin)
    for cell in motion[:MAX_MOTION_CELLS]:
        centre = (cell[:2] + cell[2:]) / 2.0
        if any(box[0] <= centre[0] <= box[2] and box[1] <= centre[1] <= box[3]
               for box, _scale, _priority in regions):
            continue
        regions.append((np.array([cell[0] - grow / 2, cell[1] - grow, cell[2] + grow / 2, cell[3] + grow]),
                        plan.scale, MOTION))
    regions.append((scan_box(plan, scan_index), plan.scale, SCAN))
    return regions


def shifted(people: np.ndarray, shift: np.ndarray | tuple[float, float]) -> np.ndarray:
    """People [P,18,3] moved by ``shift`` (x, y) frame pixels (missing keypoints stay 0,0,0):
    where the people of an earlier frame are now when the camera moved by ``shift`` since."""
    people = np.array(people, dtype=np.float32, copy=True).reshape(-1, 18, 3)
    people[..., :2] += np.where(people[..., 2:] > 0, np.asarray(shift, dtype=np.float32), 0.0)
    return people

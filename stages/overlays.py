"""Map overlays for ``--show heatmap:PART`` and ``--show paf:LIMB``.

Each function takes the BGR frame, the network's maps of that frame (numpy or torch), and how the
net input covers the frame (``scale`` net-input pixels per frame pixel, ``pad`` = (top, left)
net-input pixels before the frame), and returns a new image with one map coloured over it.  Map
cell (gx, gy) is net-input pixel (stride*gx + (stride-1)/2, ...), as in ``stages.postprocess``;
the map is resampled straight onto the frame's pixel grid (one bilinear warp, no intermediate
net-size image).  The input image is never modified.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from stages.postprocess.arrays import to_numpy
from stages.skeleton import LIMBS

ARROW_MIN_MAGNITUDE = 0.3    # PAF cells weaker than this get no direction arrow
ARROW_MIN_LENGTH_PX = 6.0    # no arrows when a map cell is smaller than this on the frame


def draw_heatmap(image: np.ndarray, heatmaps: Any, part_index: int, scale: float,
                 pad: tuple[int, int] = (0, 0), stride: int = 8, alpha: float = 0.5,
                 colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """``image`` with heatmap channel ``part_index`` (18 = background) coloured over it.

    heatmaps (C,h,w); values are clipped to [0,1] and coloured with an OpenCV colormap (JET:
    blue = 0, red = 1), then blended with weight ``alpha``.
    """
    _check_common(image, scale, alpha)
    maps = _maps(heatmaps, "heatmaps")
    _check_index(part_index, maps.shape[0], "part_index", "heatmap channel")
    values = _map_to_frame(maps[part_index], image.shape[:2], scale, pad, stride)
    colours = cv2.applyColorMap(_to_byte(values), colormap)
    return cv2.addWeighted(image, 1.0 - alpha, colours, alpha, 0.0)


def draw_paf(image: np.ndarray, pafs: Any, limb_index: int, scale: float,
             pad: tuple[int, int] = (0, 0), stride: int = 8, alpha: float = 0.5) -> np.ndarray:
    """``image`` with the PAF of ``LIMBS[limb_index]`` coloured over it.

    Hue is the field's direction (red = pointing right, then round the colour wheel clockwise on
    screen), opacity its magnitude (``alpha`` at 1 or more, the bare frame at 0); where map cells
    are big enough on the frame, white arrows show the direction of the strong cells.
    """
    _check_common(image, scale, alpha)
    maps = _maps(pafs, "pafs")
    _check_index(limb_index, len(LIMBS), "limb_index", "limb")
    limb = LIMBS[limb_index]
    if max(limb.paf_x, limb.paf_y) >= maps.shape[0]:
        raise ValueError(f"pafs have {maps.shape[0]} channels, limb {limb.name} needs "
                         f"{limb.paf_x} and {limb.paf_y}")
    field_x = _map_to_frame(maps[limb.paf_x], image.shape[:2], scale, pad, stride)
    field_y = _map_to_frame(maps[limb.paf_y], image.shape[:2], scale, pad, stride)
    magnitude = np.hypot(field_x, field_y)
    hue = (np.degrees(np.arctan2(field_y, field_x)) % 360.0) / 2.0      # OpenCV hue: 0-180
    full = np.full(hue.shape, 255, dtype=np.uint8)
    colours = cv2.cvtColor(np.stack([hue.astype(np.uint8), full, full], axis=-1), cv2.COLOR_HSV2BGR)
    weight = (alpha * np.clip(np.nan_to_num(magnitude), 0.0, 1.0))[..., None]
    blended = (image * (1.0 - weight) + colours * weight + 0.5).astype(np.uint8)
    _draw_arrows(blended, maps[limb.paf_x], maps[limb.paf_y], scale, pad, stride)
    return blended


def _draw_arrows(canvas: np.ndarray, field_x: np.ndarray, field_y: np.ndarray, scale: float,
                 pad: tuple[int, int], stride: int) -> None:
    """Arrows (drawn into ``canvas``, a fresh image) along the field at its strong cells."""
    cell_px = stride / scale
    if cell_px < ARROW_MIN_LENGTH_PX:
        return
    top, left = pad
    magnitude = np.hypot(field_x, field_y)
    for row, col in zip(*np.nonzero(magnitude >= ARROW_MIN_MAGNITUDE)):
        centre_x = (stride * col + (stride - 1) / 2.0 - left) / scale
        centre_y = (stride * row + (stride - 1) / 2.0 - top) / scale
        half = 0.4 * cell_px / magnitude[row, col]
        dx, dy = field_x[row, col] * half, field_y[row, col] * half
        start = (int(round(centre_x - dx)), int(round(centre_y - dy)))
        end = (int(round(centre_x + dx)), int(round(centre_y + dy)))
        cv2.arrowedLine(canvas, start, end, (255, 255, 255), 1, cv2.LINE_AA, tipLength=0.35)


def _map_to_frame(channel: np.ndarray, frame_shape: tuple[int, int], scale: float,
                  pad: tuple[int, int], stride: int) -> np.ndarray:
    """One map (h,w) resampled onto the frame grid: frame pixel (x, y) reads map point
    ((x*scale + left - (stride-1)/2) / stride, likewise y)."""
    top, left = pad
    centre = (stride - 1) / 2.0
    to_map = np.array([[scale / stride, 0.0, (left - centre) / stride],
                       [0.0, scale / stride, (top - centre) / stride]])
    height, width = frame_shape
    return cv2.warpAffine(np.ascontiguousarray(channel, dtype=np.float32), to_map, (width, height),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def _to_byte(values: np.ndarray) -> np.ndarray:
    return (np.clip(np.nan_to_num(values), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _maps(maps: Any, name: str) -> np.ndarray:
    array = to_numpy(maps)
    if array.ndim != 3:
        raise ValueError(f"{name} must have shape (C,h,w), got {array.shape}")
    return array.astype(np.float32, copy=False)


def _check_common(image: np.ndarray, scale: float, alpha: float) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise ValueError(f"image must be an HxWx3 uint8 BGR array, got {type(image).__name__} "
                         f"{shape} {getattr(image, 'dtype', '')}")
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")


def _check_index(index: int, count: int, name: str, what: str) -> None:
    integer = isinstance(index, (int, np.integer)) and not isinstance(index, bool)
    if not integer or not 0 <= index < count:
        raise ValueError(f"{name} must be a {what} index in [0, {count - 1}], got {index!r}")

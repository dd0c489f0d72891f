"""Frame → network input, following a backbone's ``PreprocessSpec``.

The frame is resized keeping its aspect ratio (net input height ``input_height``, or frame size ×
``scale``), padded at the bottom and right with ``spec.pad_value`` (raw pixel units) up to a
multiple of ``spec.size_multiple``, put in the spec's channel order, normalised as
``(pixel - spec.mean) * spec.scale`` and laid out as float32 [3, H_net, W_net].

Mapping back: frame pixel = (net pixel - (left, top)) / scale, with ``pad = (top, left) = (0, 0)``
since padding is only added at the bottom and right.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

AREA_16BIT_BELOW = 4      # shrinking by a fractional factor below this, area resizing runs on 16 bits


def net_size(frame_height: int, frame_width: int, spec: Any, input_height: int | None = None,
             scale: float | None = None) -> tuple[int, int, float]:
    """(resized height, resized width, scale) before padding.

    ``scale`` wins when given; else ``input_height`` (default ``spec.default_height``) fixes the
    height and the width follows the aspect ratio.
    """
    if scale is None:
        height = int(input_height or spec.default_height)
        scale = height / frame_height
        width = max(1, round(frame_width * scale))
    else:
        height = max(1, round(frame_height * scale))
        width = max(1, round(frame_width * scale))
        scale = height / frame_height
    return height, width, scale


def padded_size(height: int, width: int, multiple: int) -> tuple[int, int]:
    """(height, width) rounded up to ``multiple``."""
    return math.ceil(height / multiple) * multiple, math.ceil(width / multiple) * multiple


def _area_input(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """The image as OpenCV's area resize runs it fastest, with the same result: 16-bit pixels for a
    fractional factor below 4x (its 8-bit path for those is slower: 2.2 against 1.8 ms for
    640x480 -> 491x368, 8.3 against 7.5 for 1920x1080 -> 654x368), else 8-bit (whole factors
    have a fast 8-bit path; beyond 4x converting the big frame costs more than it saves)."""
    frame_height, frame_width = image.shape[:2]
    whole = frame_height % height == 0 and frame_width % width == 0
    if image.dtype != np.uint8 or whole or frame_height >= AREA_16BIT_BELOW * height:
        return image
    return image.astype(np.uint16)


def prepare(image: np.ndarray, spec: Any, input_height: int | None = None,
            scale: float | None = None) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Turn a BGR uint8 frame into ``(net_input float32 [3,H,W], scale, pad=(top, left))``.

    ``spec`` is a ``PreprocessSpec`` (channel_order, mean, scale, pad_value, size_multiple,
    default_height).  H and W are multiples of ``spec.size_multiple``.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {image.shape}")
    frame_height, frame_width = image.shape[:2]
    height, width, scale = net_size(frame_height, frame_width, spec, input_height, scale)
    # Shrinking: pixel-area averaging.  (Bilinear between half and full size was 12x faster at
    # height 368, 0.7 vs 8.6 ms, but cost 0.009 COCO AP in fp32 and 0.018 in bf16: kept AREA.)
    shrinking = height < frame_height
    resized = cv2.resize(_area_input(image, height, width) if shrinking else image, (width, height),
                         interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    padded_height, padded_width = padded_size(height, width, int(spec.size_multiple))
    pad_value = float(spec.pad_value)
    padded = cv2.copyMakeBorder(resized, 0, padded_height - height, 0, padded_width - width,
                                cv2.BORDER_CONSTANT, value=(pad_value, pad_value, pad_value))
    if str(spec.channel_order).upper() == "RGB":
        padded = cv2.cvtColor(padded, cv2.COLOR_BGR2RGB)
    # Convert, then transpose: 2.4x faster than converting through the transposed view
    # (1.0 vs 2.4 ms at 368x496), same values.
    net_input = np.ascontiguousarray(padded.astype(np.float32).transpose(2, 0, 1))
    mean = np.asarray(spec.mean, dtype=np.float32).reshape(-1, 1, 1)
    norm_scale = np.asarray(spec.scale, dtype=np.float32).reshape(-1, 1, 1)
    if np.any(mean != 0):
        net_input -= mean
    if np.any(norm_scale != 1):
        net_input *= norm_scale
    return net_input, scale, (0, 0)



def prepare_canvases(image: np.ndarray, crops: Any, count: int, canvas: tuple[int, int],
                     spec: Any) -> np.ndarray:
    """``count`` canvases float32 [count,3,H,W] (``canvas`` = (H, W)) in the spec's layout: each
    crop's frame ``box`` (whole pixels, inside the frame: ``stages.plan_pack.pack`` clips them)
    resized to its ``size`` at its ``offset``; the rest is ``spec.pad_value``."""
    pad_value = float(spec.pad_value)
    canvases = np.full((count, canvas[0], canvas[1], 3), pad_value, dtype=np.float32)
    for crop in crops:
        x0, y0, x1, y1 = (int(v) for v in crop.box)
        region = image[y0:y1, x0:x1]
        height, width = crop.size
        if region.shape[0] != y1 - y0 or region.shape[1] != x1 - x0 or region.size == 0:
            raise ValueError(f"crop box {crop.box} is not inside the {image.shape[1]}x{image.shape[0]} frame")
        shrinking = height < (y1 - y0)
        resized = cv2.resize(_area_input(region, height, width) if shrinking else region, (width, height),
                             interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        left, top = crop.offset
        canvases[crop.canvas, top:top + height, left:left + width] = resized
    if str(spec.channel_order).upper() == "RGB":
        canvases = canvases[..., ::-1]
    net_input = np.ascontiguousarray(canvases.transpose(0, 3, 1, 2))
    mean = np.asarray(spec.mean, dtype=np.float32).reshape(1, -1, 1, 1)
    norm_scale = np.asarray(spec.scale, dtype=np.float32).reshape(1, -1, 1, 1)
    if np.any(mean != 0):
        net_input -= mean
    if np.any(norm_scale != 1):
        net_input *= norm_scale
    return net_input

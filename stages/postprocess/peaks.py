"""Keypoint peaks: non-maximum suppression on the stride grid plus a sub-pixel fit.

OpenPose resizes every heatmap by the stride (x8) and searches the big maps for peaks.  Here the
search runs on the stride-8 grid itself (a 3x3 max comparison, no resizing) and each peak is then
placed between cells by a parabola through its 3x3 neighbourhood: through the log values for the
default ``gaussian`` method, which is exact for the Gaussian peaks the network is trained to draw.
That is all the full-resolution work the peaks need: ``benchmarks/decoder.py`` measures it against
the x8 bicubic reference.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stages.postprocess import arrays

# The 8 neighbours (dy, dx) of a cell; those before it in raster order must be strictly lower,
# those after it lower or equal, so a plateau of equal values yields exactly one peak.
_NEIGHBOURS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))
# Offsets of the 3x3 patch around a peak, row by row.
_PATCH_DY = np.repeat(np.arange(-1, 2), 3)
_PATCH_DX = np.tile(np.arange(-1, 2), 3)
_LOG_FLOOR = 1e-6   # values at or below zero have no logarithm; they are treated as this


def local_maxima(heatmaps: Any, threshold: float) -> Any:
    """Boolean mask (C,h,w): cells above ``threshold`` that are the maximum of their 3x3 window.

    Works unchanged on numpy arrays and torch tensors (max-pool comparison written as 8 shifted
    comparisons, which also breaks ties between equal neighbours in raster order).
    """
    mask = heatmaps > threshold
    height, width = heatmaps.shape[-2:]
    for dy, dx in _NEIGHBOURS:
        rows, neighbour_rows = _shifted(dy, height)
        cols, neighbour_cols = _shifted(dx, width)
        centre = heatmaps[:, rows, cols]
        neighbour = heatmaps[:, neighbour_rows, neighbour_cols]
        before = (dy, dx) < (0, 0)
        mask[:, rows, cols] &= (centre > neighbour) if before else (centre >= neighbour)
    return mask


def find_peaks(heatmaps: Any, threshold: float = 0.1, refine: str = "gaussian") -> np.ndarray:
    """Peaks of every channel of ``heatmaps`` (C,h,w), numpy or torch on any device.

    Returns ``peaks`` float32 (K,4): channel, x_map, y_map, score (the cell's value), rows grouped
    by channel in ascending order.  x_map/y_map are in map cells (cell centres at integers).  Only
    the peaks' 3x3 neighbourhoods leave a tensor's device.
    """
    height, width = heatmaps.shape[-2:]
    channels, rows, cols = arrays.nonzero(local_maxima(heatmaps, threshold))
    patch_rows = (rows[:, None] + arrays.like(_PATCH_DY, rows)).clip(0, height - 1)
    patch_cols = (cols[:, None] + arrays.like(_PATCH_DX, cols)).clip(0, width - 1)
    patches = arrays.to_numpy(heatmaps[channels[:, None], patch_rows, patch_cols])
    channels, rows, cols = (arrays.to_numpy(a) for a in (channels, rows, cols))

    offset_x, offset_y = subpixel_offsets(
        patches.reshape(-1, 3, 3).astype(np.float64),
        has_left=cols > 0, has_right=cols < width - 1,
        has_up=rows > 0, has_down=rows < height - 1, method=refine,
    )
    peaks = np.empty((len(channels), 4), dtype=np.float32)
    peaks[:, 0] = channels
    peaks[:, 1] = cols + offset_x
    peaks[:, 2] = rows + offset_y
    peaks[:, 3] = patches[:, 4]
    return peaks


def subpixel_offsets(patches: np.ndarray, has_left: np.ndarray, has_right: np.ndarray,
                     has_up: np.ndarray, has_down: np.ndarray,
                     method: str = "gaussian") -> tuple[np.ndarray, np.ndarray]:
    """Offsets (x, y) in cells, each in [-0.5, 0.5], of the true maximum from each patch centre.

    patches (K,3,3): values around each peak.  The ``has_*`` masks (K,) say which neighbours lie
    inside the map.  Where one side of an axis is missing (a border), the curvature of the other
    axis stands in for it (peaks are round), and in a corner the median curvature of the other
    peaks (the network draws every peak the same size); with none available the offset is 0.
    """
    if method == "none" or len(patches) == 0:
        zeros = np.zeros(len(patches))
        return zeros, zeros
    values = np.log(np.maximum(patches, _LOG_FLOOR)) if method == "gaussian" else patches
    centre = values[:, 1, 1]
    left, right, up, down = values[:, 1, 0], values[:, 1, 2], values[:, 0, 1], values[:, 2, 1]
    curve_x = np.where(has_left & has_right, left - 2 * centre + right, np.nan)
    curve_y = np.where(has_up & has_down, up - 2 * centre + down, np.nan)
    known = np.concatenate([curve_x, curve_y])
    known = known[known < 0]
    typical = float(np.median(known)) if len(known) else np.nan
    offset_x = _axis_offset(left, centre, right, has_left, has_right,
                            _fill(curve_x, curve_y, typical))
    offset_y = _axis_offset(up, centre, down, has_up, has_down,
                            _fill(curve_y, curve_x, typical))
    return offset_x, offset_y


def _fill(curve: np.ndarray, other_curve: np.ndarray, typical: float) -> np.ndarray:
    """Curvature where a border hides one side: the other axis's, else the image's typical one."""
    return np.where(np.isnan(curve), np.where(np.isnan(other_curve), typical, other_curve), curve)


def _axis_offset(before, centre, after, has_before, has_after, curve) -> np.ndarray:
    """Vertex of the parabola along one axis: through both neighbours, or through the one known
    neighbour with the given curvature.  Non-concave fits give 0."""
    concave = curve < 0
    safe = np.where(concave, curve, -1.0)
    both = (before - after) / (2 * safe)
    before_only = (before - centre) / safe - 0.5
    after_only = 0.5 - (after - centre) / safe
    offset = np.where(has_before & has_after, both, np.where(has_before, before_only, after_only))
    offset = np.where(concave & (has_before | has_after), offset, 0.0)
    return np.clip(offset, -0.5, 0.5)


def _shifted(delta: int, size: int) -> tuple[slice, slice]:
    """Slices of the cells whose neighbour at ``delta`` is inside ``[0, size)``, and of those
    neighbours."""
    return slice(max(0, -delta), size - max(0, delta)), slice(max(0, delta), size + min(0, delta))

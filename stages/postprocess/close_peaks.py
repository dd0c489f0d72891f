"""Close peaks: two same-type keypoints closer than the stride grid can tell apart.

Non-maximum suppression on the stride-8 grid keeps one peak per 3x3 neighbourhood, so two wrists
of different people 10 px apart (1.25 cells) come out as one peak.  The x8 reference decoder
separates them by upsampling every map; here only the peaks whose surroundings do not look like
one round peak get a closer look:

1. every peak's 5x5 neighbourhood is compared with what it would hold if it were one Gaussian
   peak of the image's typical width (the median curvature of all peaks: the network draws every
   peak the same size), max-merged with the Gaussians of the other peaks of its part nearby;
2. where some cell exceeds that by more than ``excess`` of the peak's height, two peaks of that
   width are fitted to the patch: each cell belongs to the peak that explains it best, and each
   peak is a weighted least-squares fit of its cells' log values (linear in the unknowns when the
   width is known), a few rounds;
3. the second peak is kept when the two-peak fit leaves at most ``fit_error`` (3 %) of the
   one-peak model's squared error (a real network's single peaks are not exactly Gaussian: on
   real maps a looser bound splits elongated hip and shoulder peaks), it lies at least
   ``min_distance`` cells from the first and from every other peak of its part, is higher than
   the peak threshold and explains at least two cells of its own.  The first peak then moves to
   its refitted position (its single-peak fit was pulled towards the hidden one).

Only the 5x5 patches of the peaks leave a torch tensor's device.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from stages.postprocess import arrays

RADIUS = 2                    # patch half-size in cells: 5x5 around each peak
FIT_ROUNDS = 5                # assignment + refit rounds of the two-peak fit
MIN_OWN_CELLS = 2             # cells the second peak must explain better than anything else
_NEIGHBOUR_REACH = RADIUS + 3  # other peaks of the part this close (cells) shape a patch
_LOG_FLOOR = 1e-6
_OFFSETS = np.arange(-RADIUS, RADIUS + 1)
_GRID_X = np.tile(_OFFSETS.astype(np.float64), (2 * RADIUS + 1, 1))      # (5,5) column offsets
_GRID_Y = _GRID_X.T.copy()                                                # (5,5) row offsets


def split_close_peaks(heatmaps: Any, peaks: np.ndarray, threshold: float, excess: float = 0.2,
                      min_distance: float = 0.75, fit_error: float = 0.03) -> np.ndarray:
    """``peaks`` (K,4) from ``find_peaks`` plus the hidden second peaks found next to them.

    heatmaps (C,h,w) numpy or torch (the maps ``peaks`` came from); threshold: the peak
    threshold; excess: fraction of a peak's height by which its neighbourhood must exceed one
    round peak to be fitted with two; min_distance: least distance in cells between two peaks
    of a part; fit_error: largest squared error of the two-peak fit, as a fraction of the
    one-peak model's, that accepts the second peak.  Returns float32 (K',4), K' >= K, grouped by part (new peaks after the old ones of
    their part); a split peak's position is refitted, its score kept.
    """
    if len(peaks) == 0:
        return peaks
    parts = peaks[:, 0].astype(np.int64)
    cols = np.floor(peaks[:, 1] + 0.5).astype(np.int64)
    rows = np.floor(peaks[:, 2] + 0.5).astype(np.int64)
    patches, inside = _patches(heatmaps, parts, rows, cols)
    curve = typical_curvature(patches, inside)
    if curve is None:
        return peaks

    offset_x, offset_y = peaks[:, 1] - cols, peaks[:, 2] - rows
    log_height = np.log(np.maximum(patches[:, RADIUS, RADIUS], _LOG_FLOOR)) \
        - curve / 2 * (offset_x ** 2 + offset_y ** 2)
    others = _neighbour_model(peaks, rows, cols, log_height, curve)
    single = np.maximum(gaussians(log_height, offset_x, offset_y, curve), others)
    surplus = np.where(inside, patches - single, 0.0).reshape(len(peaks), -1)
    flagged = np.flatnonzero(surplus.max(axis=1) > excess * np.exp(log_height))
    if len(flagged) == 0:
        return peaks

    first, second, gain, own_cells = fit_two_peaks(
        patches[flagged], inside[flagged], others[flagged], single[flagged],
        (log_height[flagged], offset_x[flagged], offset_y[flagged]),
        surplus[flagged].argmax(axis=1), curve)
    separation = np.hypot(second[1] - first[1], second[2] - first[2])
    plausible = ((gain <= fit_error) & (separation >= min_distance)
                 & (own_cells >= MIN_OWN_CELLS) & (np.exp(second[0]) > threshold)
                 & (np.abs(first[1]) <= 1) & (np.abs(first[2]) <= 1)
                 & (np.abs(second[1]) <= RADIUS) & (np.abs(second[2]) <= RADIUS))
    return _with_second_peaks(peaks, flagged[plausible], cols, rows,
                              [values[plausible] for values in first],
                              [values[plausible] for values in second], min_distance)


def typical_curvature(patches: np.ndarray, inside: np.ndarray) -> float | None:
    """Median second difference of the log values across the patch centres (both axes, concave
    ones only; cells per cell squared), or None when no peak has one."""
    centre = RADIUS
    cross = np.log(np.maximum(patches[:, centre - 1:centre + 2, centre - 1:centre + 2],
                              _LOG_FLOOR))                                       # (K,3,3)
    curve_x = cross[:, 1, 0] - 2 * cross[:, 1, 1] + cross[:, 1, 2]
    curve_y = cross[:, 0, 1] - 2 * cross[:, 1, 1] + cross[:, 2, 1]
    known_x = inside[:, centre, centre - 1] & inside[:, centre, centre + 1]
    known_y = inside[:, centre - 1, centre] & inside[:, centre + 1, centre]
    curves = np.concatenate([curve_x[known_x], curve_y[known_y]])
    curves = curves[curves < 0]
    return float(np.median(curves)) if len(curves) else None


def gaussians(log_height: np.ndarray, x: np.ndarray, y: np.ndarray, curve: float) -> np.ndarray:
    """(n,5,5) values of round peaks of log height ``log_height`` centred at (x, y) (cells from
    each patch centre), log curvature ``curve`` (< 0)."""
    squared = (_GRID_X - x[:, None, None]) ** 2 + (_GRID_Y - y[:, None, None]) ** 2
    return np.exp(log_height[:, None, None] + curve / 2 * squared)


def fit_known_width(log_targets: np.ndarray, weights: np.ndarray,
                    curve: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted least-squares round peak of known curvature per patch: (log height, x, y).

    log v = log a + c/2 |p - p0|^2 is linear in (log a + c/2 |p0|^2, x0, y0) once c/2 |p|^2 is
    moved to the left: ``log_targets`` (n,25) = log v - c/2 |p|^2 (``known_width_targets``), so
    each patch is a 3x3 linear solve.  weights (n,5,5).
    """
    design, outer = _design(curve)
    flat_weights = weights.reshape(len(weights), -1)
    normal = (flat_weights @ outer).reshape(-1, 3, 3) + 1e-9 * np.eye(3)
    right = (flat_weights * log_targets) @ design
    constant, x, y = np.linalg.solve(normal, right[..., None])[..., 0].T
    return constant - curve / 2 * (x ** 2 + y ** 2), x, y


@functools.lru_cache(maxsize=4)
def _design(curve: float) -> tuple[np.ndarray, np.ndarray]:
    """``fit_known_width``'s design matrix (25,3) for ``curve`` and its row outer products (25,9)
    (made once per image: each split fits about ten times with one curvature)."""
    design = np.stack([np.ones(_GRID_X.size), -curve * _GRID_X.ravel(), -curve * _GRID_Y.ravel()],
                      axis=1)
    return design, (design[:, :, None] * design[:, None, :]).reshape(_GRID_X.size, 9)


def known_width_targets(patches: np.ndarray, curve: float) -> np.ndarray:
    """(n,25) log values minus c/2 |p|^2: the left side of ``fit_known_width``'s equations."""
    return (np.log(np.maximum(patches, _LOG_FLOOR))
            - curve / 2 * (_GRID_X ** 2 + _GRID_Y ** 2)).reshape(len(patches), -1)


def fit_two_peaks(patches: np.ndarray, inside: np.ndarray, others: np.ndarray, single: np.ndarray,
                  first: tuple[np.ndarray, np.ndarray, np.ndarray], second_cell: np.ndarray,
                  curve: float) -> tuple[tuple, tuple, np.ndarray, np.ndarray]:
    """Two round peaks of known width per patch, max-merged with ``others`` (fixed).

    first: (log height, x, y) start of the known peak; second_cell: flat index of the cell where
    the second one starts.  Returns the two peaks' (log height, x, y), the fit's squared error
    as a fraction of the one-peak model ``single``'s, and how many cells the second peak explains.
    """
    count = len(patches)
    second = (np.log(np.maximum(patches.reshape(count, -1)[np.arange(count), second_cell],
                                _LOG_FLOOR)),
              _GRID_X.ravel()[second_cell], _GRID_Y.ravel()[second_cell])
    weights = np.maximum(patches, 0.0) ** 2          # log values of faint cells are mostly noise
    targets = known_width_targets(patches, curve)
    for _ in range(FIT_ROUNDS):
        model_first, model_second = gaussians(*first, curve), gaussians(*second, curve)
        owns_first = inside & (model_first >= model_second) & (model_first >= others)
        owns_second = inside & (model_second > model_first) & (model_second >= others)
        first = fit_known_width(targets, weights * owns_first, curve)
        second = fit_known_width(targets, weights * owns_second, curve)
    model_first, model_second = gaussians(*first, curve), gaussians(*second, curve)
    owns_second = inside & (model_second > model_first) & (model_second >= others)
    two = np.maximum(np.maximum(model_first, model_second), others)
    error_two = (np.where(inside, patches - two, 0.0) ** 2).sum(axis=(1, 2))
    error_one = (np.where(inside, patches - single, 0.0) ** 2).sum(axis=(1, 2))
    return first, second, error_two / np.maximum(error_one, 1e-12), owns_second.sum(axis=(1, 2))


def _patches(heatmaps: Any, parts: np.ndarray, rows: np.ndarray,
             cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K,5,5) float64 values around each peak cell (0 outside the map) and the mask of cells
    inside the map."""
    height, width = heatmaps.shape[-2:]
    patch_rows = rows[:, None, None] + _OFFSETS[None, :, None]                  # (K,5,1)
    patch_cols = cols[:, None, None] + _OFFSETS[None, None, :]                  # (K,1,5)
    inside = (patch_rows >= 0) & (patch_rows < height) & (patch_cols >= 0) & (patch_cols < width)
    flat = (parts[:, None, None] * (height * width) + patch_rows.clip(0, height - 1) * width
            + patch_cols.clip(0, width - 1))                                     # (K,5,5)
    values = heatmaps.reshape(-1)[arrays.like(flat, heatmaps)]
    return np.where(inside, arrays.to_numpy(values).astype(np.float64), 0.0), inside


def _neighbour_model(peaks: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                     log_height: np.ndarray, curve: float) -> np.ndarray:
    """(K,5,5): in each peak's patch, the max of the round peaks of the *other* peaks of its
    part that lie within reach (what they alone would put there)."""
    owner, other = _same_part_pairs(peaks[:, 0])                   # owner ascending
    near = (np.all(np.abs(peaks[owner, 1:3] - peaks[other, 1:3]) <= _NEIGHBOUR_REACH, axis=1)
            & (owner != other))
    owner, other = owner[near], other[near]
    model = np.zeros((len(peaks), 2 * RADIUS + 1, 2 * RADIUS + 1))
    if len(owner):
        values = gaussians(log_height[other], peaks[other, 1] - cols[owner],
                           peaks[other, 2] - rows[owner], curve)
        starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        model[owner[starts]] = np.maximum.reduceat(values, starts, axis=0)
    return model


def _same_part_pairs(parts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every ordered pair (i, j) of peaks of one part, i included, for ``parts`` grouped by part:
    two (M,) index arrays, i ascending (sum of squared group sizes, not K^2, in a crowd)."""
    starts = np.flatnonzero(np.r_[True, parts[1:] != parts[:-1]])
    sizes = np.diff(np.r_[starts, len(parts)])
    squares = sizes * sizes
    group = np.repeat(np.arange(len(starts)), squares)
    offsets = np.arange(len(group)) - np.repeat(np.cumsum(squares) - squares, squares)
    return starts[group] + offsets // sizes[group], starts[group] + offsets % sizes[group]


def _with_second_peaks(peaks: np.ndarray, split: np.ndarray, cols: np.ndarray, rows: np.ndarray,
                       first: list[np.ndarray], second: list[np.ndarray],
                       min_distance: float) -> np.ndarray:
    """``peaks`` with each split peak refitted and its second peak added (unless another peak of
    the part, old or new, is within ``min_distance``), regrouped by part."""
    result = peaks.copy()
    added: list[tuple[float, float, float, float]] = []
    for row, peak in enumerate(split.tolist()):
        part = peaks[peak, 0]
        x, y = cols[peak] + second[1][row], rows[peak] + second[2][row]
        others = np.flatnonzero(peaks[:, 0] == part)
        others = others[others != peak]
        near_old = np.any(np.hypot(peaks[others, 1] - x, peaks[others, 2] - y) < min_distance)
        near_new = any(np.hypot(px - x, py - y) < min_distance
                       for pp, px, py, _ in added if pp == part)
        if near_old or near_new:
            continue
        result[peak, 1], result[peak, 2] = cols[peak] + first[1][row], rows[peak] + first[2][row]
        height = float(np.exp(second[0][row]))
        added.append((float(part), float(x), float(y), min(height, 1.0)))
    if not added:
        return result
    result = np.concatenate([result, np.array(added, dtype=np.float32)])
    return result[np.argsort(result[:, 0], kind="stable")]

"""``decode`` / ``decode_people``: heatmaps and PAFs of one image -> people in net-input pixels
(and their scores); ``to_frame``."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from stages.postprocess import arrays
from stages.postprocess.close_peaks import split_close_peaks
from stages.postprocess.grouping import group_scored_people
from stages.postprocess.limbs import score_limbs
from stages.postprocess.params import DecoderParams
from stages.postprocess.peaks import find_peaks
from stages.skeleton import NUM_HEATMAPS, NUM_KEYPOINTS, NUM_PAFS

logger = logging.getLogger(__name__)


def decode(heatmaps: Any, pafs: Any, stride: int = 8, *, params: DecoderParams | None = None,
           **overrides: Any) -> np.ndarray:
    """People found in one image's network output.

    heatmaps (19,h,w) and pafs (38,h,w): float numpy arrays or torch tensors on any device (on an
    accelerator only the peaks and per-candidate-limb scores leave it; CPU tensors are decoded as
    zero-copy numpy views, numpy being quicker on these small arrays).  ``params`` (a
    DecoderParams) and/or keyword overrides of its fields set the thresholds; an unknown name is
    a ValueError.
    Returns float32 (P,18,3): x, y, score per keypoint in net-input pixels, map cell (gx, gy) at
    (stride*gx + (stride-1)/2, stride*gy + (stride-1)/2); a missing keypoint is (0,0,0).
    NaN/inf in the maps or wrong shapes raise ValueError.
    """
    return decode_people(heatmaps, pafs, stride, params=params, **overrides)[0]


def decode_people(heatmaps: Any, pafs: Any, stride: int = 8, *,
                  params: DecoderParams | None = None,
                  **overrides: Any) -> tuple[np.ndarray, np.ndarray]:
    """``decode``'s people (P,18,3) plus each person's score: float32 (P,) in [0, 1], the
    decoder's confidence in the whole person (``scoring.person_scores``; higher = more sure)."""
    params = _resolve_params(params, overrides)
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 1:
        raise ValueError(f"stride must be a positive integer, got {stride!r}")
    check_maps(heatmaps, pafs)
    heatmaps, pafs = (arrays.host_as_numpy(arrays.as_float(maps)) for maps in (heatmaps, pafs))

    peaks = find_peaks(heatmaps[:NUM_KEYPOINTS], params.peak_threshold, params.refine)
    if params.split_close_peaks:
        peaks = split_close_peaks(heatmaps, peaks, params.peak_threshold, params.close_peak_excess,
                                  params.close_peak_min_distance / stride,
                                  params.close_peak_fit_error)
    connections = score_limbs(pafs, peaks, params)
    members, scores = group_scored_people(connections, peaks, params, pafs=pafs)
    logger.debug("decoded %d peaks, %d connections, %d people",
                 len(peaks), len(connections), len(members))
    return people_from_peaks(members, peaks, stride), scores


def people_from_peaks(members: np.ndarray, peaks: np.ndarray, stride: int) -> np.ndarray:
    """(P,18) peak ids per part (-1 missing) -> (P,18,3) x_net, y_net, score; missing = 0,0,0."""
    people = np.zeros(members.shape + (3,), dtype=np.float32)
    present = members >= 0
    chosen = peaks[members[present]]
    centre = (stride - 1) / 2.0
    people[present] = np.stack(
        [stride * chosen[:, 1] + centre, stride * chosen[:, 2] + centre, chosen[:, 3]], axis=1)
    return people


def to_frame(people_net: np.ndarray, scale: float, pad: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Net-input pixels -> frame pixels: x_frame = (x_net - left) / scale, likewise y with top.

    people_net (P,18,3) x, y, score; pad = (top, left).  Missing keypoints stay (0,0,0); scores are
    unchanged.  Returns a new float32 array.
    """
    people = np.asarray(people_net, dtype=np.float32)
    if people.ndim != 3 or people.shape[1:] != (NUM_KEYPOINTS, 3):
        raise ValueError(f"people must have shape (P,{NUM_KEYPOINTS},3), got {people.shape}")
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    top, left = pad
    present = np.any(people != 0, axis=-1)
    out = people.copy()
    out[..., 0] = np.where(present, (people[..., 0] - left) / scale, 0.0)
    out[..., 1] = np.where(present, (people[..., 1] - top) / scale, 0.0)
    return out


def check_maps(heatmaps: Any, pafs: Any) -> None:
    """ValueError naming the fault when the maps are not (19,h,w) + (38,h,w) of finite values."""
    for name, maps, channels in (("heatmaps", heatmaps, NUM_HEATMAPS), ("pafs", pafs, NUM_PAFS)):
        shape = tuple(getattr(maps, "shape", ()))
        if len(shape) != 3 or shape[0] != channels:
            raise ValueError(f"{name} must have shape ({channels},h,w), got {shape}")
    if tuple(heatmaps.shape[1:]) != tuple(pafs.shape[1:]):
        raise ValueError(f"heatmaps {tuple(heatmaps.shape)} and pafs {tuple(pafs.shape)} "
                         "differ in map size")
    for name, maps in (("heatmaps", heatmaps), ("pafs", pafs)):
        bad = arrays.count_nonfinite(maps)
        if bad:
            raise ValueError(
                f"{name} contain {bad} NaN/inf value(s): the network output is invalid")


def _resolve_params(params: DecoderParams | None, overrides: dict) -> DecoderParams:
    if params is None:
        return DecoderParams.from_overrides(**overrides)
    if not isinstance(params, DecoderParams):
        raise TypeError(f"params must be a DecoderParams, got {type(params).__name__}")
    if overrides:
        base = {name: getattr(params, name) for name in params.__dataclass_fields__}
        return DecoderParams.from_overrides(**{**base, **overrides})
    return params

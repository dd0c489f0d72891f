"""The decoder's thresholds, as one frozen dataclass with OpenPose's usual defaults.

``decode(..., **params)`` takes the same names.  The config's ``postprocess`` section sets the few
fields users turn (``peak_threshold``, ``min_parts``, ``min_mean_score``); the others are tuning
internals, set from Python and by the tuning benchmark.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, fields

REFINE_METHODS = ("gaussian", "quadratic", "none")
MATCHING_METHODS = ("optimal", "greedy")


@dataclass(frozen=True)
class DecoderParams:
    """Thresholds of the PAF decoder (OpenPose's demo values, except ``peak_threshold`` and
    ``min_aligned_fraction``, chosen by COCO keypoint AP on the even image ids of
    ../shared/coco-val2017: ``python -m benchmarks.accuracy_tune``, issue 14;
    benchmarks/results/AVX512-BF16/accuracy_tuning.md).

    peak_threshold: minimum heatmap value of a keypoint peak (0.075; OpenPose ``thre1`` is 0.1;
        0.05 scored 0.003 AP more but found 5 % false people on noisy synthetic maps against 0 %
        and decodes slower; 0.03 doubles the decode time).
    paf_threshold: a sample along a candidate limb counts as aligned when the PAF's component
        along the limb exceeds this (``thre2``, 0.05).
    paf_samples: points sampled along each candidate limb for the line integral (``mid_num``, 10).
    min_aligned_fraction: a candidate limb needs more than this fraction of aligned samples (0.5;
        OpenPose 0.8).
    long_limb_fraction: limbs longer than this fraction of the net-input height have their score
        lowered (OpenPose's distance prior ``min(0.5 * height / length - 1, 0)``; 0.5).
    min_parts: people with fewer keypoints are dropped (3).
    min_mean_score: people whose summed keypoint and limb scores per keypoint is lower are
        dropped (0.4, as OpenPose; 0.2 scored <= 0.001 AP more on the even ids but reports 20 %
        more people, low-score fragments among them).
    refine: sub-pixel refinement of each stride-grid peak from its 3x3 neighbourhood:
        ``gaussian`` (parabola through the log values: exact for a Gaussian peak), ``quadratic``
        (parabola through the values) or ``none`` (the cell centre).
    matching: how each limb's candidates are paired one-to-one: ``optimal`` (the bipartite
        matching with the largest total score, Hungarian algorithm) or ``greedy`` (best score
        first, as OpenPose's demo does; it can let one long candidate spanning two people's
        collinear limbs take both of their ends).
    split_close_peaks: look for a second peak of the same part hidden next to a grid peak
        (two people's keypoints closer than the stride grid separates; close_peaks.py).
    close_peak_excess: a peak's 5x5 neighbourhood must exceed one round peak by more than this
        fraction of its height to be fitted with two peaks (0.2).
    close_peak_min_distance: least distance, in net-input pixels, between two peaks of one
        part that a split may create (6).
    close_peak_fit_error: a split is kept when the two-peak fit's squared error is at most this
        fraction of one peak's (0.03; real single peaks are not exact Gaussians, so a looser
        bound splits elongated hip and shoulder peaks).
    fragment_max_parts: people without a neck and at most this many keypoints are fragments:
        joined to a body that lacks their parts when a limb's length fits, dropped when they
        duplicate a body's parts (fragments.py); 0 or 1 = off (4).
    fragment_join_distance: how long, as a fraction of a body's size (the larger side of its
        keypoints' box), a fragment's joining limb may be (1.0).
    fragment_duplicate_distance: a fragment that cannot join is dropped when one of its parts
        lies within this fraction of a body's size of the body's own keypoint of that part (0.5).
    fragment_min_alignment: a joining limb a map cell long or more needs at least this mean PAF
        alignment (0.1; below the usual limb criteria, but a limb pointing elsewhere fails it).
    """

    peak_threshold: float = 0.075
    paf_threshold: float = 0.05
    paf_samples: int = 10
    min_aligned_fraction: float = 0.5
    long_limb_fraction: float = 0.5
    min_parts: int = 3
    min_mean_score: float = 0.4
    refine: str = "gaussian"
    matching: str = "optimal"
    split_close_peaks: bool = True
    close_peak_excess: float = 0.2
    close_peak_min_distance: float = 6.0
    close_peak_fit_error: float = 0.03
    fragment_max_parts: int = 4
    fragment_join_distance: float = 1.0
    fragment_duplicate_distance: float = 0.5
    fragment_min_alignment: float = 0.1

    def __post_init__(self) -> None:
        _check_number(self, "peak_threshold", 0.0, 1.0)
        _check_number(self, "paf_threshold", 0.0, 1.0)
        _check_int(self, "paf_samples", 2, 1000)
        _check_number(self, "min_aligned_fraction", 0.0, 1.0)
        _check_number(self, "long_limb_fraction", 1e-6, 100.0)
        _check_int(self, "min_parts", 1, 18)
        _check_number(self, "min_mean_score", 0.0, 100.0)
        if not isinstance(self.split_close_peaks, bool):
            raise ValueError(f"DecoderParams.split_close_peaks must be true or false, "
                             f"got {self.split_close_peaks!r}")
        _check_number(self, "close_peak_excess", 0.01, 10.0)
        _check_number(self, "close_peak_min_distance", 1.0, 64.0)
        _check_number(self, "close_peak_fit_error", 0.0, 1.0)
        _check_int(self, "fragment_max_parts", 0, 17)
        _check_number(self, "fragment_join_distance", 0.0, 10.0)
        _check_number(self, "fragment_duplicate_distance", 0.0, 10.0)
        _check_number(self, "fragment_min_alignment", -1.0, 1.0)
        if self.refine not in REFINE_METHODS:
            raise ValueError(f"DecoderParams.refine must be one of {', '.join(REFINE_METHODS)}, "
                             f"got {self.refine!r}")
        if self.matching not in MATCHING_METHODS:
            raise ValueError(f"DecoderParams.matching must be one of "
                             f"{', '.join(MATCHING_METHODS)}, got {self.matching!r}")

    @classmethod
    def from_overrides(cls, **overrides) -> "DecoderParams":
        """Defaults with the given fields replaced; an unknown name is a ValueError naming it."""
        names = field_names()
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise ValueError(
                f"unknown decoder parameter(s) {', '.join(unknown)}; valid: {', '.join(names)}"
            )
        return cls(**overrides)


def field_names() -> tuple[str, ...]:
    """The names ``decode`` accepts as keyword parameters."""
    return tuple(f.name for f in fields(DecoderParams))


def _check_number(params: DecoderParams, name: str, low: float, high: float) -> None:
    value = getattr(params, name)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not low <= value <= high:
        raise ValueError(
            f"DecoderParams.{name} must be a number in [{low:g}, {high:g}], got {value!r}")


def _check_int(params: DecoderParams, name: str, low: int, high: int) -> None:
    value = getattr(params, name)
    integer = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not integer or not low <= value <= high:
        raise ValueError(
            f"DecoderParams.{name} must be an integer in [{low}, {high}], got {value!r}")

"""Decoding OpenPose heatmaps and PAFs into people.

``decode(heatmaps, pafs, stride=8, **params)`` composes pure steps, each testable alone:

1. ``find_peaks`` (peaks.py): 3x3 non-maximum suppression on the stride-8 grid, then a sub-pixel
   parabola fit per peak (instead of OpenPose's x8 bicubic resize of every map);
   ``split_close_peaks`` (close_peaks.py) then looks again where one grid peak may hide a
   second one of the same part (two people's keypoints closer than two cells, in crowds);
2. ``score_limbs`` (limbs.py): the PAF line integral of every candidate pair of every limb at once,
   then per limb the one-to-one bipartite matching of largest total score (Hungarian; OpenPose's
   greedy best-first matching is ``matching="greedy"``);
3. ``group_people`` (grouping.py): limbs grown into people with a peak-to-person lookup, people
   with too few parts or too low a mean score dropped; small neckless fragments beside a body
   joined to it or dropped (fragments.py); ``decode_people`` also returns each person's score
   (``scoring.person_scores``: the decoder's confidence in the whole person).

Numpy or torch: steps 1 and 2 only use operations numpy arrays and torch tensors share, plus the
handful of helpers in arrays.py, so a tensor on the model's device is searched and sampled where it
is; what crosses to the host is small (each peak's 3x3 neighbourhood, two numbers per candidate
limb), never a full map.  Everything after that (the sub-pixel fit, matching, grouping) works on
those small arrays in numpy, where Python-level control flow is cheap.  ``decode`` hands CPU
tensors to numpy as zero-copy views, because numpy's per-call overhead is lower.

Glossary (K peaks, N candidate pairs, C connections, P people, L = 19 limbs, h x w map cells):

========== ============= =====================================================================
name       shape, dtype  meaning
========== ============= =====================================================================
heatmaps   (19,h,w) f32  part confidence maps, channel 18 = background (``stages.skeleton``)
pafs       (38,h,w) f32  part affinity fields, x/y channel pair per limb (``Limb.paf_x/paf_y``)
peaks      (K,4) f32     part, x_map, y_map, score; grouped by part; x_map/y_map in map cells
                         (cell centres at integers), score = heatmap value at the peak cell
pairs      (N,3) i64     limb index, peak id a, peak id b: every candidate of every limb
connections (C,4) f32    limb index, peak id a, peak id b, score; limb order, best first
members    (P,18) i64    peak id of each part of each person, -1 where missing
people     (P,18,3) f32  x, y, score per keypoint; ``_net`` = net-input pixels (decode's output),
                         ``_frame`` = frame pixels (``to_frame``); missing keypoint = (0,0,0)
========== ============= =====================================================================

Map cell (gx, gy) is net-input pixel (stride*gx + (stride-1)/2, stride*gy + (stride-1)/2).
``benchmarks/synthetic.py`` draws ground-truth maps as OpenPose's training labels are made and
scores decoded people against them (the decoder's tests and ``benchmarks/decoder.py``).
"""

from stages.postprocess.decoder import decode, decode_people, to_frame
from stages.postprocess.grouping import group_people, group_scored_people
from stages.postprocess.limbs import score_limbs
from stages.postprocess.params import DecoderParams
from stages.postprocess.peaks import find_peaks
from stages.postprocess.scoring import person_scores

__all__ = ["DecoderParams", "decode", "decode_people", "find_peaks", "group_people",
           "group_scored_people", "person_scores", "score_limbs", "to_frame"]

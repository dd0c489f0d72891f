"""Crowds: many small people whose same-type keypoints come closer than two grid cells."""

from __future__ import annotations

import numpy as np
import pytest

from stages.postprocess import decode
from benchmarks.synthetic import degrade_maps, make_crowd, score_scene, summarize

CROWD_SEEDS = range(7000, 7006)        # 6 scenes of 20 people, network-like (noisy) maps


@pytest.fixture(scope="module")
def crowds():
    scenes = [make_crowd(seed) for seed in CROWD_SEEDS]
    return [(scene, degrade_maps(scene.heatmaps, scene.pafs, seed))
            for seed, scene in zip(CROWD_SEEDS, scenes)]


def crowd_summary(crowds, decoder) -> dict:
    return summarize(score_scene(decoder(*maps), scene.keypoints) for scene, maps in crowds)


def test_crowds_at_least_as_complete_as_the_x8_reference_and_no_more_false(crowds):
    reference_decoder = pytest.importorskip("benchmarks.reference_decoder")
    ours = crowd_summary(crowds, decode)
    reference = crowd_summary(crowds, reference_decoder.reference_decode)
    assert ours["people_true"] == 120
    assert ours["people_complete"] >= reference["people_complete"]
    assert ours["false_people"] <= reference["false_people"]
    assert ours["mean_error_px"] <= reference["mean_error_px"]


def test_splitting_close_peaks_completes_more_people_in_crowds(crowds):
    split = crowd_summary(crowds, decode)
    grid_only = crowd_summary(crowds, lambda h, p: decode(h, p, split_close_peaks=False))
    assert split["people_complete"] >= grid_only["people_complete"] + 5
    assert split["false_people"] <= grid_only["false_people"]
    assert split["keypoints_found"] > grid_only["keypoints_found"]

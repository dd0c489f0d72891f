"""Goal tests of the event rules on the real dance clip through the real network and the CLI.

The clips are made from dance2.mp4 here (10 fps copies, so each run stays short):

- upright: a line across the dance floor at 45 % of the width and a zone on the right of the floor
  (x 80–100 %, lower half).  Counted by looking at the annotated video (frames every 0.6 s, with
  the line and the zone drawn): the woman (left) starts with her feet right of the line and has
  crossed it leftwards by 0.6 s, and nobody crosses it again: 1 crossing, ``left``.  The man (right)
  steps into the zone around 8.4 s and is at its left edge, leaving, by 9.6 s; nobody else enters
  it: 1 start and its end.
- turned: the same clip on a square canvas, its middle 5 s (2.35 s to 7.35 s) turned 90° so both
  dancers lie.  What the network finds (mobilenet_thin at 368 rows) in the frames as they are:
  neither lying dancer as a whole person (pieces of the man with a torso 47–66° from horizontal
  for about a second, then nothing).  Once the people seen before are missing, the turned looks
  (``stream/events/turned.py``) run the network on the frame turned 90° each way, where both
  dancers stand: both are found lying, so each gets one start and one end, within 1.5 s of the
  turn and of the turn back, and nothing happens in the upright parts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TURN = (2.35, 7.35)


def ten_fps_copy(source: Path, target: Path, turn: tuple[float, float] | None = None) -> Path:
    """dance2.mp4 at 10 fps; with ``turn``, on a square canvas with that stretch turned 90°."""
    capture = cv2.VideoCapture(str(source))
    fps = capture.get(cv2.CAP_PROP_FPS)
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    size = (max(width, height),) * 2 if turn else (width, height)
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    index, next_time = 0, 0.0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index / fps >= next_time - 1e-6:
            next_time += 0.1
            if turn:
                if turn[0] <= index / fps < turn[1]:
                    frame = cv2.rotate(frame, cv2.ROTATE_90_CLOCKWISE)
                canvas = np.zeros((size[1], size[0], 3), np.uint8)
                top, left = (size[1] - frame.shape[0]) // 2, (size[0] - frame.shape[1]) // 2
                canvas[top:top + frame.shape[0], left:left + frame.shape[1]] = frame
                frame = canvas
            writer.write(frame)
        index += 1
    writer.release()
    capture.release()
    return target


def run_rules(tmp_path: Path, clip: Path, rules: str, height: int) -> list[dict]:
    """The --events records of a CLI run (its --stats report in ``tmp_path / "stats.json"``)."""
    config = tmp_path / "rules.yaml"
    config.write_text(f"events:\n  rules:\n{rules}")
    events = tmp_path / "events.jsonl"
    run = subprocess.run([sys.executable, "run_stream.py", "--config", str(config), "--source", str(clip),
                          "--backbone", "mobilenet_thin", "--input-height", str(height), "--events", str(events),
                          "--stats", str(tmp_path / "stats.json"), "--no-display", "--set", "run.progress=false"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return [json.loads(line) for line in events.read_text().splitlines()]


@pytest.fixture
def dance(media):
    return media("dance2.mp4")


def test_line_and_zone_counts_on_the_dance_floor(tmp_path, dance):
    clip = ten_fps_copy(dance, tmp_path / "upright.mp4")
    records = run_rules(tmp_path, clip, "    - {name: door, kind: line, points: [[0.45, 0.0], [0.45, 1.0]]}\n"
                                        "    - {name: corner, kind: zone, polygon: [[0.8, 0.5], [1.0, 0.5], "
                                        "[1.0, 1.0], [0.8, 1.0]]}\n", height=256)
    crossings = [record for record in records if record["rule"] == "door"]
    assert [(r["type"], r["direction"]) for r in crossings] == [("instant", "left")], crossings
    assert crossings[0]["stream_time"] <= 1.5, "the woman crossed within the first second or so"
    zone = [record for record in records if record["rule"] == "corner"]
    assert [r["type"] for r in zone] == ["start", "end"], zone
    assert zone[0]["person_id"] == zone[1]["person_id"] != crossings[0]["person_id"], "the man, not the woman"
    assert 8.0 <= zone[0]["stream_time"] <= 9.3 and zone[1]["stream_time"] >= 9.2
    assert zone[0]["polygon"][0] == [pytest.approx(0.8 * 702, abs=0.1), 240.0]
    counted = json.loads((tmp_path / "stats.json").read_text())["events"]["sources"]["cam0"]
    assert counted["rules"] == {"door": 1, "corner": 1} and counted["lines"] == {"door": {"left": 1}}


def test_person_down_on_the_turned_clip(tmp_path, dance):
    clip = ten_fps_copy(dance, tmp_path / "turned.mp4", turn=TURN)
    records = run_rules(tmp_path, clip, "    - {name: floor, kind: person_down, seconds: 0.5}\n", height=368)
    starts = [r for r in records if r["type"] == "start"]
    ends = {r["id"].rsplit(".", 1)[0]: r for r in records if r["type"] == "end"}
    assert len(starts) == 2 and len(ends) == 2 and len(records) == 4, records    # both dancers, once each
    assert len({r["person_id"] for r in starts}) == 2
    for start in starts:
        end = ends[start["id"].rsplit(".", 1)[0]]
        assert end["person_id"] == start["person_id"]
        assert abs(start["stream_time"] - TURN[0]) <= 1.5 and abs(end["stream_time"] - TURN[1]) <= 1.5, (start, end)
        x0, y0, x1, y1 = start["box"]
        assert x1 - x0 > 2 * (y1 - y0), "the person found lies along the floor"
    assert all(TURN[0] <= r["stream_time"] <= TURN[1] + 1.5 for r in records), "no event in the upright parts"

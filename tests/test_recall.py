"""benchmarks.recall: plan parsing, CPU class, and the CLI on a real clip, from a file and from a
real RTSP server (tests/rtsp_server.py serving the clip's frames in a loop)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from benchmarks.recall import Plan, match_fingerprints, parse_plan, resolve_overrides
from posestream_common.errors import ConfigError
from tests.fixtures_live import RtspServer, rtsp_available  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[1]
FRAMES = 8


def test_parse_plan_and_frame_heights():
    assert parse_plan("h368=model.input_height=368") == Plan("h368", ("model.input_height=368",))
    assert parse_plan("both=model.input_height=256, tracking.enabled=false") == \
        Plan("both", ("model.input_height=256", "tracking.enabled=false"))
    assert parse_plan("default=") == Plan("default", ())
    for bad in ("nameonly", "=model.input_height=3", "x=model.input_height"):
        with pytest.raises(ConfigError, match="--plan"):
            parse_plan(bad)
    assert resolve_overrides(("model.input_height=frame", "model.input_height=frame*0.5", "a.b=frame"), 720) == \
        ("model.input_height=720", "model.input_height=360", "a.b=frame")
    with pytest.raises(ConfigError, match="frame\\*x"):
        resolve_overrides(("model.input_height=frame*x",), 720)


def test_live_frames_are_found_by_their_thumbnail_only_when_close():
    import numpy as np

    recorded = np.stack([np.full((36, 64), value, np.float32) for value in (10, 50, 90)])
    prints = {"0": np.full((36, 64), 50, np.uint8).tobytes().hex(),
              "1": np.full((36, 64), 70, np.uint8).tobytes().hex()}
    assert match_fingerprints(prints, recorded) == {0: 1}


@pytest.fixture(scope="module")
def clip_frames(shared_dir: Path, tmp_path_factory) -> Path:
    """The first FRAMES frames of video.avi at 640x360, as PNG files 0000.png, …"""
    import backbones

    if not backbones.default_weights_path("mobilenet_thin").is_file():
        pytest.skip("needs weights/mobilenet_thin.pth")
    video = shared_dir / "media" / "video.avi"
    if not video.is_file():
        pytest.skip(f"no {video}")
    folder = tmp_path_factory.mktemp("frames")
    capture = cv2.VideoCapture(str(video))
    for index in range(FRAMES):
        ok, image = capture.read()
        assert ok
        cv2.imwrite(str(folder / f"{index:04d}.png"), cv2.resize(image, (640, 360), interpolation=cv2.INTER_AREA))
    capture.release()
    return folder


@pytest.fixture(scope="module")
def clip(clip_frames: Path) -> Path:
    """Those frames as a lossless video file."""
    path = clip_frames.parent / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 25, (640, 360))
    for png in sorted(clip_frames.glob("*.png")):
        writer.write(cv2.imread(str(png)))
    writer.release()
    return path


def recall_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks.recall", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def rows_of(out: Path) -> dict[str, dict]:
    return {row["plan"]: row for row in json.loads((out / "recall.json").read_text())["rows"]}


def test_cli_on_a_file_compares_plans_with_the_reference_and_caches_it(clip: Path, tmp_path: Path):
    common = ["--clip", str(clip), "--max-frames", str(FRAMES), "--work-dir", str(tmp_path / "work"),
              "--plan", "same=model.input_height=frame", "--plan", "small=model.input_height=184"]
    done = recall_cli(*common, "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr[-2000:]
    rows = rows_of(tmp_path / "out")
    assert list(rows) == ["same", "small", "reference"]
    same, small, reference = rows["same"], rows["small"], rows["reference"]
    assert reference["input_height"] == same["input_height"] == 360 and small["input_height"] == 184
    assert reference["reference_people"] > 0 and same["frames_compared"] == FRAMES == small["frames_compared"]
    # the same configuration as the reference finds exactly its people
    assert same["recall"] == 1.0 and same["extra"] == 0 and same["median_offset_px"] == 0.0
    assert small["recall"] < 1.0 and small["people_per_frame"] < reference["people_per_frame"]
    for row in rows.values():
        assert row["fps"] > 0 and row["cpu_ms_per_frame"] > 0 and row["frames"] == FRAMES
    meta = json.loads((tmp_path / "out" / "recall.json").read_text())["meta"]
    assert meta["cpu_class"] in ("AMX", "AVX512-BF16", "AVX2", "other") and meta["date"]
    assert "| same |" in (tmp_path / "out" / "recall.md").read_text()
    assert (tmp_path / "out" / "recall.png").stat().st_size > 0
    assert reference["cached"] is None

    again = recall_cli(*common[:6], "--plan", "same=model.input_height=frame", "--out", str(tmp_path / "again"))
    assert again.returncode == 0, again.stderr[-2000:]
    rows_again = rows_of(tmp_path / "again")
    assert rows_again["reference"]["cached"] and rows_again["same"]["recall"] == 1.0


def test_cli_bad_plan_exits_2_with_one_line_and_writes_nothing(clip: Path, tmp_path: Path):
    done = recall_cli("--clip", str(clip), "--max-frames", "2", "--plan", "x=model.no_such_key=1",
                      "--work-dir", str(tmp_path / "work"), "--out", str(tmp_path / "out"), timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no_such_key" in lines[0] and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_cli_on_rtsp_runs_the_plans_live_and_the_reference_on_the_recorded_frames(
        rtsp_available, clip_frames: Path, tmp_path: Path):
    server = RtspServer(frames=clip_frames, fps=10)
    server.start()
    try:
        done = recall_cli("--clip", server.url, "--max-frames", str(2 * FRAMES),
                          "--plan", "same=model.input_height=frame", "--work-dir", str(tmp_path / "work"),
                          "--out", str(tmp_path / "out"))
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "out" / "recall.json").read_text())
    assert summary["meta"]["live"] and Path(summary["meta"]["recording"]).is_file()
    rows = {row["plan"]: row for row in summary["rows"]}
    same = rows["same"]
    # run.max_frames counts the stream's frames, dropped ones included
    assert 0 < same["frames"] <= 2 * FRAMES and same["frames"] + same["dropped"] >= 2 * FRAMES - 1
    # the loop is FRAMES long and 2 x FRAMES were recorded: every live frame is among them
    assert same["frames_compared"] == same["frames"]
    # the served loop is encoded again on every pass, so the live frames differ from the recorded
    # ones by the encoder's noise: nearly, not exactly, the reference's people
    assert rows["reference"]["reference_people"] > 0
    assert same["recall"] >= 0.75 and same["extra_percent"] <= 25 and same["median_offset_px"] <= 3.0


def test_cli_on_a_stream_that_does_not_open_exits_2_without_its_password(tmp_path: Path):
    from tests.fixtures_live import free_port

    url = f"rtsp://viewer:s3cret@127.0.0.1:{free_port()}/cam"
    done = recall_cli("--clip", url, "--max-frames", "2", "--work-dir", str(tmp_path / "work"),
                      "--out", str(tmp_path / "out"), timeout=120)
    assert done.returncode == 2
    ours = [line for line in done.stderr.splitlines() if line.startswith("python -m benchmarks.recall")]
    assert len(ours) == 1 and "did not open" in ours[0] and "Traceback" not in done.stderr   # (FFmpeg says more)
    assert "s3cret" not in done.stderr + done.stdout
    assert not (tmp_path / "out").exists()

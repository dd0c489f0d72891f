"""Sinks writing real files: JSON lines per contract, playable H.264/MJPG video, images, fan-out,
and the display sink that must never call imshow without a display."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from posestream_common.errors import ConfigError
from stream.items import Posed
from stream.sinks import (DisplaySink, ImageFolderSink, JsonLinesSink, MultiSink, Sink, VideoSink,
                          has_display)

ROOT = Path(__file__).resolve().parents[1]


def posed(index: int, people=None, person_ids=(), file=None, source="cam0", size=(120, 160)) -> Posed:
    image = np.full((*size, 3), index % 256, np.uint8)
    people = np.zeros((0, 18, 3), np.float32) if people is None else np.asarray(people, np.float32)
    return Posed(image=image, index=index, capture_time=0.0, time=index / 25, source=source, file=file,
                 net_input=None, scale=1.0, heatmaps=None, pafs=None, people=people,
                 person_ids=tuple(person_ids))


def person(seed: int, missing=()) -> np.ndarray:
    rng = np.random.default_rng(seed)
    keypoints = np.column_stack([rng.uniform(0, 160, 18), rng.uniform(0, 120, 18), rng.uniform(0.2, 1, 18)])
    keypoints[list(missing)] = 0
    return keypoints.astype(np.float32)


def moving_square(index: int, size=(160, 120)) -> np.ndarray:
    width, height = size
    image = np.full((height, width, 3), 30, np.uint8)
    x = (index * 3) % (width - 20)
    cv2.rectangle(image, (x, 40), (x + 20, 60), (0, 200, 255), cv2.FILLED)
    return image


# ----- JSON lines -------------------------------------------------------------------------------

def test_json_lines_follow_the_contract(tmp_path):
    path = tmp_path / "deep" / "poses.jsonl"
    people = np.stack([person(1, missing=(3, 17)), person(2)])
    with JsonLinesSink(path) as sink:
        sink.write(posed(0, people), None)
        sink.write(posed(1), None)
        sink.write(posed(2, people, person_ids=(7, 9)), None)
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    first, empty, tracked = (json.loads(line) for line in lines)
    assert set(first) == {"frame", "time", "people"}
    assert first["frame"] == 0 and empty["frame"] == 1 and empty["people"] == []
    assert empty["time"] == pytest.approx(1 / 25)
    assert [p["person_id"] for p in first["people"]] == [-1, -1]
    assert [p["person_id"] for p in tracked["people"]] == [7, 9]
    keypoints = first["people"][0]["pose_keypoints_2d"]
    assert len(keypoints) == 54 and all(isinstance(v, float) for v in keypoints)
    assert keypoints[9:12] == [0.0, 0.0, 0.0] and keypoints[51:54] == [0.0, 0.0, 0.0]
    assert keypoints[:3] == pytest.approx(people[0, 0].tolist(), abs=0.01)
    assert first["people"][1]["pose_keypoints_2d"] == pytest.approx(people[1].ravel().tolist(), abs=0.01)


def test_json_lines_carry_file_and_source_when_asked(tmp_path):
    path = tmp_path / "poses.jsonl"
    with JsonLinesSink(path, include_source=True) as sink:
        sink.write(posed(0, file="a.png", source="cam1"), None)
    record = json.loads(path.read_text())
    assert record["file"] == "a.png" and record["source"] == "cam1"
    with JsonLinesSink(path) as sink:
        sink.write(posed(0, source="cam1"), None)
    assert "source" not in json.loads(path.read_text()) and "file" not in json.loads(path.read_text())


def test_json_lines_are_flushed_at_once_and_non_finite_values_are_missing(tmp_path):
    path = tmp_path / "poses.jsonl"
    broken = person(3)
    broken[4] = [np.nan, 10.0, 0.9]
    sink = JsonLinesSink(path)
    sink.write(posed(0, [broken]), None)
    with open(path) as reader:                       # a second reader, while the sink is open
        line = reader.readline()
        assert line.endswith("\n")
        assert json.loads(line)["people"][0]["pose_keypoints_2d"][12:15] == [0.0, 0.0, 0.0]
        sink.write(posed(1), None)
        assert json.loads(reader.readline())["frame"] == 1
    sink.close()
    sink.close()


def test_json_sink_writes_no_file_without_frames(tmp_path):
    sink = JsonLinesSink(tmp_path / "never.jsonl")
    sink.open()
    sink.close()
    assert not (tmp_path / "never.jsonl").exists()


# ----- video --------------------------------------------------------------------------------------

def decoded(path: Path) -> tuple[str, list[np.ndarray]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream.codec_context.name, [f.to_ndarray(format="bgr24") for f in container.decode(stream)]


def test_mp4_is_h264_with_every_frame(tmp_path):
    path = tmp_path / "out" / "annotated.mp4"
    sink = VideoSink(path, fps=25)
    originals = [moving_square(i) for i in range(200)]
    for index, image in enumerate(originals):
        sink.write(posed(index), image)
    sink.close()
    sink.close()
    codec, frames = decoded(path)
    assert codec == "h264" and len(frames) == 200
    assert frames[0].shape == (120, 160, 3)
    for index in (0, 77, 199):                       # frames come back in order, close to the input
        assert np.abs(frames[index].astype(int) - originals[index]).mean() < 6
    with av.open(str(path)) as container:
        assert float(container.streams.video[0].average_rate) == pytest.approx(25)


def test_odd_sized_frames_are_padded_to_even(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="stream.sinks.video")
    path = tmp_path / "odd.mp4"
    with VideoSink(path, fps=10) as sink:
        for index in range(5):
            sink.write(posed(index), moving_square(index, size=(161, 121)))
    codec, frames = decoded(path)
    assert codec == "h264" and len(frames) == 5 and frames[0].shape == (122, 162, 3)
    assert sum("is odd; padding" in r.getMessage() for r in caplog.records) == 1


def test_avi_is_mjpg_with_every_frame(tmp_path):
    path = tmp_path / "annotated.avi"
    with VideoSink(path, fps=25) as sink:
        for index in range(30):
            sink.write(posed(index), moving_square(index))
    codec, frames = decoded(path)
    assert codec == "mjpeg" and len(frames) == 30


def test_video_sink_rejects_unknown_extension_and_writes_nothing_without_frames(tmp_path):
    with pytest.raises(ConfigError, match="out.gif"):
        VideoSink(tmp_path / "out.gif", fps=25)
    VideoSink(tmp_path / "never.mp4", fps=25).close()
    assert not (tmp_path / "never.mp4").exists()


def test_frames_of_another_size_are_resized(tmp_path):
    path = tmp_path / "mixed.mp4"
    with VideoSink(path, fps=25) as sink:
        sink.write(posed(0), moving_square(0))
        sink.write(posed(1), moving_square(1, size=(320, 240)))
    _, frames = decoded(path)
    assert [f.shape for f in frames] == [(120, 160, 3), (120, 160, 3)]


# ----- images ---------------------------------------------------------------------------------------

def test_images_are_written_under_their_input_names(tmp_path):
    out = tmp_path / "annotated"
    with ImageFolderSink(out) as sink:
        sink.write(posed(0, file="b.jpg"), moving_square(0))
        sink.write(posed(1, file="a.png"), moving_square(50))
        sink.write(posed(2), moving_square(2))
    assert sorted(p.name for p in out.iterdir()) == ["000002.png", "a.png", "b.jpg"]
    assert np.array_equal(cv2.imread(str(out / "a.png")), moving_square(50))


def test_image_sink_refuses_to_overwrite_the_input_folder(tmp_path):
    with pytest.raises(ConfigError, match=str(tmp_path)):
        ImageFolderSink(tmp_path / ".", source_folder=tmp_path)


# ----- fan-out ---------------------------------------------------------------------------------------

class Exploding(Sink):
    name = "exploding"

    def __init__(self):
        self.calls = 0

    def write(self, item, annotated):
        self.calls += 1
        raise OSError("disk full")

    def close(self):
        raise OSError("still full")


def test_multi_sink_keeps_going_when_one_sink_fails(tmp_path, caplog):
    caplog.set_level(logging.ERROR, logger="stream.sinks.multi")
    exploding = Exploding()
    json_sink = JsonLinesSink(tmp_path / "poses.jsonl")
    video_sink = VideoSink(tmp_path / "out.mp4", fps=25)
    with MultiSink([exploding, json_sink, video_sink]) as sinks:
        for index in range(20):
            sinks.write(posed(index), moving_square(index))
        assert sinks.active == [json_sink, video_sink]
    assert exploding.calls == 1
    assert list(sinks.failures) == ["exploding"]
    assert len(caplog.records) == 1 and "disk full" in caplog.records[0].getMessage()
    assert len((tmp_path / "poses.jsonl").read_text().splitlines()) == 20
    assert len(decoded(tmp_path / "out.mp4")[1]) == 20


# ----- display ---------------------------------------------------------------------------------------

def test_has_display_follows_the_environment(monkeypatch):
    if sys.platform in ("win32", "darwin"):
        pytest.skip("displays are assumed on Windows and macOS")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert not has_display()
    monkeypatch.setenv("DISPLAY", ":0")
    assert has_display()


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="Linux display check")
def test_display_sink_without_display_logs_once_and_never_calls_imshow():
    # In a child process: opencv-python's imshow without a display would abort it (or raise).
    script = (
        "import logging, numpy as np\n"
        "logging.basicConfig(level=logging.INFO, format='%(name)s|%(message)s')\n"
        "from stream.sinks import DisplaySink\n"
        "from tests.test_sinks import posed\n"
        "with DisplaySink() as sink:\n"
        "    for i in range(5):\n"
        "        sink.write(posed(i), np.zeros((120, 160, 3), np.uint8))\n"
        "print('done', sink.enabled)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "done False"
    lines = [line for line in done.stderr.splitlines() if line.startswith("stream.sinks.display|")]
    assert len(lines) == 1 and "no display" in lines[0]


def test_frame_times_stamp_live_video_at_real_speed(tmp_path):
    times = [10.0, 10.1, 10.15, 10.5, 10.6, 11.0]          # a live source's irregular times
    paths = {flag: tmp_path / f"live_{flag}.mp4" for flag in (False, True)}
    for flag, path in paths.items():
        with VideoSink(path, fps=30, frame_times=flag) as sink:
            for index, time_s in enumerate(times):
                sink.write(dataclasses.replace(posed(index), time=time_s), moving_square(index))
    for flag, path in paths.items():
        with av.open(str(path)) as container:
            stamps = [float(frame.time) for frame in container.decode(video=0)]
        expected = [t - times[0] for t in times] if flag else [i / 30 for i in range(len(times))]
        assert stamps == pytest.approx(expected, abs=1e-3)

"""Event clips written from synthetic numbered frames at 15 fps, read back with ffprobe and PyAV."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from stream.events.clips import ClipRecorder, ClipSettings
from tests.mqtt_broker import wait_for

FPS = 15
BITS = 12
BLOCK = 20


def numbered_frame(number: int, width: int = 320, height: int = 240) -> np.ndarray:
    """A grey frame whose top row of 20-pixel blocks spells ``number`` in binary (white = 1)."""
    image = np.full((height, width, 3), 64, np.uint8)
    for bit in range(BITS):
        if number >> bit & 1:
            image[:BLOCK, bit * BLOCK:(bit + 1) * BLOCK] = 255
        else:
            image[:BLOCK, bit * BLOCK:(bit + 1) * BLOCK] = 0
    return image


def read_number(image: np.ndarray) -> int:
    blocks = [image[4:BLOCK - 4, bit * BLOCK + 4:(bit + 1) * BLOCK - 4].mean() for bit in range(BITS)]
    return sum(1 << bit for bit, level in enumerate(blocks) if level > 128)


def clip_numbers(path: str) -> list[int]:
    with av.open(path) as container:
        return [read_number(frame.to_ndarray(format="bgr24")) for frame in container.decode(video=0)]


def ffprobe(path: str) -> dict:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
         "stream=codec_name,pix_fmt,nb_read_frames,duration", "-of", "json", path],
        capture_output=True, text=True, timeout=60, check=True)
    assert result.stderr == "", result.stderr
    return json.loads(result.stdout)["streams"][0]


def feed(recorder: ClipRecorder, first: int, last: int, source: str = "cam", actions=None) -> None:
    """Frames ``first``..``last`` at 15 fps; ``actions[n]`` runs right after frame n."""
    for n in range(first, last + 1):
        recorder.add_frame(source, n / FPS, numbered_frame(n))
        if actions and n in actions:
            actions[n]()


needs_ffprobe = pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe is missing")


@needs_ffprobe
def test_clip_covers_pre_and_post_roll_and_plays(tmp_path):
    recorder = ClipRecorder(ClipSettings(tmp_path, pre_s=5.0, post_s=5.0))
    start_frame, end_frame = 8 * FPS, 10 * FPS       # the event: 8 s to 10 s into the stream
    paths = {}
    feed(recorder, 0, 17 * FPS, actions={
        start_frame: lambda: paths.setdefault("clip", recorder.start_clip("cam", "ev-1", 8.0)),
        end_frame: lambda: recorder.end_clip("cam", "ev-1", 10.0),
    })
    path = paths["clip"]
    assert Path(path).parent == tmp_path / "cam" and path.endswith("-ev-1.mp4")
    wait_for(lambda: Path(path).exists(), 60, "the finished clip")
    probe = ffprobe(path)
    assert probe["codec_name"] == "h264" and probe["pix_fmt"] == "yuv420p"
    numbers = clip_numbers(path)
    assert int(probe["nb_read_frames"]) == len(numbers)
    assert numbers == list(range(numbers[0], numbers[-1] + 1))       # no frame lost or repeated
    assert numbers[0] / FPS <= 8.0 - 4.5, f"clip starts at {numbers[0] / FPS:.2f} s"
    assert numbers[-1] / FPS >= 10.0 + 4.5, f"clip ends at {numbers[-1] / FPS:.2f} s"
    assert abs(float(probe["duration"]) - (numbers[-1] - numbers[0] + 1) / FPS) < 0.2
    assert recorder.buffered("cam") <= 5 * FPS + 1                     # the ring stays bounded
    recorder.close()
    assert recorder.counters()["written"] == 1 and not list(tmp_path.rglob("*.part"))


@needs_ffprobe
def test_overlapping_clips_and_close_finishes_open_ones(tmp_path):
    recorder = ClipRecorder(ClipSettings(tmp_path, pre_s=2.0, post_s=1.0))
    paths = {}
    feed(recorder, 0, 6 * FPS, actions={
        3 * FPS: lambda: paths.setdefault("a", recorder.start_clip("cam", "a", 3.0)),
        4 * FPS: lambda: paths.setdefault("b", recorder.start_clip("cam", "b", 4.0)),
        5 * FPS: lambda: recorder.end_clip("cam", "a", 5.0),
    })
    recorder.close()        # "b" never ended: close finishes it with what it got
    a, b = clip_numbers(paths["a"]), clip_numbers(paths["b"])
    assert a[0] <= 1 * FPS and a[-1] == 6 * FPS and a == list(range(a[0], a[-1] + 1))
    assert b[0] <= 2 * FPS and b[-1] == 6 * FPS and b == list(range(b[0], b[-1] + 1))
    assert ffprobe(paths["b"])["codec_name"] == "h264"


@needs_ffprobe
def test_quota_removes_the_oldest_clips_first(tmp_path):
    probe_dir = tmp_path / "probe"
    recorder = ClipRecorder(ClipSettings(probe_dir, pre_s=1.0, post_s=1.0))
    size = 0
    first = {}
    feed(recorder, 0, 4 * FPS, actions={2 * FPS: lambda: first.setdefault(
        "p", recorder.start_clip("cam", "probe", 2.0))})
    recorder.close()
    size = Path(first["p"]).stat().st_size
    clips_dir = tmp_path / "clips"
    quota_mb = 2.5 * size / (1024 * 1024)         # room for two clips of this size, not three
    recorder = ClipRecorder(ClipSettings(clips_dir, pre_s=1.0, post_s=1.0, max_mb=quota_mb))
    written = []
    for k in range(4):
        base = k * 10 * FPS
        holder = {}
        feed(recorder, base, base + 4 * FPS, actions={
            base + 2 * FPS: lambda b=base, k=k: holder.setdefault(
                "p", recorder.start_clip("cam", f"ev{k}", b / FPS + 2.0)),
            base + 2 * FPS + 1: lambda b=base, k=k: recorder.end_clip("cam", f"ev{k}", b / FPS + 2.0),
        })
        wait_for(lambda: Path(holder["p"]).exists(), 60, f"clip {k}")
        wait_for(lambda: recorder.counters()["written"] == k + 1, 60, "the quota pass")
        written.append(holder["p"])
    recorder.close()
    left = sorted(str(p) for p in clips_dir.rglob("*.mp4"))
    assert left == sorted(written[-len(left):]), "a newer clip was removed before an older one"
    assert 1 <= len(left) < 4 and recorder.counters()["removed"] == 4 - len(left)
    assert sum(Path(p).stat().st_size for p in left) <= quota_mb * 1024 * 1024


def test_unwritable_dir_never_raises_and_counts_the_failure(tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    recorder = ClipRecorder(ClipSettings(blocker / "clips", pre_s=1.0, post_s=0.5))
    feed(recorder, 0, 2 * FPS, actions={
        FPS: lambda: recorder.start_clip("cam", "x", 1.0),
        FPS + 1: lambda: recorder.start_clip("cam", "y", 1.0),
    })
    wait_for(lambda: recorder.counters()["failed"] == 2, 30, "both clips to fail")
    feed(recorder, 2 * FPS + 1, 3 * FPS)               # frames keep coming without trouble
    recorder.close()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and "clips" in r.getMessage()]
    assert len(warnings) == 1                          # logged once for the run of failures
    assert recorder.counters()["open"] == 0


def test_ring_holds_pre_s_of_frames_and_restarts_with_the_stream(tmp_path):
    recorder = ClipRecorder(ClipSettings(tmp_path, pre_s=1.0))
    feed(recorder, 0, 3 * FPS)
    assert recorder.buffered("cam") == FPS + 1     # 1 s of frames, plus the one 1 s old
    feed(recorder, 0, 5)                           # stream time went back: a new stream
    assert recorder.buffered("cam") == 6
    assert recorder.buffered("other") == 0
    recorder.close()


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs (needs root and a mount-capable container; skipped elsewhere)."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_full_disk_fails_the_clip_alone(tiny_disk, caplog):
    recorder = ClipRecorder(ClipSettings(tiny_disk, pre_s=2.0, post_s=1.0))
    noise = np.random.default_rng(0)
    frames = [noise.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(6 * FPS)]
    for n, frame in enumerate(frames):
        recorder.add_frame("cam", n / FPS, frame)
        if n == 2 * FPS:
            path = recorder.start_clip("cam", "big", n / FPS)
        if n == 3 * FPS:
            recorder.end_clip("cam", "big", n / FPS)
    wait_for(lambda: recorder.counters()["failed"] == 1, 60, "the clip to fail on the full disk")
    recorder.close()
    assert not Path(path).exists() and not list(tiny_disk.rglob("*.part"))
    assert "could not be written" in caplog.text

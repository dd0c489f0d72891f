"""Test helpers for the pipeline/CLI tests: real video files made with OpenCV, read back with PyAV.

Each generated frame carries its index as 8 black/white blocks along the top (bit 7 first), so
the order of frames can be read back from any output video, even after lossy re-encoding.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np

from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
BITS = 8
BLOCK_HEIGHT = 24


def indexed_frame(index: int, width: int = 160, height: int = 120) -> np.ndarray:
    """A BGR frame whose top band encodes ``index`` (0-255) in 8 blocks; a gradient below."""
    frame = np.zeros((height, width, 3), np.uint8)
    frame[BLOCK_HEIGHT:] = np.linspace(40, 200, width, dtype=np.uint8)[np.newaxis, :, np.newaxis]
    block_width = width // BITS
    for bit in range(BITS):
        if index >> (BITS - 1 - bit) & 1:
            frame[:BLOCK_HEIGHT, bit * block_width:(bit + 1) * block_width] = 255
    return frame


def index_of(frame: np.ndarray) -> int:
    """Read back the index written by :func:`indexed_frame` (robust to compression)."""
    block_width = frame.shape[1] // BITS
    value = 0
    for bit in range(BITS):
        block = frame[4:BLOCK_HEIGHT - 4, bit * block_width + 4:(bit + 1) * block_width - 4]
        value = value << 1 | int(block.mean() > 127)
    return value


def make_video(path: Path, frames: int, width: int = 160, height: int = 120, fps: float = 25.0) -> Path:
    """Write an mp4v (.mp4) or MJPG (.avi) video of ``frames`` indexed frames with cv2.VideoWriter."""
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, (width, height))
    assert writer.isOpened(), f"cannot write {path}"
    for index in range(frames):
        writer.write(indexed_frame(index % 256, width, height))
    writer.release()
    return path


def decode_video(path: Path) -> list[np.ndarray]:
    """Every frame of a video file as BGR arrays, decoded by PyAV (fails on a broken file)."""
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]


def read_json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python run_stream.py ARGS`` in the repository root; stdout/stderr captured as text."""
    return subprocess.run([sys.executable, str(ROOT / "run_stream.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, env=cli_env())


def cli_env() -> dict[str, str]:
    """The environment for CLI subprocesses: one torch thread (the machine is shared)."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    return env


# Flags that keep a test run small and fast: random weights, a tiny net input, no window.
FAST = ("--weights", "random", "--input-height", "32", "--threads", "1", "--no-display")


def signal_after_lines(command: list[str], lines_path: Path, signum: int, min_lines: int = 10,
                       start_timeout: float = 120) -> tuple[subprocess.Popen, float, str]:
    """Start the CLI ``command``, send ``signum`` once ``lines_path`` holds ``min_lines`` JSON
    lines, wait for the exit; (process, seconds from the signal to the exit, stderr).  stderr goes
    to a file, so a chatty run never blocks on a full pipe."""
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(command, cwd=ROOT, env=cli_env(), stdout=subprocess.DEVNULL,
                                   stderr=stderr, text=True)

        def enough_lines() -> bool:
            if process.poll() is not None:
                stderr.seek(0)
                raise AssertionError(f"the run ended before {min_lines} JSON lines: {stderr.read()[-3000:]}")
            return lines_path.exists() and len(lines_path.read_text().splitlines()) >= min_lines

        try:
            wait_until(enough_lines, start_timeout, interval=0.1, message=f"{min_lines} lines in {lines_path}")
            sent = time.monotonic()
            process.send_signal(signum)
            process.wait(timeout=20)
            elapsed = time.monotonic() - sent
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        stderr.seek(0)
        return process, elapsed, stderr.read()

"""The --serve page in a real headless Chromium: it loads, the live stream image is drawn with a
real size, and the stats on the page update."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading

import cv2
import numpy as np
import pytest

from stream.sinks.http import HttpSink

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine")

STREAM_BGR = (40, 200, 60)           # a colour nothing else on the page uses


def chromium(tmp_path, url: str, *action: str) -> subprocess.CompletedProcess:
    """Run headless Chromium once on ``url`` (``--timeout``: an MJPEG page never finishes loading)."""
    return subprocess.run(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
         "--timeout=4000", *action, url],
        capture_output=True, text=True, timeout=90,
    )


@pytest.fixture
def served_page():
    """A sink fed with flat-coloured 640x480 frames, and a stats provider counting its calls."""
    stats_calls = {"n": 0}

    def stats() -> dict:
        stats_calls["n"] += 1
        return {"frames": 100 + stats_calls["n"], "fps": 14.5, "dropped": 7, "reconnects": 2,
                "latency_ms": {"p50": 61.0, "p95": 88.0},
                "stages": {"inference": {"mean_ms": 50.0, "p50_ms": 49.0, "p95_ms": 70.0}}}

    sink = HttpSink(port=0, stats_provider=stats).open()
    stop = threading.Event()

    def feed() -> None:
        frame = np.zeros((480, 640, 3), np.uint8)
        frame[:] = STREAM_BGR
        while not stop.is_set():
            sink.write(None, frame.copy())
            stop.wait(0.05)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        yield sink, stats_calls
    finally:
        stop.set()
        feeder.join()
        sink.close()


def test_page_shows_the_stream_image(tmp_path, served_page):
    sink, _ = served_page
    screenshot = tmp_path / "page.png"
    run = chromium(tmp_path, sink.url, "--window-size=1200,800", f"--screenshot={screenshot}")
    assert screenshot.exists(), run.stderr[-2000:]
    image = cv2.imread(str(screenshot))
    close_to_stream = np.all(np.abs(image.astype(int) - STREAM_BGR) <= 12, axis=2)
    rows, cols = np.nonzero(close_to_stream)
    assert rows.size, "the stream image is not on the page"
    height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    assert height >= 200 and width >= 300, f"stream image drawn at {width}x{height}"
    assert abs(width / height - 640 / 480) < 0.1
    assert close_to_stream.mean() < 0.9, "the page should show more than the stream"


def test_page_stats_update(tmp_path, served_page):
    sink, stats_calls = served_page
    run = chromium(tmp_path, sink.url, "--virtual-time-budget=3500", "--dump-dom")
    dom = run.stdout
    assert 'id="stream"' in dom, run.stderr[-2000:]
    updates = re.search(r"stats updated (\d+) times", dom)
    assert updates, "the page never showed stats"
    assert int(updates.group(1)) >= 2, "the stats were not refreshed"
    assert stats_calls["n"] >= 2
    frames_shown = int(re.search(r'<td id="frames">(\d+)</td>', dom).group(1))
    assert 102 <= frames_shown <= 100 + stats_calls["n"], "the page shows a later stats.json"
    assert re.search(r'<td id="latency">61 / 88</td>', dom)
    assert re.search(r'<td id="reconnects">2</td>', dom)
    assert "inference" in dom

"""The --serve wall in a real headless Chromium: one tile per source with its live image, state,
fps, latency, people and recent events, updated from stats.json; usable with 1 camera (a big image) and with 16
(every tile drawn inside the window, the stats still polled: the browser's six connections per
host are not all held by streams)."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading

import cv2
import numpy as np
import pytest

from stream.items import Posed
from stream.sinks.http import HttpSink
from tests.browser_cdp import watch_page

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine")

STREAM_BGR = (40, 200, 60)           # a colour nothing else on the page uses
STATES = ("live", "reconnecting", "down")


def chromium(tmp_path, url: str, *action: str) -> subprocess.CompletedProcess:
    """Run headless Chromium once on ``url`` (``--timeout``: an MJPEG page never finishes loading)."""
    return subprocess.run(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
         "--timeout=4000", *action, url],
        capture_output=True, text=True, timeout=90,
    )


def posed(name: str, index: int, image: np.ndarray, people: int) -> Posed:
    return Posed(image=image, index=index, capture_time=0.0, source=name, net_input=None, scale=1.0,
                 heatmaps=None, pafs=None, people=np.ones((people, 18, 3), np.float32))


def tile_colour(position: int, dimmed: bool = False) -> tuple[int, int, int]:
    """A saturated colour of its own per tile (16 hues); ``dimmed``: as drawn at opacity 0.4
    (tiles that are not live) on the black tile."""
    hsv = np.uint8([[[position * 180 // 16, 255, 220]]])
    bgr = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(float)
    return tuple(int(round(value * (0.4 if dimmed else 1.0))) for value in bgr)


@pytest.fixture
def serve_wall(request):
    """A sink for ``count`` sources, each fed flat frames of its own colour, and a stats provider
    whose per-source sections cycle through the states; yields (sink, calls)."""
    count = request.param
    names = [f"cam{position}" for position in range(count)]
    calls = {"n": 0}

    def stats() -> dict:
        calls["n"] += 1
        sources = {name: {"frames": 10 * position + calls["n"], "fps_recent": 7.5,
                          "state": STATES[position % 3], "latency_ms": {"p50": 61.0 + position, "p95": 90.0},
                          "people": position % 4, "error": None}
                   for position, name in enumerate(names)}
        recent = [{"id": "cam0-x-1.instant", "rule": "door", "kind": "line", "type": "instant", "person_id": 2,
                   "time": "2026-01-01T12:00:00.500Z", "stream_time": 0.5, "direction": "left"},
                  {"id": "cam0-x-2.start", "rule": "floor", "kind": "person_down", "type": "start",
                   "person_id": 3, "time": "2026-01-01T12:00:01.250Z", "stream_time": 1.25}]
        events = {"total": 2, "sources": {"cam0": {"rules": {"door": 1, "floor": 1}, "recent": recent}}}
        return {"frames": 100 + calls["n"], "fps": 14.5, "dropped": 7, "reconnects": 2, "wall_s": 3.0,
                "latency_ms": {"p50": 61.0, "p95": 88.0}, "sources": sources, "events": events,
                "stages": {"inference": {"mean_ms": 50.0, "p50_ms": 49.0, "p95_ms": 70.0}}}

    sink = HttpSink(port=0, stats_provider=stats, sources=names).open()
    stop = threading.Event()

    def feed() -> None:
        frames = []
        for position in range(count):
            frame = np.zeros((480, 640, 3), np.uint8)
            frame[:] = tile_colour(position) if count > 1 else STREAM_BGR
            frames.append(frame)
        index = 0
        while not stop.is_set():
            for position, name in enumerate(names):
                sink.write(posed(name, index, frames[position], position % 4), frames[position])
            index += 1
            stop.wait(0.05)                 # a live feed at about 20 fps

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        yield sink, calls
    finally:
        stop.set()
        feeder.join()
        sink.close()


def drawn_box(image: np.ndarray, bgr) -> tuple[int, int]:
    """(width, height) of the pixels close to ``bgr`` in a screenshot (0, 0 when none)."""
    rows, cols = np.nonzero(np.all(np.abs(image.astype(int) - bgr) <= 6, axis=2))
    if not rows.size:
        return 0, 0
    return cols.max() - cols.min() + 1, rows.max() - rows.min() + 1


@pytest.mark.parametrize("serve_wall", [1], indirect=True)
def test_one_camera_fills_the_page(tmp_path, serve_wall):
    sink, _ = serve_wall
    screenshot = tmp_path / "page.png"
    run = chromium(tmp_path, sink.url, "--window-size=1200,800", f"--screenshot={screenshot}")
    assert screenshot.exists(), run.stderr[-2000:]
    image = cv2.imread(str(screenshot))
    width, height = drawn_box(image, STREAM_BGR)
    assert height >= 500 and width >= 650, f"the only stream is drawn at {width}x{height}"
    assert abs(width / height - 640 / 480) < 0.1
    assert height <= 800, "the tile fits the window"


@pytest.mark.parametrize("serve_wall", [3], indirect=True)
def test_tiles_show_each_source_state_and_numbers_live(tmp_path, serve_wall):
    sink, calls = serve_wall
    run = chromium(tmp_path, sink.url, "--virtual-time-budget=3500", "--dump-dom")
    dom = run.stdout
    tiles = re.findall(r'<article class="tile" data-source="(cam\d)" data-state="(\w+)" '
                       r'data-frames="(\d+)"[^>]*>(.*?)</article>', dom, re.S)
    assert [(name, state) for name, state, _, _ in tiles] == [("cam0", "live"), ("cam1", "reconnecting"),
                                                               ("cam2", "down")], run.stderr[-2000:]
    for position, (name, _, frames, body) in enumerate(tiles):
        assert int(frames) >= 1, f"{name}'s stream never drew"
        assert f'src="stream/{name}.mjpg"' in body, "up to 4 sources: a plain MJPEG image per tile"
        assert f'<span class="latency">{61 + position} ms</span>' in body
        assert f'<span class="people">{position % 4} people</span>' in body
        assert '<span class="fps">7.5 fps</span>' in body
        events = re.findall(r'<li data-type="(\w+)">([^<]*)</li>', body)
        assert events == ([("start", "12:00:01 floor start #3"), ("instant", "12:00:00 door instant left #2")]
                          if name == "cam0" else []), "a tile lists its own recent events, newest first"
    updates = re.search(r"stats updated (\d+) times", dom)
    assert updates and int(updates.group(1)) >= 2, "the stats were not refreshed"
    frames_shown = int(re.search(r'<td id="frames">(\d+)</td>', dom).group(1))
    assert 102 <= frames_shown <= 100 + calls["n"], "the page shows a later stats.json"
    assert re.search(r'<td id="latency">61 / 88</td>', dom)
    assert "1 of 3 live" in dom


@pytest.mark.parametrize("serve_wall", [16], indirect=True)
def test_sixteen_cameras_all_drawn_and_stats_still_polled(tmp_path, serve_wall):
    """Watched for 6 real seconds (``watch_page``): every tile keeps getting frames and the stats
    poll keeps running, so the streams do not hold all of the browser's connections."""
    sink, _ = serve_wall
    dom, png = watch_page(CHROMIUM, sink.url, tmp_path / "profile", seconds=6.0, window=(1600, 1000))
    frames = dict(re.findall(r'data-source="(cam\d+)" data-state="\w+" data-frames="(\d+)"', dom))
    assert len(frames) == 16
    assert all(int(count) >= 5 for count in frames.values()), f"frames per tile: {frames}"
    updates = re.search(r"stats updated (\d+) times", dom)
    assert updates and int(updates.group(1)) >= 3, "16 streams starved the stats poll"
    assert 'src="stream/cam0.mjpg"' not in dom, "more than 4 sources: tiles fetch frames in turn"
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    boxes = [drawn_box(image, tile_colour(position, dimmed=STATES[position % 3] != "live"))
             for position in range(16)]
    assert all(width >= 200 and height >= 150 for width, height in boxes), f"tile images drawn at {boxes}"

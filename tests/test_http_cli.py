"""``run_stream.py --serve PORT`` end to end: the page, the live MJPEG stream of annotated frames
and live stats while the pipeline runs (demo source, random weights: about serving, not poses)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.fixtures_live import free_port
from tests.test_http_sink import read_mjpeg_parts
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not (ROOT / "run_stream.py").exists(), reason="no run_stream.py yet")


def fetch_json(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def test_serve_shows_the_running_pipeline(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "run_stream.py"), "--source", "demo", "--serve", str(port),
         "--weights", "random", "--input-height", "96", "--threads", "1", "--no-display",
         "--max-seconds", "30", "--stats", str(tmp_path / "stats.json")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}/"
    try:
        def counting_stats() -> dict | None:
            assert process.poll() is None, "the run ended before stats.json showed frames"
            stats = fetch_json(base + "stats.json")
            return stats if stats and stats.get("frames", 0) > 0 else None

        stats = wait_until(counting_stats, 60, interval=0.2, message="frames in stats.json")
        with urllib.request.urlopen(base, timeout=5) as response:
            page = response.read()
        assert b'data-source="cam0"' in page and b"stats.json" in page, "a tile for the one source"
        images = read_mjpeg_parts(base + "stream.mjpg", count=3)
        assert all(image.shape == (480, 640, 3) for image in images)
        later = fetch_json(base + "stats.json")
        assert later["frames"] > stats["frames"]
        assert set(later) >= {"frames", "fps", "dropped", "reconnects", "latency_ms", "stages"}
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr[-3000:]
    assert fetch_json(base + "stats.json") is None, "the page must stop with the run"

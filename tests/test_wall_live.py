"""The camera wall end to end: ``run_stream.py --serve`` on three real RTSP cameras (the
gst-rtsp-server fixture), one of them reached with a user and password in its URL.

With a stuck ``/poses`` client and a stuck stream client connected all along: the page in
headless Chromium shows a live tile per camera, ``/metrics`` (prometheus_client's parser) and
``/poses`` cover every camera; one camera is killed (reported down, ``posestream_source_up`` 0,
while the others keep counting), restarted (live again, ``reconnects_total`` grown), another
stalls (not live until its frames flow again, though reconnects to it open); the
credentials appear nowhere (page, stats, metrics, log); SIGINT exits 0.  The times against the
goals are measured by benchmarks/wall_soak.py (the time to exit after SIGINT too: on this shared
2-core machine it exceeds 2 s with three cameras, with or without --serve).
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures_live import free_port, rtsp_available, rtsp_servers  # noqa: F401 - fixture
from tests.helpers_spine import ROOT, cli_env
from tests.test_browser_page import CHROMIUM, chromium
from tests.waiting import wait_until

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine")
READ_TIMEOUT_S = 2.0
SECRET = "hunter2"
NAMES = ("door", "yard", "dock")


@pytest.fixture
def cameras(rtsp_available):
    with rtsp_servers(len(NAMES), fps=10) as servers:
        yield dict(zip(NAMES, servers))


def get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def metrics(base: str) -> dict[tuple[str, str], float]:
    """(sample name, source) → value of the per-source samples in /metrics."""
    text = get(base + "metrics")
    assert text is not None, "/metrics did not answer"
    return {(sample.name, sample.labels.get("source", "")): sample.value
            for family in text_string_to_metric_families(text.decode()) for sample in family.samples
            if "le" not in sample.labels and "state" not in sample.labels}


def stuck_client(port: int, path: str) -> socket.socket:
    """A client that asks for an endless stream and never reads it."""
    client = socket.create_connection(("127.0.0.1", port))
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return client


def read_poses(port: int, sources: set[str], within_s: float) -> list[dict]:
    """/poses events until every one of ``sources`` has sent one."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=within_s)
    connection.request("GET", "/poses")
    response = connection.getresponse()
    assert response.headers["Content-Type"] == "text/event-stream"
    events, deadline = [], time.monotonic() + within_s
    while {event["source"] for event in events} < sources and time.monotonic() < deadline:
        line = response.fp.readline().decode()
        if line.startswith("data: "):
            events.append(json.loads(line[len("data: "):]))
    connection.close()
    return events


def test_wall_of_three_rtsp_cameras_with_one_killed_and_restarted(cameras, tmp_path):
    door = cameras["door"]
    secret_url = door.url.replace("rtsp://", f"rtsp://viewer:{SECRET}@")
    config = tmp_path / "wall.yaml"
    config.write_text(yaml.safe_dump({
        "source": {"read_timeout_s": READ_TIMEOUT_S, "open_timeout_s": 10.0,
                   "backoff_initial_s": 0.2, "backoff_max_s": 1.0},
        "sources": [{"name": "door", "uri": secret_url}, {"name": "yard", "uri": cameras["yard"].url},
                    {"name": "dock", "uri": cameras["dock"].url}],
    }))
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    log_path = tmp_path / "run.log"
    with open(log_path, "w") as log_file:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "run_stream.py"), "--config", str(config), "--serve", str(port),
             "--weights", "random", "--input-height", "96", "--threads", "1", "--no-display"],
            cwd=ROOT, env=cli_env(), stdout=log_file, stderr=subprocess.STDOUT)
    stuck = []
    try:
        started = time.monotonic()
        frames = lambda: {name: section["frames"] for name, section in  # noqa: E731
                          json.loads(get(base + "stats.json") or b'{"sources": {}}')["sources"].items()}
        wait_until(lambda: process.poll() is None and len(frames()) == 3 and min(frames().values()) > 0,
                   90, interval=0.25, message="frames from all three cameras")
        stuck = [stuck_client(port, "/poses"), stuck_client(port, "/stream/yard.mjpg")]
        events = read_poses(port, set(NAMES), within_s=30)
        assert all(set(event) >= {"frame", "time", "people", "source"} for event in events)
        assert all("score" in person for event in events for person in event["people"])
        up = metrics(base)
        assert [up[("posestream_source_up", name)] for name in NAMES] == [1, 1, 1]
        assert all(up[("posestream_frames_total", name)] > 0 for name in NAMES)
        tiles = [f'data-source="{name}" data-state="live" data-frames="1"' for name in NAMES]
        # One Chromium run sees 4 s of the page; on a loaded machine the first may end too early.
        wait_until(lambda: all(tile in chromium(tmp_path, base, "--dump-dom").stdout for tile in tiles), 60,
                   interval=0.25, message="a live tile with a drawn stream per camera in Chromium")
        assert time.monotonic() - started < 90, "all endpoints within 90 s"

        before = metrics(base)
        door.kill()
        wait_until(lambda: metrics(base)[("posestream_source_up", "door")] == 0, READ_TIMEOUT_S + 5,
                   interval=0.25, message="the killed camera reported down")
        state = json.loads(get(base + "stats.json"))["sources"]["door"]["state"]
        assert state in ("reconnecting", "down")
        wait_until(lambda: all(metrics(base)[("posestream_frames_total", name)]
                               >= before[("posestream_frames_total", name)] + 5 for name in ("yard", "dock")),
                   30, interval=0.25, message="the other cameras keep counting while one is down")

        door.restart()
        wait_until(lambda: metrics(base)[("posestream_source_up", "door")] == 1, 30,
                   interval=0.25, message="live again after a restart")
        after = metrics(base)
        reconnects = ("posestream_reconnects_total", "door")
        assert after[reconnects] >= before[reconnects] + 1
        wait_until(lambda: metrics(base)[("posestream_frames_total", "door")]
                   > after[("posestream_frames_total", "door")], 30, interval=0.25,
                   message="frames from the restarted camera")

        yard = cameras["yard"]
        yard.stall()
        wait_until(lambda: metrics(base)[("posestream_source_up", "yard")] == 0, READ_TIMEOUT_S + 5,
                   interval=0.25, message="a stalled camera reported not live")
        time.sleep(READ_TIMEOUT_S + 1)          # reconnects to a stream that sends nothing are not live
        assert metrics(base)[("posestream_source_up", "yard")] == 0
        assert json.loads(get(base + "stats.json"))["sources"]["yard"]["state"] == "reconnecting"
        yard.resume()
        wait_until(lambda: metrics(base)[("posestream_source_up", "yard")] == 1, 30,
                   interval=0.25, message="live again after the stall")

        shown = [get(base), get(base + "stats.json"), get(base + "metrics")]
        assert all(body is not None and SECRET.encode() not in body and b"viewer" not in body
                   for body in shown)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
    finally:
        for client in stuck:
            client.close()
        if process.poll() is None:
            process.kill()
            process.wait()
    log = log_path.read_text()
    assert process.returncode == 0, log[-3000:]
    assert SECRET not in log and "viewer" not in log, "credentials in the log"
    assert "door lost" in log

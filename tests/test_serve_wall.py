"""The --serve sink's wall routes over real HTTP: per-source streams, /metrics read by
prometheus_client's own parser (agreeing with /stats.json), /poses read as Server-Sent Events, a
stuck /poses client that loses counted events without slowing write(), and the access token."""

from __future__ import annotations

import http.client
import json
import logging
import re
import socket
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from stream.items import Posed
from stream.sinks.http import HttpSink, is_loopback
from stream.sinks.json_lines import pose_record
from stream.stats import StatsRecorder
from tests.test_http_sink import coloured_frame, read_mjpeg_parts
from tests.waiting import wait_until

NAMES = ("front door", "yard")


def posed(name: str, index: int, people: int = 1, image: np.ndarray | None = None) -> Posed:
    rng = np.random.default_rng(index)
    keypoints = np.concatenate([rng.uniform(0, 300, (people, 18, 2)), rng.uniform(0.1, 1, (people, 18, 1))],
                               axis=2)
    return Posed(image=coloured_frame(index) if image is None else image, index=index,
                 capture_time=time.monotonic() - 0.04, time=index / 15, source=name, net_input=None,
                 scale=1.0,
                 heatmaps=None, pafs=None, people=keypoints.astype(np.float32))


class Wall:
    """An HttpSink fed like the pipeline's render stage, its stats from a real StatsRecorder."""

    def __init__(self, **options):
        self.stats = StatsRecorder()
        self.stats.start()
        self.states = {name: "live" for name in NAMES}
        self.sink = HttpSink(port=0, stats_provider=self.report, sources=NAMES, **options).open()

    def report(self) -> dict:
        return self.stats.report(sources={name: {"dropped": 2, "reconnects": 1, "error": None, "state": state}
                                          for name, state in self.states.items()})

    def write(self, item: Posed) -> None:
        self.sink.write(item, item.image)
        self.stats.record_done(item)

    def get(self, path: str, headers: dict | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(self.sink.url.rstrip("/") + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()


@pytest.fixture
def wall():
    served = Wall()
    try:
        yield served
    finally:
        served.sink.close()


def metric_samples(text: str) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) → value, parsed by prometheus_client."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_each_source_has_its_own_stream_and_newest_frame(wall):
    red, blue = np.zeros((120, 160, 3), np.uint8), np.zeros((120, 160, 3), np.uint8)
    red[:] = (0, 0, 250)
    blue[:] = (250, 0, 0)
    stop = threading.Event()

    def feed() -> None:
        index = 0
        while not stop.is_set():
            wall.write(posed("front door", index, image=red))
            wall.write(posed("yard", index, image=blue))
            index += 1
            stop.wait(0.02)                 # a live feed at about 50 fps

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        door = read_mjpeg_parts(wall.sink.url + "stream/front%20door.mjpg", count=3)
        yard = read_mjpeg_parts(wall.sink.url + "stream/yard.mjpg", count=3)
        with urllib.request.urlopen(wall.sink.url + "stream/yard.jpg?after=0", timeout=5) as response:
            seq = int(response.headers["X-Frame-Seq"])
            assert response.headers["Content-Type"] == "image/jpeg"
        with urllib.request.urlopen(wall.sink.url + f"stream/yard.jpg?after={seq}", timeout=5) as response:
            assert int(response.headers["X-Frame-Seq"]) > seq, "after=SEQ waits for a newer frame"
    finally:
        stop.set()
        feeder.join()
    assert all(image[60, 80, 2] > 200 and image[60, 80, 0] < 50 for image in door)
    assert all(image[60, 80, 0] > 200 and image[60, 80, 2] < 50 for image in yard)
    with urllib.request.urlopen(wall.sink.url + f"stream/yard.jpg?after={10 ** 9}", timeout=5) as response:
        assert response.status == 204, "no newer frame within the wait"
    assert wall.get("/stream/garage.mjpg")[0] == 404


def test_the_served_page_lists_a_tile_per_source_without_a_script():
    served = Wall(title='<wall & "co">')
    try:
        page = served.get("/")[1].decode()
    finally:
        served.sink.close()
    tiles = re.findall(r'<article class="tile" data-source="([^"]*)"', page)
    assert tiles[:2] == list(NAMES) and tiles[2:] == [""], "a tile per source, then the script's template"
    assert "<h1>&lt;wall &amp; &quot;co&quot;&gt;</h1>" in page


def test_metrics_parse_and_agree_with_stats_json(wall):
    for index in range(6):
        wall.write(posed("front door", index, people=3 if index == 5 else 1))
    for index in range(4):
        wall.write(posed("yard", index, people=2))
    wall.states["yard"] = "reconnecting"
    status, body = wall.get("/metrics")
    assert status == 200
    samples = metric_samples(body.decode())
    stats = json.loads(wall.get("/stats.json")[1])
    for name in NAMES:
        section, label = stats["sources"][name], (("source", name),)
        assert samples[("posestream_frames_total", label)] == section["frames"]
        assert samples[("posestream_dropped_frames_total", label)] == section["dropped"] == 2
        assert samples[("posestream_reconnects_total", label)] == section["reconnects"] == 1
        assert samples[("posestream_people", label)] == section["people"]
        assert samples[("posestream_latency_seconds_count", label)] == section["frames"]
        bucket = "posestream_latency_seconds_bucket"
        assert samples[(bucket, (("le", "0.05"), ("source", name)))] == section["frames"]
        assert samples[(bucket, (("le", "0.025"), ("source", name)))] == 0
    assert (stats["sources"]["front door"]["frames"], stats["sources"]["yard"]["frames"]) == (6, 4)
    assert samples[("posestream_people", (("source", "front door"),))] == 3, "people in the last frame"
    assert samples[("posestream_source_up", (("source", "front door"),))] == 1
    assert samples[("posestream_source_up", (("source", "yard"),))] == 0
    assert samples[("posestream_source_state", (("source", "yard"), ("state", "reconnecting")))] == 1
    assert ("posestream_stage_seconds_count", (("stage", "inference"),)) in samples
    assert ("process_resident_memory_bytes", ()) in samples


def read_events(response: http.client.HTTPResponse, count: int) -> list[dict]:
    events = []
    while len(events) < count:
        line = response.fp.readline().decode()
        assert line, "the event stream ended"
        if line.startswith("data: "):
            events.append(json.loads(line[len("data: "):]))
    return events


def test_poses_streams_the_json_line_of_every_frame(wall):
    connection = http.client.HTTPConnection("127.0.0.1", wall.sink.port, timeout=5)
    connection.request("GET", "/poses")
    response = connection.getresponse()
    assert response.status == 200 and response.headers["Content-Type"] == "text/event-stream"
    wait_until(lambda: wall.sink.events.client_count() >= 1, 10, interval=0.01, message="the /poses client")
    items = [posed(NAMES[index % 2], index, people=index % 3) for index in range(8)]
    for item in items:
        wall.write(item)
    events = read_events(response, len(items))
    connection.close()
    assert events == [json.loads(json.dumps(pose_record(item, include_source=True))) for item in items]
    assert [event["source"] for event in events] == [NAMES[index % 2] for index in range(8)]
    assert [len(event["people"]) for event in events] == [index % 3 for index in range(8)]
    assert all(set(person) >= {"person_id", "score", "pose_keypoints_2d"}
               for event in events for person in event["people"]), "the --json person, score included"


def test_a_stuck_poses_client_loses_counted_events_and_never_slows_write():
    served = Wall(max_queued_events=32)
    stuck = socket.create_connection(("127.0.0.1", served.sink.port))
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.sendall(b"GET /poses HTTP/1.1\r\nHost: x\r\n\r\n")            # and never reads
    try:
        wait_until(lambda: served.sink.events.client_count() >= 1, 10, interval=0.01,
                   message="the stuck /poses client")
        item = posed("yard", 0, people=20)                              # ~10 kB per line
        write_s = []
        for _ in range(800):
            started = time.perf_counter()
            served.sink.write(item, item.image)
            write_s.append(time.perf_counter() - started)
        assert max(write_s) < 2.0, f"write() waited on a client: {max(write_s):.3f} s"
        (client,) = served.sink.events._clients
        assert len(client.pending) <= 32, "memory per client is bounded"
        lost = served.sink.events.lost
        assert lost > 400 and client.lost == lost
        snapshot = json.loads(served.get("/stats.json")[1])
        assert snapshot["serve"]["pose_events_lost"] == lost
        assert snapshot["serve"]["clients"]["/poses"] == 1
        samples = metric_samples(served.get("/metrics")[1].decode())
        assert samples[("posestream_pose_events_lost_total", ())] == lost
    finally:
        stuck.close()
        served.sink.close()


def test_a_token_guards_every_route_and_stays_out_of_the_logs(caplog):
    token = "s3cret-t0ken"
    served = Wall(token=token)
    caplog.set_level(logging.DEBUG, logger="stream.sinks.http")
    try:
        served.write(posed("yard", 0))
        routes = ["/", "/stats.json", "/metrics", "/stream.mjpg", "/stream/yard.jpg", "/poses",
                  "/stream/yard.mjpg"]
        for route in routes:
            assert served.get(route)[0] == 401, route
            assert served.get(route + "?token=wrong")[0] == 401, route
            assert served.get(route, {"Authorization": "Bearer nope"})[0] == 401, route
        for route in ["/", "/stats.json", "/metrics", "/stream/yard.jpg"]:
            assert served.get(route + f"?token={token}")[0] == 200, route
            assert served.get(route, {"Authorization": f"Bearer {token}"})[0] == 200, route
        page = served.get("/", {"Authorization": f"Bearer {token}"})[1].decode()
        assert f'"query": "token={token}"' in page, "the page passes the token on to its images and polls"
        images = read_mjpeg_parts(served.sink.url + f"stream.mjpg?token={token}", count=1)
        assert images[0].shape == (240, 320, 3)
    finally:
        served.sink.close()
    assert token not in caplog.text, "the token is never logged"


def test_loopback_hosts():
    assert all(is_loopback(host) for host in ("127.0.0.1", "127.0.0.9", "::1", "localhost"))
    assert not any(is_loopback(host) for host in ("0.0.0.0", "::", "192.168.1.4", "camera-box"))


def test_the_token_comes_from_the_config_or_the_environment(monkeypatch):
    from stream.config import load_config
    from stream.outputs import build_sinks

    monkeypatch.setenv("POSESTREAM_SERVE_TOKEN", "from-env")
    assert load_config(None).output.serve_token == "from-env"
    assert load_config(None, overrides=["output.serve_token=from-config"]).output.serve_token == "from-config"
    monkeypatch.setenv("POSESTREAM_SERVE_TOKEN", "")
    assert load_config(None).output.serve_token is None, "an empty variable is no token"
    config = load_config(None, values={"output.serve": "0", "output.display": False,
                                       "output.serve_token": "t0k"})
    sources = [type("Named", (), {"name": name})() for name in NAMES]
    routes = build_sinks(config, sources, stop=lambda: None, live_stats=dict)
    (sink,) = {id(sink): sink for multi in routes.values() for sink in multi.sinks}.values()
    try:
        assert sink.token == "t0k" and list(sink.source_frames) == list(NAMES)
        assert urllib.request.urlopen(sink.url + "stats.json?token=t0k", timeout=5).status == 200
    finally:
        sink.close()


def test_serving_beyond_loopback_without_a_token_warns(monkeypatch, caplog):
    """(Bound to 127.0.0.1 all the same: the host is only taken for one reachable from elsewhere.)"""
    import stream.sinks.http as http_sink

    monkeypatch.setattr(http_sink, "is_loopback", lambda host: False)
    caplog.set_level(logging.WARNING, logger="stream.sinks.http")
    for token, warned in ((None, True), ("t0k", False)):
        caplog.clear()
        sink = HttpSink(port=0, token=token).open()
        sink.close()
        assert ("without an access token" in caplog.text) is warned

"""The --serve sink over real HTTP: page, stats, MJPEG to several clients at once, a stuck
client that never slows write(), prompt shutdown, and its stream read back as a live source."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.request

import cv2
import numpy as np
import pytest

from posestream_common.errors import ConfigError
from stream.live import open_live_source
from stream.sinks.http import BOUNDARY, HttpSink, parse_serve_address
from tests.fixtures_live import live_config
from tests.waiting import wait_until


def coloured_frame(index: int, shape=(240, 320)) -> np.ndarray:
    """A frame whose colour encodes ``index`` (survives JPEG), plus some texture."""
    image = np.zeros((*shape, 3), np.uint8)
    image[:] = (index * 7 % 256, 255 - index * 7 % 256, 128)
    cv2.putText(image, str(index), (20, shape[0] // 2), cv2.FONT_HERSHEY_SIMPLEX, 2, (0, 0, 0), 3)
    return image


class Feeder:
    """Writes numbered frames into a sink from a thread, like the pipeline's sink stage."""

    def __init__(self, sink: HttpSink, period_s: float = 0.02):
        self.sink, self.period_s = sink, period_s
        self.written = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sink.write(None, coloured_frame(self.written))
            self.written += 1
            self._stop.wait(self.period_s)

    def __enter__(self) -> Feeder:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def sink():
    calls = {"n": 0}

    def stats() -> dict:
        calls["n"] += 1
        return {"frames": calls["n"], "fps": 12.5, "dropped": 3, "reconnects": 1,
                "latency_ms": {"p50": 40.0, "p95": 55.0}}

    served = HttpSink(port=0, stats_provider=stats).open()
    try:
        yield served
    finally:
        served.close()


def read_mjpeg_parts(url: str, count: int, timeout_s: float = 10.0) -> list[np.ndarray]:
    """Decode the first ``count`` JPEG parts of a multipart MJPEG response."""
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        assert response.headers["Content-Type"] == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
        images = []
        while len(images) < count:
            assert response.readline().strip() == f"--{BOUNDARY}".encode()
            headers = {}
            while line := response.readline().strip():
                key, _, value = line.decode().partition(":")
                headers[key.lower()] = value.strip()
            assert headers["content-type"] == "image/jpeg"
            jpeg = response.read(int(headers["content-length"]))
            assert response.read(2) == b"\r\n"
            images.append(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR))
    return images


@pytest.mark.parametrize(
    ("text", "address"),
    [("8080", ("127.0.0.1", 8080)), (":9000", ("127.0.0.1", 9000)), ("0.0.0.0:80", ("0.0.0.0", 80)),
     ("[::1]:8080", ("::1", 8080)), (8081, ("127.0.0.1", 8081)), ("0", ("127.0.0.1", 0))],
)
def test_parse_serve_address(text, address):
    assert parse_serve_address(text) == address


@pytest.mark.parametrize("text", ["", "host:", "host:http", "70000", "1.2.3.4:-1"])
def test_parse_serve_address_rejects_bad_values(text):
    with pytest.raises(ConfigError, match="--serve"):
        parse_serve_address(text)


def test_binds_loopback_by_default_and_serves_page_and_stats(sink):
    assert sink.host == "127.0.0.1" and sink.port > 0
    with urllib.request.urlopen(sink.url, timeout=5) as response:
        page = response.read().decode()
    assert response.headers["Content-Type"].startswith("text/html")
    assert "stats.json" in page and '"stream/"' in page
    first = json.loads(urllib.request.urlopen(sink.url + "stats.json", timeout=5).read())
    second = json.loads(urllib.request.urlopen(sink.url + "stats.json", timeout=5).read())
    assert first["latency_ms"] == {"p50": 40.0, "p95": 55.0}
    assert second["frames"] > first["frames"], "stats.json must be live, not cached"
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(sink.url + "nothing", timeout=5)
    assert missing.value.code == 404


def test_two_clients_read_the_stream_at_once(sink):
    results: dict[str, list[np.ndarray]] = {}

    def client(key: str) -> None:
        results[key] = read_mjpeg_parts(sink.url + "stream.mjpg", count=10)

    with Feeder(sink):
        clients = [threading.Thread(target=client, args=(key,)) for key in ("a", "b")]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(15.0)
    assert set(results) == {"a", "b"}
    for images in results.values():
        assert len(images) == 10
        assert all(image.shape == (240, 320, 3) for image in images)
        assert len({image[5, 5].tobytes() for image in images}) > 1, "frames must change"
    assert sink.frames.encoded <= sink.frames_written, "each frame encoded at most once"


def test_a_stuck_client_does_not_slow_write_or_other_clients(sink):
    big = np.random.default_rng(0).integers(0, 256, (720, 1280, 3), np.uint8)  # ~1 MB JPEGs
    stuck = socket.create_connection(("127.0.0.1", sink.port))
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")   # and never reads
    try:
        for _ in range(5):                                    # fill its socket buffers
            sink.write(None, big)
            time.sleep(0.1)                                   # each big frame goes out to it first
        write_s = []
        for index in range(50):
            started = time.perf_counter()
            sink.write(None, big if index % 2 else coloured_frame(index))
            write_s.append(time.perf_counter() - started)
        # A write that waited on the stuck client would take client_timeout_s (10 s).
        assert max(write_s) < 2.0, f"write() waited on a client: {max(write_s):.3f} s"
        with Feeder(sink):
            images = read_mjpeg_parts(sink.url + "stream.mjpg", count=3)
        assert len(images) == 3
        assert sink.client_count() >= 1                      # the stuck one is still connected
    finally:
        stuck.close()


def test_close_is_prompt_with_clients_connected_and_idempotent():
    served = HttpSink(port=0).open()
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=5)
    connection.request("GET", "/stream.mjpg")
    response = connection.getresponse()
    assert response.status == 200
    with Feeder(served) as feeder:
        wait_until(lambda: served.client_count() >= 1 and feeder.written >= 3, 10,
                   message="a streaming client")
        started = time.monotonic()
        served.close()
        closed_s = time.monotonic() - started
    served.close()
    assert closed_s < 3.0                                     # not the 10 s client timeout
    response.read()                                           # the server ended the stream
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", served.port), timeout=1).close()


def test_port_in_use_is_a_config_error_naming_it():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"--serve 127.0.0.1:{port}: cannot listen"):
            HttpSink(port=port).open()


def test_the_stream_reads_back_as_a_live_http_source(sink):
    """The same page's MJPEG, read by the project's own http:// live source (FFmpeg)."""
    with Feeder(sink, period_s=0.04):
        config = live_config(sink.url + "stream.mjpg", open_timeout_s=5.0, read_timeout_s=2.0)
        with open_live_source(config, "web") as source:
            frames = [frame for _, frame in zip(range(5), source)]
    assert [frame.index for frame in frames] == list(range(5))
    assert all(frame.image.shape == (240, 320, 3) for frame in frames)


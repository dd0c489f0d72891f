"""Live sources without a stream server: URI parsing, FFmpeg options, back-off, the Reconnecting
wrapper's rules (on a scripted source), and sources that cannot open."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from posestream_common.errors import SourceError
from posestream_common.media import is_live_uri, parse_live_uri
from stream.items import Frame
from stream.live import LiveSource, describe_uri, ffmpeg_capture_options, open_live_source
from stream.reconnect import Reconnecting, backoff_delay_s
from stream.sources import Source
from tests.fixtures_live import drain_in_background, free_port, live_config
from tests.waiting import wait_until


@pytest.mark.parametrize(
    ("uri", "parsed"),
    [(0, 0), ("0", 0), (" 2 ", 2), ("rtsp://cam.local:554/h264", "rtsp://cam.local:554/h264"),
     ("http://127.0.0.1:8080/video.mjpg", "http://127.0.0.1:8080/video.mjpg"),
     ("HTTPS://example.org/live", "HTTPS://example.org/live")],
)
def test_parse_live_uri_tells_webcams_from_urls(uri, parsed):
    assert parse_live_uri(uri) == parsed
    assert is_live_uri(uri)


@pytest.mark.parametrize("uri", ["video.mp4", "ftp://host/file", "-1", "", "demo"])
def test_parse_live_uri_refuses_other_sources(uri):
    assert not is_live_uri(uri)
    with pytest.raises(SourceError, match="not a live source"):
        parse_live_uri(uri)


def test_describe_uri_hides_passwords():
    assert describe_uri(3) == "webcam 3"
    assert describe_uri("rtsp://cam/x") == "rtsp://cam/x"
    shown = describe_uri("rtsp://admin:s3cret@10.0.0.5:554/stream1")
    assert "s3cret" not in shown and "admin" not in shown
    assert shown == "rtsp://***@10.0.0.5:554/stream1"
    assert describe_uri("rtsp://viewer@cam/x") == "rtsp://***@cam/x"


def test_ffmpeg_options_rtsp_over_tcp_with_microsecond_timeout():
    options = dict(item.split(";") for item in ffmpeg_capture_options("rtsp://h/x", 2.5).split("|"))
    assert options["rtsp_transport"] == "tcp"
    assert options["timeout"] == "2500000"
    assert "stimeout" not in options
    assert int(options["probesize"]) <= 4096 and int(options["analyzeduration"]) <= 500000
    http_options = dict(item.split(";") for item in ffmpeg_capture_options("http://h/x", 1).split("|"))
    assert http_options == {"timeout": "1000000"}


def test_backoff_doubles_then_caps():
    delays = [backoff_delay_s(attempt, 0.5, 8.0) for attempt in range(1, 9)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    with pytest.raises(ValueError):
        backoff_delay_s(0, 0.5, 8.0)


def test_webcam_index_that_does_not_open_is_a_clear_error():
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"webcam 7\b"):
        open_live_source(live_config("7", open_timeout_s=5.0), "cam0")
    assert time.monotonic() - started < 5.0 + 3.0          # the open timeout, not a hang


def test_refused_stream_url_fails_to_open_naming_it():
    url = f"rtsp://127.0.0.1:{free_port()}/nothing"
    started = time.monotonic()
    with pytest.raises(SourceError) as raised:
        open_live_source(live_config(url, open_timeout_s=3.0), "cam0")
    assert url in str(raised.value)
    assert time.monotonic() - started < 3.0 + 3.0


def test_open_gives_up_after_open_timeout_on_a_silent_server():
    """A server that accepts the connection and never answers: open() returns by open_timeout_s."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"rtsp://127.0.0.1:{silent.getsockname()[1]}/silent"
        source = LiveSource(url, "cam0", open_timeout_s=1.0, read_timeout_s=1.0)
        started = time.monotonic()
        with pytest.raises(SourceError, match="source.open_timeout_s|could not be opened"):
            source.open()
        assert time.monotonic() - started < 1.0 + 3.0      # the open timeout, not ffmpeg's own
        assert source.wait_reader(10.0), "the abandoned reader never ended"


# ---- the Reconnecting wrapper on a scripted source (its own rules, no stream needed) ----

class ScriptedSource(Source):
    """Yields ``frames`` frames, then raises SourceError (a lost stream), or fails to open."""

    is_live = True

    def __init__(self, name: str, frames: int, fail_open: bool = False, dropped: int = 0):
        super().__init__(name)
        self.frames = frames
        self.fail_open = fail_open
        self.dropped = dropped
        self.closed_calls = 0

    def _open(self) -> None:
        if self.fail_open:
            raise SourceError("scripted://cam: could not be opened")

    def _frames(self) -> Iterator[Frame]:
        for index in range(self.frames):
            yield Frame(image=np.zeros((4, 4, 3), np.uint8), index=index,
                        capture_time=time.monotonic(), source="inner")
        raise SourceError("scripted://cam: stalled")

    def close(self) -> None:
        self.closed_calls += 1
        super().close()


def scripted_factory(plan: list[tuple[int, bool]]):
    """Connections in order: (frames, fail_open); each also drops one frame."""
    made: list[ScriptedSource] = []

    def connect() -> ScriptedSource:
        frames, fail_open = plan[min(len(made), len(plan) - 1)]
        made.append(ScriptedSource("inner", frames, fail_open, dropped=1))
        return made[-1]

    return connect, made


def reconnecting(connect, **options) -> Reconnecting:
    options = {"backoff_initial_s": 0.01, "backoff_max_s": 0.04, **options}
    return Reconnecting(connect, name="cam3", label="scripted://cam", **options)


def test_reconnecting_renumbers_frames_and_counts():
    connect, made = scripted_factory([(3, False), (0, True), (0, True), (2, False), (4, False)])
    with reconnecting(connect) as source:
        frames = [frame for _, frame in zip(range(9), source)]
    assert [frame.index for frame in frames] == list(range(9))
    assert {frame.source for frame in frames} == {"cam3"}
    assert frames[0].time == 0.0
    assert all(b.time >= a.time >= 0 for a, b in zip(frames, frames[1:]))
    assert source.reconnects == 2
    assert source.reconnect_attempts == 4
    assert source.dropped == len(made)
    assert all(connection.closed_calls >= 1 for connection in made)


def test_reconnecting_gives_up_after_max_reconnects_failed_in_a_row():
    connect, made = scripted_factory([(2, False), (0, True)])
    source = reconnecting(connect, max_reconnects=3).open()
    with pytest.raises(SourceError, match=r"scripted://cam: gave up after 3 .*max_reconnects"):
        list(source)
    assert len(made) == 1 + 3


def test_reconnect_false_raises_naming_the_stream():
    connect, made = scripted_factory([(2, False)])
    source = reconnecting(connect, reconnect=False).open()
    frames = []
    with pytest.raises(SourceError, match=r"^scripted://cam: stalled \(source.reconnect is false\)"):
        for frame in source:
            frames.append(frame)
    assert len(frames) == 2 and len(made) == 1


def test_first_open_is_not_retried():
    connect, made = scripted_factory([(0, True), (5, False)])
    with pytest.raises(SourceError, match="could not be opened"):
        reconnecting(connect).open()
    assert len(made) == 1


def test_close_from_another_thread_cuts_the_backoff_short(caplog):
    caplog.set_level(logging.INFO, logger="stream.reconnect")
    connect, _ = scripted_factory([(1, False), (0, True)])
    source = reconnecting(connect, backoff_initial_s=30.0, backoff_max_s=30.0).open()
    drained = drain_in_background(source)
    wait_until(lambda: "reconnect attempt 1 in 30.00 s" in caplog.text, 10, message="the 30 s backoff")
    started = time.monotonic()
    source.close()
    assert drained.ended.wait(5.0), "iteration did not end after close()"
    assert time.monotonic() - started < 5.0          # not the 30 s backoff


class SilentSource(ScriptedSource):
    """A connection that opens but sends nothing: it reports a stall after ``silent_s``."""

    def _frames(self) -> Iterator[Frame]:
        time.sleep(self.silent_s)                # the silence under test
        raise SourceError("scripted://cam: stalled")


def test_state_is_reconnecting_from_a_loss_until_a_new_connection_gives_a_frame():
    made: list[ScriptedSource] = []

    def connect() -> ScriptedSource:
        if len(made) == 1:                       # the 2nd connection opens but stays silent
            made.append(SilentSource("inner", 0))
            made[-1].silent_s = 0.6
        else:
            made.append(ScriptedSource("inner", 1 if not made else 1000))
        return made[-1]

    source = reconnecting(connect)
    assert source.state.value == "down", "not open yet"
    source.open()
    frames = iter(source)
    next(frames)
    assert source.state.value == "live"
    seen = []
    taker = threading.Thread(target=lambda: seen.append(next(frames)), daemon=True)
    taker.start()                                # loses connection 1, opens the silent one
    deadline = time.monotonic() + 5
    states = set()
    while not seen and time.monotonic() < deadline:      # samples the state all along the reconnect
        if len(made) == 2 and made[1]._opened:
            states.add(source.state.value)
        time.sleep(0.01)
    taker.join(5)
    assert states == {"reconnecting"}, "open but silent is not live"
    assert seen and len(made) == 3 and source.state.value == "live", "live again with a frame"
    source.close()
    assert source.state.value == "down"


class SlowReaderSource(ScriptedSource):
    """A scripted connection whose reader thread, like a blocked OpenCV read, ends only
    ``linger_s`` after close()."""

    def __init__(self, frames: int, linger_s: float):
        super().__init__("inner", frames)
        self.linger_s = linger_s
        self._closed_at = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        self._closed_at.wait()
        time.sleep(self.linger_s)                # the lingering reader under test

    def close(self) -> None:
        self._closed_at.set()
        super().close()

    def wait_reader(self, timeout_s: float) -> bool:
        self._reader.join(timeout_s)
        return not self._reader.is_alive()


def test_at_most_one_abandoned_reader_per_stream():
    made: list[SlowReaderSource] = []
    most_lingering = 0

    def connect() -> SlowReaderSource:
        nonlocal most_lingering
        most_lingering = max(most_lingering, sum(c._reader.is_alive() for c in made))
        made.append(SlowReaderSource(frames=1, linger_s=0.3))
        return made[-1]

    with reconnecting(connect) as source:
        frames = [frame for _, frame in zip(range(5), source)]
    assert [frame.index for frame in frames] == list(range(5))
    assert len(made) == 5
    assert most_lingering == 1, "a new connection must wait for all but the last abandoned reader"

"""Live sources against a real RTSP server (gst-rtsp-server, H.264 640x480 at 15 fps, or a file
served as it is):
frames arrive, a killed/restarted server and a stalled stream are recovered from, a slow
consumer sees bounded latency with drops counted, and reader threads stay bounded."""

from __future__ import annotations

import threading
import time

import pytest

from posestream_common.errors import SourceError
from stream.live import LiveSource, open_live_source
from tests.fixtures_live import (  # noqa: F401 - fixtures
    drain_in_background, live_config, rtsp_available, rtsp_server)
from tests.waiting import wait_until

READ_TIMEOUT_S = 1.0


def reader_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("live-reader-")]


@pytest.fixture
def no_leaked_readers():
    """Fail a test that leaves reader threads behind (list it before rtsp_server, so that the
    server is gone first and every blocked read has returned)."""
    before = set(reader_threads())
    yield
    wait_until(lambda: not set(reader_threads()) - before, 3 * READ_TIMEOUT_S + 5, interval=0.1,
               message="reader threads outlived their source")


def take(frames, count: int, within_s: float) -> list:
    """``count`` frames from the iterator, failing when that takes longer than ``within_s``."""
    taken, deadline = [], time.monotonic() + within_s
    for frame in frames:
        taken.append(frame)
        if len(taken) == count:
            return taken
        assert time.monotonic() < deadline, f"only {len(taken)} frames in {within_s} s"
    pytest.fail(f"the stream ended after {len(taken)} frames")


def test_frames_arrive(no_leaked_readers, rtsp_server):
    started = time.monotonic()
    source = open_live_source(live_config(rtsp_server.url, read_timeout_s=READ_TIMEOUT_S), "door")
    open_s = time.monotonic() - started
    with source:
        assert source.is_live
        assert open_s < 5.0
        assert source.fps == pytest.approx(15.0, rel=0.2)
        frames = take(iter(source), 20, within_s=10.0)
    assert [frame.index for frame in frames] == list(range(20))
    assert {frame.source for frame in frames} == {"door"}
    assert all(frame.image.shape == (480, 640, 3) and frame.image.dtype.name == "uint8"
               for frame in frames)
    capture_times = [frame.capture_time for frame in frames]
    assert capture_times == sorted(capture_times) and capture_times[-1] <= time.monotonic()
    assert frames[0].time == 0.0 and frames[-1].time > 0
    assert frames[-1].image.std() > 0, "the test pattern should not be a flat image"


def test_killed_and_restarted_server_resumes_with_reconnects_counted(no_leaked_readers, rtsp_server):
    config = live_config(rtsp_server.url, read_timeout_s=READ_TIMEOUT_S, backoff_initial_s=0.2,
                         backoff_max_s=0.5)
    with open_live_source(config, "cam0") as source:
        frames = iter(source)
        before = take(frames, 5, within_s=10.0)
        rtsp_server.kill()
        restarter = threading.Timer(1.5, rtsp_server.start)
        restarter.start()
        killed_at = time.monotonic()
        after = take(frames, 10, within_s=20.0)
        restarter.join()
        assert source.reconnects >= 1
        assert after[-1].capture_time > killed_at + 1.5, "frames must come from the restarted server"
    indices = [frame.index for frame in before + after]
    assert indices == list(range(len(indices)))


def test_stall_longer_than_read_timeout_recovers_without_hanging(no_leaked_readers, rtsp_server):
    config = live_config(rtsp_server.url, read_timeout_s=READ_TIMEOUT_S, backoff_initial_s=0.2,
                         backoff_max_s=0.5)
    with open_live_source(config, "cam0") as source:
        frames = iter(source)
        take(frames, 3, within_s=10.0)
        rtsp_server.stall()
        stalled_at = time.monotonic()
        threading.Timer(2.5 * READ_TIMEOUT_S, rtsp_server.resume).start()
        after = take(frames, 5, within_s=20.0)
        assert source.reconnects >= 1
        assert after[-1].capture_time > stalled_at + 2.5 * READ_TIMEOUT_S


def test_one_connection_raises_on_a_stall_within_read_timeout(no_leaked_readers, rtsp_server):
    source = LiveSource(rtsp_server.url, "cam0", open_timeout_s=5.0, read_timeout_s=READ_TIMEOUT_S)
    with source:
        frames = iter(source)
        take(frames, 3, within_s=10.0)
        rtsp_server.stall()
        started = time.monotonic()
        with pytest.raises(SourceError, match=r"stalled, no frame for 1 s \(source.read_timeout_s\)"):
            for _ in frames:
                assert time.monotonic() - started < READ_TIMEOUT_S + 0.5
        assert time.monotonic() - started < READ_TIMEOUT_S + 1.0


def test_reconnect_false_and_dead_stream_raises_naming_the_url(no_leaked_readers, rtsp_server):
    config = live_config(rtsp_server.url, read_timeout_s=READ_TIMEOUT_S, reconnect=False)
    with open_live_source(config, "cam0") as source:
        frames = iter(source)
        take(frames, 3, within_s=10.0)
        rtsp_server.kill()
        with pytest.raises(SourceError) as raised:
            take(frames, 1000, within_s=10.0)
    message = str(raised.value)
    assert message.startswith(rtsp_server.url) and "source.reconnect is false" in message
    assert "\n" not in message


def test_slow_consumer_sees_bounded_latency_and_counted_drops(no_leaked_readers, rtsp_server):
    """0.3 s of work per frame against a 15 fps stream: without a newest-frame reader the
    backlog would add ~0.23 s of latency per frame (over 2 s by the 10th)."""
    with open_live_source(live_config(rtsp_server.url, read_timeout_s=2.0), "cam0") as source:
        frames = iter(source)
        take(frames, 2, within_s=10.0)
        latencies_s = []
        for _, frame in zip(range(10), frames):
            latencies_s.append(time.monotonic() - frame.capture_time)
            time.sleep(0.3)                      # the slow consumer under test
        dropped = source.dropped
    assert max(latencies_s) < 0.5, latencies_s
    assert dropped >= 10 * 2, f"about 3 frames per 0.3 s arrive, 1 is taken; dropped={dropped}"


def test_close_during_a_stall_ends_iteration_promptly(no_leaked_readers, rtsp_server):
    config = live_config(rtsp_server.url, read_timeout_s=5.0)
    source = open_live_source(config, "cam0")
    drained = drain_in_background(source)
    wait_until(lambda: drained.count >= 2, 30, message="frames before the stall")
    rtsp_server.stall()
    time.sleep(0.5)                  # the stall under test: 0.5 s in, the reader waits (5 s timeout)
    started = time.monotonic()
    source.close()
    assert drained.ended.wait(2.5), "iteration still blocked 2.5 s after close()"
    assert time.monotonic() - started < 2.5          # not the 5 s read timeout


def test_repeated_stalls_keep_reader_threads_bounded(no_leaked_readers, rtsp_server):
    config = live_config(rtsp_server.url, read_timeout_s=0.5, backoff_initial_s=0.1,
                         backoff_max_s=0.2)
    most_readers = 0
    with open_live_source(config, "cam0") as source:
        frames = iter(source)
        for _ in range(3):
            take(frames, 2, within_s=10.0)
            rtsp_server.stall()
            stall_end = time.monotonic() + 1.5
            while time.monotonic() < stall_end:      # a 1.5 s stall (3 read timeouts), sampled
                most_readers = max(most_readers, len(reader_threads()))
                time.sleep(0.05)
            rtsp_server.resume()
        take(frames, 2, within_s=10.0)
        assert source.reconnects >= 3
    assert most_readers <= 2, most_readers


def test_a_served_h264_file_arrives_as_it_was_encoded(no_leaked_readers, rtsp_available, tmp_path):
    """``--video``: the file's own H.264, not encoded again (the live frames equal the file's)."""
    import subprocess

    import cv2
    import numpy as np

    from tests.fixtures_live import RtspServer

    video = tmp_path / "moving.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc=size=320x240:rate=25:duration=6", "-c:v", "libx264", "-preset",
                    "ultrafast", "-pix_fmt", "yuv420p", "-g", "25", str(video)], check=True, timeout=120)
    capture = cv2.VideoCapture(str(video))
    recorded = [frame for ok, frame in iter(capture.read, (False, None)) if ok]
    capture.release()
    server = RtspServer(video=video)
    server.start()
    try:
        with open_live_source(live_config(server.url, read_timeout_s=3.0), "file") as source:
            frames = take(iter(source), 10, within_s=20.0)
    finally:
        server.stop()
    assert all(frame.image.shape == (240, 320, 3) for frame in frames)
    # each live frame is one of the file's own, in the file's order (a busy reader may drop some)
    found = [[index for index, image in enumerate(recorded) if np.array_equal(image, frame.image)]
             for frame in frames]
    assert all(len(indices) == 1 for indices in found), "a live frame is not one of the file's"
    order = [indices[0] for indices in found]
    assert order == sorted(set(order))

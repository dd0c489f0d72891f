"""Sources on real files written here with OpenCV: every frame, in order, with the right fields."""

from __future__ import annotations

import importlib.util
import logging
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from posestream_common.errors import SourceError
from stream.demo import DemoSource
from stream.sources import ImageFileSource, ImageFolderSource, Source, VideoFileSource, open_source
from tests.waiting import wait_until

FPS = 25.0
SIZE = (160, 120)                       # width, height: small keeps the test fast
BITS = 8                                # the frame index is painted as 8 black/white blocks


def index_image(index: int, size=SIZE) -> np.ndarray:
    """A frame whose index can be read back after lossy compression: one block per bit."""
    width, height = size
    image = np.full((height, width, 3), 40, np.uint8)
    block = width // BITS
    for bit in range(BITS):
        if index >> bit & 1:
            image[:, bit * block:(bit + 1) * block] = 220
    return image


def read_index(image: np.ndarray) -> int:
    block = image.shape[1] // BITS
    return sum(1 << bit for bit in range(BITS)
               if image[:, bit * block + 4:(bit + 1) * block - 4].mean() > 128)


@pytest.fixture(scope="module")
def video_200(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "counting.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    assert writer.isOpened()
    for index in range(200):
        writer.write(index_image(index))
    writer.release()
    return path


def source_cfg(uri, **fields):
    defaults = dict(uri=uri, name=None, open_timeout_s=10.0, read_timeout_s=5.0, reconnect=True,
                    max_reconnects=0, backoff_initial_s=0.5, backoff_max_s=8.0, loop=False)
    defaults.update(fields)
    return SimpleNamespace(**defaults)


def test_video_file_yields_every_frame_in_order(video_200):
    with VideoFileSource(video_200, name="clip") as source:
        assert not source.is_live
        assert source.fps == pytest.approx(FPS)
        assert source.frame_count == 200
        frames = list(source)
    assert [f.index for f in frames] == list(range(200))
    assert [read_index(f.image) for f in frames] == list(range(200))
    assert [f.time for f in frames] == pytest.approx([i / FPS for i in range(200)])
    assert all(f.source == "clip" and f.file is None for f in frames)
    assert all(f.image.shape == (SIZE[1], SIZE[0], 3) and f.image.dtype == np.uint8 for f in frames)
    captured = [f.capture_time for f in frames]
    assert captured == sorted(captured) and captured[-1] <= time.monotonic()



@pytest.mark.parametrize("cores", [2, 64])
def test_video_decoder_threads_follow_the_core_count(video_200, monkeypatch, cores):
    # few cores: one decoder thread (the network needs the others); many: FFmpeg's own choice
    import stream.sources as sources

    plain = cv2.VideoCapture(str(video_200), cv2.CAP_FFMPEG)
    ffmpeg_choice = int(plain.get(cv2.CAP_PROP_N_THREADS))
    plain.release()
    monkeypatch.setattr(sources.os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    with VideoFileSource(video_200) as source:
        used = int(source._capture.get(cv2.CAP_PROP_N_THREADS))
        frames = [read_index(frame.image) for frame in source]
    assert used == (1 if cores <= sources.FEW_CORES else ffmpeg_choice)
    assert frames == list(range(200))

def test_video_loop_keeps_counting(video_200):
    with VideoFileSource(video_200, loop=True) as source:
        assert source.frame_count is None
        frames = [frame for _, frame in zip(range(450), source)]
    assert [f.index for f in frames] == list(range(450))
    assert [read_index(f.image) for f in frames[195:205]] == [195, 196, 197, 198, 199, 0, 1, 2, 3, 4]
    assert frames[449].time == pytest.approx(449 / FPS)


def test_close_is_idempotent_and_stops_iteration(video_200):
    source = VideoFileSource(video_200).open()
    frames = iter(source)
    next(frames)
    source.close()
    source.close()
    assert list(frames) == []


def test_folder_is_read_in_sorted_name_order(tmp_path):
    names = ["b_002.png", "a_010.jpg", "c_001.bmp", "a_002.png"]
    for number, name in enumerate(names):
        cv2.imwrite(str(tmp_path / name), index_image(number))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub").mkdir()
    cv2.imwrite(str(tmp_path / "sub" / "0_nested.png"), index_image(99))

    with ImageFolderSource(tmp_path, name="stills") as source:
        assert source.frame_count == 4
        frames = list(source)
    assert [f.file for f in frames] == sorted(names)
    assert [read_index(f.image) for f in frames] == [names.index(n) for n in sorted(names)]
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert all(f.source == "stills" for f in frames)


def test_image_file_gives_one_frame_with_its_name(tmp_path):
    path = tmp_path / "person.png"
    cv2.imwrite(str(path), index_image(5))
    frames = list(ImageFileSource(path))
    assert len(frames) == 1
    assert frames[0].file == "person.png" and frames[0].index == 0
    assert read_index(frames[0].image) == 5


@pytest.mark.parametrize("make, expected", [
    (lambda d: d / "missing.mp4", "not found"),
    (lambda d: _text_file(d / "fake.mp4"), "not a video"),
    (lambda d: _text_file(d / "fake.png"), "not a readable image"),
    (lambda d: _empty_dir(d / "empty"), "no images"),
    (lambda d: d / "missing.jpg", "not found"),
    (lambda d: d / "missing_folder" / "x.avi", "not found"),
])
def test_bad_inputs_raise_source_error_naming_them(tmp_path, make, expected):
    path = make(tmp_path)
    with pytest.raises(SourceError) as caught:
        open_source(source_cfg(str(path)))
    message = str(caught.value)
    assert str(path) in message and expected in message
    assert "\n" not in message


def test_unreadable_image_in_folder_is_named(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), index_image(1))
    _text_file(tmp_path / "b.png")
    source = open_source(source_cfg(str(tmp_path)))
    frames = iter(source)
    assert next(frames).file == "a.png"
    with pytest.raises(SourceError, match="b.png"):
        next(frames)


def test_open_source_dispatches_on_the_uri(tmp_path, video_200):
    cv2.imwrite(str(tmp_path / "one.jpg"), index_image(1))
    kinds = {
        str(video_200): VideoFileSource,
        str(tmp_path): ImageFolderSource,
        str(tmp_path / "one.jpg"): ImageFileSource,
        "demo": DemoSource,
        "DEMO": DemoSource,
    }
    for uri, kind in kinds.items():
        source = open_source(source_cfg(uri), name="camX")
        try:
            assert type(source) is kind and source.name == "camX"
            assert next(iter(source)).source == "camX"
        finally:
            source.close()


@pytest.mark.skipif(Path("/dev/video0").exists(), reason="a webcam is present here")
def test_no_source_falls_back_to_demo_with_one_log_line(caplog):
    caplog.set_level(logging.INFO, logger="stream.sources")
    source = open_source(source_cfg(None))
    try:
        assert isinstance(source, DemoSource)
    finally:
        source.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "stream.sources" and r.levelno == logging.INFO]
    assert len(lines) == 1 and "demo" in lines[0]


def test_unknown_scheme_is_a_source_error():
    with pytest.raises(SourceError, match="ftp://host/x"):
        open_source(source_cfg("ftp://host/x"))


def test_every_kind_is_a_source():
    assert all(issubclass(kind, Source)
               for kind in (VideoFileSource, ImageFileSource, ImageFolderSource, DemoSource))


def _text_file(path: Path) -> Path:
    path.write_text("this is text, not media\n")
    return path


def _empty_dir(path: Path) -> Path:
    path.mkdir()
    return path


def test_close_from_another_thread_ends_iteration(video_200):
    import threading

    source = VideoFileSource(video_200, loop=True).open()
    seen = []

    def consume():
        for frame in source:
            seen.append(frame.index)

    reader = threading.Thread(target=consume)
    reader.start()
    wait_until(lambda: len(seen) >= 20, 30, interval=0.005, message="20 frames")
    source.close()
    reader.join(2.0)
    assert not reader.is_alive()
    assert seen == list(range(len(seen)))


@pytest.mark.skipif(importlib.util.find_spec("stream.live") is None, reason="no live sources yet")
@pytest.mark.skipif(Path("/dev/video7").exists(), reason="a webcam 7 is present here")
def test_webcam_index_goes_to_the_live_sources():
    with pytest.raises(SourceError, match="7"):
        open_source(source_cfg("7", open_timeout_s=1.0, read_timeout_s=1.0))


@pytest.mark.parametrize("uri, shown", [
    ("rtsp://host/stream?user=admin&password=s3cret", "rtsp://host/stream?user=***&password=***"),
    ("rtsp://admin:s3cret@host:554/s?channel=1&pwd=s3cret", "rtsp://***@host:554/s?channel=1&pwd=***"),
    ("http://h/hook?x=1&token=s3cret#top", "http://h/hook?x=1&token=***#top"),
    ("https://h/p?Api-Key=s3cret&access_token=s3cret", "https://h/p?Api-Key=***&access_token=***"),
    ("http://[broken/x?password=s3cret", "http://[broken/x?password=***"),     # unparsable URL
    ("rtsp://host/stream?channel=1&subtype=0", "rtsp://host/stream?channel=1&subtype=0"),
    ("rtsp://host/stream?keyframes=1", "rtsp://host/stream?keyframes=1"),         # not a secret key
    ("videos/user=me.mp4", "videos/user=me.mp4"),
])
def test_redact_uri_hides_userinfo_and_query_string_secrets(uri, shown):
    from stream.sources import redact_uri

    assert redact_uri(uri) == shown
    assert "s3cret" not in redact_uri(uri)


def test_unsupported_source_error_hides_query_string_secrets():
    with pytest.raises(SourceError) as caught:
        open_source(SimpleNamespace(uri="gopher://cam/s?user=admin&password=s3cret"), "cam")
    assert "s3cret" not in str(caught.value) and "admin" not in str(caught.value)

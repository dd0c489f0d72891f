"""Frame sources: video file, image file and image folder (the built-in demo stream is in
``stream/demo.py``).

Every source is an iterator of :class:`~stream.items.Frame` with increasing ``index`` from 0, a
``capture_time`` from ``time.monotonic()`` and its ``name``.  ``open()`` raises
:class:`~posestream_common.errors.SourceError` naming the source when it cannot be read;
``close()`` may be called any number of times; a source is also a context manager.  Sources
never retry: live sources (webcam, rtsp, http) live in ``stream/live.py`` and get their
reconnects from one wrapper.

``open_source(cfg, name)`` picks the kind from ``cfg.uri`` and returns the source already opened.
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import av
import cv2
import numpy as np

from posestream_common.errors import SourceError
from posestream_common.media import DEMO_URI, IMAGE_EXTENSIONS, list_images, read_image
from stream.items import Frame

log = logging.getLogger(__name__)

LIVE_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://")
WEBCAM_PROBE_TIMEOUT_S = 3.0         # longest wait for webcam 0 when no source is given
FEW_CORES = 4                        # up to this many cores a video file decodes on one thread


class SourceState(str, Enum):
    """Where a source stands: ``live`` (open, giving frames), ``reconnecting`` (a live stream was
    lost and is being reopened), ``down`` (not open, ended, closed or failed for good)."""

    LIVE = "live"
    RECONNECTING = "reconnecting"
    DOWN = "down"


# Query-string keys whose values are credentials (compared lower-case, ``-`` read as ``_``).
SECRET_QUERY_KEYS = frozenset({
    "user", "username", "login", "password", "passwd", "pass", "pwd", "token", "access_token",
    "auth", "auth_token", "key", "api_key", "apikey", "secret", "client_secret", "signature", "sig",
})
_QUERY_SECRET = re.compile(r"(?i)([?&;](?:%s)=)[^&;#]*" % "|".join(
    sorted((k.replace("_", "[_-]") for k in SECRET_QUERY_KEYS), key=len, reverse=True)))


def redact_uri(uri: str) -> str:
    """``uri`` with any ``user:password@`` replaced by ``***@`` and the values of credential-like
    query parameters (``password=``, ``token=``, ``user=``, … see ``SECRET_QUERY_KEYS``) by
    ``***`` (for logs, messages, pages)."""
    text = str(uri)
    try:
        parts = urlsplit(text)
    except ValueError:
        return _QUERY_SECRET.sub(r"\1***", re.sub(r"//[^/@]*@", "//***@", text))
    if "@" in parts.netloc:
        parts = parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2])
    if parts.query:
        parts = parts._replace(query=_QUERY_SECRET.sub(r"\1***", "?" + parts.query)[1:])
    return urlunsplit(parts)


class Source(ABC):
    """An iterator of frames from one input.

    Attributes: ``name`` (the ``source`` of every frame), ``is_live`` (frames arrive in real time
    and may be dropped: queue policy ``drop_oldest``), ``fps`` (frame rate when known, else None),
    ``frame_count`` (number of frames when known and finite, else None).
    """

    is_live: bool = False

    def __init__(self, name: str):
        self.name = name
        self.fps: float | None = None
        self.frame_count: int | None = None
        self._opened = False
        self._closed = False

    def open(self) -> Source:
        """Open the input (idempotent); raises SourceError naming the source."""
        if not self._opened:
            self._open()
            self._opened = True
        return self

    def close(self) -> None:
        """Release the input; safe to call more than once."""
        if self._opened and not self._closed:
            self._closed = True
            self._close()

    @property
    def state(self) -> SourceState:
        """``live`` from a successful ``open()`` until ``close()``, else ``down``."""
        return SourceState.LIVE if self._opened and not self._closed else SourceState.DOWN

    def __iter__(self) -> Iterator[Frame]:
        self.open()
        return self._frames()

    def __enter__(self) -> Source:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    @abstractmethod
    def _open(self) -> None:
        """Check and open the input; raise SourceError when it cannot be read."""

    @abstractmethod
    def _frames(self) -> Iterator[Frame]:
        """Yield the frames, index from 0."""

    def _close(self) -> None:
        """Release what ``_open`` acquired."""

    def _frame(self, image: np.ndarray, index: int, time_s: float, file: str | None = None) -> Frame:
        return Frame(image=image, index=index, capture_time=time.monotonic(), time=time_s,
                     source=self.name, file=file)


def _require_file(path: Path, what: str) -> None:
    if not path.exists():
        raise SourceError(f"{what} not found: {path}")
    if not path.is_file():
        raise SourceError(f"{what} is not a file: {path}")



class VideoFileSource(Source):
    """Frames of a video file, decoded with OpenCV; ``time`` = index / fps.

    The file is probed with PyAV first so that a file which is not a video fails with one clean
    SourceError (and no decoder chatter on stderr).  ``loop=True`` starts again at the end, with
    indices and times still increasing (``frame_count`` is then None: the stream is endless).
    ``close()`` may come from another thread: reads and the release share a lock.
    """

    def __init__(self, path: str | os.PathLike, name: str = "cam0", loop: bool = False):
        super().__init__(name)
        self.path = Path(path)
        self.loop = loop
        self._capture: cv2.VideoCapture | None = None
        self._first: np.ndarray | None = None
        self._lock = threading.Lock()

    def _open(self) -> None:
        _require_file(self.path, "video file")
        probed_fps = _probe_video(self.path)
        self._capture, self._first = self._start_capture()
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and fps > 0 and math.isfinite(fps) else probed_fps
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = count if count > 0 and not self.loop else None
        log.debug("opened video %s: fps=%s frames=%s", self.path, self.fps, self.frame_count)

    def _start_capture(self) -> tuple[cv2.VideoCapture, np.ndarray]:
        capture = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG, decoder_thread_params())
        ok, image = capture.read() if capture.isOpened() else (False, None)
        if not ok:
            capture.release()
            raise SourceError(f"not a video file (no decodable frame): {self.path}")
        return capture, image

    def _frames(self) -> Iterator[Frame]:
        index = 0
        while True:
            image, self._first = self._first, None
            while image is not None:
                yield self._frame(image, index, self._time_of(index))
                index += 1
                image = self._read()
            with self._lock:
                if not self.loop or self._capture is None:
                    return
                self._capture.release()
                self._capture, self._first = self._start_capture()

    def _read(self) -> np.ndarray | None:
        with self._lock:
            if self._capture is None:
                return None
            ok, image = self._capture.read()
        return image if ok else None

    def _time_of(self, index: int) -> float:
        if self.fps:
            return index / self.fps
        with self._lock:
            capture = self._capture
            return float(capture.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0 if capture is not None else 0.0

    def _close(self) -> None:
        with self._lock:
            if self._capture is not None:
                self._capture.release()
                self._capture = None


def decoder_thread_params(cores: int | None = None) -> list[int]:
    """``cv2.VideoCapture`` parameters for a video file's decoder threads: one thread on machines
    of up to ``FEW_CORES`` cores, where the network needs every core and FFmpeg's frame threads
    cost more CPU per frame (640x480 H.264 on the 2-core EPYC: 0.77 core-ms a frame on one
    thread, 0.9-1.2 on two), else FFmpeg's own choice."""
    if cores is None:
        from stages.inference import available_cores

        cores = available_cores()
    return [cv2.CAP_PROP_N_THREADS, 1] if cores <= FEW_CORES else []


def _probe_video(path: Path) -> float | None:
    """Check that ``path`` holds a video stream (SourceError if not); return its frame rate."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise SourceError(f"not a video file (no video stream): {path}")
            rate = container.streams.video[0].average_rate or container.streams.video[0].guessed_rate
    except av.error.FFmpegError as err:
        raise SourceError(f"not a video file: {path} ({err.strerror or type(err).__name__})") from None
    return float(rate) if rate else None


class ImageFileSource(Source):
    """One image file as a one-frame stream (``loop=True`` repeats it); frames carry ``file``."""

    def __init__(self, path: str | os.PathLike, name: str = "cam0", loop: bool = False):
        super().__init__(name)
        self.path = Path(path)
        self.loop = loop
        self._image: np.ndarray | None = None

    def _open(self) -> None:
        _require_file(self.path, "image file")
        self._image = read_image(self.path)
        self.frame_count = None if self.loop else 1

    def _frames(self) -> Iterator[Frame]:
        index = 0
        while index == 0 or (self.loop and not self._closed):
            yield self._frame(self._image, index, float(index), file=self.path.name)
            index += 1


class ImageFolderSource(Source):
    """The images of a folder in sorted name order (common image extensions, not recursive).

    Frames carry ``file`` (the file name); ``time`` is the index (one second per image, since a
    folder has no frame rate).  An image that cannot be read raises SourceError naming it.
    """

    def __init__(self, path: str | os.PathLike, name: str = "cam0", loop: bool = False):
        super().__init__(name)
        self.path = Path(path)
        self.loop = loop
        self.files: list[Path] = []

    def _open(self) -> None:
        if not self.path.is_dir():
            raise SourceError(f"image folder not found: {self.path}")
        self.files = list_images(self.path)
        if not self.files:
            extensions = ", ".join(sorted(IMAGE_EXTENSIONS))
            raise SourceError(f"no images in folder {self.path} (looked for {extensions})")
        self.frame_count = None if self.loop else len(self.files)

    def _frames(self) -> Iterator[Frame]:
        index = 0
        while True:
            for path in self.files:
                if self._closed:
                    return
                yield self._frame(read_image(path), index, float(index), file=path.name)
                index += 1
            if not self.loop:
                return



def open_source(cfg, name: str = "cam0") -> Source:
    """Open the source ``cfg.uri`` names (a ``SourceConfig``); the returned source is open.

    ``demo`` → DemoSource; a folder → ImageFolderSource; an image file (by extension) →
    ImageFileSource; an integer or ``rtsp://``/``http(s)://`` URL → a live source from
    ``stream.live``; any other path → VideoFileSource; None → webcam 0 when it opens, else demo.
    """
    uri = None if cfg.uri is None else str(cfg.uri).strip()
    if uri is None or uri == "":
        return _default_source(cfg, name)
    if uri.lower() == DEMO_URI:
        return _open_demo(name)
    if re.fullmatch(r"\d+", uri) or uri.lower().startswith(LIVE_SCHEMES):
        return _open_live(cfg, name)
    if "://" in uri and not uri.lower().startswith("file://"):
        raise SourceError(f"unsupported source {redact_uri(uri)!r}: use a file, folder, webcam index, "
                          f"rtsp:// or http(s):// URL, or demo")
    path = Path(uri[len("file://"):] if uri.lower().startswith("file://") else uri).expanduser()
    if not path.exists():
        raise SourceError(f"source file not found: {path}")
    if path.is_dir():
        return ImageFolderSource(path, name=name, loop=cfg.loop).open()
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return ImageFileSource(path, name=name, loop=cfg.loop).open()
    return VideoFileSource(path, name=name, loop=cfg.loop).open()


def _open_live(cfg, name: str) -> Source:
    try:
        from stream.live import open_live_source
    except ImportError:
        raise SourceError(f"live sources are not available in this build: {redact_uri(cfg.uri)}") from None
    return open_live_source(cfg, name)


def _default_source(cfg, name: str) -> Source:
    """Webcam 0 when one opens within a short timeout, else the demo stream (one INFO line)."""
    if webcam_opens(0, timeout_s=min(cfg.open_timeout_s, WEBCAM_PROBE_TIMEOUT_S)):
        try:
            source = _open_live(cfg.model_copy(update={"uri": "0"}), name)
        except SourceError as err:
            log.info("no --source given; webcam 0 opened but cannot be streamed (%s): using demo", err)
        else:
            log.info("no --source given: using webcam 0")
            return source
    else:
        log.info("no --source given and no webcam opens: using the built-in demo stream")
    return _open_demo(name)


def _open_demo(name: str) -> Source:
    from stream.demo import DemoSource      # here: stream.demo builds on this module's Source

    return DemoSource(name=name).open()


def webcam_opens(index: int, timeout_s: float) -> bool:
    """Whether webcam ``index`` opens and gives a frame within ``timeout_s`` (probe released)."""
    if sys.platform.startswith("linux") and not Path(f"/dev/video{index}").exists():
        return False
    result: list[bool] = []

    def probe() -> None:
        capture = cv2.VideoCapture(index)
        try:
            result.append(bool(capture.isOpened() and capture.read()[0]))
        finally:
            capture.release()

    thread = threading.Thread(target=probe, name=f"webcam{index}-probe", daemon=True)
    thread.start()
    thread.join(timeout_s)
    return bool(result and result[0])

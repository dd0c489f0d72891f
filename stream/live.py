"""Live sources: webcam index, ``rtsp://…``, ``http(s)://…``, read with bounded latency.

One reader thread per connection reads the capture as fast as the stream delivers and keeps
only the newest frame: a slow consumer never makes latency grow, and frames the reader
overwrote before anyone took them are counted in ``dropped``.  Iteration never waits longer
than ``read_timeout_s`` for a frame: a stream with no frame for that long is a stall and
raises ``SourceError`` (``stream.reconnect.Reconnecting`` turns that into a reconnect).

A blocked ``cv2.VideoCapture.read()`` cannot be interrupted, so ``close()`` never joins the
reader: it abandons it (daemon thread), and the reader releases its capture itself when its
read returns.  FFmpeg's socket timeout and OpenCV's read timeout bound that wait.

``open_live_source(cfg, name)`` is what ``stream.sources.open_source`` calls.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import cv2
import numpy as np

from posestream_common.errors import SourceError
from posestream_common.media import parse_live_uri
from stream.items import Frame
from stream.reconnect import Reconnecting
from stream.sources import Source, redact_uri

log = logging.getLogger(__name__)

FFMPEG_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
# At interpreter exit, how long to wait for reader threads to leave OpenCV: a daemon thread that
# returns from a cv2 call while Python finalizes aborts the process ("exception not rethrown").
EXIT_READER_WAIT_S = 0.5



def describe_uri(uri: int | str) -> str:
    """How a live source is named in messages and logs: ``webcam 0`` or the URL with any
    ``user:password@`` shown as ``***@``."""
    if isinstance(uri, int):
        return f"webcam {uri}"
    return redact_uri(uri)


def ffmpeg_capture_options(url: str, timeout_s: float) -> str:
    """OPENCV_FFMPEG_CAPTURE_OPTIONS for a stream URL.

    ``timeout`` is FFmpeg's socket I/O timeout in µs (FFmpeg 8 ignores ``stimeout``).  RTSP goes
    over TCP (no lost UDP packets on a busy host) and probes little, for a fast open.
    """
    options = [f"timeout;{int(timeout_s * 1e6)}"]
    if urlsplit(url).scheme.lower().startswith("rtsp"):
        options = ["rtsp_transport;tcp", *options, "analyzeduration;100000", "probesize;32"]
    return "|".join(options)


class _ProcessCaptureOptions:
    """Guards the process-wide FFmpeg options variable.

    OpenCV reads it while a capture opens, so it is set right before each open and kept until
    the open returns.  Opens that want the same options run together; others wait their turn.
    """

    def __init__(self):
        self._cond = threading.Condition()
        self._active: str | None = None
        self._users = 0
        self._saved: str | None = None

    @contextmanager
    def applied(self, options: str) -> Iterator[None]:
        with self._cond:
            while self._users and self._active != options:
                self._cond.wait()
            if not self._users:
                self._saved = os.environ.get(FFMPEG_OPTIONS_ENV)
                os.environ[FFMPEG_OPTIONS_ENV] = options
                self._active = options
            self._users += 1
        try:
            yield
        finally:
            with self._cond:
                self._users -= 1
                if not self._users:
                    if self._saved is None:
                        os.environ.pop(FFMPEG_OPTIONS_ENV, None)
                    else:
                        os.environ[FFMPEG_OPTIONS_ENV] = self._saved
                    self._active = None
                    self._cond.notify_all()


_capture_options = _ProcessCaptureOptions()


def create_capture(uri: int | str, open_timeout_s: float, read_timeout_s: float) -> cv2.VideoCapture:
    """A new ``cv2.VideoCapture`` for a webcam index or a stream URL (check ``isOpened()``)."""
    if isinstance(uri, int):
        capture = cv2.VideoCapture(uri)
        if capture.isOpened():
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return capture
    timeouts = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout_s * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout_s * 1000),
    ]
    with _capture_options.applied(ffmpeg_capture_options(uri, read_timeout_s)):
        return cv2.VideoCapture(uri, cv2.CAP_FFMPEG, timeouts)


_open_sources: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _stop_readers_at_exit() -> None:
    """Stop every reader and let those on a flowing stream (their read returns within a frame
    interval) leave OpenCV before Python finalizes.  A reader blocked on a stalled stream is not
    waited for: it would hold the exit up to the read timeout; it dies with the process.
    """
    sources = list(_open_sources)
    flowing = [source for source in sources if source.frame_age_s() < EXIT_READER_WAIT_S]
    for source in sources:
        source.close()
    deadline = time.monotonic() + EXIT_READER_WAIT_S
    for source in flowing:
        source.wait_reader(max(0.0, deadline - time.monotonic()))


class LiveSource(Source):
    """One connection to a live stream, read by its own thread that keeps the newest frame.

    uri: webcam index (int) or stream URL.  ``open()`` waits at most ``open_timeout_s``;
    iteration waits at most ``read_timeout_s`` since the last frame arrived, then raises
    ``SourceError`` (stall); a failed read raises it at once.  Never retries: ``Reconnecting``
    does that.  ``close()`` is idempotent, may be called from any thread, and wakes a waiting
    iteration (which then ends) or a waiting ``open()`` (which then raises).
    """

    is_live = True

    def __init__(self, uri: int | str, name: str, *, open_timeout_s: float = 10.0,
                 read_timeout_s: float = 5.0):
        super().__init__(name)
        self.uri = uri
        self.label = describe_uri(uri)
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.dropped = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._reader_done = threading.Event()
        self._reader: threading.Thread | None = None
        self._capture_open = False
        self._failure: str | None = None
        self._latest: tuple[np.ndarray, float] | None = None
        self._last_arrival = 0.0
        self._start_time = 0.0

    def close(self) -> None:
        """Stop taking frames and abandon the reader (it releases the capture when its read returns)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        super().close()

    def reader_alive(self) -> bool:
        """True while the reader thread (and so its capture) still exists."""
        return self._reader is not None and not self._reader_done.is_set()

    def wait_reader(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the reader thread to end; True when it has (or never ran)."""
        return self._reader is None or self._reader_done.wait(timeout_s)

    def frame_age_s(self) -> float:
        """Seconds since the reader last got a frame (or the capture opened)."""
        return time.monotonic() - self._last_arrival

    def _open(self) -> None:
        """Start the reader and wait until the capture is open; ``SourceError`` if it is not."""
        self._reader = threading.Thread(
            target=self._read_loop, name=f"live-reader-{self.name}", daemon=True
        )
        _open_sources.add(self)
        self._reader.start()
        deadline = time.monotonic() + self.open_timeout_s
        with self._cond:
            while not (self._capture_open or self._failure or self._stop.is_set()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            failure = self._failure
            if not failure and self._stop.is_set():
                failure = "closed while opening"
            elif not failure and not self._capture_open:
                failure = f"did not open within {self.open_timeout_s:g} s (source.open_timeout_s)"
        if failure:
            self._stop.set()
            raise SourceError(f"{self.label}: {failure}")
        log.info("%s: opened %s (%s fps reported)", self.name, self.label, self.fps or "no")

    def _frames(self) -> Iterator[Frame]:
        index = 0
        while True:
            taken = self._take_newest()
            if taken is None:
                return
            image, capture_time = taken
            yield Frame(image=image, index=index, capture_time=capture_time,
                        time=capture_time - self._start_time, source=self.name)
            index += 1

    def _take_newest(self) -> tuple[np.ndarray, float] | None:
        """The newest unread frame (waiting for one); None once closed; SourceError on a stall."""
        with self._cond:
            while self._latest is None:
                if self._stop.is_set():
                    return None
                if self._failure:
                    raise SourceError(f"{self.label}: {self._failure}")
                remaining = self._last_arrival + self.read_timeout_s - time.monotonic()
                if remaining <= 0:
                    raise SourceError(
                        f"{self.label}: stalled, no frame for {self.read_timeout_s:g} s "
                        "(source.read_timeout_s)"
                    )
                self._cond.wait(remaining)
            taken, self._latest = self._latest, None
        return taken

    def _set_failure(self, failure: str) -> None:
        with self._cond:
            if not self._stop.is_set():
                self._failure = failure
            self._cond.notify_all()

    def _read_loop(self) -> None:
        """Reader thread: open the capture, then keep replacing the newest frame until closed."""
        capture = None
        try:
            capture = create_capture(self.uri, self.open_timeout_s, self.read_timeout_s)
            if not capture.isOpened():
                self._set_failure("could not be opened")
                return
            fps = capture.get(cv2.CAP_PROP_FPS)
            with self._cond:
                self.fps = fps if fps and 0 < fps < 1000 else None
                self._capture_open = True
                self._start_time = self._last_arrival = time.monotonic()
                self._cond.notify_all()
            while not self._stop.is_set():
                ok, image = capture.read()
                capture_time = time.monotonic()
                if self._stop.is_set():
                    break
                if not ok or image is None:
                    self._set_failure("the stream ended or a read failed")
                    break
                with self._cond:
                    if self._latest is not None:
                        self.dropped += 1
                    self._latest = (image, capture_time)
                    self._last_arrival = capture_time
                    self._cond.notify_all()
        except Exception as exc:  # an OpenCV error must end this connection, not the process
            self._set_failure(f"capture error: {exc}")
        finally:
            if capture is not None:
                capture.release()
            self._reader_done.set()
            _open_sources.discard(self)


def open_live_source(cfg, name: str) -> Source:
    """The live source for ``cfg.uri`` (webcam index or rtsp/http(s) URL), opened.

    cfg: a ``SourceConfig`` (``uri``, ``open_timeout_s``, ``read_timeout_s``, ``reconnect``,
    ``max_reconnects``, ``backoff_initial_s``, ``backoff_max_s``).  The result reconnects with
    back-off after a dead or stalled stream; with ``reconnect`` false it raises ``SourceError``
    naming the stream instead.  Counts: ``dropped``, ``reconnects``.  A stream that does not
    open raises ``SourceError`` naming it.
    """
    uri = parse_live_uri(cfg.uri)

    def connect() -> LiveSource:
        return LiveSource(uri, name, open_timeout_s=cfg.open_timeout_s,
                          read_timeout_s=cfg.read_timeout_s)

    source = Reconnecting(
        connect,
        name=name,
        label=describe_uri(uri),
        reconnect=cfg.reconnect,
        max_reconnects=cfg.max_reconnects,
        backoff_initial_s=cfg.backoff_initial_s,
        backoff_max_s=cfg.backoff_max_s,
    )
    return source.open()

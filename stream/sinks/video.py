"""Annotated video output: .mp4/.mkv/.mov as H.264 through PyAV (libx264), .avi as MJPG.

The file is opened at the first frame, when the frame size is known.  H.264 with yuv420p needs an
even width and height: an odd frame is padded by one pixel (edge colour) on the right/bottom,
logged once.  Frames of another size than the first are resized to it (logged once).
``close()`` flushes the encoder and finishes the container, so the file is playable.

Frames are spaced 1/fps apart.  With ``frame_times=True`` (meant for live sources, whose frames
come at the camera's pace minus drops) an H.264 file is stamped with each item's ``time``
instead, so it plays at real speed.
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from posestream_common.errors import ConfigError
from stream.items import Posed
from stream.sinks.base import Sink

log = logging.getLogger(__name__)

H264_SUFFIXES = frozenset({".mp4", ".mkv", ".mov"})
MJPG_SUFFIXES = frozenset({".avi"})
DEFAULT_FPS = 30.0
H264_PRESET = "veryfast"        # ~4 ms per 640x480 frame on one core, a third of ultrafast's size
H264_CRF = 23
H264_TIME_BASE = Fraction(1, 90000)   # MPEG clock: exact for 24, 25, 30, 50, 60 and 30000/1001 fps


class VideoSink(Sink):
    """Writes annotated frames to ``path`` at a constant ``fps`` (None or ≤ 0: 30), or at the
    items' own times when ``frame_times`` (H.264 only)."""

    def __init__(self, path: str | os.PathLike, fps: float | None = None,
                 preset: str = H264_PRESET, crf: int = H264_CRF, frame_times: bool = False):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in H264_SUFFIXES | MJPG_SUFFIXES:
            allowed = ", ".join(sorted(H264_SUFFIXES | MJPG_SUFFIXES))
            raise ConfigError(f"output.video: {self.path} must end in one of {allowed}")
        self.codec = "h264" if suffix in H264_SUFFIXES else "mjpeg"
        self.fps = float(fps) if fps and fps > 0 else DEFAULT_FPS
        self.preset, self.crf = preset, crf
        self.frame_times = frame_times and self.codec == "h264"
        self._first_time: float | None = None
        self.name = f"video:{self.path}"
        self.frames_written = 0
        self.size: tuple[int, int] | None = None      # (width, height) as written
        self._encoder: _H264Encoder | _MjpgEncoder | None = None
        self._first_size: tuple[int, int] | None = None
        self._resize_logged = False
        self._closed = False

    def write(self, item: Posed | None, annotated: np.ndarray) -> None:
        if self._closed:
            raise RuntimeError(f"{self.name} is closed")
        image = self._fit(annotated)
        if self._encoder is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.size = (image.shape[1], image.shape[0])
            if self.codec == "h264":
                self._encoder = _H264Encoder(self.path, self.size, self.fps, self.preset, self.crf)
            else:
                self._encoder = _MjpgEncoder(self.path, self.size, self.fps)
        self._encoder.encode(image, self._time_of(item))
        self.frames_written += 1

    def close(self) -> None:
        self._closed = True
        if self._encoder is not None:
            encoder, self._encoder = self._encoder, None
            encoder.close()
            log.info("wrote %d frames (%s %dx%d) to %s", self.frames_written, self.codec,
                     *self.size, self.path)

    def _time_of(self, item: Posed | None) -> float:
        """Seconds from the first frame: the item's time, or frames written / fps."""
        if not self.frame_times or item is None:
            return self.frames_written / self.fps
        if self._first_time is None:
            self._first_time = float(item.time)
        return float(item.time) - self._first_time

    def _fit(self, image: np.ndarray) -> np.ndarray:
        """Same size as the first frame, even width and height for H.264."""
        height, width = image.shape[:2]
        if self._first_size is None:
            self._first_size = (width, height)
            if self.codec == "h264" and (width % 2 or height % 2):
                log.info("%s: frame size %dx%d is odd; padding to %dx%d for H.264", self.path,
                         width, height, width + width % 2, height + height % 2)
        elif (width, height) != self._first_size:
            if not self._resize_logged:
                log.warning("%s: frame size changed from %dx%d to %dx%d; resizing to the first size",
                            self.path, *self._first_size, width, height)
                self._resize_logged = True
            image = cv2.resize(image, self._first_size, interpolation=cv2.INTER_AREA)
            width, height = self._first_size
        if self.codec == "h264" and (width % 2 or height % 2):
            image = cv2.copyMakeBorder(image, 0, height % 2, 0, width % 2, cv2.BORDER_REPLICATE)
        return np.ascontiguousarray(image)


class _H264Encoder:
    """libx264 in yuv420p through PyAV; the colour conversion is OpenCV's (faster than swscale)."""

    def __init__(self, path: Path, size: tuple[int, int], fps: float, preset: str, crf: int):
        self._container = av.open(str(path), mode="w")
        try:
            self._stream = self._container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            self._stream.width, self._stream.height = size
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"preset": preset, "crf": str(crf)}
        except Exception:
            self._container.close()
            raise
        self._stream.codec_context.time_base = H264_TIME_BASE
        self._last_pts = -1

    def encode(self, image: np.ndarray, time_s: float) -> None:
        frame = av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420), format="yuv420p")
        frame.time_base = H264_TIME_BASE
        frame.pts = self._last_pts = max(round(time_s / H264_TIME_BASE), self._last_pts + 1)
        self._container.mux(self._stream.encode(frame))

    def close(self) -> None:
        try:
            self._container.mux(self._stream.encode(None))
        finally:
            self._container.close()


class _MjpgEncoder:
    """Motion-JPEG in an AVI container through OpenCV's built-in writer."""

    def __init__(self, path: Path, size: tuple[int, int], fps: float):
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
        if not self._writer.isOpened():
            raise OSError(f"cannot open {path} for MJPG writing")

    def encode(self, image: np.ndarray, time_s: float) -> None:
        self._writer.write(image)

    def close(self) -> None:
        self._writer.release()

"""The newest annotated frame of a stream as JPEG, for any number of MJPEG clients.

``LatestJpeg.publish`` only swaps a reference (the pipeline never waits on a client); each frame
is JPEG-encoded at most once, by the first client thread that wants it, and every client gets
the newest frame when it is ready for one, so a slow client skips frames.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

BOUNDARY = "posestream-frame"


def mjpeg_part(jpeg: bytes) -> bytes:
    """One part of a ``multipart/x-mixed-replace`` MJPEG response."""
    return (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
            f"Content-Length: {len(jpeg)}\r\n\r\n").encode() + jpeg + b"\r\n"


class LatestJpeg:
    """The newest frame, handed to any number of client threads as JPEG, encoded once per frame."""

    def __init__(self, jpeg_quality: int = 80):
        self.jpeg_quality = jpeg_quality
        self._cond = threading.Condition()
        self._encode_lock = threading.Lock()
        self._image: np.ndarray | None = None
        self._seq = 0
        self._jpeg: bytes | None = None
        self._jpeg_seq = 0
        self._closed = False
        self.encoded = 0

    def publish(self, image: np.ndarray) -> None:
        """Make ``image`` the newest frame (never blocks on clients or encoding)."""
        with self._cond:
            self._image = image
            self._seq += 1
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wait_newer(self, seen_seq: int, timeout_s: float) -> tuple[int, bytes] | None:
        """(seq, jpeg) of a frame newer than ``seen_seq``, or None on timeout or once closed."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._closed or self._seq > seen_seq, timeout_s):
                return None
            if self._closed:
                return None
            seq, image = self._seq, self._image
            if self._jpeg_seq == seq:
                return seq, self._jpeg
        with self._encode_lock:
            with self._cond:
                if self._jpeg_seq >= seq:
                    return self._jpeg_seq, self._jpeg
            ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if not ok:
                raise ValueError(f"cannot encode a frame of shape {image.shape} as JPEG")
            jpeg = buffer.tobytes()
            with self._cond:
                self._jpeg, self._jpeg_seq = jpeg, seq
                self.encoded += 1
        return seq, jpeg

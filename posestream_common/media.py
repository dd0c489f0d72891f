"""What every package may know about media: image files, and which source URIs are live.

The pipeline's sources (``stream/``) and the int8 engine's calibration (``stages/engines/``) both
read image files and tell live streams from files, so those few rules live here, below both.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np

from posestream_common.errors import SourceError

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https")
DEMO_URI = "demo"                    # the built-in demo stream (stream/demo.py)


def read_image(path: Path) -> np.ndarray:
    """Read an image file as HxWx3 uint8 BGR; SourceError naming the file if it is not an image."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as err:
        raise SourceError(f"cannot read image {path}: {err.strerror or err}") from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise SourceError(f"not a readable image: {path}")
    return image


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (hidden files skipped), sorted by name."""
    return sorted(
        (p for p in folder.iterdir()
         if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS),
        key=lambda p: p.name,
    )


def read_video_frames(path: Path, max_frames: int | None = None) -> list[np.ndarray]:
    """The first ``max_frames`` frames (all when None) of a video file, BGR uint8; fewer or none
    when the file ends or cannot be decoded."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    try:
        while max_frames is None or len(frames) < max_frames:
            ok, image = capture.read()
            if not ok:
                break
            frames.append(image)
    finally:
        capture.release()
    return frames


def parse_live_uri(uri: int | str) -> int | str:
    """A webcam index as an int (``0``, ``"0"``), a stream URL as a str; else ``SourceError``."""
    if isinstance(uri, int) and not isinstance(uri, bool):
        return uri
    text = str(uri).strip()
    if text.isdigit():
        return int(text)
    if urlsplit(text).scheme.lower() in STREAM_SCHEMES:
        return text
    raise SourceError(f"not a live source (webcam index or rtsp/rtmp/http(s) URL): {uri!r}")


def is_live_uri(uri: int | str) -> bool:
    """True for a webcam index or an ``rtsp://``/``http(s)://`` URL."""
    try:
        parse_live_uri(uri)
    except SourceError:
        return False
    return True

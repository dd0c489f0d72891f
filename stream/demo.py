"""The built-in demo stream: a real photo of a person, shown smaller on a plain background,
slowly moving.

The photo is matplotlib's sample ``grace_hopper.jpg`` (a head-and-shoulders portrait; matplotlib
is a dependency, so the demo works offline).  Shown full-frame, the network sees hardly any
body: only the face and a loose shoulder.  Shown at about 60 % of the frame height on a plain
background, neck and both shoulders are found in every frame with the default network
(``tests/test_demo.py`` counts them), so the demo shows a connected upper-body skeleton.

The photo drifts left and right, bobs a little and zooms in and out (0.88-1.12x) with
periods of 7-13 s, so consecutive frames differ, as a camera's would.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from posestream_common.errors import SourceError
from posestream_common.media import read_image
from stream.items import Frame
from stream.sources import Source

log = logging.getLogger(__name__)

DEMO_SIZE = (640, 480)               # width, height of the demo frames
DEMO_FPS = 30.0                      # nominal rate: frame time = index / DEMO_FPS
PHOTO_HEIGHT = 0.62                  # the photo's height as a fraction of the frame's, at zoom 1
ZOOM_RANGE = 0.12                    # zoom = 1 ± ZOOM_RANGE
DRIFT_X, DRIFT_Y = 0.22, 0.05        # largest offset of the photo's centre, fraction of the frame
PERIOD_X_S, PERIOD_Y_S, PERIOD_ZOOM_S = 13.0, 7.0, 9.0
BACKGROUND_BGR = (178, 170, 160)     # plain light grey-blue


class DemoSource(Source):
    """The demo stream at 640x480 (see the module docstring).

    Frames are made as fast as they are consumed (no pacing); ``time`` = index / 30.  Endless
    unless ``max_frames`` is given.
    """

    def __init__(self, name: str = "cam0", max_frames: int | None = None):
        super().__init__(name)
        self.max_frames = max_frames
        self.fps = DEMO_FPS
        self.frame_count = max_frames
        self.photo_path: Path | None = None
        self._photo: np.ndarray | None = None

    def _open(self) -> None:
        self.photo_path = demo_photo_path()
        self._photo = shrink_photo(read_image(self.photo_path), DEMO_SIZE)
        log.debug("demo stream from %s", self.photo_path)

    def _frames(self) -> Iterator[Frame]:
        index = 0
        while (self.max_frames is None or index < self.max_frames) and not self._closed:
            time_s = index / DEMO_FPS
            yield self._frame(demo_frame(self._photo, time_s, DEMO_SIZE), index, time_s)
            index += 1


def demo_photo_path() -> Path:
    """The photo behind the demo stream: matplotlib's grace_hopper.jpg, else another sample image.

    Found without importing matplotlib (31 MB resident): its data folder is ``mpl-data`` in the
    package's folder (what ``matplotlib.get_data_path()`` returns).
    """
    package = importlib.util.find_spec("matplotlib")
    if package is None or not package.submodule_search_locations:
        raise SourceError("demo source: matplotlib, whose sample photo it shows, is not installed")
    sample_dir = Path(next(iter(package.submodule_search_locations))) / "mpl-data" / "sample_data"
    for name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png", "logo2.png"):
        if (sample_dir / name).is_file():
            if name != "grace_hopper.jpg":
                log.warning("matplotlib ships no grace_hopper.jpg; the demo uses %s (no person in it)", name)
            return sample_dir / name
    raise SourceError(f"demo source: no sample photo in {sample_dir}")


def shrink_photo(photo: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``photo`` scaled (area filter) to its largest size in the demo: the frame height ×
    PHOTO_HEIGHT × the largest zoom; each frame then only shrinks it a little further."""
    largest_height = size[1] * PHOTO_HEIGHT * (1 + ZOOM_RANGE)
    factor = min(1.0, largest_height / photo.shape[0])
    width, height = round(photo.shape[1] * factor), round(photo.shape[0] * factor)
    return cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA)


def demo_frame(photo: np.ndarray, time_s: float, size: tuple[int, int]) -> np.ndarray:
    """The demo frame at ``time_s``: ``photo`` placed on the plain background, its centre and
    zoom following slow sine waves (see the module's constants), as a ``size`` (w, h) image."""
    out_w, out_h = size
    zoom = 1 + ZOOM_RANGE * math.sin(2 * math.pi * time_s / PERIOD_ZOOM_S)
    factor = out_h * PHOTO_HEIGHT * zoom / photo.shape[0]           # frame px per photo px
    centre_x = out_w * (0.5 + DRIFT_X * math.sin(2 * math.pi * time_s / PERIOD_X_S))
    centre_y = out_h * (0.5 + DRIFT_Y * math.sin(2 * math.pi * time_s / PERIOD_Y_S))
    to_frame = np.float32([[factor, 0, centre_x - photo.shape[1] * factor / 2],
                           [0, factor, centre_y - photo.shape[0] * factor / 2]])
    return cv2.warpAffine(photo, to_frame, (out_w, out_h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=BACKGROUND_BGR)

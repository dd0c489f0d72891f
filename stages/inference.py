"""Inference engines: a batch of net inputs in, heatmaps and PAFs out.

An engine is a callable ``engine(batch float32 [N,3,H,W]) -> (heatmaps [N,19,h,w], pafs
[N,38,h,w])`` (numpy float32) that also carries the ``preprocess`` spec its input must follow and
its output ``stride``.  ``make_engine(config)`` picks one by ``inference.engine``; engines
register a builder with :func:`register_engine`, so onnxruntime/OpenVINO engines plug in beside
the torch one without touching the pipeline.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import TYPE_CHECKING, Any, Callable, Protocol

import numpy as np

from posestream_common.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from stream.config import Config

log = logging.getLogger(__name__)

_PRECISIONS = {"fp16": "float16", "bf16": "bfloat16"}


class Engine(Protocol):
    """What the inference stage needs from an engine."""

    name: str
    preprocess: Any         # the backbone's PreprocessSpec
    stride: int
    workers: int            # frames it may run at once (threaded mode: one thread each)

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


EngineBuilder = Callable[["Config"], Engine]
_BUILDERS: dict[str, EngineBuilder] = {}

# Engines of later issues: the module that registers each one when imported.
_PLUGIN_MODULES = {"onnxruntime": "stages.engines.onnxruntime", "openvino": "stages.engines.openvino"}


def register_engine(name: str) -> Callable[[EngineBuilder], EngineBuilder]:
    """Decorator: ``@register_engine("openvino") def build(config) -> Engine``; refuses duplicates."""

    def add(builder: EngineBuilder) -> EngineBuilder:
        if name in _BUILDERS:
            raise ValueError(f"engine {name!r} is already registered")
        _BUILDERS[name] = builder
        return builder

    return add


def make_engine(config: "Config") -> Engine:
    """The engine named by ``config.inference.engine`` (``auto``: the fastest one available, see
    ``stages.engines.resolve_engine``), loaded and ready (ConfigError if unknown)."""
    from stages.engines import AUTO, named_backbone, resolve_engine

    if config.model.backbone == AUTO:
        config = config.model_copy(update={"model": config.model.model_copy(
            update={"backbone": named_backbone(config)})})
    name = resolve_engine(config)
    if name not in _BUILDERS and name in _PLUGIN_MODULES:
        try:
            __import__(_PLUGIN_MODULES[name])
        except ModuleNotFoundError as missing:
            if not _PLUGIN_MODULES[name].startswith(str(missing.name)):
                raise
    if name not in _BUILDERS:
        raise ConfigError(f"inference.engine {name!r} is not available yet "
                          f"(available: {', '.join(sorted(_BUILDERS))})")
    return _BUILDERS[name](config)


class TorchEngine:
    """Runs a backbone ``nn.Module`` under ``torch.inference_mode``.

    precision: fp32, or fp16/bf16 through autocast.  channels_last: NHWC memory layout (often
    faster on CPU and tensor cores).  workers: how many threads may call it at once (forward in
    inference mode is thread-safe).  The heavy work runs in torch's C++ code with the GIL
    released, so other pipeline threads keep running meanwhile.
    compile: ``torch.compile`` the network (CUDA: mode ``reduce-overhead``, i.e. CUDA graphs);
    each new input size compiles once (tens of seconds on a CPU).  Compiled code is called by one
    thread at a time, so a compiled engine has one worker.
    """

    name = "torch"

    def __init__(self, model: "torch.nn.Module", preprocess: Any, device: "torch.device",
                 precision: str = "fp32", channels_last: bool = False, stride: int = 8,
                 workers: int = 1, compile: bool = False):
        import torch

        self.preprocess = preprocess
        self.stride = stride
        self.workers = 1 if compile else workers
        self.device = device
        self.precision = precision
        self._memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.to(device=device, memory_format=self._memory_format).eval()
        self.compiled = compile
        self._call_lock = threading.Lock() if compile else contextlib.nullcontext()
        if compile:
            mode = "reduce-overhead" if device.type == "cuda" else "default"
            self.model = torch.compile(self.model, mode=mode, dynamic=False)
        self._autocast_dtype = getattr(torch, _PRECISIONS[precision]) if precision in _PRECISIONS else None

    def _autocast(self) -> contextlib.AbstractContextManager:
        import torch

        if self._autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self._autocast_dtype)

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with self._call_lock, torch.inference_mode(), self._autocast():
            inputs = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
            inputs = inputs.to(self.device, non_blocking=True).contiguous(memory_format=self._memory_format)
            heatmaps, pafs = self.model(inputs)
            return _to_numpy(heatmaps), _to_numpy(pafs)

    def warmup(self, height: int, width: int, runs: int = 1) -> None:
        """Run ``runs`` dummy batches so the first real frame is not slowed by lazy set-up."""
        dummy = np.zeros((1, 3, height, width), dtype=np.float32)
        for _ in range(runs):
            self(dummy)


def _to_numpy(tensor: "torch.Tensor") -> np.ndarray:
    import torch

    # contiguous: a channels_last output would otherwise reach the decoder with NHWC strides
    return tensor.detach().to(device="cpu", dtype=torch.float32).contiguous().numpy()


def check_backbone(name: str) -> None:
    """ConfigError naming the valid backbones when ``name`` is not a torch network."""
    import backbones
    from backbones.ir import engine_error

    known = list(backbones.list_backbones())
    if name not in known:
        raise ConfigError(f"model.backbone {name!r} is unknown; choose from {', '.join(known)}")
    spec = backbones.get_spec(name)
    if spec.ir is not None:
        raise engine_error(spec, "torch")


def cpu_parallelism(threads: int | None, workers: int | None, mode: str, cores: int) -> tuple[int, int]:
    """(intra-op threads, inference workers) for a CPU run; None means choose.

    Measured on 2 cores (benchmarks/threads.py): small pose networks scale poorly over
    intra-op threads, and an OpenMP team that shares its cores with the other pipeline threads
    stalls, so the threaded pipeline runs two frames at once, each on its share of the cores.
    """
    if workers is None:
        workers = min(2, cores) if mode == "threaded" else 1
    if threads is None:
        threads = max(1, cores // workers)
    return threads, workers


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@register_engine("torch")
def _build_torch_engine(config: "Config") -> TorchEngine:
    import torch

    import backbones
    from stages.engines import resolve_precision

    check_backbone(config.model.backbone)
    precision = resolve_precision(config, "torch")
    if precision == "int8":
        raise ConfigError("inference.precision 'int8' runs only on the openvino engine (an NNCF-"
                          "quantized model): use --engine openvino (or auto on a CPU)")
    device = backbones.resolve_device(config.model.device)
    threads, workers = config.inference.threads, config.inference.workers
    if device.type == "cpu":
        threads, workers = cpu_parallelism(threads, workers, config.pipeline.mode, available_cores())
    if threads is not None:
        torch.set_num_threads(threads)
    spec = backbones.get_spec(config.model.backbone)
    model = backbones.build(config.model.backbone, weights=config.model.weights, device=device,
                            weights_url=config.model.weights_url)
    engine = TorchEngine(model, spec.preprocess, device, precision=precision,
                         channels_last=config.inference.channels_last, stride=spec.preprocess.stride,
                         workers=workers or 1, compile=config.inference.compile)
    log.info("torch engine: %s on %s, %s, %d worker(s) x %d intra-op thread(s)%s", config.model.backbone,
             device, precision, engine.workers, torch.get_num_threads(),
             ", torch.compile (each new input size compiles first)" if engine.compiled else "")
    return engine

"""The onnxruntime engine: the backbone's ONNX export (``backbones/export.py``) run by onnxruntime.

CPU in fp32 (onnxruntime's CPU kernels have no bf16 convolutions, so another precision is
refused with a clear message rather than silently ignored); with every graph optimisation on and
the intra-op thread count from ``inference.threads``.  ``session.run`` releases the GIL.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import backbones
from backbones.ir import engine_error
from posestream_common.errors import ConfigError, WeightsError
from stages.engines import (device_for, onnx_model_path, parallelism, require_module,
                            resolve_precision)
from stages.inference import register_engine

if TYPE_CHECKING:
    from stream.config import Config

log = logging.getLogger(__name__)

HEATMAP_CHANNELS, PAF_CHANNELS = 19, 38


class OnnxRuntimeEngine:
    """``engine(batch float32 [N,3,H,W]) -> (heatmaps, pafs)`` numpy float32 through onnxruntime.

    model_path: an ONNX file with one image input and two outputs, told apart by channel count.
    threads: intra-op threads (None: onnxruntime's default, one per core).  workers: how many
    threads may call it at once (``session.run`` is thread-safe; each call runs its own graph).
    """

    name = "onnxruntime"
    precision = "fp32"

    def __init__(self, model_path: str | Path, preprocess: Any, *, stride: int = 8,
                 threads: int | None = None, workers: int = 1,
                 providers: tuple[str, ...] = ("CPUExecutionProvider",)):
        import onnxruntime as ort

        self.model_path = Path(model_path)
        self.preprocess = preprocess
        self.stride = stride
        self.threads = threads
        self.workers = max(1, int(workers))
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(self.model_path), options, providers=list(providers))
        except Exception as error:  # noqa: BLE001 - onnxruntime raises its own untyped errors
            first_line = (str(error).strip().splitlines() or ["unreadable"])[0]
            raise WeightsError(f"{self.model_path}: onnxruntime cannot load it: {first_line}") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise WeightsError(f"{self.model_path}: expected one image input, found {len(inputs)}")
        self._input_name = inputs[0].name
        self._output_names = _ordered_outputs(self.session.get_outputs(), self.model_path)

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        heatmaps, pafs = self.session.run(self._output_names, {self._input_name: batch})
        return heatmaps, pafs

    def warmup(self, height: int, width: int, runs: int = 1) -> None:
        """Run ``runs`` dummy batches of [1,3,height,width] (first-call allocations)."""
        dummy = np.zeros((1, 3, height, width), dtype=np.float32)
        for _ in range(runs):
            self(dummy)


def _ordered_outputs(outputs: list[Any], path: Path) -> list[str]:
    """[heatmaps output name, PAFs output name], by channel count (names as exported if dynamic)."""
    by_channels = {output.shape[1]: output.name for output in outputs
                   if len(output.shape) == 4 and isinstance(output.shape[1], int)}
    if len(outputs) == 2 and set(by_channels) == {HEATMAP_CHANNELS, PAF_CHANNELS}:
        return [by_channels[HEATMAP_CHANNELS], by_channels[PAF_CHANNELS]]
    shapes = [output.shape for output in outputs]
    raise WeightsError(f"{path}: expected two outputs with {HEATMAP_CHANNELS} heatmap and "
                       f"{PAF_CHANNELS} PAF channels, found shapes {shapes}")


@register_engine("onnxruntime")
def build_onnxruntime_engine(config: "Config") -> OnnxRuntimeEngine:
    """The onnxruntime engine for ``config``'s backbone (exported to ONNX on first use)."""
    require_module("onnxruntime", "pip install onnxruntime, or pip install -e .[engines]")
    device_for(config, "onnxruntime")
    backbone = config.model.backbone
    ir_network = backbones.ir_backbone(backbone)             # no torch
    if ir_network is not None:                               # this engine runs ONNX files only
        raise engine_error(ir_network, "onnxruntime")
    precision = resolve_precision(config, "onnxruntime")
    if precision != "fp32":
        raise ConfigError(f"inference.precision {precision!r}: the onnxruntime engine runs fp32 on "
                          "the CPU; use --engine openvino for bf16/int8, torch for bf16/fp16")
    preprocess = backbones.preprocess_spec(backbone)           # no torch: see backbones/__init__
    path = onnx_model_path(backbone, config.model.weights, weights_url=config.model.weights_url)
    threads, workers = parallelism(config)
    engine = OnnxRuntimeEngine(path, preprocess, stride=int(preprocess.stride), threads=threads,
                               workers=workers)
    log.info("onnxruntime engine: %s from %s, fp32, %d worker(s) x %s intra-op thread(s)", backbone,
             path.name, workers, threads)
    return engine

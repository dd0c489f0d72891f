"""The OpenVINO engine: the backbone's ONNX export (or an IR network's own IR, e.g. ``omz``) on
Intel CPUs.

OpenVINO is the best-kept runtime for Intel CPUs: it fuses the convolution stacks and, with
``inference.precision`` bf16 on CPUs with AVX512-BF16/AMX, runs them in bfloat16 (its own
default there; fp32 is asked for explicitly).  Each input shape is compiled once, as a static
model (faster than a dynamic one), and kept; the pipeline uses one shape per run.

Parallelism follows the torch engine's rule (``stages.inference.cpu_parallelism``): one worker
with every core in sequential mode; in threaded mode ``workers`` frames at once, each on its own
OpenVINO stream (an infer request per calling thread) with ``threads`` threads.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import backbones
from backbones.ir import resolve_ir
from posestream_common.errors import ConfigError, WeightsError
from stages.engines import (cpu_supports_bf16, device_for, onnx_model_path, parallelism,
                            require_module, resolve_precision)
from stages.inference import register_engine

if TYPE_CHECKING:
    from stream.config import Config

log = logging.getLogger(__name__)

PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
MAX_COMPILED_SHAPES = 4          # input shapes kept compiled at once (one per run in practice)
HEATMAP_CHANNELS, PAF_CHANNELS = 19, 38


class OpenVinoEngine:
    """``engine(batch float32 [N,3,H,W]) -> (heatmaps, pafs)`` numpy float32 through OpenVINO.

    model_path: an ONNX file or an OpenVINO IR .xml with one image input and two outputs, told
    apart by their channel counts (19 heatmaps, 38 PAFs).  precision: fp32, bf16 or fp16 (the
    CPU's inference precision).  threads: CPU threads of one inference (None: OpenVINO's choice).
    workers: how many threads may call it at once; each gets its own infer request on its own
    stream.  Inference releases the GIL, so the other pipeline threads run meanwhile.
    """

    name = "openvino"

    def __init__(self, model_path: str | Path, preprocess: Any, *, stride: int = 8,
                 precision: str = "fp32", threads: int | None = None, workers: int = 1,
                 device: str = "CPU"):
        import openvino as ov

        if precision not in (*PRECISION_HINTS, "int8"):
            raise ConfigError(f"inference.precision {precision!r}: the openvino engine takes "
                              f"{', '.join(PRECISION_HINTS)}, int8")
        self.model_path = Path(model_path)
        self.preprocess = preprocess
        self.stride = stride
        self.precision = precision
        self.threads = threads
        self.workers = max(1, int(workers))
        self.device = device
        self._core = ov.Core()
        try:
            self._model = self._core.read_model(str(self.model_path))
        except RuntimeError as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else "unreadable"
            raise WeightsError(f"{self.model_path}: OpenVINO cannot read it: {first_line}") from None
        self._heatmaps_index, self._pafs_index = _output_order(self._model, self.model_path)
        self._compiled: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._compile_lock = threading.Lock()
        self._local = threading.local()          # this thread's infer request per shape

    @property
    def properties(self) -> dict[str, Any]:
        """The compile settings: precision, one stream per worker, threads per stream."""
        settings: dict[str, Any] = {"INFERENCE_PRECISION_HINT": precision_hint(self.precision)}
        if self.workers == 1:
            settings["PERFORMANCE_HINT"] = "LATENCY"
        else:
            settings.update({"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": self.workers})
        if self.threads is not None:
            settings["INFERENCE_NUM_THREADS"] = int(self.threads) * self.workers
        return settings

    def _request_for(self, shape: tuple[int, ...]) -> Any:
        requests = getattr(self._local, "requests", None)
        if requests is None:
            requests = self._local.requests = {}
        compiled = self._compiled_for(shape)
        request = requests.get(shape)
        if request is None or request[0] is not compiled:
            request = requests[shape] = (compiled, compiled.create_infer_request())
        return request[1]

    def _compiled_for(self, shape: tuple[int, ...]) -> Any:
        with self._compile_lock:
            compiled = self._compiled.get(shape)
            if compiled is None:
                compiled = self._compiled[shape] = self._compile(shape)
                while len(self._compiled) > MAX_COMPILED_SHAPES:
                    self._compiled.popitem(last=False)
            self._compiled.move_to_end(shape)
            return compiled

    def _compile(self, shape: tuple[int, ...]) -> Any:
        import openvino as ov
        from openvino.preprocess import PrePostProcessor

        model = self._model.clone()
        model.reshape({model.input(0): ov.PartialShape(list(shape))})
        steps = PrePostProcessor(model)
        steps.input().tensor().set_element_type(ov.Type.f32)
        for index in range(len(model.outputs)):
            steps.output(index).tensor().set_element_type(ov.Type.f32)
        compiled = self._core.compile_model(steps.build(), self.device, self.properties)
        log.info("openvino: compiled %s for input %s, inference precision %s, %s stream(s), "
                 "%s thread(s)", self.model_path.name, "x".join(map(str, shape)),
                 compiled.get_property("INFERENCE_PRECISION_HINT"), compiled.get_property("NUM_STREAMS"),
                 compiled.get_property("INFERENCE_NUM_THREADS"))
        return compiled

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(f"expected a float32 batch [N,3,H,W], got shape {batch.shape}")
        request = self._request_for(tuple(int(size) for size in batch.shape))
        request.infer({0: batch}, share_inputs=True, share_outputs=True)
        # The request's output buffers are reused by the next call: hand out copies.
        heatmaps = request.get_output_tensor(self._heatmaps_index).data.copy()
        pafs = request.get_output_tensor(self._pafs_index).data.copy()
        return heatmaps, pafs

    def warmup(self, height: int, width: int, runs: int = 1) -> None:
        """Compile for [1,3,height,width] and run ``runs`` dummy batches."""
        dummy = np.zeros((1, 3, height, width), dtype=np.float32)
        for _ in range(runs):
            self(dummy)


def precision_hint(precision: str) -> str:
    """OpenVINO's INFERENCE_PRECISION_HINT for ``precision``.  int8 (a model NNCF quantized): the
    layers left unquantized run in bf16 where the CPU has it (int8 + f32 ran at half the speed of
    int8 + bf16 on the AVX512-BF16 EPYC, see benchmarks/README.md), else f32."""
    if precision == "int8":
        return "bf16" if cpu_supports_bf16() else "f32"
    return PRECISION_HINTS[precision]


def _output_order(model: Any, path: Path) -> tuple[int, int]:
    """(index of the heatmaps output, index of the PAFs output), told apart by channel count."""
    if len(model.inputs) != 1:
        raise WeightsError(f"{path}: expected one image input, found {len(model.inputs)}")
    channels = []
    for output in model.outputs:
        shape = output.get_partial_shape()
        dim = shape[1] if shape.rank.is_static and shape.rank.get_length() == 4 else None
        channels.append(dim.get_length() if dim is not None and dim.is_static else None)
    if sorted(c for c in channels if c is not None) != [HEATMAP_CHANNELS, PAF_CHANNELS] \
            or len(channels) != 2:
        raise WeightsError(f"{path}: expected two outputs with {HEATMAP_CHANNELS} heatmap and "
                           f"{PAF_CHANNELS} PAF channels, found channel counts {channels}")
    return channels.index(HEATMAP_CHANNELS), channels.index(PAF_CHANNELS)


@register_engine("openvino")
def build_openvino_engine(config: "Config") -> OpenVinoEngine:
    """The openvino engine for ``config``'s backbone (an IR network: its IR, fetched on first
    use, or the .xml in model.weights; otherwise the ONNX export or an IR in model.weights)."""
    require_module("openvino", "pip install openvino")
    device_for(config, "openvino")
    precision = resolve_precision(config, "openvino")
    backbone, weights = config.model.backbone, config.model.weights
    preprocess = backbones.preprocess_spec(backbone)           # no torch: see backbones/__init__
    ir_network = backbones.ir_backbone(backbone)
    if ir_network is not None:
        if precision == "int8":
            from stages.engines.int8 import ir_int8_error

            raise ir_int8_error(ir_network)
        path = resolve_ir(ir_network, weights, url_base=config.model.weights_url)
    else:
        if weights is not None and str(weights).lower().endswith(".xml"):
            path = Path(weights).expanduser()
            if not path.is_file():
                raise WeightsError(f"OpenVINO IR not found: {path}")
        else:
            path = onnx_model_path(backbone, weights, weights_url=config.model.weights_url)
    threads, workers = parallelism(config)
    if precision == "int8":
        from stages.engines.int8 import build_int8_engine

        return build_int8_engine(config, path, preprocess, threads, workers)
    engine = OpenVinoEngine(path, preprocess, stride=int(preprocess.stride), precision=precision,
                            threads=threads, workers=workers)
    log.info("openvino engine: %s from %s, %s, %d worker(s) x %s thread(s)", backbone, path.name,
             precision, workers, threads)
    return engine

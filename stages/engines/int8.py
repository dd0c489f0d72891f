"""``inference.precision: int8``: the OpenVINO engine on a model NNCF quantized for the run.

``Int8Engine`` answers every call at once.  It needs one int8 model (``stages.engines.quantize``;
its input shape stays dynamic, so it serves every input size): cached from an earlier run, it is
loaded at warm-up; otherwise it is quantized on the calibration data, either

- before the first frame (``wait=True``: the run's sources are files or folders, which lose
  nothing by waiting; every frame then runs in int8), or
- in a background thread (``wait=False``: live sources, the demo stream, several sources), while
  the unquantized network (bf16 where the CPU has it, else fp32) answers; the int8 model takes
  over at the first call after it is ready.  Calibrating on the run's own frames collects the
  first ``calibration.frames`` net inputs the engine is asked to run, so nothing is read twice.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from posestream_common.errors import ConfigError
from posestream_common.media import DEMO_URI, is_live_uri
from stages.engines import cpu_supports_bf16, has_module
from stages.engines.openvino import OpenVinoEngine
from stages.engines.quantize import (MIN_SHARE, Calibration, QuantizeStopped, quantized_model,
                                     read_calibration_images)

if TYPE_CHECKING:
    from stream.config import Config

log = logging.getLogger(__name__)

BACKGROUND_NICENESS = 10         # the quantizing thread yields the cores to the pipeline (Linux)
CLOSE_WAIT_S = 30.0              # close(): how long a quantization may take to notice the stop


class Int8Engine:
    """``engine(batch) -> (heatmaps, pafs)`` through an NNCF-quantized model (see module doc).

    model_path: the ONNX export (or IR) to quantize.  calibration: what to calibrate on.
    input_height / scale: the run's net-input size rule, used to prepare calibration images.
    wait: quantize before answering (True) or in the background meanwhile (False).
    fallback_precision: the unquantized network's precision while it answers.
    min_share: convolutions below this share of the multiply-adds stay unquantized
    (``stages.engines.quantize.MIN_SHARE`` has each network's).
    """

    name = "openvino"
    precision = "int8"

    def __init__(self, model_path: Path, preprocess: Any, calibration: Calibration, *, stride: int = 8,
                 input_height: int | None = None, scale: float | None = None,
                 threads: int | None = None, workers: int = 1, wait: bool = True,
                 fallback_precision: str | None = None, cache_dir: Path | None = None,
                 min_share: float = 0.0):
        self.model_path = Path(model_path)
        self.preprocess = preprocess
        self.stride = stride
        self.input_height = input_height
        self.scale = scale
        self.threads = threads
        self.workers = max(1, int(workers))
        self.calibration = calibration
        self.wait = wait
        self.cache_dir = cache_dir
        self.min_share = float(min_share)
        self.fallback_precision = fallback_precision or ("bf16" if cpu_supports_bf16() else "fp32")
        self.fallback_calls = 0                  # calls answered by the unquantized network
        self._quantized: OpenVinoEngine | None = None
        self._fallback: OpenVinoEngine | None = None
        self._job: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._collected: list[np.ndarray] = []
        self._last_size: tuple[int, int] | None = None     # of the calls before the int8 model
        self._cached: bool | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()

    @property
    def input_policy(self) -> str:
        """The net-input size rule, as the cache key names it: ``h368`` or ``s0.5``."""
        if self.scale is not None:
            return f"s{self.scale:g}"
        return f"h{int(self.input_height or self.preprocess.default_height)}"

    @property
    def ready(self) -> bool:
        """Whether the int8 model answers calls."""
        return self._quantized is not None

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        engine = self._quantized
        if engine is None:
            self._last_size = (int(batch.shape[-2]), int(batch.shape[-1]))
            engine = self._before_ready(batch)
        return engine(batch)

    def warmup(self, height: int, width: int, runs: int = 1) -> None:
        """Get the int8 model ready when it can be (cached, or a calibration path: quantized now
        when ``wait``, else started in the background), then run ``runs`` dummy batches."""
        if self.calibration.path is not None or self.cached:
            self._start()
            if self.wait:
                self.wait_ready()
        dummy = np.zeros((1, 3, height, width), dtype=np.float32)
        for _ in range(runs):
            (self._quantized or self._fallback_engine())(dummy)

    def wait_ready(self, timeout_s: float | None = None) -> bool:
        """Block until the int8 model is ready (a failure to make it is raised here)."""
        job = self._job
        if job is not None:
            job.join(timeout_s)
        if self._failure is not None:
            raise self._failure
        return self.ready

    def close(self, timeout_s: float = CLOSE_WAIT_S) -> None:
        """Stop a quantization still running (the run ended first: nothing is cached, the next
        run quantizes again) and wait for its thread, so that no thread is inside OpenVINO
        while the interpreter exits (that aborts the process: "terminate called without an
        active exception")."""
        self._stop.set()
        job = self._job
        if job is not None and job.is_alive():
            job.join(timeout_s)
            if job.is_alive():
                log.warning("int8: the quantizing thread did not stop within %.0f s", timeout_s)

    @property
    def cached(self) -> bool:
        """Whether a readable int8 model for this network, size rule and data is cached (checked
        once: a corrupt file counts as missing and is rebuilt)."""
        if self._cached is None:
            from stages.engines.quantize import cache_path, readable

            self._cached = readable(cache_path(self.model_path, self.input_policy, self.calibration,
                                               self.cache_dir, self.min_share))
        return self._cached

    # -- getting the int8 model ready ----------------------------------------------------------

    def _before_ready(self, batch: np.ndarray) -> Any:
        """The engine for a call that came before the int8 model was ready.  After a failed
        quantization a waiting run stops with the error; a live one goes on unquantized."""
        if self._failure is not None:
            if self.wait:
                raise self._failure
            return self._fallback_engine()
        if self.calibration.path is None:
            self._collect(batch)
        else:
            self._start()
        if self.wait:
            self.wait_ready()
        return self._quantized or self._fallback_engine()

    def _collect(self, batch: np.ndarray) -> None:
        """Keep the run's own net inputs until there are enough to calibrate on."""
        with self._lock:
            if self._job is not None:
                return
            self._collected.extend(np.array(net_input, dtype=np.float32) for net_input in batch)
            if len(self._collected) < self.calibration.frames and not self.cached:
                return
        self._start()

    def _start(self) -> None:
        """Start making the int8 model (once), in a thread of its own."""
        with self._lock:
            if self._job is not None:
                return
            self._job = threading.Thread(target=self._make, name="int8-quantize", daemon=True)
        self._job.start()

    def _make(self) -> None:
        if not self.wait and hasattr(os, "setpriority"):
            try:                            # Linux: a thread id sets that thread's niceness only
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICENESS)
            except OSError:
                pass
        try:
            path = quantized_model(self.model_path, self.input_policy, self.calibration,
                                   self._calibration_inputs, self.cache_dir, self.min_share, self._stop)
            if self._stop.is_set():
                return
            engine = self._openvino(path, "int8")
            if not self.wait and self._last_size is not None:
                engine.warmup(*self._last_size)         # compiled before it takes over
        except QuantizeStopped:
            log.info("int8: the run ended before %s was quantized; the next run quantizes it",
                     self.model_path.name)
            return
        except BaseException as error:      # raised by wait_ready; live runs keep the fallback
            log.error("int8: quantizing %s failed: %s%s", self.model_path.name, error,
                      "" if self.wait else f"; the {self.fallback_precision} network goes on")
            self._failure = error
            return
        self._quantized = engine
        self._collected = []
        if not self.wait:
            log.info("int8: the quantized network answers from now on (%d call(s) ran unquantized "
                     "in %s meanwhile)", self.fallback_calls, self.fallback_precision)

    def _calibration_inputs(self) -> list[np.ndarray]:
        if self.calibration.path is None:
            return list(self._collected)
        from stages.preprocess import prepare

        return [prepare(image, self.preprocess, self.input_height, self.scale)[0]
                for image in read_calibration_images(self.calibration)]

    def _openvino(self, path: Path, precision: str) -> OpenVinoEngine:
        return OpenVinoEngine(path, self.preprocess, stride=self.stride, precision=precision,
                              threads=self.threads, workers=self.workers)

    def _fallback_engine(self) -> OpenVinoEngine:
        with self._lock:
            if self._fallback is None:
                log.info("int8: the unquantized network (%s) answers until the int8 one is ready",
                         self.fallback_precision)
                self._fallback = self._openvino(self.model_path, self.fallback_precision)
            self.fallback_calls += 1
            return self._fallback


def calibration_for(config: "Config") -> tuple[Calibration, bool]:
    """(what to calibrate on, whether to quantize before the first frame) for ``config``.

    ``inference.calibration`` when set; else the run's own source when it is one video file, image
    or folder; else the run's first frames.  Waiting happens when every source is a file or
    folder (live sources and the demo stream keep running while the model is quantized), unless
    ``inference.calibrate_first`` says otherwise; never on the run's own frames.
    """
    frames = config.inference.calibration_frames
    first = config.inference.calibrate_first
    sources = list(config.sources) or [config.source]
    uris = [None if source.uri is None else str(source.uri).strip() for source in sources]
    local = [_local_path(uri) for uri in uris]
    all_files = all(path is not None for path in local)
    if config.inference.calibration:
        return Calibration.from_path(config.inference.calibration, frames), all_files if first is None else first
    if len(local) == 1 and local[0] is not None:
        return Calibration.from_path(local[0], frames, key="source.uri"), True if first is None else first
    names = [source.name or f"cam{index}" for index, source in enumerate(sources)]
    identity = ",".join(uri if uri and uri.lower() == DEMO_URI else f"{name}:{uri}"
                        for name, uri in zip(names, uris))
    return Calibration.from_run(names, frames, identity), False


def _local_path(uri: str | None) -> Path | None:
    """The file or folder a source URI names, or None (webcam, stream URL, demo, default)."""
    if not uri or uri.lower() == DEMO_URI or is_live_uri(uri):
        return None
    path = Path(uri[len("file://"):] if uri.lower().startswith("file://") else uri).expanduser()
    return path if path.exists() else None


def ir_int8_error(spec: Any) -> ConfigError:
    """The user error of ``--precision int8`` for an IR network (``spec.ir``): NNCF quantizes
    the ONNX exports of torch networks only; an IR network may publish an int8 variant."""
    ir = spec.ir
    if ir.int8_variant is None:
        return ConfigError(f"inference.precision 'int8': {spec.name!r} is an OpenVINO IR, which is "
                           "not quantized here; run it with --precision bf16 or fp32")
    where = ("the default variant" if ir.int8_variant == ir.default_variant
             else f"python -m backbones.fetch {spec.name} --variant {ir.int8_variant}")
    return ConfigError(f"inference.precision 'int8': the {spec.name} IR's {ir.int8_variant} "
                       f"variant is quantized by Intel already ({where}); run it with "
                       "--precision bf16 or fp32")


def build_int8_engine(config: "Config", path: Path, preprocess: Any, threads: int | None,
                      workers: int) -> Int8Engine:
    """The int8 engine for ``config`` (called by the openvino engine's builder, which refuses IR
    networks first: ``ir_int8_error``)."""
    if not has_module("nncf"):
        raise ConfigError("inference.precision 'int8': the nncf package is not installed "
                          "(pip install -e \".[int8]\")")
    calibration, wait = calibration_for(config)
    engine = Int8Engine(path, preprocess, calibration, stride=int(preprocess.stride),
                        input_height=config.model.input_height, scale=config.model.scale,
                        threads=threads, workers=workers, wait=wait,
                        min_share=MIN_SHARE.get(config.model.backbone, 0.0))
    log.info("openvino engine: %s int8 (NNCF) from %s, calibrated on %s%s, %d worker(s) x %s "
             "thread(s)", config.model.backbone, path.name, calibration.label,
             "" if wait else " in the background", workers, threads)
    return engine

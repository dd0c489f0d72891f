"""``inference.precision: int8``: the OpenVINO engine on a model NNCF quantized for the run.

``Int8Engine`` answers every call at once.  For each net-input size it needs an int8 model
(``stages.engines.quantize``): cached from an earlier run, it is loaded at warm-up; otherwise it
is quantized on the calibration data, either

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

from stages.engines import OMZ, cpu_supports_bf16
from stages.engines.openvino import OpenVinoEngine
from stages.engines.quantize import Calibration, fit_to_input, quantized_model, read_calibration_images
from stream.errors import ConfigError

if TYPE_CHECKING:
    from stream.config import Config

log = logging.getLogger(__name__)

Size = tuple[int, int]
BACKGROUND_NICENESS = 10         # the quantizing thread yields the cores to the pipeline (Linux)


class Int8Engine:
    """``engine(batch) -> (heatmaps, pafs)`` through an NNCF-quantized model (see module doc).

    model_path: the ONNX export (or IR) to quantize.  calibration: what to calibrate on.
    wait: quantize before answering (True) or in the background meanwhile (False).
    fallback_precision: the unquantized network's precision while it answers.
    """

    name = "openvino"
    precision = "int8"

    def __init__(self, model_path: Path, preprocess: Any, calibration: Calibration, *, stride: int = 8,
                 threads: int | None = None, workers: int = 1, wait: bool = True,
                 fallback_precision: str | None = None, cache_dir: Path | None = None):
        self.model_path = Path(model_path)
        self.preprocess = preprocess
        self.stride = stride
        self.threads = threads
        self.workers = max(1, int(workers))
        self.calibration = calibration
        self.wait = wait
        self.cache_dir = cache_dir
        self.fallback_precision = fallback_precision or ("bf16" if cpu_supports_bf16() else "fp32")
        self._fallback: OpenVinoEngine | None = None
        self._quantized: dict[Size, OpenVinoEngine] = {}
        self._jobs: dict[Size, threading.Thread] = {}
        self._failures: dict[Size, BaseException] = {}
        self._collected: dict[Size, list[np.ndarray]] = {}
        self._lock = threading.Lock()
        self.fallback_calls = 0                  # calls answered by the unquantized network

    def _openvino(self, path: Path, precision: str) -> OpenVinoEngine:
        return OpenVinoEngine(path, self.preprocess, stride=self.stride, precision=precision,
                              threads=self.threads, workers=self.workers)

    # -- answering ---------------------------------------------------------------------------

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        size = (int(batch.shape[-2]), int(batch.shape[-1]))
        engine = self._quantized.get(size)
        if engine is None:
            engine = self._prepare(size, batch)
        return engine(batch)

    def warmup(self, height: int, width: int, runs: int = 1) -> None:
        """Get the int8 model for [1,3,height,width] ready (cached, or quantized when ``wait``;
        else start quantizing from the calibration path), then run ``runs`` dummy batches."""
        size = (int(height), int(width))
        if self.calibration.path is not None or self._cached(size):
            self._start(size)
            if self.wait:
                self.wait_ready(size)
        dummy = np.zeros((1, 3, height, width), dtype=np.float32)
        for _ in range(runs):
            engine = self._quantized.get(size) or self._fallback_engine()
            engine(dummy)

    def ready(self, size: Size) -> bool:
        """Whether the int8 model for net-input ``size`` (height, width) answers calls."""
        return size in self._quantized

    def wait_ready(self, size: Size, timeout_s: float | None = None) -> bool:
        """Block until the int8 model for ``size`` is ready (or quantizing failed: re-raised)."""
        job = self._jobs.get(size)
        if job is not None:
            job.join(timeout_s)
        failure = self._failures.get(size)
        if failure is not None:
            raise failure
        return self.ready(size)

    # -- getting the int8 model ready ----------------------------------------------------------

    def _prepare(self, size: Size, batch: np.ndarray) -> Any:
        """The engine for a call at ``size`` before its int8 model is ready."""
        if size in self._failures:
            raise self._failures[size]
        if self.calibration.path is None:
            self._collect(size, batch)
        else:
            self._start(size)
        if self.wait:
            self.wait_ready(size)
        return self._quantized.get(size) or self._fallback_engine()

    def _collect(self, size: Size, batch: np.ndarray) -> None:
        """Keep the run's own net inputs until there are enough to calibrate on."""
        with self._lock:
            if size in self._jobs:
                return
            frames = self._collected.setdefault(size, [])
            frames.extend(np.array(net_input, dtype=np.float32) for net_input in batch)
            if len(frames) < self.calibration.frames and not self._cached(size):
                return
        self._start(size)

    def _cached(self, size: Size) -> bool:
        from stages.engines.quantize import cache_path

        return cache_path(self.model_path, (1, 3, *size), self.calibration, self.cache_dir).is_file()

    def _start(self, size: Size) -> None:
        """Start getting the int8 model for ``size`` (once); ``wait`` runs it in this thread."""
        with self._lock:
            if size in self._jobs or size in self._quantized:
                return
            job = threading.Thread(target=self._make, args=(size,), name=f"int8-{size[0]}x{size[1]}",
                                   daemon=True)
            self._jobs[size] = job
        job.start()

    def _make(self, size: Size) -> None:
        if not self.wait and hasattr(os, "setpriority"):
            try:                            # Linux: a thread id sets that thread's niceness only
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICENESS)
            except OSError:
                pass
        try:
            path = quantized_model(self.model_path, (1, 3, *size), self.calibration,
                                   lambda: self._calibration_inputs(size), self.cache_dir)
            engine = self._openvino(path, "int8")
            engine.warmup(*size)
        except BaseException as error:      # handed to the caller by wait_ready / the next call
            log.error("int8: quantizing %s for %dx%d failed: %s", self.model_path.name, *size, error)
            self._failures[size] = error
            return
        self._quantized[size] = engine
        self._collected.pop(size, None)
        if not self.wait:
            log.info("int8: the quantized network answers from now on (%d call(s) ran unquantized "
                     "in %s meanwhile)", self.fallback_calls, self.fallback_precision)

    def _calibration_inputs(self, size: Size) -> list[np.ndarray]:
        if self.calibration.path is None:
            return list(self._collected.get(size, []))
        images = read_calibration_images(self.calibration)
        return [fit_to_input(image, self.preprocess, *size) for image in images]

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
    or folder; else the run's first frames.  Waiting happens only when every source is a file or
    folder (live sources and the demo stream keep running while the model is quantized).
    """
    from stream.sources import DEMO_URI

    frames = config.inference.calibration_frames
    sources = list(config.sources) or [config.source]
    uris = [None if source.uri is None else str(source.uri).strip() for source in sources]
    local = [_local_path(uri) for uri in uris]
    all_files = all(path is not None for path in local)
    if config.inference.calibration:
        return Calibration.from_path(config.inference.calibration, frames), all_files
    if len(local) == 1 and local[0] is not None:
        return Calibration.from_path(local[0], frames, key="source.uri"), True
    names = [source.name or f"cam{index}" for index, source in enumerate(sources)]
    identity = ",".join(uri if uri and uri.lower() == DEMO_URI else f"{name}:{uri}"
                        for name, uri in zip(names, uris))
    return Calibration.from_run(names, frames, identity), False


def _local_path(uri: str | None) -> Path | None:
    """The file or folder a source URI names, or None (webcam, stream URL, demo, default)."""
    from stream.live import is_live_uri
    from stream.sources import DEMO_URI

    if not uri or uri.lower() == DEMO_URI or is_live_uri(uri):
        return None
    path = Path(uri[len("file://"):] if uri.lower().startswith("file://") else uri).expanduser()
    return path if path.exists() else None


def build_int8_engine(config: "Config", path: Path, preprocess: Any, threads: int | None,
                      workers: int) -> Int8Engine:
    """The int8 engine for ``config`` (called by the openvino engine's builder)."""
    if config.model.backbone == OMZ:
        raise ConfigError("inference.precision 'int8': the omz IR is quantized by Intel already "
                          "(FP16-INT8); run it with --precision bf16 or fp32")
    calibration, wait = calibration_for(config)
    engine = Int8Engine(path, preprocess, calibration, stride=int(preprocess.stride), threads=threads,
                        workers=workers, wait=wait)
    log.info("openvino engine: %s int8 (NNCF) from %s, calibrated on %s%s, %d worker(s) x %s "
             "thread(s)", config.model.backbone, path.name, calibration.label,
             "" if wait else " in the background", workers, threads)
    return engine

"""``auto``: the most accurate configuration that keeps the stream at ``run.target_fps`` here.

When the network (``model.backbone: auto``, the default) or the input size (no
``model.input_height`` / ``model.scale``) is left to it, auto chooses them, with the precision
where that too is ``auto``, from two things:

- how accurate each configuration is: ``CANDIDATES``, COCO keypoint AP on the 260 val2017 images
  of ``python -m benchmarks.accuracy`` (benchmarks/results), best first;
- how fast this machine runs it: the CPU time a frame costs the engine alone (core-ms), measured
  once per machine, network and precision (a second or two each, cached in
  ``<weights>/auto/measurements.json``), plus what the rest of the pipeline costs a frame
  (``OTHER_CORE_MS``); the cores divided by that sum is the estimate.  CPU time, not wall time:
  other work on the machine while it measures barely changes it.

The first candidate whose estimate reaches the target wins; when none does, the fastest one
measured.  A candidate is skipped when it cannot run here: a network whose files are missing and
cannot be fetched (offline), bf16 on a CPU without native bf16, int8 without NNCF or where its AP
cost against fp32 exceeds ``INT8_MAX_AP_COST``.  Every explicit setting is kept and narrows the
choice; weights given without a network name theirs (an ``.xml`` IR is omz, anything else
mobilenet_thin).  With the network and the input size both given, nothing is measured: the
engines' own precision rule applies (bf16 where the CPU has it natively, else fp32).
``resolve(config)`` returns the config with the choice filled in and logs one line saying what was
chosen and why.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

from stream.config import Config
from stream.measurements import MeasurementCache, default_cache_path, machine_key

log = logging.getLogger(__name__)

AUTO = "auto"
NOMINAL_FRAME = (480, 640)      # (rows, columns) the estimate assumes: the benchmark clip's size
OTHER_CORE_MS = 7.5             # core-ms a 640x480 frame costs outside the engine (benchmarks.stage_cpu)
INT8_MAX_AP_COST = 0.010        # int8 is a candidate only where it loses at most this against fp32
MEASURE_SECONDS = 0.6           # timed engine calls per network and precision (after a warm-up)
REFERENCE_HEIGHT = 368          # net-input rows a network is measured at (other sizes: by pixels)
# what each engine runs on a CPU ("auto": Intel's IR, which only OpenVINO reads)
ENGINE_PRECISIONS = {"openvino": {"auto", "fp32", "bf16", "int8"}, "torch": {"fp32", "bf16"},
                     "onnxruntime": {"fp32"}}
INT8_GAIN = 1.2                 # int8 core-ms = its network's fp32/bf16 core-ms / this (the lowest
                                # end-to-end gain benchmarks/results show); not measured, as its model
                                # exists only after a calibration that must not delay a start


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One configuration with its COCO keypoint AP (``ap``) and, for int8, its fp32 AP."""

    backbone: str
    precision: str
    input_height: int
    ap: float
    fp32_ap: float | None = None

    @property
    def label(self) -> str:
        return f"{self.backbone} {self.precision} h{self.input_height}"


# benchmarks/results/AVX512-BF16/accuracy.md: the 260 COCO val2017 images, AP of the real pipeline.
CANDIDATES: tuple[Candidate, ...] = (
    Candidate("omz", "auto", 256, 0.356),
    Candidate("mobilenet_thin", "fp32", 480, 0.356),
    Candidate("mobilenet_thin", "bf16", 480, 0.339),
    Candidate("mobilenet_thin", "int8", 480, 0.338, fp32_ap=0.356),
    Candidate("mobilenet_thin", "fp32", 368, 0.324),
    Candidate("mobilenet_thin", "bf16", 368, 0.320),
    Candidate("mobilenet_thin", "int8", 368, 0.315, fp32_ap=0.324),
    Candidate("mobilenet_thin", "fp32", 256, 0.241),
    Candidate("mobilenet_thin", "bf16", 256, 0.238),
)


@dataclasses.dataclass(frozen=True)
class Choice:
    candidate: Candidate
    estimated_fps: float
    reason: str


def resolve(config: Config, *, measure: Callable[[Config], float] | None = None,
            cache_path: Path | None = None,
            available: Callable[[str, str | None], bool] | None = None) -> Config:
    """``config`` with every ``auto`` left in the model choice decided; unchanged when nothing is
    left to decide (or the device is CUDA, where the engines' own rules apply)."""
    config = name_network_of_weights(config)
    if not needs_choice(config):
        return config
    candidates = candidates_for(config, available or network_available)
    if not candidates:
        from stages.engines import named_backbone

        return config.model_copy(update={"model": config.model.model_copy(
            update={"backbone": named_backbone(config)})})
    choice = choose(config, candidates, measure=measure or measure_engine_cost, cache_path=cache_path)
    log.info("auto: %s", choice.reason)
    return apply(config, choice.candidate)


def needs_choice(config: Config) -> bool:
    """Whether the network or the input size is left to auto (on a CPU: CUDA has its own rule)."""
    model = config.model
    if str(model.device).startswith("cuda"):
        return model.backbone == AUTO
    return model.backbone == AUTO or (model.input_height is None and model.scale is None)


def name_network_of_weights(config: Config) -> Config:
    """Weights given with ``model.backbone: auto`` name their network
    (``stages.engines.named_backbone``: an .xml IR is omz, anything else mobilenet_thin)."""
    from stages.engines import named_backbone

    model = config.model
    if model.backbone != AUTO or model.weights is None:
        return config
    return config.model_copy(update={"model": model.model_copy(update={"backbone": named_backbone(config)})})


def apply(config: Config, candidate: Candidate) -> Config:
    """``config`` with the candidate's settings where the user left them to auto."""
    model, inference = config.model, config.inference
    updates_model: dict[str, Any] = {}
    if model.backbone == AUTO:
        updates_model["backbone"] = candidate.backbone
    if model.input_height is None and model.scale is None:
        if model.plan == "whole":
            updates_model["input_height"] = candidate.input_height
        elif model.whole_height is None:           # the plan keeps small frames whole at it
            updates_model["whole_height"] = candidate.input_height
    new_model = model.model_copy(update=updates_model)
    new_inference = inference
    if inference.precision == AUTO and candidate.precision != AUTO:
        update: dict[str, Any] = {"precision": candidate.precision}
        if candidate.precision == "int8" and inference.calibrate_first is None:
            update["calibrate_first"] = False         # auto's choice never delays a start
        new_inference = inference.model_copy(update=update)
    return config.model_copy(update={"model": new_model, "inference": new_inference})


def choose(config: Config, candidates: Sequence[Candidate], *, measure: Callable[[Config], float],
           cache_path: Path | None = None) -> Choice:
    """Of ``candidates`` (best first), the most accurate whose estimated fps reaches
    ``run.target_fps``, else the fastest one.  Each network and precision is measured once, at
    ``REFERENCE_HEIGHT`` (``measure(config) -> engine core-ms a frame``), where the cache has no
    figure for this machine; other sizes scale with the net input's pixels."""
    target = float(config.run.target_fps)
    cache = MeasurementCache(cache_path or default_cache_path())
    costs: dict[tuple[str, str], float] = {}
    tried: list[tuple[Candidate, float]] = []
    for candidate in candidates:
        pair = (candidate.backbone, candidate.precision)
        if pair not in costs:
            costs[pair] = engine_cost(config, candidate, cache, measure)
        core_ms = costs[pair] * net_pixels(candidate.input_height) / net_pixels(REFERENCE_HEIGHT)
        fps = estimate_fps(core_ms, NOMINAL_FRAME)
        tried.append((candidate, fps))
        if fps >= target:
            return Choice(candidate, fps, describe(candidate, fps, target, met=True, slower=len(tried) - 1))
    candidate, fps = max(tried, key=lambda pair: pair[1])
    return Choice(candidate, fps, describe(candidate, fps, target, met=False, slower=len(tried) - 1))


def engine_cost(config: Config, candidate: Candidate, cache: "MeasurementCache",
                measure: Callable[[Config], float] | None) -> float | None:
    """The engine's core-ms a frame for ``candidate``'s network and precision at
    ``REFERENCE_HEIGHT``: cached, else measured and kept (``measure`` None: the cache only, None
    when it has no figure).  int8: its network's unquantized cost / ``INT8_GAIN``."""
    from stages.engines import cpu_supports_bf16

    if candidate.precision == "int8":
        base = "bf16" if cpu_supports_bf16() else "fp32"
        cost = engine_cost(config, dataclasses.replace(candidate, precision=base), cache, measure)
        return None if cost is None else cost / INT8_GAIN
    key = cache_key(config, candidate)
    if measure is None or not cache.worth_measuring(key):
        return cache.get(key)
    at_reference = apply(config, candidate)
    at_reference = at_reference.model_copy(update={"model": at_reference.model.model_copy(
        update={"input_height": REFERENCE_HEIGHT, "scale": None})})
    return cache.put(key, measure(at_reference))


def net_pixels(height: int) -> int:
    """Net-input pixels of a 640x480 frame at ``height`` rows (width padded to a multiple of 8)."""
    width = height * NOMINAL_FRAME[1] / NOMINAL_FRAME[0]
    return height * (-(-round(width) // 8) * 8)


def describe(candidate: Candidate, fps: float, target: float, *, met: bool, slower: int) -> str:
    better = f"; {slower} more accurate one(s) too slow here" if slower else ""
    if met:
        return (f"{candidate.label} — the most accurate configuration estimated to keep "
                f"≥ {target:g} fps here ({fps:.1f} fps at 640x480, COCO AP {candidate.ap:.3f}){better}")
    return (f"{candidate.label} — none reaches {target:g} fps here; the fastest measured "
            f"({fps:.1f} fps at 640x480, COCO AP {candidate.ap:.3f})")


def candidates_for(config: Config,
                   available: Callable[[str, str | None], bool] | None = None) -> list[Candidate]:
    """``CANDIDATES`` that agree with every explicit setting and can run on this machine
    (``available(backbone, weights)``: its files are here or can be had now)."""
    available = available or network_available
    from stages.engines import cpu_supports_bf16, has_module

    from stages.engines import resolve_engine

    model, inference = config.model, config.inference
    runs = ENGINE_PRECISIONS.get(resolve_engine(config), set())   # auto: the weights' network
    chosen = []
    for candidate in CANDIDATES:
        if candidate.precision not in runs or (candidate.backbone == "omz" and "auto" not in runs):
            continue
        if model.backbone not in (AUTO, candidate.backbone):
            continue
        if inference.precision not in (AUTO, candidate.precision) and candidate.precision != AUTO:
            continue
        if candidate.precision == "bf16" and not cpu_supports_bf16():
            continue
        if candidate.precision == "int8" and (not has_module("nncf") or candidate.fp32_ap is None
                                              or candidate.fp32_ap - candidate.ap > INT8_MAX_AP_COST):
            continue
        if not available(candidate.backbone, model.weights):
            continue
        chosen.append(candidate)
    fixed_height = given_height(config)
    if fixed_height is None:
        return chosen
    # the size is the user's: one candidate per network and precision, at that size
    seen: set[tuple[str, str]] = set()
    at_size = []
    for candidate in chosen:
        if (candidate.backbone, candidate.precision) not in seen:
            seen.add((candidate.backbone, candidate.precision))
            at_size.append(dataclasses.replace(candidate, input_height=fixed_height))
    return at_size


def given_height(config: Config) -> int | None:
    """The net-input height the user fixed for a 640x480 frame (``input_height`` or ``scale``)."""
    model = config.model
    if model.input_height is not None:
        return int(model.input_height)
    if model.scale is not None:
        return max(8, round(NOMINAL_FRAME[0] * float(model.scale)))
    return None


@lru_cache(maxsize=None)
def network_available(backbone: str, weights: str | None) -> bool:
    """Whether ``backbone`` can run here: explicit weights are the user's word; else its default
    file exists, or it can be made or fetched now (``backbones.obtainable``)."""
    import backbones

    if weights is not None:
        return True
    return backbones.obtainable(backbone)


def estimate_fps(engine_core_ms: float, frame: Sequence[int], cores: int | None = None) -> float:
    """End-to-end fps: the cores over what a frame costs them, the engine's core-ms plus
    ``other_core_ms`` for capture, resizing, decoding, drawing."""
    from stages.inference import available_cores

    cores = cores or available_cores()
    return cores * 1000.0 / (engine_core_ms + other_core_ms(frame))


def other_core_ms(frame: Sequence[int]) -> float:
    """What a frame of ``frame`` (rows, columns) costs outside the engine: ``OTHER_CORE_MS``
    scaled with its pixels."""
    return OTHER_CORE_MS * (frame[0] * frame[1]) / (NOMINAL_FRAME[0] * NOMINAL_FRAME[1])


def pixel_budget(config: Config, frame: Sequence[int], cache_path: Path | None = None) -> int | None:
    """Net-input pixels a frame of ``frame`` (rows, columns) may cost the engine while the stream
    keeps ``run.target_fps`` here, from the measured cost of the config's network and precision
    (the cache; nothing is measured here); None when this machine has no figure for them (the
    inference plan then compares plans by pixels alone)."""
    import backbones
    from stages.engines import resolve_engine, resolve_precision
    from stages.inference import available_cores

    model = config.model
    if model.backbone == AUTO or str(model.device).startswith("cuda"):
        return None
    # an IR network is measured as auto's candidate runs it (its own precision); others by the
    # engines' precision rule
    precision = AUTO if backbones.ir_backbone(model.backbone) is not None \
        else resolve_precision(config, resolve_engine(config))
    cache = MeasurementCache(cache_path or default_cache_path())
    core_ms = engine_cost(config, Candidate(model.backbone, precision, REFERENCE_HEIGHT, 0.0), cache, None)
    if core_ms is None:
        return None
    engine_ms = available_cores() * 1000.0 / float(config.run.target_fps) - other_core_ms(frame)
    return max(0, int(engine_ms / core_ms * net_pixels(REFERENCE_HEIGHT)))


def measure_engine_cost(config: Config) -> float:
    """The engine's CPU time (core-ms) a frame on a 640x480 frame's net input, with as many
    threads calling it as the pipeline uses (``engine.workers``)."""
    import numpy as np

    from stream.runtime import expected_input_size, load_engine

    engine = load_engine(config.model_copy(update={"inference": config.inference.model_copy(
        update={"warmup": 1})}))
    height, width = expected_input_size(config, engine.preprocess)
    batch = np.zeros((1, 3, height, width), dtype=np.float32)
    workers = max(1, int(getattr(engine, "workers", 1)))
    counts = [0] * workers
    deadline = time.perf_counter() + MEASURE_SECONDS

    def call(slot: int) -> None:
        while time.perf_counter() < deadline:
            engine(batch)
            counts[slot] += 1

    cpu_started = time.process_time()
    threads = [threading.Thread(target=call, args=(slot,)) for slot in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cpu_s = time.process_time() - cpu_started
    return cpu_s * 1000.0 / max(sum(counts), 1)


def cache_key(config: Config, candidate: Candidate) -> str:
    """The cache's key for ``candidate`` run by ``config``: machine, network, precision, engine
    (a torch run does not read OpenVINO's figure) and weights."""
    from stages.engines import resolve_engine

    weights = config.model.weights or "default"
    engine = resolve_engine(apply(config, candidate))
    return (f"{machine_key()}|{candidate.backbone} {candidate.precision} h{REFERENCE_HEIGHT}"
            f"|{engine}|weights {weights}")

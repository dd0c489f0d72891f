"""One benchmark measurement, run in its own process by ``benchmarks/run.py``.

Each case (a backbone × engine × mode × height of our pipeline, or a reference loop) runs in a
fresh interpreter, so no thread pool, compiled model or allocator state of one case slows or
speeds the next.  ``python -m benchmarks.bench_worker CASE.json OUT.json``.

A pipeline case is the project's own ``stream.pipeline.Pipeline`` on the clip, with skeletons
drawn (no window, no video written) and JSON lines written to a temporary file (to read back the
people).  For untrained networks its engine is wrapped in ``SubstitutedMaps`` (see bench_media).
Result: the pipeline's stats report, plus ``cpu_percent`` (process CPU time / wall time; 100 =
one core busy), the engine's description and the people of every frame.  Every case also reports
``peak_rss_mb`` (the worker process's peak resident memory) and pipeline cases
``first_frame_s`` (from the worker process's start, interpreter and imports included, to the
first frame's outputs written: what a user waits for on one photo).
"""

from __future__ import annotations

import json
import logging
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.machine import machine_busy_s

log = logging.getLogger(__name__)

# name → config values; "torch-bf16" is bf16 autocast + channels_last on CPU, fp16 on CUDA.
ENGINE_VARIANTS: dict[str, dict[str, Any]] = {
    "torch-fp32": {"inference.engine": "torch", "inference.precision": "fp32"},
    "torch-bf16": {"inference.engine": "torch", "inference.precision": "bf16",
                   "inference.channels_last": True},
    "torch-fp16": {"inference.engine": "torch", "inference.precision": "fp16",
                   "inference.channels_last": True},
    "torch-fp16-compile": {"inference.engine": "torch", "inference.precision": "fp16",
                           "inference.channels_last": True, "inference.compile": True},
    "onnxruntime": {"inference.engine": "onnxruntime", "inference.precision": "fp32"},
    "openvino-fp32": {"inference.engine": "openvino", "inference.precision": "fp32"},
    "openvino-bf16": {"inference.engine": "openvino", "inference.precision": "bf16"},
    "openvino-int8": {"inference.engine": "openvino", "inference.precision": "int8"},
}
ENGINE_ALONE_S = 3.0          # engine-alone loop per case: half before the pipeline, half after
MIN_ALONE_CALLS = 3           # per worker thread, for networks slower than the loop's time


def pipeline_config(case: dict, json_path: str) -> Any:
    """The run's Config: the project's own defaults plus what the case sets (an engine variant
    name, and ``config``: dotted config values applied last)."""
    from stream.config import load_config

    values = {
        "source.uri": case["clip"], "model.backbone": case["backbone"],
        "model.weights": case.get("weights"), "model.input_height": case["height"],
        "model.device": case.get("device", "auto"), "pipeline.mode": case["mode"],
        "run.max_frames": case.get("max_frames"), "run.max_seconds": case.get("max_seconds"),
        "run.progress": False, "run.log_level": "WARNING", "output.display": False,
        "output.json": json_path, "render.show": "skeleton",
        **ENGINE_VARIANTS.get(case["engine"], {}),
        **case.get("config", {}),         # any other config values (e.g. the accuracy benchmark's)
    }
    for key in ("threads", "workers"):
        if case.get(key):
            values[f"inference.{key}"] = case[key]
    from stream.auto import resolve

    return resolve(load_config(None, values=values))       # what the CLI would run: auto decided


def run_pipeline_case(case: dict) -> dict:
    """Our pipeline on the clip as ``case`` says; the stats report + cpu_percent + people."""
    from stream.pipeline import Pipeline

    with tempfile.TemporaryDirectory(prefix="posestream-bench-") as tmp:
        json_path = str(Path(tmp) / "people.jsonl")
        config = pipeline_config(case, json_path)
        engine, runs, net_input = case_engine(case, config)
        alone_before = engine_alone_fps(engine, net_input, ENGINE_ALONE_S / 2)
        with Pipeline(config, engine=runs) as pipeline, CpuUse() as cpu:
            report = pipeline.run()
        people = read_people(json_path)
    report["first_frame_s"] = first_frame_s(pipeline.stats.first_done_at)
    report.update(cpu.percentages())
    alone_after = engine_alone_fps(engine, net_input, ENGINE_ALONE_S / 2)
    report["engine_alone_fps"] = round((alone_before + alone_after) / 2, 2)
    report["engine"] = describe_engine(engine, config)
    report["people"] = people
    return report


def case_engine(case: dict, config: Any) -> tuple[Any, Any, np.ndarray]:
    """(the case's engine, ready to time: an int8 one quantized or loaded; what the pipeline runs:
    that engine, or it wrapped in ``SubstitutedMaps`` when the case names a ``donor``; the clip's
    first net input, for the engine-alone loop)."""
    from benchmarks.bench_media import MapDonor, SubstitutedMaps, frame_fingerprints
    from stages.inference import make_engine

    engine = runs = make_engine(config)
    height = case["height"] or config.model.input_height or config.model.whole_height
    net_input = first_net_input(Path(case["clip"]), engine.preprocess, height)
    if getattr(engine, "precision", None) == "int8":
        engine.warmup(*net_input.shape[-2:])
    if case.get("donor"):
        donor = MapDonor(Path(case["donor"]))
        known = frame_fingerprints(Path(case["clip"]), engine.preprocess, height, len(donor))
        runs = SubstitutedMaps(engine, donor, known)
    return engine, runs, net_input


def first_net_input(clip: Path, spec: Any, height: int) -> np.ndarray:
    """The clip's first frame prepared as the pipeline prepares it: [1,3,H,W] float32."""
    from posestream_common.media import read_video_frames
    from stages.preprocess import prepare

    frames = read_video_frames(clip, 1)
    if not frames:
        raise RuntimeError(f"cannot read a frame of {clip}")
    return prepare(frames[0], spec, height)[0][np.newaxis]


def engine_alone_fps(engine: Any, net_input: np.ndarray, seconds: float) -> float:
    """Inferences per second of ``engine`` alone on ``net_input``: ``engine.workers`` threads
    calling it back to back for ``seconds`` and at least ``MIN_ALONE_CALLS`` times each (the
    pipeline's own streams and threads), after one call each to settle (not timed: a slow
    network's first call would otherwise weigh on a short loop).  Each thread's rate is taken
    over its own calls, so one finishing its last call early does not count as idle time."""
    import threading

    workers = max(1, int(getattr(engine, "workers", 1)))
    counts, finished = [0] * workers, [0.0] * workers
    clock: dict[str, float] = {}

    def begin() -> None:            # run once, when every thread has made its settling call
        clock["started"] = time.perf_counter()
        clock["deadline"] = clock["started"] + seconds

    start = threading.Barrier(workers + 1, action=begin)

    def loop(slot: int) -> None:
        engine(net_input)
        start.wait()
        while time.perf_counter() < clock["deadline"] or counts[slot] < MIN_ALONE_CALLS:
            engine(net_input)
            counts[slot] += 1
        finished[slot] = time.perf_counter()

    threads = [threading.Thread(target=loop, args=(slot,), daemon=True) for slot in range(workers)]
    for thread in threads:
        thread.start()
    start.wait()
    for thread in threads:
        thread.join()
    return sum(count / (end - clock["started"]) for count, end in zip(counts, finished))


class CpuUse:
    """CPU use while active: this process's (``cpu_percent``) and everyone else's on the machine
    (``others_cpu_percent``, from /proc/stat; 100 = one core busy), to tell a quiet run from one
    that shared the cores."""

    def __enter__(self) -> "CpuUse":
        self._start = (time.monotonic(), _own_cpu_s(), machine_busy_s())
        return self

    def __exit__(self, *exc: Any) -> None:
        self._end = (time.monotonic(), _own_cpu_s(), machine_busy_s())

    def percentages(self) -> dict[str, float | None]:
        wall_s = self._end[0] - self._start[0]
        own_s = self._end[1] - self._start[1]
        result: dict[str, float | None] = {"cpu_percent": round(100.0 * own_s / wall_s, 1) if wall_s else 0.0,
                                           "others_cpu_percent": None}
        if wall_s and self._start[2] is not None and self._end[2] is not None:
            others_s = max(0.0, (self._end[2] - self._start[2]) - own_s)
            result["others_cpu_percent"] = round(100.0 * others_s / wall_s, 1)
        return result


def first_frame_s(first_done_at: float | None) -> float | None:
    """Seconds from this process's start to ``first_done_at`` (a time.monotonic() value); None
    where either is unknown (no frame, or no Linux /proc)."""
    age_s = process_age_s()
    if first_done_at is None or age_s is None:
        return None
    return round(age_s - (time.monotonic() - first_done_at), 2)


def process_age_s() -> float | None:
    """Seconds since this process started (Linux /proc, 10 ms resolution), else None."""
    try:
        uptime_s = float(Path("/proc/uptime").read_text().split()[0])
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])                    # field 22, starttime, after pid and comm
    except (OSError, ValueError, IndexError):
        return None
    return uptime_s - start_ticks / os.sysconf("SC_CLK_TCK")


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB: Linux's VmHWM (ru_maxrss there also counts
    the parent's pages that a fork before exec touched), else ru_maxrss (bytes on macOS)."""
    try:
        status = Path("/proc/self/status").read_text()
        return round(int(status.split("VmHWM:", 1)[1].split()[0]) / 1024, 1)
    except (OSError, IndexError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return round(peak / (1 << 20) if sys.platform == "darwin" else peak / 1024, 1)


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def describe_engine(engine: Any, config: Any) -> str:
    from stages.engines import describe

    if engine is None:
        return "?"
    text = describe(engine)
    if getattr(engine, "name", "") == "torch":
        import torch

        text += f" threads={torch.get_num_threads()}"
        text += " channels_last" if config.inference.channels_last else ""
    return text


def read_people(json_path: str) -> list[np.ndarray]:
    """Per frame (in frame order) the people (P,18,3) of a JSON-lines file."""
    frames: dict[int, np.ndarray] = {}
    path = Path(json_path)
    if not path.is_file():
        return []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        people = [person["pose_keypoints_2d"] for person in record["people"]]
        frames[record["frame"]] = np.asarray(people, dtype=np.float32).reshape(-1, 18, 3)
    return [frames[index] for index in sorted(frames)]


def run_reference_case(case: dict) -> dict:
    from benchmarks.bench_media import MapDonor
    from benchmarks.reference_loops import run_reference_loop

    donor = MapDonor(Path(case["donor"])) if case.get("donor") else None
    return run_reference_loop(case["loop"], case["clip"], case["backbone"], case.get("weights"),
                              donor, case.get("max_frames"), case.get("max_seconds"),
                              case.get("device", "cpu"))


def main(argv: list[str]) -> int:
    case_path, out_path = Path(argv[0]), Path(argv[1])
    case = json.loads(case_path.read_text())
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    result = run_reference_case(case) if case["kind"] == "reference" else run_pipeline_case(case)
    result["people"] = [people.round(2).tolist() for people in result["people"]]
    result["process_s"] = round(time.perf_counter() - started, 2)
    result["peak_rss_mb"] = peak_rss_mb()
    out_path.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Where a threaded pipeline's CPU goes: core-milliseconds per frame for each group of threads.

    python -m benchmarks.stage_cpu [--backbone mobilenet_thin] [--engine openvino-bf16]
                                   [--height 368] [--frames 600] [--weights W] [--work-dir DIR]

When the network keeps every core busy, whatever the other stages spend per frame is taken from
inference, so the pipeline's fps ÷ the engine's own fps can be at most E / (E + R): E the
core-ms a frame the engine alone needs (cores × 1000 ÷ its fps), R what the other threads spend
per frame.  This runs the ``benchmarks.run`` clip (looped up to ``--frames``) through the
project's pipeline as a ``benchmarks.run`` case does (cmu and mobilenet: random weights, the
realistic maps of ``bench_media.SubstitutedMaps`` downstream), samples every thread's CPU time
from /proc (Linux) and prints, per group (capture, preprocess, inference calls, postprocess,
render, main, the engine's and FFmpeg's own threads) and for the cores' idle time, core-ms per
frame, then R (every thread Python started) and that bound.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.bench_media import SUBSTITUTED, ensure_thin_weights, make_donor_maps, prepare_clip
from benchmarks.bench_worker import ENGINE_VARIANTS, case_engine, engine_alone_fps, pipeline_config
from posestream_common.errors import run_tool

log = logging.getLogger(__name__)
SAMPLE_S = 0.05
NATIVE = "engine and decoder threads"      # threads Python did not start: OpenVINO's, FFmpeg's
UNSAMPLED = "unsampled (threads' last moments)"


def thread_cpu_s() -> dict[int, float]:
    """CPU seconds (user + system) of each thread of this process, by native id."""
    tick = os.sysconf("SC_CLK_TCK")
    times = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:                 # the thread ended meanwhile
            continue
        times[int(tid)] = (int(fields[11]) + int(fields[12])) / tick
    return times


def group_of(name: str) -> str:
    """The group a Python thread's name belongs to: ``stage-preprocess-cam0`` → preprocess."""
    if name == "MainThread":
        return "main"
    return name.split("-")[1] if name.startswith("stage-") else name


class ThreadCpu:
    """Samples every thread's CPU time while active.  A thread's last sample stands for its total,
    so what a thread did after it (at most one sample period) goes under ``UNSAMPLED``: the
    process's own CPU time minus the sum of the threads'."""

    def __init__(self) -> None:
        self.last: dict[int, float] = {}
        self.start: dict[int, float] = {}
        self.names: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cpu-sampler", daemon=True)

    def __enter__(self) -> "ThreadCpu":
        self._process = [time.process_time(), 0.0]
        self.start = thread_cpu_s()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self._process[1] = time.process_time()

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self._sample()

    def _sample(self) -> None:
        self.names.update({thread.native_id: thread.name for thread in threading.enumerate()
                           if thread.native_id is not None})
        self.last.update(thread_cpu_s())

    def by_group(self) -> dict[str, float]:
        """CPU seconds spent while active, per group (the sampler's own under cpu-sampler)."""
        groups: dict[str, float] = {}
        for tid, seconds in self.last.items():
            group = group_of(self.names[tid]) if tid in self.names else NATIVE
            groups[group] = groups.get(group, 0.0) + seconds - self.start.get(tid, 0.0)
        groups[UNSAMPLED] = max(0.0, self._process[1] - self._process[0] - sum(groups.values()))
        return groups


def measure(backbone: str, engine_name: str, height: int, frames: int, work_dir: Path,
            weights: str | None = None) -> dict:
    from stages.inference import available_cores
    from stream.pipeline import Pipeline

    clip, _ = prepare_clip(work_dir)
    case = {"clip": str(clip), "backbone": backbone, "height": height, "mode": "threaded",
            "engine": engine_name, "max_frames": frames, "config": {"source.loop": True},
            "weights": weights or ("random" if backbone in SUBSTITUTED else None)}
    config = pipeline_config(case, str(work_dir / "stage_cpu.jsonl"))
    if backbone in SUBSTITUTED and weights is None:      # random weights: realistic maps downstream
        ensure_thin_weights()
        case["donor"] = str(make_donor_maps(clip, height, work_dir))
    engine, runs, net_input = case_engine(case, config)
    alone_fps = engine_alone_fps(engine, net_input, 3.0)
    with Pipeline(config, engine=runs) as pipeline, ThreadCpu() as cpu:
        report = pipeline.run()
    done, cores = max(1, report["frames"]), available_cores()
    per_frame = {group: round(1000 * seconds / done, 2) for group, seconds in cpu.by_group().items()
                 if seconds > 0}
    sampler = per_frame.pop("cpu-sampler", 0.0)
    rest = sum(value for group, value in per_frame.items() if group not in (NATIVE, UNSAMPLED))
    idle = 1000 * cores / report["fps"] - sum(per_frame.values()) - sampler
    engine_ms = 1000 * cores / alone_fps
    return {"fps": report["fps"], "engine_alone_fps": round(alone_fps, 2),
            "ratio": round(report["fps"] / alone_fps, 3), "core_ms_per_frame": per_frame,
            "idle_core_ms": round(max(0.0, idle), 2), "sampler_core_ms": sampler,
            "rest_core_ms": round(rest, 2), "engine_alone_core_ms": round(engine_ms, 2),
            "bound": round(engine_ms / (engine_ms + rest), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stage_cpu", description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="mobilenet_thin")
    parser.add_argument("--engine", default="openvino-bf16", choices=sorted(ENGINE_VARIANTS))
    parser.add_argument("--height", type=int, default=368)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--weights", help="model.weights (omz: its IR .xml; default: the project's "
                                          "weights, random ones for cmu and mobilenet)")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "posestream-bench")
    args = parser.parse_args(argv)
    return run_tool(parser.prog, lambda: report(args))


def report(args: argparse.Namespace) -> None:
    result = measure(args.backbone, args.engine, args.height, args.frames, args.work_dir,
                     args.weights)
    log.info("%s %s h%d: %.1f fps, engine alone %.1f fps, ratio %.3f", args.backbone, args.engine,
             args.height, result["fps"], result["engine_alone_fps"], result["ratio"])
    for group, value in sorted(result["core_ms_per_frame"].items(), key=lambda item: -item[1]):
        log.info("  %-28s %6.2f core-ms a frame", group, value)
    log.info("  %-28s %6.2f core-ms a frame", "idle", result["idle_core_ms"])
    log.info("rest of the pipeline R = %.2f core-ms a frame (every Python thread); the engine "
             "alone E = %.2f; bound E/(E+R) = %.3f (the sampler itself: %.2f)", result["rest_core_ms"],
             result["engine_alone_core_ms"], result["bound"], result["sampler_core_ms"])


if __name__ == "__main__":
    raise SystemExit(main())

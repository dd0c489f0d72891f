"""Many cameras in one process: frames per second per camera with 1, 2 and 4 cameras, batched
vs unbatched inference; and the latency of a live camera.

    python benchmarks/multicam.py [--frames 60] [--repeats 2] [--cameras 1,2,4] [--input-height H]
    python benchmarks/multicam.py --live [--seconds 30] [--repeats 2] [--before OTHER_CHECKOUT]

Files: every camera reads the benchmarks' 640x480 clip (``bench_media.prepare_clip``: the test
media's dance2.mp4 resized, else the built-in demo stream; its first ``--frames``) through the
full pipeline with mobilenet_thin and its real weights, writing JSON lines.  *batched*: the
inference stage takes the newest frame of every camera as one forward
(``Pipeline(max_batch=cameras)``); *unbatched*: one frame per forward, cameras served in turn
(``max_batch=1``).  Also: the engine alone, ms per frame in
batches of 1, 2 and 4, and what the pipeline's default (``max_batch=None``: timed at start-up)
chooses for each camera count.  Settings alternate within each repeat so slow phases of a shared
machine hit every setting alike; the median run counts.  Per-camera fps is each camera's frames
over its own time to its last frame (the stats' ``sources`` section).

``--live``: one camera on the real RTSP test server (``benchmarks/rtsp_camera.py``, 640x480 at
15 fps) for ``--seconds``; reports end-to-end latency against the inference time.  ``--before`` also runs
the pipeline of another checkout (e.g. ``git archive`` of an older commit), alternating with this
one, each in a fresh process, for a before/after comparison.
Prints a table and writes JSON and Markdown into benchmarks/results/CLASS (``--out``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

from benchmarks import store
from benchmarks.bench_media import ROOT, clip_net_input, prepare_clip
from benchmarks.machine import load_average


def base_values(args: argparse.Namespace) -> dict:
    return {"model.backbone": "mobilenet_thin", "model.weights": args.weights,
            "model.input_height": args.input_height, "inference.warmup": 2,
            "output.display": False, "run.progress": False, "run.log_level": "WARNING"}


def run_files(clip: Path, out_dir: Path, cameras: int, batched: bool, args: argparse.Namespace) -> dict:
    from stream.config import load_config
    from stream.pipeline import Pipeline

    values = {**base_values(args), "output.json": str(out_dir / "{source}.jsonl")}
    if cameras == 1:
        values["source.uri"] = str(clip)
    else:
        values["sources"] = [{"uri": str(clip), "name": f"cam{number}"} for number in range(cameras)]
    with Pipeline(load_config(None, values=values), max_batch=cameras if batched else 1) as pipeline:
        report = pipeline.run()
    per_camera = [section["fps"] for section in report.get("sources", {}).values()] or [report["fps"]]
    return {"fps_total": report["fps"], "fps_per_camera": round(sum(per_camera) / len(per_camera), 3),
            "frames": report["frames"], "latency_ms": report["latency_ms"],
            "inference_ms": report["stages"]["inference"]["mean_ms"],
            "mean_batch": report.get("batches", {}).get("mean_frames", 1.0)}


def engine_per_frame_ms(args: argparse.Namespace, repeats: int = 3) -> dict[str, float]:
    """The engine alone: best ms per frame for batches of 1, 2 and 4 at the pipeline's input size."""
    from stream.runtime.batching import time_batches
    from stream.config import load_config
    from stream.runtime import load_engine

    config = load_config(None, values=base_values(args))
    engine = load_engine(config)
    height, width = clip_net_input(engine.preprocess, config.model.input_height, config.model.scale)
    result = {}
    for frames in (2, 4):
        single_ms, batched_ms = time_batches(engine, frames, height, width, repeats)
        result["1"] = min(result.get("1", single_ms), single_ms)
        result[str(frames)] = round(batched_ms, 1)
    result["1"] = round(result["1"], 1)
    return {"input": f"{width}x{height}", "ms_per_frame_by_batch": result}


def default_choice(clip: Path, cameras: int, args: argparse.Namespace) -> dict:
    """What ``Pipeline(max_batch=None)`` picks for ``cameras`` sources (opened, not run)."""
    from stream.config import load_config
    from stream.pipeline import Pipeline

    values = {**base_values(args),
              "sources": [{"uri": str(clip), "name": f"cam{number}"} for number in range(cameras)]}
    with Pipeline(load_config(None, values=values)) as pipeline:
        return {"max_batch": pipeline.max_batch, **(pipeline.batch_timing or {})}


def median_run(runs: list[dict]) -> dict:
    ordered = sorted(runs, key=lambda run: run["fps_per_camera"])
    return {**ordered[(len(ordered) - 1) // 2], "fps_per_camera_runs": [run["fps_per_camera"] for run in runs]}


def bench_files(args: argparse.Namespace) -> dict:
    cameras = [int(value) for value in args.cameras.split(",")]
    settings = [(count, batched) for count in cameras for batched in (True, False) if count > 1 or batched]
    runs: dict[str, list[dict]] = {}
    clip, content = prepare_clip(args.work_dir, frames=args.frames)
    with tempfile.TemporaryDirectory() as folder:
        engine = engine_per_frame_ms(args)
        choices = {str(count): default_choice(clip, count, args) for count in cameras if count > 1}
        for repeat in range(args.repeats):
            for count, batched in settings:
                key = f"{count}:{'batched' if batched else 'unbatched'}"
                out_dir = Path(folder) / f"{key.replace(':', '_')}_{repeat}"
                result = run_files(clip, out_dir, count, batched, args)
                runs.setdefault(key, []).append(result)
                logging.getLogger("multicam").warning("%s repeat %d: %.2f fps per camera", key, repeat,
                                                      result["fps_per_camera"])
    return {"clip": content, "engine": engine, "default_choice": choices,
            "results": {key: median_run(value) for key, value in runs.items()}}


def bench_live(args: argparse.Namespace) -> dict:
    """Each checkout's median live run (a fresh process per run, alternating checkouts)."""
    import subprocess

    roots = {"after": ROOT, **({"before": args.before.resolve()} if args.before else {})}
    runs: dict[str, list[dict]] = {label: [] for label in roots}
    for _ in range(args.repeats):
        for label, root in roots.items():
            command = [sys.executable, __file__, "--live-once", "--root", str(root), "--seconds", str(args.seconds),
                       "--input-height", str(args.input_height), *(["--weights", args.weights] if args.weights else [])]
            done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=root)
            runs[label].append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {label: {**sorted(results, key=lambda run: run["latency_ms"]["p50"])[(len(results) - 1) // 2],
                    "root": str(roots[label]), "latency_p50_runs": [run["latency_ms"]["p50"] for run in results]}
            for label, results in runs.items()}


def live_once(args: argparse.Namespace) -> dict:
    """One live run with the pipeline found first on sys.path."""
    from stream.config import load_config
    from stream.pipeline import run_pipeline
    from benchmarks.rtsp_camera import RtspServer

    server = RtspServer()
    server.start()
    try:
        values = {**base_values(args), "source.uri": server.url, "run.max_seconds": args.seconds}
        report = run_pipeline(load_config(None, values=values))
    finally:
        server.stop()
    inference_ms = report["stages"]["inference"]["mean_ms"]
    return {"frames": report["frames"], "fps": report["fps"], "dropped": report["dropped"],
            "latency_ms": report["latency_ms"], "inference_ms": inference_ms,
            "latency_p50_over_inference": round(report["latency_ms"]["p50"] / inference_ms, 2)}


def markdown(summary: dict) -> str:
    lines = ["# Many cameras in one process", "", store.machine_header(summary), "",
             f"`{summary['command']}`; load average before: {summary['load_before']}, "
             f"after: {summary['load_after']}.", ""]
    if "results" in summary:
        lines += [f"Clip: {summary['clip']}; mobilenet_thin, input height {summary['input_height']}.", "",
                  "| cameras | inference | fps per camera | total fps | mean batch | inference ms/frame "
                  "| latency p50 ms | runs (fps per camera) |", "|---|---|---|---|---|---|---|---|"]
        for key, result in summary["results"].items():
            count, mode = key.split(":")
            mode = mode if count != "1" else "(one frame per forward)"
            lines.append(f"| {count} | {mode} | {result['fps_per_camera']:.2f} | {result['fps_total']:.2f} | "
                         f"{result['mean_batch']:.2f} | {result['inference_ms']:.0f} | "
                         f"{result['latency_ms']['p50']:.0f} | {result['fps_per_camera_runs']} |")
    if "engine" in summary:
        engine = summary["engine"]
        lines += ["", f"Engine alone at {engine['input']} (torch, this process's threads), ms per frame by batch size: "
                  + ", ".join(f"{size}: {ms}" for size, ms in engine["ms_per_frame_by_batch"].items()) + ".",
                  "Default choice (``max_batch=None``, timed at start-up): "
                  + "; ".join(f"{count} cameras → max_batch {choice['max_batch']} (alone {choice.get('single_ms')} ms, "
                              f"batched {choice.get('batched_ms')} ms per frame)"
                              for count, choice in summary["default_choice"].items()) + ".", ""]
    if "live" in summary:
        lines += ["Live RTSP camera (benchmarks/rtsp_camera.py, 640x480 at 15 fps), median of the runs by latency:", "",
                  "| pipeline | frames | fps | dropped | latency p50 ms | latency p95 ms | inference ms "
                  "| p50 / inference | p50 runs |", "|---|---|---|---|---|---|---|---|---|"]
        for label, live in summary["live"].items():
            lines.append(f"| {label} | {live['frames']} | {live['fps']:.2f} | {live['dropped']} | "
                         f"{live['latency_ms']['p50']:.0f} | {live['latency_ms']['p95']:.0f} | "
                         f"{live['inference_ms']:.0f} | {live['latency_p50_over_inference']} | "
                         f"{live['latency_p50_runs']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=60, help="frames of the clip each camera reads")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cameras", default="1,2,4")
    parser.add_argument("--input-height", type=int, default=368)
    parser.add_argument("--weights", default=None, help="mobilenet_thin weights (default weights/)")
    parser.add_argument("--live", action="store_true", help="measure one live RTSP camera instead")
    parser.add_argument("--seconds", type=float, default=30.0, help="--live: how long")
    parser.add_argument("--before", type=Path, default=None, help="--live: another checkout to compare")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    parser.add_argument("--live-once", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help="JSON path, .md beside it (default: "
                        "benchmarks/results/CLASS/multicam.json, multicam_live.json with --live)")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "posestream-bench",
                        help="where the clip is cached")
    args = parser.parse_args()
    sys.path.insert(0, str(args.root.resolve()))
    sys.path.insert(1, str(ROOT))
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    if args.live_once:
        print(json.dumps(live_once(args)))
        return
    load_before = load_average()
    summary = {"command": store.command_line(), "input_height": args.input_height}
    if args.live:
        summary["live"] = bench_live(args)
    else:
        summary.update(bench_files(args))
    summary["load_before"], summary["load_after"] = load_before, load_average()
    stem = args.out.stem if args.out else ("multicam_live" if args.live else "multicam")
    store.write_results(stem, summary, markdown, out=args.out.parent if args.out else None,
                        headline=headline(summary), load_before=load_before)
    print(markdown(summary))


def headline(summary: dict) -> str:
    """One line for the class table."""
    if "live" in summary:
        return "; ".join(f"{label}: latency p50 {live['latency_ms']['p50']:.0f} ms"
                         for label, live in summary["live"].items())
    return "; ".join(f"{key} {result['fps_per_camera']:.2f} fps per camera"
                     for key, result in summary["results"].items())


if __name__ == "__main__":
    main()

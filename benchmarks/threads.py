"""Threaded vs sequential pipeline: frames per second and where the time goes.

    python -m benchmarks.threads [--frames 150] [--repeats 2] [--settings ...] [--input-height H]

The same 640x480 video goes through the full pipeline twice per setting: once in ``sequential``
mode (every stage in turn in one thread) and once ``threaded`` (one thread per stage, bounded
queues).  Both use mobilenet_thin with its real weights, write H.264 video and JSON lines, and
read the same file.  The video is ../shared/media/dance2.mp4 cropped to 640x480 when that file
exists, else 640x480 frames of the built-in demo stream (a real photo, panned and zoomed).
``--settings`` lists MODE:THREADS:WORKERS triples to run (torch intra-op threads; inference
workers, threaded mode only).  Settings alternate within each repeat so slow phases of a shared
machine hit every setting alike, and the median fps counts.
Prints a table and writes it as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from benchmarks.bench_media import shared_dir

ROOT = Path(__file__).resolve().parents[1]
SHARED_CLIP = shared_dir() / "media" / "dance2.mp4"    # ../shared, else the media cache
SIZE = (640, 480)
STAGES = ("capture", "preprocess", "inference", "postprocess", "render")
DEFAULT_SETTINGS = "sequential:2:1,sequential:1:1,threaded:2:1,threaded:1:1,threaded:1:2"


def make_clip(path: Path, frames: int) -> str:
    """Write a 640x480 H.264 clip to ``path``; returns a description of its content."""
    if SHARED_CLIP.is_file():
        images = _shared_frames(frames)
        origin = f"{SHARED_CLIP.name} centre-cropped to 640x480"
    else:
        images = _demo_frames(frames)
        origin = "demo stream (grace_hopper.jpg panned and zoomed)"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("h264", rate=30)
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        stream.options = {"crf": "20", "preset": "veryfast"}
        count = 0
        for image in images:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
            count += 1
        container.mux(stream.encode(None))
    return f"{origin}, {count} frames"


def _shared_frames(frames: int):
    with av.open(str(SHARED_CLIP)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index >= frames:
                return
            image = frame.to_ndarray(format="bgr24")
            height, width = image.shape[:2]
            top, left = max(0, (height - SIZE[1]) // 2), max(0, (width - SIZE[0]) // 2)
            crop = image[top:top + SIZE[1], left:left + SIZE[0]]
            if crop.shape[:2] != (SIZE[1], SIZE[0]):
                import cv2

                crop = cv2.resize(crop, SIZE, interpolation=cv2.INTER_AREA)
            yield np.ascontiguousarray(crop)


def _demo_frames(frames: int):
    from stream.demo import DemoSource

    with DemoSource(max_frames=frames) as demo:
        for frame in demo:
            yield frame.image


def run_once(clip: Path, out_dir: Path, mode: str, threads: int, workers: int,
             args: argparse.Namespace) -> dict:
    from stream.config import load_config
    from stream.pipeline import run_pipeline

    values = {
        "source.uri": str(clip), "pipeline.mode": mode, "pipeline.queue_size": args.queue_size,
        "model.backbone": "mobilenet_thin", "model.weights": args.weights,
        "model.input_height": args.input_height, "inference.threads": threads,
        "inference.workers": workers, "inference.engine": args.engine,
        "inference.precision": args.precision,
        "inference.channels_last": args.channels_last, "inference.warmup": 2,
        "output.video": str(out_dir / f"{mode}_{threads}.mp4"),
        "output.json": str(out_dir / f"{mode}_{threads}.jsonl"),
        "output.display": False, "run.progress": False, "run.log_level": "WARNING",
    }
    return run_pipeline(load_config(None, values=values))


def summarise(reports: list[dict]) -> dict:
    """Median-fps run of a setting, with the fps of every repeat."""
    ordered = sorted(reports, key=lambda report: report["fps"])
    median = ordered[(len(ordered) - 1) // 2]
    return {"fps": median["fps"], "fps_best": ordered[-1]["fps"],
            "fps_runs": [report["fps"] for report in reports],
            "frames": median["frames"], "latency_ms": median["latency_ms"],
            "stages_mean_ms": {name: median["stages"][name]["mean_ms"] for name in STAGES},
            "stages_p95_ms": {name: median["stages"][name]["p95_ms"] for name in STAGES}}


def print_table(results: dict, ratio: dict) -> None:
    header = (f"{'mode':<11}{'threads':>8}{'workers':>8}{'fps':>8}{'best':>7}{'runs':>26}"
              + "".join(f"{s:>12}" for s in STAGES) + f"{'lat p50':>10}")
    print(header)
    print("-" * len(header))
    for key, result in results.items():
        mode, threads, workers = key.split(":")
        runs = ",".join(f"{fps:.2f}" for fps in result["fps_runs"])
        stage_ms = "".join(f"{result['stages_mean_ms'][s]:>12.1f}" for s in STAGES)
        print(f"{mode:<11}{threads:>8}{workers:>8}{result['fps']:>8.2f}{result['fps_best']:>7.2f}{runs:>26}{stage_ms}"
              f"{result['latency_ms']['p50']:>10.0f}")
    print("(fps: median of the runs; stage columns: mean ms per frame of the median run)")
    for name, (median, best) in ratio.items():
        if isinstance(median, str):
            print(f"  settings: {median} (median fps), {best} (best fps)")
        else:
            print(f"{name}: {median:.2f}x (median fps), {best:.2f}x (best fps)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=150, help="frames per run")
    parser.add_argument("--repeats", type=int, default=2, help="runs per setting (median counts)")
    parser.add_argument("--settings", default=DEFAULT_SETTINGS,
                        help="comma-separated MODE:THREADS:WORKERS to run (default: %(default)s)")
    parser.add_argument("--input-height", type=int, default=None, help="net input height (default: backbone's)")
    parser.add_argument("--queue-size", type=int, default=4)
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                        help="NHWC layout for the network (default: on, as in the config)")
    parser.add_argument("--weights", default=None, help="mobilenet_thin weights (default: weights/, fetched)")
    parser.add_argument("--engine", default="auto", help="inference.engine (default: auto, as in the config)")
    parser.add_argument("--precision", default="auto", help="inference.precision (default: auto)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "threads.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings = [_parse_setting(text) for text in args.settings.split(",")]

    import backbones

    backbones.build("mobilenet_thin", args.weights)          # fetch + convert once, before timing
    with tempfile.TemporaryDirectory(prefix="posestream-bench-") as tmp:
        tmp_dir = Path(tmp)
        clip = tmp_dir / "clip_640x480.mp4"
        clip_description = make_clip(clip, args.frames)
        print(f"video: {clip_description}; backbone mobilenet_thin, engine {args.engine} "
              f"({args.precision}), input height "
              f"{args.input_height or 'default'}, H.264 + JSON lines out", flush=True)
        runs: dict[str, list[dict]] = {}
        for _ in range(args.repeats):
            for mode, threads, workers in settings:
                started = time.monotonic()
                report = run_once(clip, tmp_dir, mode, threads, workers, args)
                runs.setdefault(f"{mode}:{threads}:{workers}", []).append(report)
                print(f"  {mode:<10} threads={threads} workers={workers}: {report['fps']:.2f} fps "
                      f"({time.monotonic() - started:.1f} s)", flush=True)
    results = {key: summarise(reports) for key, reports in runs.items()}
    ratio = {}
    for statistic in ("fps", "fps_best"):
        best = {mode: max((result[statistic], key) for key, result in results.items() if key.startswith(mode))
                for mode in ("sequential", "threaded") if any(key.startswith(mode) for key in results)}
        if len(best) == 2:
            name = "best threaded setting / best sequential setting"
            ratio.setdefault(name, []).append(best["threaded"][0] / best["sequential"][0])
            ratio.setdefault(name + " (settings)", []).append(f"{best['threaded'][1]} vs {best['sequential'][1]}")
        for key, result in results.items():
            mode, threads, workers = key.split(":")
            baseline = results.get(f"sequential:{threads}:1")
            if mode == "threaded" and baseline:
                ratio.setdefault(f"{key} / sequential:{threads}:1", []).append(
                    result[statistic] / baseline[statistic])
    print_table(results, ratio)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "video": clip_description, "frames": args.frames, "repeats": args.repeats,
        "input_height": args.input_height, "queue_size": args.queue_size,
        "engine": args.engine, "precision": args.precision,
        "channels_last": args.channels_last, "machine": f"{platform.machine()}, {_cpu_count()} CPUs",
        "results": results, "ratios": ratio, "median_fps_of": "repeats",
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }, indent=2) + "\n")
    print(f"wrote {args.out}")


def _parse_setting(text: str) -> tuple[str, int, int]:
    mode, threads, workers = text.strip().split(":")
    if mode not in ("sequential", "threaded"):
        raise SystemExit(f"bad setting {text!r}: mode is sequential or threaded")
    return mode, int(threads), int(workers)


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


if __name__ == "__main__":
    main()

"""Threaded vs sequential pipeline: frames per second and where the time goes.

    python -m benchmarks.threads [--frames 150] [--repeats 2] [--settings ...] [--input-height H]

The same 640x480 video goes through the full pipeline twice per setting: once in ``sequential``
mode (every stage in turn in one thread) and once ``threaded`` (one thread per stage, bounded
queues).  Both use mobilenet_thin with its real weights, write H.264 video and JSON lines, and
read the same file: the first ``--frames`` frames of the benchmarks' 640x480 clip
(``bench_media.prepare_clip``: the test media's dance2.mp4 resized, else the demo stream).
``--settings`` lists MODE:THREADS:WORKERS triples to run (torch intra-op threads; inference
workers, threaded mode only).  Settings alternate within each repeat so slow phases of a shared
machine hit every setting alike, and the median fps counts.
Prints a table and writes it as JSON and Markdown into benchmarks/results/CLASS (``--out``).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from benchmarks import store
from benchmarks.bench_media import prepare_clip
from benchmarks.machine import load_average

STAGES = ("capture", "preprocess", "inference", "postprocess", "render")
DEFAULT_SETTINGS = "sequential:2:1,sequential:1:1,threaded:2:1,threaded:1:1,threaded:1:2"


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


def print_table(results: dict, ratio: dict) -> str:
    """The results as a fixed-width text table, then the ratios."""
    out = []
    header = (f"{'mode':<11}{'threads':>8}{'workers':>8}{'fps':>8}{'best':>7}{'runs':>26}"
              + "".join(f"{s:>12}" for s in STAGES) + f"{'lat p50':>10}")
    out += [header, "-" * len(header)]
    for key, result in results.items():
        mode, threads, workers = key.split(":")
        runs = ",".join(f"{fps:.2f}" for fps in result["fps_runs"])
        stage_ms = "".join(f"{result['stages_mean_ms'][s]:>12.1f}" for s in STAGES)
        out.append(f"{mode:<11}{threads:>8}{workers:>8}{result['fps']:>8.2f}{result['fps_best']:>7.2f}{runs:>26}{stage_ms}"
              f"{result['latency_ms']['p50']:>10.0f}")
    out.append("(fps: median of the runs; stage columns: mean ms per frame of the median run)")
    for name, (median, best) in ratio.items():
        if isinstance(median, str):
            out.append(f"  settings: {median} (median fps), {best} (best fps)")
        else:
            out.append(f"{name}: {median:.2f}x (median fps), {best:.2f}x (best fps)")
    return "\n".join(out)


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
    parser.add_argument("--out", type=Path, help="JSON path, .md beside it (default: "
                                                 "benchmarks/results/CLASS/threads.json)")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "posestream-bench",
                        help="where the clip is cached")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings = [_parse_setting(text) for text in args.settings.split(",")]
    load_before = load_average()

    import backbones

    backbones.build("mobilenet_thin", args.weights)          # fetch + convert once, before timing
    with tempfile.TemporaryDirectory(prefix="posestream-bench-") as tmp:
        tmp_dir = Path(tmp)
        clip, clip_description = prepare_clip(args.work_dir, frames=args.frames)
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
    text = print_table(results, ratio)
    print(text)
    summary = {
        "video": clip_description, "frames": args.frames, "repeats": args.repeats,
        "input_height": args.input_height, "queue_size": args.queue_size,
        "engine": args.engine, "precision": args.precision,
        "channels_last": args.channels_last, "results": results, "ratios": ratio, "median_fps_of": "repeats"}
    best = max(results.items(), key=lambda item: item[1]["fps"])
    out_dir, stem = (args.out.parent, args.out.stem) if args.out else (None, "threads")
    for path in store.write_results(stem, summary, lambda s: markdown(s, text), out=out_dir,
                                    load_before=load_before, headline=f"best {best[0]}: {best[1]['fps']:.2f} fps"):
        print(f"wrote {path}")


def markdown(summary: dict, table: str) -> str:
    """The printed table under a title and the machine's line."""
    return "\n".join(["# Threaded vs sequential pipeline (benchmarks/threads.py)", "",
                      store.machine_header(summary) + f"  Video: {summary['video']}.", "",
                      "```", table, "```", ""])


def _parse_setting(text: str) -> tuple[str, int, int]:
    mode, threads, workers = text.strip().split(":")
    if mode not in ("sequential", "threaded"):
        raise SystemExit(f"bad setting {text!r}: mode is sequential or threaded")
    return mode, int(threads), int(workers)


if __name__ == "__main__":
    main()

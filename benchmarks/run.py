"""One command compares backbones, engines, modes and input sizes end to end, side by side with the
loops of the original projects and Intel's own pipeline.

    python -m benchmarks.run [--quick] [--backbones …] [--engines …] [--modes …] [--heights …]

On a 640x480 clip (../shared/media/dance2.mp4 resized, else a generated one), every case runs
our whole pipeline (capture, preprocess, inference, postprocess, render) in a fresh process and
reports end-to-end FPS, per-stage p50/p95 ms, latency and CPU use; the same run times the
lightweight-OpenPose demo loop and the original CMU loop (``reference_loops.py``) on the same
networks, and Intel's Open Model Zoo wrapper (``omz_peer.py``, in its own Python environment) on
the omz model.  Results: benchmarks/results/CLASS/results.json, results.md (tables) and
results.png, CLASS being this machine's (``benchmarks.machine.cpu_class``).
cmu and mobilenet have no trained weights here: see ``bench_media.py`` for the realistic maps
they hand downstream.  ``--quick`` is a one-minute subset.  See benchmarks/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):   # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import logging  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from benchmarks import bench_analysis, bench_report, store  # noqa: E402
from benchmarks.bench_media import SUBSTITUTED, ensure_thin_weights, make_donor_maps, prepare_clip  # noqa: E402
from benchmarks.bench_worker import ENGINE_VARIANTS  # noqa: E402
from benchmarks.machine import describe_machine, load_average, machine_busy_percent  # noqa: E402
from benchmarks.workers import OMZ_IR, omz_python, omz_weights, run_peer, run_worker  # noqa: E402

log = logging.getLogger("benchmarks.run")

FULL = {"backbones": ["mobilenet_thin", "mobilenet", "cmu", "omz"],
        "engines": ["torch-fp32", "torch-bf16", "onnxruntime", "openvino-fp32", "openvino-bf16",
                    "openvino-int8"],
        "modes": ["threaded", "sequential"], "heights": [256, 368], "cmu_heights": [184, 368],
        "max_seconds": 4.0, "max_frames": None}
QUICK = {"backbones": ["mobilenet_thin", "mobilenet", "omz"], "engines": ["torch-bf16", "openvino-bf16"],
         "modes": ["threaded", "sequential"], "heights": [256], "cmu_heights": [],
         "max_seconds": 2.0, "max_frames": 60}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a one-minute subset")
    parser.add_argument("--backbones", nargs="+", help="default: mobilenet_thin mobilenet cmu omz")
    parser.add_argument("--engines", nargs="+", choices=sorted(ENGINE_VARIANTS),
                        help="default: every CPU engine (torch-fp32, torch-fp16, torch-fp16-compile on CUDA)")
    parser.add_argument("--modes", nargs="+", choices=["threaded", "sequential"])
    parser.add_argument("--heights", nargs="+", type=int, help="net input heights (default 256 368; "
                                                               "cmu: 184 368, 184 being the CMU loop's)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    parser.add_argument("--threads", type=int, help="inference.threads for every case (default: the "
                                                    "project's choice, cores / workers)")
    parser.add_argument("--workers", type=int, help="inference.workers for every case (default: the "
                                                    "project's choice, 2 in threaded mode on >= 2 cores)")
    parser.add_argument("--max-seconds", type=float, help="per case (default 5, quick 2)")
    parser.add_argument("--max-frames", type=int, help="per case (default: the whole clip)")
    parser.add_argument("--no-references", action="store_true", help="skip the reference loops")
    parser.add_argument("--busy-percent", type=float, default=25.0,
                        help="re-measure a case when other processes used more CPU than this "
                             "meanwhile (percent of one core; default 25)")
    parser.add_argument("--retries", type=int, help="re-measurements per busy case (default 2, quick 0)")
    parser.add_argument("--max-wait", type=float, help="seconds the whole run may spend waiting for a "
                                                       "quiet machine (default 1800, quick 0); at most "
                                                       "300 s before one case")
    parser.add_argument("--omz-weights", type=Path, help="human-pose-estimation-0001.xml "
                                                         f"(default ../shared/weights/{OMZ_IR})")
    parser.add_argument("--omz-python", type=Path, help="interpreter with Intel's model API "
                        "($POSESTREAM_OMZ_PYTHON, else .venv-omz/bin/python, else /tmp/omzenv)")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "posestream-bench",
                        help="clip, realistic maps and scratch files")
    parser.add_argument("--out", type=Path, help="where results.* go (default: benchmarks/results/CLASS, "
                                                 "this machine's class)")
    return parser.parse_args(argv)


def settings(args: argparse.Namespace) -> dict:
    """The plan's knobs: the full or quick defaults overridden by the flags."""
    plan = dict(QUICK if args.quick else FULL)
    for key in ("backbones", "engines", "modes", "max_seconds", "max_frames"):
        if getattr(args, key) is not None:
            plan[key] = getattr(args, key)
    if args.heights:
        plan["heights"] = plan["cmu_heights"] = args.heights
    if args.device.startswith("cuda") and not args.engines:
        plan["engines"] = ["torch-fp32", "torch-fp16", "torch-fp16-compile"]
    elif not args.engines and not bench_analysis.cpu_has_bf16():
        plan["engines"] = [e for e in plan["engines"] if not e.endswith("bf16")]
    return plan


def plan_cases(plan: dict, clip: Path, omz_xml: Path | None, args: argparse.Namespace) -> list[dict]:
    """Every pipeline case: backbone × engine × mode × height (omz: OpenVINO engines only)."""
    cases = []
    for backbone in plan["backbones"]:
        if backbone == "omz" and omz_xml is None:
            continue
        engines = [e for e in plan["engines"] if e.startswith("openvino") and not e.endswith("int8")] \
            if backbone == "omz" else plan["engines"]        # omz: Intel's IR is int8 already
        heights = plan["cmu_heights"] or plan["heights"] if backbone == "cmu" else plan["heights"]
        for height in heights:
            for engine in engines:
                for mode in plan["modes"]:
                    cases.append({
                        "kind": "pipeline", "backbone": backbone, "engine": engine, "mode": mode,
                        "height": height, "clip": str(clip), "device": args.device,
                        "weights": str(omz_xml) if backbone == "omz" else (
                            "random" if backbone in SUBSTITUTED else None),
                        "threads": args.threads, "workers": args.workers,
                        "max_seconds": plan["max_seconds"],
                        "max_frames": plan["max_frames"]})
    return cases


def plan_references(plan: dict, clip: Path, device: str = "cpu") -> list[dict]:
    """The two reference loops on the networks we run, and the demo loop on mobilenet_thin."""
    from benchmarks.reference_loops import CMU, LIGHTWEIGHT, LIGHTWEIGHT_HEIGHT, cmu_net_height

    loops = []
    backbones = plan["backbones"]
    if "mobilenet" in backbones:
        loops.append((LIGHTWEIGHT, "mobilenet", LIGHTWEIGHT_HEIGHT))
    if "mobilenet_thin" in backbones:
        loops.append((LIGHTWEIGHT, "mobilenet_thin", LIGHTWEIGHT_HEIGHT))
    if "cmu" in backbones:
        loops.append((CMU, "cmu", cmu_net_height(480)))
    return [{"kind": "reference", "loop": loop, "backbone": backbone, "height": height,
             "clip": str(clip), "weights": "random" if backbone in SUBSTITUTED else None, "device": device,
             "max_seconds": plan["max_seconds"] * (2 if backbone == "cmu" else 1),
             "max_frames": plan["max_frames"]} for loop, backbone, height in loops]


class Patience:
    """How long, in all, the run may still wait for a quiet machine (seconds)."""

    def __init__(self, budget_s: float):
        self.left_s = budget_s

    def wait_for_quiet(self, busy_percent: float, max_wait_s: float = 300.0) -> None:
        """Wait until other processes use less than ``busy_percent`` CPU, at most ``max_wait_s``
        and at most what is left of the budget."""
        deadline = time.monotonic() + min(max_wait_s, max(self.left_s, 0.0))
        started = time.monotonic()
        while time.monotonic() < deadline:
            busy = machine_busy_percent()
            if busy is None or busy <= busy_percent:
                break
            log.info("  machine busy (%.0f %% CPU used by others): waiting", busy)
            time.sleep(5.0)
        self.left_s -= time.monotonic() - started

    @property
    def exhausted(self) -> bool:
        return self.left_s <= 0


def run_quietly(case: dict, work_dir: Path, busy_percent: float, retries: int, patience: Patience) -> dict:
    """``run_worker`` once the machine is quiet; measured again (up to ``retries`` times, while
    there is patience left) when other processes used more than ``busy_percent`` of a core
    meanwhile; the quietest attempt is kept."""
    attempts = []
    for attempt in range(retries + 1):
        if attempt and patience.exhausted:
            break
        patience.wait_for_quiet(busy_percent)
        result = run_worker(case, work_dir)
        attempts.append(result)
        others = result.get("others_cpu_percent")
        if "error" in result or others is None or others <= busy_percent:
            break
        log.info("  other processes used %.0f %% CPU meanwhile: measuring again", others)
    best = min(attempts, key=lambda r: (r.get("others_cpu_percent") is None, r.get("others_cpu_percent") or 0))
    best["attempts"] = len(attempts)
    return best


def prepare_models(cases: list[dict]) -> None:
    """Export each ONNX file the cases need once, before anything is timed."""
    from stages.engines import onnx_model_path

    needed = {(c["backbone"], c["weights"]) for c in cases
              if c["backbone"] != "omz" and c["engine"] in ("onnxruntime", "openvino-fp32", "openvino-bf16")}
    for backbone, weights in sorted(needed, key=str):
        onnx_model_path(backbone, weights)


def in_measuring_order(cases: list[dict], references: list[dict]) -> list[dict]:
    """Each backbone's cases, then the reference loops on its network, so that what a goal
    compares is measured minutes apart at most."""
    ordered = []
    for backbone in dict.fromkeys(case["backbone"] for case in cases + references):
        ordered += [case for case in cases if case["backbone"] == backbone]
        ordered += [loop for loop in references if loop["backbone"] == backbone]
    return ordered


def measure(todo: list[dict], args: argparse.Namespace, patience: Patience) -> list[dict]:
    """Run every case (quietly); Ctrl-C stops measuring and keeps what was measured."""
    retries = args.retries if args.retries is not None else (0 if args.quick else 2)
    results = []
    try:
        for number, case in enumerate(todo, 1):
            result = run_quietly(case, args.work_dir, args.busy_percent, retries, patience)
            results.append({"case": case, "result": result})
            log.info("[%d/%d] %s: %s", number, len(todo), bench_analysis.label(case),
                     result.get("error") or f"{result['fps']:.1f} fps")
    except KeyboardInterrupt:
        log.warning("interrupted: writing the %d case(s) measured so far", len(results))
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    started = time.monotonic()
    plan = settings(args)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    clip, clip_note = prepare_clip(args.work_dir)
    omz_xml, peer_python = omz_weights(args.omz_weights), omz_python(args.omz_python)
    cases = plan_cases(plan, clip, omz_xml, args)
    references = [] if args.no_references else plan_references(plan, clip, args.device)
    ensure_thin_weights()
    heights = sorted({c["height"] for c in cases + references if c["backbone"] != "omz"})
    donors = {h: make_donor_maps(clip, h, args.work_dir, plan["max_frames"]) for h in heights}
    for case in cases + references:
        if case["backbone"] in SUBSTITUTED:
            case["donor"] = str(donors[case["height"]])
    prepare_models(cases)
    load_before = load_average()
    wait_budget_s = args.max_wait if args.max_wait is not None else (0 if args.quick else 1800)
    patience = Patience(wait_budget_s)
    results = measure(in_measuring_order(cases, references), args, patience)
    peers = []
    if omz_xml is not None and peer_python is not None and "omz" in plan["backbones"]:
        for mode in (["sync"] if args.quick else ["sync", "async"]):
            patience.wait_for_quiet(args.busy_percent)
            peers.append(run_peer(peer_python, omz_xml, clip, mode, plan["max_frames"], args.work_dir))
            log.info("Intel OMZ wrapper, %s: %s", mode, peers[-1].get("error") or f"{peers[-1]['fps']:.1f} fps")
    summary = bench_analysis.summarise(results, peers, donors, clip, plan)
    summary["meta"] = bench_analysis.run_meta(
        waited_s=round(wait_budget_s - patience.left_s, 1),
        clip_note=clip_note, plan=plan, quick=args.quick, load_before=load_before,
        load_after=load_average(), total_s=time.monotonic() - started,
        omz_xml=omz_xml, peer_python=peer_python)
    summary["machine"] = describe_machine(args.device, with_versions=True)
    summary["machine"]["load_average"] = load_before
    paths = store.write_results("results-quick" if args.quick else "results", summary, bench_report.markdown,
                                out=args.out, chart=bench_report.plot, device=args.device,
                                headline=bench_report.headline(summary))
    for path in paths:
        print(path)
    print(bench_report.goals_text(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What pose event rules cost: CPU a frame of the postprocess and render threads, with and without
rules, on three sources at once.

    python -m benchmarks.events [--frames 150] [--height 256] [--clip PATH]

Runs the project's pipeline on the dance clip as three sources (cam0..cam2), three ways: no
rules and no tracking; no rules with tracking; five rules (zone, line, person_down, hands_up,
count in the zone), which turn tracking on.  It samples every thread's CPU time
(``benchmarks.stage_cpu.ThreadCpu``) and prints, per run, core-ms a frame of the postprocess +
render threads (decode, tracking, drawing, sinks: where the rules run) and of the whole process,
then what the rules add: as a share of the whole process's CPU a frame (the goal: at most 3 %),
against the run without rules and with tracking (the rules alone), and against the run without
tracking (the rules and the tracking they switch on).
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from benchmarks.stage_cpu import ThreadCpu
from posestream_common.errors import run_tool

log = logging.getLogger(__name__)

SOURCES = ("cam0", "cam1", "cam2")
RULES = [
    {"name": "stage", "kind": "zone", "polygon": [[0.1, 0.5], [0.9, 0.5], [0.9, 1.0], [0.1, 1.0]]},
    {"name": "door", "kind": "line", "points": [[0.45, 0.0], [0.45, 1.0]]},
    {"name": "floor", "kind": "person_down", "seconds": 1.0},
    {"name": "wave", "kind": "hands_up", "seconds": 1.0},
    {"name": "crowd", "kind": "count", "above": 1, "seconds": 1.0, "zone": "stage"},
]


def default_clip() -> Path:
    return Path(os.environ.get("POSESTREAM_SHARED", Path(__file__).resolve().parents[2] / "shared")) / \
        "media" / "dance2.mp4"


def run_case(clip: Path, frames: int, height: int, rules: bool, track: bool) -> dict:
    """One pipeline run; core-ms a frame of postprocess + render and of the whole process."""
    from stream.config import load_config
    from stream.pipeline import Pipeline

    values = {"sources": [{"uri": str(clip), "name": name} for name in SOURCES],
              "model.backbone": "mobilenet_thin", "model.input_height": height,
              "run.max_frames": frames, "run.progress": False, "run.log_level": "WARNING",
              "output.display": False, "tracking.enabled": track}
    if rules:
        values["events.rules"] = RULES
    config = load_config(None, values=values)
    with Pipeline(config) as pipeline, ThreadCpu() as cpu:
        report = pipeline.run()
    groups = cpu.by_group()
    done = max(1, report["frames"])
    stages = groups.get("postprocess", 0.0) + groups.get("render", 0.0)
    events = report.get("events") or {}
    return {"frames": report["frames"], "fps": report["fps"],
            "post_render_ms": round(1000 * stages / done, 3),
            "process_ms": round(1000 * sum(groups.values()) / done, 3),
            "events": events.get("total", 0), "looks": events.get("turned_looks", 0)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.events", description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=150, help="frames per source")
    parser.add_argument("--height", type=int, default=256, help="net input height")
    parser.add_argument("--clip", type=Path, default=None, help="default: the shared dance2.mp4")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return run_tool(parser.prog, lambda: report(args))


def report(args: argparse.Namespace) -> dict:
    clip = args.clip or default_clip()
    runs = {"no rules, no tracking": run_case(clip, args.frames, args.height, rules=False, track=False),
            "no rules, tracking": run_case(clip, args.frames, args.height, rules=False, track=True),
            "five rules (tracking on)": run_case(clip, args.frames, args.height, rules=True, track=True)}
    for name, result in runs.items():
        log.info("%-26s %4d frames, %5.2f fps: postprocess+render %7.2f core-ms a frame, process %7.2f, "
                 "%d events, %d turned looks", name, result["frames"], result["fps"], result["post_render_ms"],
                 result["process_ms"], result["events"], result["looks"])
    with_rules = runs["five rules (tracking on)"]
    for base_name in ("no rules, tracking", "no rules, no tracking"):
        base = runs[base_name]
        added = with_rules["post_render_ms"] - base["post_render_ms"]
        log.info("rules add %.2f core-ms a frame vs '%s': %.1f %% of the process's CPU a frame "
                 "(%.1f %% of postprocess+render)", added, base_name, 100 * added / base["process_ms"],
                 100 * added / base["post_render_ms"])
    return runs


if __name__ == "__main__":
    raise SystemExit(main())

"""Tracking benchmark: ids, coverage and jitter on a real clip, through the real CLI.

Runs ``run_stream.py --source CLIP --track --json`` twice, without and with ``--smooth`` (real
mobilenet_thin weights, default settings), and reads the JSON lines back (benchmarks/track_metrics.py);
``--input-heights`` adds rows at other net input heights:

- ids: different person ids among people with >= 8 keypoints (the clip's people, not pieces);
- both found: frames where two such people carry different tracked ids (a duet: both dancers);
- untracked: people with >= 8 keypoints left at id -1 (taken for a piece of someone);
- jitter: mean |p[t+1] - 2 p[t] + p[t-1]| of tracked keypoints, the same keypoints in both runs,
  and how much ``--smooth`` cuts it.

Writes benchmarks/results/CLASS/tracking.json and tracking.md::

    python -m benchmarks.tracking [--source CLIP] [--input-heights H ...]

CLIP defaults to the test media's dance2.mp4 (../shared, or the cache ``python -m tests.media_cache``
fills).

The exit status is 0 when the goals hold at the default settings (the first row).
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):          # run as a script: make the project importable
    sys.path.insert(0, str(ROOT))

from benchmarks import store  # noqa: E402
from benchmarks.bench_media import find_shared  # noqa: E402
from benchmarks.machine import load_average  # noqa: E402
from benchmarks.track_metrics import (  # noqa: E402
    frames_from_json_lines, frames_with_tracked_people, ids_of_full_people, jitter_px,
    untracked_full_people,
)

log = logging.getLogger("benchmarks.tracking")
DEFAULT_CLIP = find_shared() / "media" / "dance2.mp4"     # ../shared, else the media cache
FULL_PERSON_KEYPOINTS = 8
GOALS = {"max_ids": 3, "min_both_found": 0.70, "min_jitter_cut": 0.30}


def run_clip(source: Path, json_path: Path, smooth: bool, extra: list[str]) -> float:
    """The CLI on ``source`` with tracking (and smoothing); returns its wall time in seconds."""
    command = [sys.executable, str(ROOT / "run_stream.py"), "--source", str(source), "--track",
               "--json", str(json_path), "--no-display", *extra] + (["--smooth"] if smooth else [])
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()[-800:]}")
    return time.perf_counter() - started


def clip_figures(raw_json: Path, smooth_json: Path) -> dict:
    """The figures above from the two runs' JSON lines."""
    raw, smooth = frames_from_json_lines(raw_json), frames_from_json_lines(smooth_json)
    ids = ids_of_full_people(raw, FULL_PERSON_KEYPOINTS)
    both = frames_with_tracked_people(raw, 2, FULL_PERSON_KEYPOINTS)
    jitter_raw, steps = jitter_px(raw)
    jitter_smooth, _ = jitter_px(smooth, steps)
    same_ids = [list(ids_raw) for _, ids_raw in raw] == [list(ids_s) for _, ids_s in smooth]
    return {
        "frames": len(raw),
        "ids": len(ids),
        "frames_per_id": {str(person_id): count for person_id, count in ids.most_common()},
        "both_found_frames": both,
        "both_found": round(both / max(len(raw), 1), 4),
        "untracked_full_people": untracked_full_people(raw, FULL_PERSON_KEYPOINTS),
        "pieces_untracked": sum(list(ids_raw).count(-1) for _, ids_raw in raw),
        "jitter_px": round(jitter_raw, 3),
        "jitter_smooth_px": round(jitter_smooth, 3),
        "jitter_cut": round(1.0 - jitter_smooth / jitter_raw, 4) if jitter_raw else 0.0,
        "jitter_keypoint_steps": len(steps),
        "same_ids_with_smoothing": same_ids,
    }


def goals_met(figures: dict) -> dict:
    return {
        "ids <= 3": figures["ids"] <= GOALS["max_ids"],
        "both found >= 70 %": figures["both_found"] >= GOALS["min_both_found"],
        "--smooth cuts jitter >= 30 %": figures["jitter_cut"] >= GOALS["min_jitter_cut"],
    }


def markdown(report: dict) -> str:
    run = report["run"]
    lines = [
        "# Tracking on a real clip",
        "",
        f"`{run['command']}` on `{run['source']}` (load before {run['load_before']},"
        f" after {run['load_after']}).  {store.machine_header(report)}  Each row: the CLI twice, `--track --json` and"
        f" `--track --smooth --json`, real mobilenet_thin weights, other settings default"
        f" (default net input height: the backbone's, 368 for mobilenet_thin).",
        f"ids: among people with >= {FULL_PERSON_KEYPOINTS} keypoints (2 dancers, so 2 is right);"
        " both tracked: frames where two such people carry different ids; -1 full: such people left"
        " untracked; pieces: people at -1; jitter: mean |p[t+1] - 2 p[t] + p[t-1]| of tracked"
        " keypoints, the same keypoints with and without --smooth.",
        "",
        "| net input height | ids (frames per id) | both tracked | -1 full | pieces | jitter px"
        " raw / smooth | cut by --smooth | same ids with --smooth | goals met | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        figures = row["figures"]
        lines.append(
            f"| {row['input_height'] or 'default'} | {figures['ids']} ({figures['frames_per_id']}) | "
            f"{figures['both_found_frames']}/{figures['frames']} ({100 * figures['both_found']:.1f} %) | "
            f"{figures['untracked_full_people']} | {figures['pieces_untracked']} | "
            f"{figures['jitter_px']} / {figures['jitter_smooth_px']} | {100 * figures['jitter_cut']:.1f} % | "
            f"{figures['same_ids_with_smoothing']} | {all(row['goals_met'].values())} | "
            f"{row['wall_s']['raw']} + {row['wall_s']['smooth']} |")
    lines += ["", "Goals (issue 16): " + ", ".join(report["rows"][0]["goals_met"]) + ".", ""]
    return "\n".join(lines)


def measure(source: Path, input_height: int | None) -> dict:
    """One row: both CLI runs at this net input height (None = the backbone's default)."""
    flags = ["--input-height", str(input_height)] if input_height else []
    with tempfile.TemporaryDirectory() as scratch:
        raw_json, smooth_json = Path(scratch) / "raw.jsonl", Path(scratch) / "smooth.jsonl"
        wall_raw = run_clip(source, raw_json, False, flags)
        wall_smooth = run_clip(source, smooth_json, True, flags)
        figures = clip_figures(raw_json, smooth_json)
    log.info("height %s: %s", input_height or "default", figures)
    return {"input_height": input_height, "figures": figures, "goals_met": goals_met(figures),
            "wall_s": {"raw": round(wall_raw, 1), "smooth": round(wall_smooth, 1)}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_CLIP, help="clip (default: dance2.mp4)")
    parser.add_argument("--input-heights", type=int, nargs="*", default=[],
                        help="net input heights to add after the backbone's default")
    parser.add_argument("--out", type=Path, help="folder for NAME.json/.md (default: benchmarks/results/CLASS)")
    parser.add_argument("--name", default="tracking", help="file name stem of the results")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.source.exists():
        parser.error(f"no clip at {args.source}")

    load_before = load_average()
    rows = [measure(args.source, height) for height in [None, *args.input_heights]]
    report = {
        "rows": rows,
        "goals": GOALS,
        "run": {"command": store.command_line(), "source": str(args.source.name),
                "load_before": load_before, "load_after": load_average()},
    }
    first = rows[0]["figures"]
    store.write_results(args.name, report, markdown, out=args.out, load_before=load_before,
                        headline=f"{first['ids']} ids, both dancers {100 * first['both_found']:.1f} % of frames, "
                                 f"--smooth cuts jitter {100 * first['jitter_cut']:.0f} %")
    log.info("%s", markdown(report))
    return 0 if all(rows[0]["goals_met"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())

"""The recall benchmark's results: run metadata (date, CPU model and class), recall.json,
recall.md (one row a plan) and recall.png (recall against fps)."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path
from typing import Any


def run_meta(args: Any, source: str, clip: Path, live: bool, stream_fps: float | None, height: int,
             load_before: tuple, total_s: float) -> dict:
    from stream.sources import redact_uri

    from posestream_common.machine import cpu_class, cpu_model

    model, klass = cpu_model(), cpu_class()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": model, "cpu_class": klass, "cores": os.cpu_count(), "python": platform.python_version(),
        "source": redact_uri(source) if live else str(source), "live": live,
        "recording": str(clip) if live else None, "stream_fps": stream_fps, "frame_height": height,
        "max_frames": args.max_frames, "backbone": args.backbone, "weights": args.weights,
        "load_before": [round(v, 2) for v in load_before],
        "load_after": [round(v, 2) for v in os.getloadavg()], "total_s": round(total_s, 1),
        "busy_note": args.busy_note,
    }


def _fmt(value: Any, spec: str = ".2f", suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{suffix}"


def row_text(row: dict) -> str:
    if row.get("error"):
        return f"error: {row['error']}"
    return (f"recall {_fmt(row['recall'], '.3f')}, extra {_fmt(row['extra_percent'], '.1f', ' %')}, "
            f"offset {_fmt(row['median_offset_px'], '.2f', ' px')}, {_fmt(row['people_per_frame'], '.1f')} "
            f"people a frame, {_fmt(row['fps'], '.2f')} fps, {_fmt(row['cpu_ms_per_frame'], '.0f')} CPU ms a frame")


def markdown(summary: dict) -> str:
    meta, rows = summary["meta"], summary["rows"]
    reference = next((r for r in rows if r["plan"] == "reference"), {})
    lines = ["# Recall of inference plans against the frame's own resolution", ""]
    if meta.get("busy_note"):
        lines += [f"**Measured on a busy machine: {meta['busy_note']}.** Speed figures are only "
                  "comparable with each other, within this run.", ""]
    source = meta["source"] + (f" (live; {meta['max_frames']} frames recorded once for the reference)"
                               if meta["live"] else "")
    lines += [
        f"{meta['date']}, {meta['cpu']} ({meta['cpu_class']}), {meta['cores']} cores, load "
        f"{meta['load_before']} -> {meta['load_after']}.  Clip: {source}, frame height "
        f"{meta['frame_height']}, {meta['max_frames']} frames a run.  Reference: the same network on "
        f"the whole frame at input height {reference.get('input_height', '?')}"
        + (f" (cached run of {reference['cached']})" if reference.get("cached") else "") + ".",
        "",
        "Recall: reference people with >= 8 keypoints matched one to one (Hungarian) to the plan's "
        "people with >= 8 keypoints, mean distance over shared keypoints <= 0.2 x the reference "
        "person's size; extra: the plan's people with >= 8 keypoints matching nobody of the reference, "
        "in % of the reference's count; offset: median over the matched keypoints.  Every run has "
        "tracking on; ids >= 3 s: share of detections (>= 8 keypoints) on ids that last 3 s or more "
        "(both id columns n/a on runs shorter than 3 s); full at -1: detections left without an id.  fps (end to end) and CPU ms a frame (this "
        "process's CPU time, every thread) run from the worker's 6th frame written to its last (the first "
        "frames pay one-time costs such as compiling the network for the clip's input size; the whole-run "
        "figures are in recall.json); dropped: frames of a live stream the pipeline skipped to keep up.",
        "",
        "| plan | overrides | recall | extra | offset px | people/frame | fps | CPU ms/frame | dropped "
        "| ids >= 3 s | ids/min | full at -1 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        overrides = ", ".join(f"`{o}`" for o in row["overrides"]) or "(none)"
        if row.get("error"):
            lines.append(f"| {row['plan']} | {overrides} | error: {row['error']} |")
            continue
        share = row.get("track_lasting_share")
        lines.append(
            f"| {row['plan']} | {overrides} | {_fmt(row['recall'], '.3f')} | {_fmt(row['extra_percent'], '.1f', ' %')}"
            f" | {_fmt(row['median_offset_px'], '.2f')} | {_fmt(row['people_per_frame'], '.1f')} | "
            f"{_fmt(row['fps'], '.2f')} | {_fmt(row['cpu_ms_per_frame'], '.0f')} | {_fmt(row['dropped'], 'd')} | "
            f"{_fmt(None if share is None else 100 * share, '.0f', ' %')} | {_fmt(row['track_ids_per_minute'], '.0f')} | "
            f"{_fmt(row.get('track_untracked'), 'd')} |")
    if reference.get("fps"):
        lines += ["", "fps against the reference's: " + ", ".join(
            f"{r['plan']} {r['fps'] / reference['fps']:.2f}x" for r in rows
            if r.get("fps") and r["plan"] != "reference") + "."]
    if reference.get("cpu_ms_per_frame"):
        lines += ["", "CPU time a frame, as a fraction of the reference's (steadier than fps on a busy machine): "
                  + ", ".join(f"{r['plan']} {r['cpu_ms_per_frame'] / reference['cpu_ms_per_frame']:.2f}"
                              for r in rows if r.get("cpu_ms_per_frame") and r["plan"] != "reference") + "."]
    return "\n".join(lines) + "\n"


def write_chart(summary: dict, path: Path) -> Path | None:
    """Recall against end-to-end fps, one point a plan."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [r for r in summary["rows"] if r.get("fps") and r.get("recall") is not None]
    if not points:
        return None
    figure, axes = plt.subplots(figsize=(8, 5.5))
    for row in points:
        axes.scatter(row["fps"], row["recall"], s=60, zorder=3,
                     marker="s" if row["plan"] == "reference" else "o")
        axes.annotate(row["plan"], (row["fps"], row["recall"]), textcoords="offset points", xytext=(5, 4),
                      fontsize=8)
    meta = summary["meta"]
    axes.set_xlabel(f"fps end to end ({meta['cpu_class']} CPU, {meta['cores']} cores"
                    + (", busy machine" if meta.get("busy_note") else "") + ")")
    axes.set_ylabel("recall against the frame's own resolution")
    axes.set_ylim(0, 1.05)
    axes.set_title(f"posestream: recall against speed, {Path(meta['source']).name}")
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_all(summary: dict, out: Path | None) -> list[Path]:
    """recall.{json,md,png} through the harness (``benchmarks.store``): into ``out``, else the
    CPU class's results folder."""
    from benchmarks.store import write_results

    best = max((row for row in summary["rows"] if row["plan"] != "reference" and row.get("recall") is not None),
               key=lambda row: row["recall"], default=None)
    headline = None if best is None else f"recall: {best['plan']} {row_text(best)}"
    return write_results("recall", summary, markdown, out=out, headline=headline,
                         chart=lambda data, path: write_chart(data, path))

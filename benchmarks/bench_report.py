"""``benchmarks.run``'s summary as a Markdown report and a PNG bar chart (written by
``benchmarks.store.write_results``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.store import machine_header, pyplot, save_figure

STAGES = ("capture", "preprocess", "inference", "postprocess", "render")
ENGINE_COLOURS = {"torch-fp32": "#9e9e9e", "torch-bf16": "#e69f00", "torch-fp16": "#e69f00",
                  "torch-fp16-compile": "#d55e00",
                  "onnxruntime": "#56b4e9", "openvino-fp32": "#009e73", "openvino-bf16": "#0072b2",
                  "openvino-int8": "#cc79a7"}
COLUMNS = ("FPS", "× engine alone", "latency p50 / p95 ms", "capture", "preprocess", "inference",
           "postprocess", "render", "CPU % ours / others", "frames", "people vs fp32", "first frame s",
           "peak RSS MB")
NOTES = (
    "FPS: frames through the whole pipeline (read, preprocess, inference, decode, draw) / wall time, "
    "after one warm-up inference; no window, no video written (JSON lines are written).",
    "Stage columns: p50 ms (p95 ms) of each stage's own work; in threaded mode stages overlap, so "
    "FPS can exceed 1000 / sum of stages.  CPU %: our process's CPU time / wall time (200 % = both "
    "cores) / the CPU time every other process on the machine used meanwhile (near 0 = a quiet "
    "machine; the cores are shared with other work, so check it before trusting a row).",
    "cmu and mobilenet: no trained weights exist here, so they run seeded random weights; each "
    "frame still goes through the real network (its time is real), then the maps trained "
    "mobilenet_thin gives for the same frame at the same size go downstream, in our pipeline and "
    "in the reference loops alike.  Their 'people' are therefore mobilenet_thin's.",
    "× engine alone: end-to-end FPS / the engine's own throughput (same network, input, precision, "
    "streams and threads; its workers calling it back to back on one prepared frame, 1.5 s just "
    "before and 1.5 s just after the pipeline in the same process, averaged).",
    "People vs fp32: mobilenet_thin rows against fp32 inference of the same frames (same network "
    "and size); omz rows against our omz fp32 run.  'same count' = share of frames with the same "
    "number of people (fragments of 3-5 keypoints included); 'whole people' = people with at least "
    "6 keypoints: the share of the reference's found again, and how many it does not have; px = "
    "distance of matched keypoints (median / p95) in frame pixels.  The default engine is the "
    "fastest with >= 95 % of whole people found, <= 5 % extra and a median within 3 px.",
    "First frame s: from the start of the case's fresh process (interpreter, imports, engine "
    "load and warm-up, ONNX export already cached) to the first frame's outputs written. Peak RSS "
    "MB: that process's peak resident memory (torch engines and the reference loops import torch; "
    "OpenVINO and onnxruntime runs do not).",
)


def _fmt_stage(stage: dict | None) -> str:
    return f"{stage['p50_ms']:.1f} ({stage['p95_ms']:.1f})" if stage else "–"


def _fmt_people(check: dict | None) -> str:
    if not check:
        return "–"
    if "note" in check:
        return "n/a (substituted maps)"
    keypoints = check.get("keypoint_px") or {}
    text = f"{100 * check['same_count_fraction']:.0f} % same count"
    if check.get("whole_matched_fraction") is not None:
        text += (f"; whole people {100 * check['whole_matched_fraction']:.1f} % found, "
                 f"{check['whole_extra']} extra")
    if keypoints:
        text += f"; {keypoints['p50']:.1f}/{keypoints['p95']:.1f} px"
    return text


def _fmt_cpu(row: dict) -> str:
    others = row.get("others_cpu_percent")
    return f"{row['cpu_percent']:.0f} / {others:.0f}" if others is not None else f"{row['cpu_percent']:.0f} / ?"


def _fmt_efficiency(row: dict) -> str:
    if not row.get("efficiency"):
        return "–"
    return f"{row['efficiency']:.2f} of {row['engine_alone_fps']:.1f}"


def _fmt_number(value: float | None, form: str) -> str:
    return "–" if value is None else form.format(value)


def _table_row(row: dict, first: list[str]) -> str:
    if "error" in row:
        return "| " + " | ".join(first) + f" | failed: {row['error']} |" + " |" * (len(COLUMNS) - 1)
    stages = [_fmt_stage(row["stages"].get(name)) for name in STAGES]
    latency = row["latency_ms"]
    cells = first + [f"**{row['fps']:.1f}**", _fmt_efficiency(row),
                     f"{latency['p50']:.0f} / {latency['p95']:.0f}", *stages,
                     _fmt_cpu(row), str(row["frames"]), _fmt_people(row.get("people_vs_fp32")),
                     _fmt_number(row.get("first_frame_s"), "{:.2f}"), _fmt_number(row.get("peak_rss_mb"), "{:.0f}")]
    return "| " + " | ".join(cells) + " |"


def markdown(summary: dict[str, Any]) -> str:
    meta = summary["meta"]
    head = "| " + " | ".join(COLUMNS) + " |"
    load_after = meta.get("load_average_after") or ["?"]
    lines = [f"# Benchmark results{' (quick run)' if meta['quick'] else ''}", "",
             f"{machine_header(summary)}  bf16: {meta.get('cpu_bf16')}; "
             f"GPU: {summary.get('machine', {}).get('gpu') or 'none (GPU figures not measured)'}; load average "
             f"at the end {load_after[0]}; {meta['total_s']:.0f} s in all.", "",
             f"Clip: {meta['clip']}.", "",
             "## Goals (ratios measured side by side in this run)", "",
             "| what | ours | theirs | ratio | goal | met |", "|---|---|---|---|---|---|"]
    for goal in summary["goals"]:
        if goal["ratio"] is None:
            lines.append(f"| {goal['what']} | – | – | – | {goal['goal']} | {goal['note']} |")
            continue
        lines.append(f"| {goal['what']} | {goal['ours']}: {goal['ours_fps']:.1f} fps | {goal['theirs']}: "
                     f"{goal['theirs_fps']:.1f} fps | **{goal['ratio']:.2f}×** | ≥ {goal['goal']}× | "
                     f"{'yes' if goal['met'] else 'no'} |")
    lines += ["", "## Default engine (mobilenet_thin, threaded: fastest that keeps fp32's people)", ""]
    for height, verdict in summary["default_engine"].items():
        ranking = ", ".join(f"{engine} {fps:.1f}{'' if same else ' (people differ)'}"
                            for engine, fps, same in verdict["ranking"])
        lines.append(f"- {height}: **{verdict['fastest_keeping_same_people']}** ({ranking})")
    lines += ["", "## Our pipeline", "", "| backbone | engine | mode | height " + head,
              "|---|---|---|---" + "|---" * len(COLUMNS) + "|"]
    for row in summary["rows"]:
        lines.append(_table_row(row, [row["backbone"], row["engine"], row["mode"], str(row["height"])]))
    lines += ["", "## Reference loops (sequential, torch fp32, as the original projects run them)", "",
              "| loop | network | height " + head, "|---|---|---" + "|---" * len(COLUMNS) + "|"]
    for row in summary["references"]:
        lines.append(_table_row(row, [row["loop"], row["backbone"], str(row["height"])]))
    lines += _peer_lines(summary["peers"], meta)
    lines += ["", "## Notes", ""] + [f"- {note}" for note in NOTES]
    return "\n".join(lines) + "\n"


def _peer_lines(peers: list[dict], meta: dict) -> list[str]:
    lines = ["", "## Intel's Open Model Zoo wrapper on the same model (omz) and clip", ""]
    if not peers:
        why = "no omz IR" if not meta.get("omz_ir") else "no Python environment with Intel's model API"
        return lines + [f"Not measured in this run ({why}; see benchmarks/README.md)."]
    lines += ["| mode | FPS | latency p50 / p95 ms | frames | people per frame | vs our people |",
              "|---|---|---|---|---|---|"]
    for peer in peers:
        if "error" in peer:
            lines.append(f"| {peer.get('mode')} | failed: {peer['error']} | | | | |")
            continue
        check = peer.get("people_vs_ours") or {}
        versus = (f"{check.get('matched_people', 0)} matched, {check.get('extra_people', 0)} only Intel's, "
                  f"{check.get('missing_people', 0)} only ours; {_fmt_people(check)}" if check else "–")
        latency = peer.get("latency_ms") or {"p50": 0, "p95": 0}
        lines.append(f"| {peer['mode']} | **{peer['fps']:.1f}** | {latency['p50']:.0f} / {latency['p95']:.0f} "
                     f"| {peer['frames']} | {peer.get('people_per_frame')} | {versus} |")
    return lines


def plot(summary: dict[str, Any], path: Path) -> None:
    """One panel per backbone: FPS per engine, bars for each height x mode, reference lines."""
    plt = pyplot()
    rows = [r for r in summary["rows"] if "error" not in r]
    backbones = list(dict.fromkeys(r["backbone"] for r in rows))
    if not backbones:
        return
    columns = 2 if len(backbones) > 2 else len(backbones)
    lines = -(-len(backbones) // columns)
    figure, axes = plt.subplots(lines, columns, figsize=(6.4 * columns, 4.6 * lines), squeeze=False)
    for axis, backbone in zip(axes.flat, backbones):
        _panel(axis, backbone, [r for r in rows if r["backbone"] == backbone], summary)
    for axis in list(axes.flat)[len(backbones):]:
        axis.set_visible(False)
    figure.suptitle("End-to-end FPS on the 640x480 clip (log scale): solid = threaded, hatched = sequential; "
                    "darker = the smaller net input height")
    save_figure(figure, path)


def _panel(axis: Any, backbone: str, rows: list[dict], summary: dict) -> None:
    engines = list(dict.fromkeys(r["engine"] for r in rows))
    variants = sorted({(r["height"], r["mode"]) for r in rows}, key=lambda v: (v[0], v[1] != "threaded"))
    width = 0.8 / max(len(variants), 1)
    for index, (height, mode) in enumerate(variants):
        for position, engine in enumerate(engines):
            row = next((r for r in rows if r["engine"] == engine and r["height"] == height and r["mode"] == mode), None)
            if row is None:
                continue
            x = position - 0.4 + width * (index + 0.5)
            axis.bar(x, row["fps"], width * 0.92, color=ENGINE_COLOURS.get(engine, "#777"),
                     hatch="//" if mode == "sequential" else None, edgecolor="white", linewidth=0.5,
                     alpha=0.55 + 0.45 * (height == variants[0][0]))
            axis.text(x, row["fps"] * 1.04, f"{row['fps']:.0f}" if row["fps"] >= 10 else f"{row['fps']:.1f}",
                      ha="center", va="bottom", fontsize=6.5, rotation=90,
                      bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 0.5})
    styles = ("--", ":", "-.")
    for number, (text, fps, colour) in enumerate(_reference_lines(backbone, summary)):
        axis.axhline(fps, color=colour, linestyle=styles[number % len(styles)], linewidth=1.2, label=text)
    if _reference_lines(backbone, summary):
        axis.legend(loc="upper left", fontsize=7, framealpha=0.9)
    axis.set_yscale("log")
    values = [r["fps"] for r in rows] + [line[1] for line in _reference_lines(backbone, summary)]
    low, high = min(values) / 1.6, max(values) * 3.0
    axis.set_ylim(low, high)
    ticks = [t for t in (0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if low <= t <= high]
    axis.set_yticks(ticks, [f"{t:g}" for t in ticks])
    axis.minorticks_off()
    axis.set_xticks(range(len(engines)))
    axis.set_xticklabels(engines, rotation=30, ha="right", fontsize=8)
    heights = ", ".join(f"h{h}" for h in dict.fromkeys(v[0] for v in variants))
    axis.set_title(f"{backbone} ({heights})", fontsize=10)
    axis.set_ylabel("FPS")
    axis.grid(axis="y", which="both", alpha=0.3)


def _reference_lines(backbone: str, summary: dict) -> list[tuple[str, float, str]]:
    lines = []
    for row in summary["references"]:
        if row["backbone"] == backbone and "error" not in row:
            lines.append((f"{row['loop']} loop h{row['height']}: {row['fps']:.1f}", row["fps"], "#c0392b"))
    if backbone == "omz":
        for peer in summary["peers"]:
            if "error" not in peer:
                lines.append((f"Intel wrapper {peer['mode']}: {peer['fps']:.0f}", peer["fps"], "#8e44ad"))
    return lines


def goals_text(summary: dict[str, Any]) -> str:
    lines = []
    for goal in summary["goals"]:
        if goal["ratio"] is None:
            lines.append(f"- {goal['what']}: {goal['note']}")
        else:
            lines.append(f"- {goal['what']}: {goal['ratio']:.2f}x (goal {goal['goal']}x, "
                         f"{'met' if goal['met'] else 'not met'})")
    return "\n".join(lines)


def headline(summary: dict[str, Any]) -> str:
    """One line for the class table: each backbone's fastest case."""
    best: dict[str, dict] = {}
    for row in summary["rows"]:
        if "error" not in row and row["fps"] > best.get(row["backbone"], {}).get("fps", 0.0):
            best[row["backbone"]] = row
    return "; ".join(f"{backbone} {row['fps']:.1f} fps ({row['engine']} h{row['height']} {row['mode']})"
                     for backbone, row in best.items())

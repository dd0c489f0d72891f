"""The accuracy benchmark's results: goals, the Markdown report and the AP-FPS chart (written by
``benchmarks.store.write_results``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.store import machine_header, pyplot, save_figure

GOAL_DEFAULT_AP, AIM_DEFAULT_AP = 0.32, 0.34
MAX_PRECISION_COST_AP = 0.010
MIN_FPS_RATIO = 0.90          # the default's FPS against the previous default's


def primary_split(summary_or_splits: Any) -> str:
    splits = summary_or_splits["splits"] if isinstance(summary_or_splits, dict) else summary_or_splits
    return splits[0]


def ap_of(row: dict, split: str) -> float | None:
    return row.get("ap", {}).get(split, {}).get("AP")


def ap_text(row: dict) -> str:
    parts = [f"{split} {values['AP']:.3f}" for split, values in row.get("ap", {}).items()]
    return ", ".join(parts) or "n/a"


def fps_text(row: dict) -> str:
    if row.get("fps") is not None:
        return f"{row['fps']:.1f} fps"
    return f"fps n/a ({row['fps_error']})" if row.get("fps_error") else "fps not measured"


def summarise(rows: list[dict], dataset: Any, args: Any, splits: list[str], image_ids: list[int]) -> dict:
    """Everything the report needs: rows, data set, splits and the goals."""
    summary = {
        "dataset": {"images_dir": str(dataset.images_dir), "annotations": str(dataset.annotations),
                    "images": len(image_ids), "split": args.split,
                    "people_with_keypoints": dataset.people_with_keypoints},
        "splits": splits, "rows": rows,
    }
    summary["goals"] = goals(rows, primary_split(splits))
    return summary


def goals(rows: list[dict], split: str) -> list[dict]:
    """The issue's goals, each as measured in this run (missing rows: not measured)."""
    found = []
    default = next((r for r in rows if r.get("role") == "default command"), None)
    if default is not None:
        ap = ap_of(default, split)
        found.append({"goal": f"default command AP >= {GOAL_DEFAULT_AP} (aim {AIM_DEFAULT_AP})",
                      "measured": f"{ap:.4f}", "met": ap >= GOAL_DEFAULT_AP})
        resolved = default.get("resolved") or {}
        fp32 = _find(rows, resolved, precision="fp32")
        if fp32 is not None and resolved.get("precision") != "fp32":
            cost = ap_of(fp32, split) - ap
            found.append({"goal": f"reduced precision ({resolved['precision']}) costs <= "
                                  f"{MAX_PRECISION_COST_AP} AP vs fp32",
                          "measured": f"fp32 {ap_of(fp32, split):.3f} vs {ap:.3f}: {cost:+.3f}",
                          "met": cost <= MAX_PRECISION_COST_AP})
        previous = next((r for r in rows if r.get("role") == "previous default"), None)
        if previous is not None and default.get("fps") and previous.get("fps"):
            ratio = default["fps"] / previous["fps"]
            measured = f"{default['fps']:.1f} vs {previous['fps']:.1f} fps: {ratio:.2f}x"
            if default.get("cpu_ms_per_frame") and previous.get("cpu_ms_per_frame"):
                cpu_ratio = previous["cpu_ms_per_frame"] / default["cpu_ms_per_frame"]
                measured += (f"; CPU per frame {default['cpu_ms_per_frame']:.1f} vs "
                             f"{previous['cpu_ms_per_frame']:.1f} ms: {cpu_ratio:.2f}x the frames per CPU second")
            found.append({"goal": f"default FPS >= {MIN_FPS_RATIO:.0%} of the previous default's "
                                  f"(AP {ap_of(previous, split):.3f} before)",
                          "measured": measured, "met": ratio >= MIN_FPS_RATIO})
    x8 = next((r for r in rows if r.get("role") == "x8 reference decoder"), None)
    if x8 is not None:
        ours = _find(rows, x8["resolved"], decoder="ours")
        if ours is not None:
            found.append({"goal": "our decoder AP >= the x8 decoder's on the same maps",
                          "measured": f"{ap_of(ours, split):.3f} vs {ap_of(x8, split):.3f} "
                                      f"({ours['label']}); decode {ours.get('decode_ms')} vs "
                                      f"{x8.get('decode_ms')} ms/image",
                          "met": ap_of(ours, split) >= ap_of(x8, split)})
    intel = next((r for r in rows if r.get("role") == "Intel wrapper" and "ap" in r), None)
    omz = [r for r in rows if r.get("setup", {}).get("backbone") == "omz"]
    if intel is not None and omz:
        ours = max(omz, key=lambda r: r.get("fps") or 0.0)
        met = ap_of(ours, split) >= ap_of(intel, split)
        measured = f"AP {ap_of(ours, split):.3f} vs {ap_of(intel, split):.3f}"
        if ours.get("fps") and intel.get("fps"):
            best_intel = max(intel.get("fps_sync") or 0.0, intel.get("fps_async") or 0.0)
            measured += f", {ours['fps']:.1f} vs {best_intel:.1f} fps (Intel's faster mode)"
            met = met and ours["fps"] >= best_intel
        found.append({"goal": "omz through posestream >= Intel's wrapper in AP and FPS",
                      "measured": f"{measured} ({ours['label']})", "met": met})
    return found


MATCH_KEYS = ("backbone", "engine", "precision", "height", "weights", "decoder", "settings")


def _find(rows: list[dict], resolved: dict, **changes: Any) -> dict | None:
    """The first row (other than the default command's) whose resolved setup is ``resolved``
    with ``changes``."""
    wanted = {**resolved, **changes}
    for row in rows:
        if row.get("role") in ("default command", "previous default") or "resolved" not in row:
            continue
        if all(row["resolved"].get(key) == wanted.get(key) for key in MATCH_KEYS):
            return row
    return None


def run_meta(load_before: list | None, load_after: list | None, total_s: float, clip: Path | None,
             settings: tuple) -> dict:
    """What the run did (its machine is ``summary["machine"]``, ``benchmarks.machine``)."""
    return {"load_before": load_before, "load_after": load_after, "total_s": round(total_s, 1),
            "clip": str(clip) if clip else None, "settings": dict(settings)}


def markdown(summary: dict) -> str:
    splits = summary["splits"]
    data, meta = summary["dataset"], summary.get("meta", {})
    lines = [
        "# Accuracy: COCO keypoint AP of every configuration",
        "",
        f"pycocotools COCOeval (keypoints) on {data['images']} images of {data['annotations']} "
        f"(split {data['split']}; {data['people_with_keypoints']} people with keypoints in the file), "
        f"the real pipeline over the image folder.  FPS: the same configuration end to end on the "
        f"benchmark clip ({Path(meta['clip']).name if meta.get('clip') else 'not measured'}, threaded; load "
        f"{meta.get('load_before', '?')} -> {meta.get('load_after', '?')}).  {machine_header(summary)}",
        "",
        "| configuration | engine | " + " | ".join(f"AP {s}" for s in splits)
        + " | AP50 | AP medium | AP large | AR | people | decode ms | FPS | CPU ms/frame |",
        "|---|---|" + "---:|" * len(splits) + "---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    first = splits[0]
    for row in summary["rows"]:
        label = display_label(row)
        if row.get("error"):
            lines.append(f"| {label} | {row.get('engine', '')} | error: {row['error']} |")
            continue
        aps = " | ".join(f"{row['ap'][s]['AP']:.3f}" for s in splits)
        fps = f"{row['fps']:.1f}" if row.get("fps") else "n/a"
        if row.get("fps_async"):
            fps += f" (async {row['fps_async']:.1f})"
        decode = f"{row['decode_ms']:.1f}" if row.get("decode_ms") is not None else "n/a"
        cpu = f"{row['cpu_ms_per_frame']:.1f}" if row.get("cpu_ms_per_frame") else "n/a"
        lines.append(f"| {label} | {row.get('engine', '')} | {aps} | {row['ap'][first]['AP50']:.3f} | "
                     f"{area_ap(row, first, 'AP_medium')} | {area_ap(row, first, 'AP_large')} | "
                     f"{row['ap'][first]['AR']:.3f} | {row['people']} | {decode} | {fps} | {cpu} |")
    lines += ["", "## Headline", "", headline(summary)]
    lines += ["", "## Goals", "", "| goal | measured | |", "|---|---|---|"]
    for goal in summary["goals"]:
        lines.append(f"| {goal['goal']} | {goal['measured']} | {'met' if goal['met'] else '**not met**'} |")
    if meta.get("settings"):
        lines += ["", f"Config values set for every configuration: {meta['settings']}"]
    return "\n".join(lines) + "\n"


def area_ap(row: dict, split: str, name: str) -> str:
    """AP of one person size (pycocotools' ``AP_medium``: 32-96 px, ``AP_large``: above 96 px,
    by the square root of the annotated area); n/a where the images have no such person (-1)."""
    value = row.get("ap", {}).get(split, {}).get(name)
    return "n/a" if value is None or value < 0 else f"{value:.3f}"


def display_label(row: dict) -> str:
    """A row's name in the table: the resolved configuration, its role in bold."""
    role = row.get("role")
    if role in ("default command", "previous default"):
        resolved = row.get("resolved") or {}
        text = (f"{resolved.get('backbone')} {resolved.get('engine')} {resolved.get('precision')} "
                f"h{resolved.get('height')}")
        if role == "previous default":
            text += ", decoder thresholds before issue 14"
        return f"**{role}**: {text}"
    return row["label"] + (f" **({role})**" if role else "")


HEADLINE_ROLES = ("default command", "previous default", "x8 reference decoder", "Intel wrapper")


def headline(summary: dict) -> str:
    """The README's table: the default command, before issue 14, fp32, the x8 decoder, the omz
    rows and Intel's wrapper, with AP on every split and FPS."""
    splits, rows = summary["splits"], summary["rows"]
    default = next((r for r in rows if r.get("role") == "default command"), None)
    chosen = [r for r in rows if r.get("role") in HEADLINE_ROLES]
    if default is not None:
        fp32 = _find(rows, default["resolved"], precision="fp32")
        chosen += [fp32] if fp32 is not None else []
    chosen += [r for r in rows if r.get("setup", {}).get("backbone") == "omz"]
    order = {id(r): i for i, r in enumerate(rows)}
    lines = ["| configuration | " + " | ".join(f"AP {s}" for s in splits) + " | AP medium | AP large | FPS |",
             "|---|" + "---:|" * len(splits) + "---:|---:|---:|"]
    for row in sorted(chosen, key=lambda r: order[id(r)]):
        if "ap" not in row:
            continue
        fps = f"{row['fps']:.1f}" if row.get("fps") else "n/a"
        lines.append(f"| {display_label(row)} | " + " | ".join(f"{row['ap'][s]['AP']:.3f}" for s in splits)
                     + f" | {area_ap(row, splits[0], 'AP_medium')} | {area_ap(row, splits[0], 'AP_large')} | {fps} |")
    return "\n".join(lines)


def goals_text(summary: dict) -> str:
    return "\n".join(f"{'met    ' if g['met'] else 'NOT MET'} {g['goal']}: {g['measured']}"
                     for g in summary["goals"])


def write_chart(summary: dict, path: Path) -> Path | None:
    """AP against end-to-end FPS, one point per configuration with both."""
    split = primary_split(summary)
    points = [(row["fps"], ap_of(row, split), row) for row in summary["rows"]
              if row.get("fps") and ap_of(row, split) is not None]
    if not points:
        return None
    figure, axes = pyplot().subplots(figsize=(9, 6))
    colours = {"mobilenet_thin": "tab:blue", "omz": "tab:green", "mobilenet": "tab:orange", "cmu": "tab:red"}
    for fps, ap, row in points:
        backbone = row.get("setup", {}).get("backbone", "omz")
        intel = row.get("role") == "Intel wrapper"
        axes.scatter(fps, ap, s=70, marker="s" if intel else ("*" if row.get("role") == "default command" else "o"),
                     color="tab:purple" if intel else colours.get(backbone, "tab:gray"), zorder=3)
        axes.annotate(_short_label(row), (fps, ap), textcoords="offset points", xytext=(5, 4), fontsize=7)
    axes.set_xlabel("end-to-end FPS on the benchmark clip (threaded pipeline)")
    axes.set_ylabel(f"COCO keypoint AP ({split} images)")
    axes.set_title("posestream: accuracy against speed, one point per configuration")
    axes.grid(True, alpha=0.3)
    return save_figure(figure, path)


def _short_label(row: dict) -> str:
    if row.get("role") == "Intel wrapper":
        return "omz, Intel wrapper (sync)"
    setup = row.get("setup", {})
    resolved = row.get("resolved") or setup
    text = f"{setup.get('backbone')} {resolved.get('engine')} {resolved.get('precision')} h{resolved.get('height') or '?'}"
    return text + {"default command": " (default)", "previous default": " (before issue 14)"}.get(row.get("role"), "")


def headline_line(summary: dict) -> str:
    """One line for the class table: the default command's AP and FPS."""
    split = primary_split(summary)
    default = next((r for r in summary["rows"] if r.get("role") == "default command" and "ap" in r), None)
    if default is None:
        return ""
    return f"default command AP {ap_of(default, split):.3f} ({split} images), {fps_text(default)}"

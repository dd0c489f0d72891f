"""Turns the raw benchmark results into rows, people agreement, goal ratios and run metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmarks.bench_people import agreement, keeps_same_people, people_count_histogram
from benchmarks.coco_eval import to_coco17

STAGES = ("capture", "preprocess", "inference", "postprocess", "render")
GOALS = {"mobilenet_vs_lightweight_loop": 4.0, "cmu_vs_cmu_loop": 8.0, "threaded_vs_sequential": 1.3,
         "omz_vs_intel": 1.0, "pipeline_vs_engine_alone": 0.9}
# (network, height, goal): int8 end to end against bf16, threaded, same run (issue 15).
INT8_GOALS = (("mobilenet_thin", 368, 1.15), ("cmu", 184, 1.5))
CLIP_HEIGHT = 480


def cpu_has_bf16() -> bool:
    from stages.engines import cpu_supports_bf16

    return cpu_supports_bf16()


def label(case: dict) -> str:
    if case["kind"] == "reference":
        return f"{case['loop']} loop / {case['backbone']} / h{case['height']}"
    return f"{case['backbone']} / {case['engine']} / {case['mode']} / h{case['height']}"


def _frames_people(result: dict) -> list[np.ndarray]:
    return [np.asarray(people, dtype=np.float32).reshape(-1, 18, 3) for people in result.get("people", [])]


def reference_people(donor_path: Path, height: int) -> list[np.ndarray]:
    """mobilenet_thin's fp32 people per frame (frame pixels), decoded from the stored maps."""
    from benchmarks.bench_media import MapDonor
    from stages.postprocess import decode, to_frame

    donor = MapDonor(donor_path)
    scale = height / CLIP_HEIGHT
    return [to_frame(decode(*donor.maps_of(index)), scale) for index in range(len(donor))]


def _row(case: dict, result: dict) -> dict:
    row = {"label": label(case), **{key: case.get(key) for key in
                                    ("kind", "backbone", "engine", "mode", "height", "loop")}}
    if "error" in result:
        return {**row, "error": result["error"]}
    row.update({
        "fps": result["fps"], "frames": result["frames"], "wall_s": result["wall_s"],
        "latency_ms": result["latency_ms"], "cpu_percent": result.get("cpu_percent"),
        "others_cpu_percent": result.get("others_cpu_percent"),
        "first_frame_s": result.get("first_frame_s"), "peak_rss_mb": result.get("peak_rss_mb"),
        "stages": {name: {"p50_ms": values["p50_ms"], "p95_ms": values["p95_ms"]}
                   for name, values in result["stages"].items() if name in STAGES},
        "engine_detail": result.get("engine"),
        "engine_alone_fps": result.get("engine_alone_fps"),
        "efficiency": (round(result["fps"] / result["engine_alone_fps"], 3)
                       if result.get("engine_alone_fps") else None),
        "maps": "realistic (trained mobilenet_thin's, substituted)" if case.get("donor") else "own",
        "people_per_frame": people_count_histogram(_frames_people(result)),
    })
    return row


def summarise(results: list[dict], peers: list[dict], donors: dict[int, Path], clip: Path,
              plan: dict) -> dict[str, Any]:
    """Rows for every case, people agreement, the goal ratios and the default-engine verdict."""
    rows, references, people = [], [], {}
    for entry in results:
        case, result = entry["case"], entry["result"]
        row = _row(case, result)
        (references if case["kind"] == "reference" else rows).append(row)
        people[row["label"]] = _frames_people(result)
    fp32_people = {height: reference_people(path, height) for height, path in donors.items()}
    for row in rows:
        row["people_vs_fp32"] = _people_check(row, rows, people, fp32_people)
    peer_rows = [_peer_row(peer, rows, people) for peer in peers]
    summary = {"rows": rows, "references": references, "peers": peer_rows}
    summary["default_engine"] = default_engine_verdict(rows)
    summary["goals"] = goal_ratios(rows, references, peer_rows, summary["default_engine"])
    return summary


def _people_check(row: dict, rows: list[dict], people: dict, fp32_people: dict) -> dict | None:
    """This row's people against the fp32 people of the same network and height."""
    if "error" in row:
        return None
    if row["maps"].startswith("realistic"):
        return {"note": "n/a: maps substituted (people are mobilenet_thin's)"}
    if row["backbone"] == "mobilenet_thin" and row["height"] in fp32_people:
        return agreement(people[row["label"]], fp32_people[row["height"]])
    if row["backbone"] == "omz":
        baseline = next((r for r in rows if r["backbone"] == "omz" and r.get("engine") == "openvino-fp32"
                         and r["height"] == row["height"] and "error" not in r), None)
        if baseline is not None and baseline is not row:
            return agreement(people[row["label"]], people[baseline["label"]])
    return None


def _peer_row(peer: dict, rows: list[dict], people: dict) -> dict:
    row = {"label": f"Intel OMZ wrapper ({peer.get('mode')})", **{k: v for k, v in peer.items() if k != "people"}}
    if "error" in peer:
        return row
    ours = _best(rows, backbone="omz", height=peer["input_size"][0], mode="threaded")
    if ours is not None:
        ours_coco = [to_coco17(p) for p in people[ours["label"]]]
        theirs = [np.asarray(p, dtype=np.float32).reshape(-1, 17, 3) for p in peer["people"]]
        row["compared_with"] = ours["label"]
        row["people_vs_ours"] = agreement(theirs, ours_coco)
        row["people_per_frame"] = people_count_histogram(theirs)
    return row


def _best(rows: list[dict], **match: Any) -> dict | None:
    """The fastest error-free row whose fields equal ``match``."""
    found = [r for r in rows if "error" not in r and all(r.get(k) == v for k, v in match.items())]
    return max(found, key=lambda r: r["fps"]) if found else None


def default_engine_verdict(rows: list[dict]) -> dict:
    """Per height, the fastest mobilenet_thin engine (threaded) whose people match fp32's."""
    verdict = {}
    for height in sorted({r["height"] for r in rows if r["backbone"] == "mobilenet_thin"}):
        candidates = sorted((r for r in rows if r["backbone"] == "mobilenet_thin" and r["height"] == height
                             and r["mode"] == "threaded" and "error" not in r),
                            key=lambda r: -r["fps"])
        keeping = [r for r in candidates if keeps_same_people(r.get("people_vs_fp32"))]
        verdict[f"h{height}"] = {
            "fastest": candidates[0]["engine"] if candidates else None,
            "fastest_keeping_same_people": keeping[0]["engine"] if keeping else None,
            "ranking": [(r["engine"], r["fps"], keeps_same_people(r.get("people_vs_fp32"))) for r in candidates],
        }
    return verdict


def _ratio(ours: dict | None, theirs: dict | None, goal: float, what: str) -> dict:
    if ours is None or theirs is None or not theirs.get("fps"):
        return {"what": what, "goal": goal, "ratio": None, "note": "not measured in this run"}
    ratio = ours["fps"] / theirs["fps"]
    return {"what": what, "goal": goal, "ours": ours["label"], "ours_fps": ours["fps"],
            "theirs": theirs["label"], "theirs_fps": theirs["fps"], "ratio": round(ratio, 2),
            "met": ratio >= goal}


# (reference loop, network, goal key, what): our best run of that network at the loop's height
# against the loop.
REFERENCE_GOALS = (
    ("lightweight", "mobilenet", "mobilenet_vs_lightweight_loop",
     "mobilenet end to end vs the lightweight-OpenPose demo loop (same input)"),
    ("lightweight", "mobilenet_thin", "mobilenet_vs_lightweight_loop",
     "mobilenet_thin (trained, real maps) vs the same demo loop on it"),
    ("cmu", "cmu", "cmu_vs_cmu_loop", "cmu end to end vs the original CMU loop (same input)"),
)


def goal_ratios(rows: list[dict], references: list[dict], peers: list[dict], verdict: dict) -> list[dict]:
    goals = []
    for loop, backbone, goal, what in REFERENCE_GOALS:
        reference = next((r for r in references if r.get("loop") == loop
                          and r["backbone"] == backbone and "error" not in r), None)
        if reference:
            goals.append(_ratio(_best(rows, backbone=backbone, height=reference["height"]), reference,
                                GOALS[goal], what))
    for backbone in dict.fromkeys(r["backbone"] for r in rows):
        for height in sorted({r["height"] for r in rows if r["backbone"] == backbone}):
            threaded = _best(rows, backbone=backbone, height=height, mode="threaded")
            if threaded is None:
                continue
            sequential = _best(rows, backbone=backbone, height=height, mode="sequential",
                               engine=threaded["engine"])
            goals.append(_ratio(threaded, sequential, GOALS["threaded_vs_sequential"],
                                f"threaded vs sequential, {backbone} h{height}, {threaded['engine']}"))
    for backbone, height, goal in INT8_GOALS:
        int8 = _best(rows, backbone=backbone, height=height, mode="threaded", engine="openvino-int8")
        bf16 = _best(rows, backbone=backbone, height=height, mode="threaded", engine="openvino-bf16")
        if int8 and bf16:
            goals.append(_ratio(int8, bf16, goal, f"int8 vs bf16 end to end, {backbone} h{height}"))
    for backbone in dict.fromkeys(r["backbone"] for r in rows):
        threaded = [r for r in rows if r["backbone"] == backbone and r["mode"] == "threaded"
                    and r.get("efficiency")]
        if threaded:
            worst = min(threaded, key=lambda r: r["efficiency"])
            goals.append(_ratio(worst, {"label": "engine alone", "fps": worst["engine_alone_fps"]},
                                GOALS["pipeline_vs_engine_alone"],
                                f"threaded pipeline vs its engine alone, {backbone} (lowest case)"))
    for peer in peers:
        if "error" in peer or "compared_with" not in peer:
            continue
        ours = next(r for r in rows if r["label"] == peer["compared_with"])
        goals.append(_ratio(ours, peer, GOALS["omz_vs_intel"],
                            f"omz model: our pipeline vs Intel's wrapper ({peer['mode']})"))
    return goals


def run_meta(*, waited_s: float, clip_note: str, plan: dict, quick: bool, load_before: Sequence[float] | None,
             load_after: Sequence[float] | None, total_s: float, omz_xml: Path | None,
             peer_python: Path | None) -> dict[str, Any]:
    """What the run did (its machine is ``summary["machine"]``, ``benchmarks.machine``)."""
    from stages.engines import cpu_supports_bf16

    return {
        "quick": quick, "cpu_bf16": cpu_supports_bf16(), "clip": clip_note, "plan": plan,
        "load_average_before": load_before, "load_average_after": load_after,
        "total_s": round(total_s, 1), "waited_for_quiet_s": waited_s,
        "omz_ir": str(omz_xml) if omz_xml else None,
        "intel_wrapper_python": str(peer_python) if peer_python else None,
    }

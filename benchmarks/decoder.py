"""Decoder benchmark: ours against the straightforward x8-upsampling reference.

Both decode the same synthetic ground-truth maps of a 368x496 net input (46x62 cells) with 1, 5
and 15 people, first as exact training labels (with our variants: greedy matching, other
sub-pixel fits, torch tensors), then blurred, weaker and noisy like a network's output, then
crowds (``synthetic.CROWD``: 20 people 30-120 px tall, same-type keypoints of different people
down to 10 px apart; with and without our close-peak split), labels and network-like.  The
table gives time per frame (the decoders take turns on each scene; each scene counts its fastest
of ``--repeats`` runs), people complete (every labelled keypoint within 10 px), mean keypoint
error and false people, and is written to benchmarks/results/CLASS/decoder.md and .json.
One thread everywhere (numpy, OpenCV, torch) so the numbers are comparable::

    python -m benchmarks.decoder [--scenes 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):          # run as a script: make the project importable
    sys.path.insert(0, str(ROOT))

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import store  # noqa: E402
from benchmarks.machine import load_average  # noqa: E402
from benchmarks.reference_decoder import reference_decode  # noqa: E402
from benchmarks.synthetic import (  # noqa: E402
    CROWD, NET_SIZE, degrade_maps, make_crowd, make_scene, score_scene, summarize)
from stages.postprocess import DecoderParams, decode  # noqa: E402

PEOPLE_COUNTS = (1, 5, 15)
CROWDED = "crowd"             # the people column of the crowded rows
LABELS, NETWORK_LIKE = "labels", "network-like"
MAP_KINDS = (LABELS, NETWORK_LIKE)   # exact training labels; blurred, weaker, noisy copies
REFERENCE = "reference (x8 bicubic)"


def _torch_decoder():
    """Ours on torch CPU tensors (the code path a GPU model's output takes)."""
    import torch

    torch.set_num_threads(1)

    def run(heatmaps, pafs):
        return decode(torch.from_numpy(heatmaps), torch.from_numpy(pafs))

    return run


def decoders(with_torch: bool, variants: bool, crowd: bool = False) -> dict:
    """Name -> callable(heatmaps, pafs) -> people (P,18,3) net pixels."""
    found = {"ours": lambda h, p: decode(h, p)}
    if crowd:
        found["ours, no close-peak split"] = lambda h, p: decode(h, p, split_close_peaks=False)
    if variants:
        found.update({
            "ours, greedy matching": lambda h, p: decode(h, p, matching="greedy"),
            "ours, quadratic fit": lambda h, p: decode(h, p, refine="quadratic"),
            "ours, no sub-pixel fit": lambda h, p: decode(h, p, refine="none"),
        })
        if with_torch:
            found["ours, torch tensors (cpu)"] = _torch_decoder()
    found[REFERENCE] = lambda h, p: reference_decode(h, p, params=DecoderParams())
    return found


def measure(chosen: dict, scenes, maps, repeats: int) -> dict:
    """Per decoder: mean over scenes of the best-of-``repeats`` time per frame, and the accuracy
    summary.  The decoders take turns on each scene (a different one first in each repeat) and
    each scene keeps its fastest run, so a burst of load from other processes hits every decoder
    alike and is mostly filtered out."""
    best_s = {name: [float("inf")] * len(maps) for name in chosen}
    results: dict[str, list] = {name: [] for name in chosen}
    names = list(chosen)
    for repeat in range(repeats):
        turn = names[repeat % len(names):] + names[:repeat % len(names)]   # who goes first varies
        for index, (heatmaps, pafs) in enumerate(maps):
            for name in turn:
                start = time.perf_counter()
                people = chosen[name](heatmaps, pafs)
                best_s[name][index] = min(best_s[name][index], time.perf_counter() - start)
                if repeat == 0:
                    results[name].append(people)
    return {name: {"ms_per_frame": 1000.0 * sum(best_s[name]) / len(maps),
                   **summarize(score_scene(people, scene.keypoints)
                               for people, scene in zip(results[name], scenes))}
            for name in chosen}


def scenes_of(people, scene_count: int) -> list:
    """``scene_count`` seeded scenes of ``people`` people, or crowds for ``CROWDED``."""
    if people == CROWDED:
        return [make_crowd(7000 + seed, NET_SIZE) for seed in range(scene_count)]
    return [make_scene(1000 * people + seed, people, NET_SIZE) for seed in range(scene_count)]


def run(scene_count: int, repeats: int, with_torch: bool) -> list[dict]:
    cv2.setNumThreads(1)
    rows = []
    cases = [(kind, people) for kind in MAP_KINDS for people in PEOPLE_COUNTS]
    cases += [(kind, CROWDED) for kind in MAP_KINDS]
    for kind, people in cases:
        scenes = scenes_of(people, scene_count)
        maps = [(s.heatmaps, s.pafs) if kind == LABELS else degrade_maps(s.heatmaps, s.pafs, i)
                for i, s in enumerate(scenes)]
        chosen = decoders(with_torch, variants=kind == LABELS and people != CROWDED,
                          crowd=people == CROWDED)
        measured = measure(chosen, scenes, maps, repeats)
        reference_ms = measured[REFERENCE]["ms_per_frame"]
        for name, result in measured.items():
            rows.append({"maps": kind, "people": people, "decoder": name,
                         "speedup": reference_ms / result["ms_per_frame"], **result})
    return rows


def markdown(rows: list[dict]) -> str:
    cells = [[row["maps"], row["people"], row["decoder"], f"{row['ms_per_frame']:.2f}", f"{row['speedup']:.1f}x",
              f"{100 * row['complete_fraction']:.1f} % ({row['people_complete']}/{row['people_true']})",
              f"{row['mean_error_px']:.2f}", f"{100 * row['false_fraction']:.1f} % ({row['false_people']})"]
             for row in rows]
    return "\n".join(store.markdown_table(
        ("maps", "people", "decoder", "ms/frame", "speed-up", "people complete", "mean error px", "false people"),
        cells, align="lrlrrrrr"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=20, help="scenes per people count")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (best is kept)")
    parser.add_argument("--no-torch", action="store_true", help="skip the torch-tensor row")
    parser.add_argument("--out", type=Path, help="folder for decoder.md/.json (default: benchmarks/results/CLASS)")
    args = parser.parse_args(argv)

    loads = load_average()
    load_before = (loads or [float("nan")])[0]
    rows = run(args.scenes, args.repeats, not args.no_torch)
    load_after = (load_average() or [float("nan")])[0]
    table = markdown(rows)
    low, high = CROWD["height_range_px"]
    summary = {"scenes": args.scenes, "repeats": args.repeats, "net_size": NET_SIZE, "rows": rows}
    header = (f"Decoder benchmark: {args.scenes} synthetic scenes per row, net input "
              f"{NET_SIZE[0]}x{NET_SIZE[1]} (maps {NET_SIZE[0] // 8}x{NET_SIZE[1] // 8}); "
              f"crowd = {CROWD['num_people']} people {low:g}-{high:g} px tall, same-type "
              f"keypoints down to {CROWD['min_separation_px']:g} px apart; one thread, "
              f"numpy {np.__version__}, opencv {cv2.__version__}; "
              f"load average {load_before:.1f} at the start, {load_after:.1f} at the end.")
    crowd = next(r for r in rows if (r["people"], r["maps"], r["decoder"]) == (CROWDED, NETWORK_LIKE, "ours"))
    store.write_results("decoder", summary, lambda s: f"{header}  {store.machine_header(s)}\n\n{table}\n",
                        out=args.out, load_before=loads,
                        headline=f"crowds: ours completes {crowd['people_complete']}/{crowd['people_true']} "
                                 f"people at {crowd['speedup']:.0f}x the x8 decoder's speed")
    print(header + "\n\n" + table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

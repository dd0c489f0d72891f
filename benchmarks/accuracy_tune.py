"""Choose decoder thresholds with the accuracy benchmark, on one half of the images only.

    python -m benchmarks.accuracy_tune [--split even] [--height H] [--rounds 2]

The default configuration's network runs once over the tuning half (``--split``, default the even
image ids) through the real pipeline, its maps recorded; then every candidate value of every
decoder threshold (``DecoderParams`` fields, handed to the decoder directly: most are tuning
internals, not config keys) is tried by re-decoding those very maps in the pipeline
(``MapsReplay``: no network), one parameter at a time, keeping a change only when it raises AP
(coordinate ascent, ``--rounds`` passes).  The chosen values are then scored on the other half,
which played no part in choosing them.  Results: benchmarks/results/CLASS/accuracy_tuning.md/.json.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import store
from benchmarks.accuracy import THIN, parse_args as accuracy_args
from benchmarks.accuracy_runs import RecordedMaps, Setup, run_images
from benchmarks.coco_eval import Dataset, detections_from_lines, keypoint_ap, link_images, load_dataset, \
    split_ids
from posestream_common.errors import run_tool

log = logging.getLogger("benchmarks.accuracy_tune")

# Candidate values per DecoderParams field.  peak_threshold stays >= 0.05: 0.03 gained <= 0.001 AP
# on the even ids but doubled the decode time (5.8 against 2.8 ms an image at the old 0.1; 0.05:
# 4.5 ms, 0.075: 3.8 ms), which the default command's FPS cannot afford.
CANDIDATES: dict[str, tuple[Any, ...]] = {
    "peak_threshold": (0.05, 0.075, 0.1, 0.15),
    "paf_threshold": (0.02, 0.05, 0.1),
    "min_aligned_fraction": (0.5, 0.6, 0.7, 0.8),
    "min_parts": (2, 3, 4, 5, 6),
    "min_mean_score": (0.1, 0.2, 0.3, 0.4, 0.5),
    "long_limb_fraction": (0.5, 0.75, 1.0),
    "refine": ("gaussian", "quadratic", "none"),
}
OTHER_HALF = {"even": "odd", "odd": "even"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = accuracy_args([])
    parser = argparse.ArgumentParser(prog="python -m benchmarks.accuracy_tune", description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=defaults.images)
    parser.add_argument("--annotations", type=Path, default=defaults.annotations)
    parser.add_argument("--split", choices=("even", "odd"), default="even", help="the half tuned on")
    parser.add_argument("--backbone", default=THIN)
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--height", type=int, help="net input height (default: the backbone's)")
    parser.add_argument("--rounds", type=int, default=2, help="passes over the parameters")
    parser.add_argument("--params", nargs="+", choices=sorted(CANDIDATES), help="default: all")
    parser.add_argument("--out", type=Path, help="where accuracy_tuning.* go (default: benchmarks/results/CLASS)")
    return parser.parse_args(argv)


class Scorer:
    """AP of one set of decoder values on recorded maps (each set decoded once)."""

    def __init__(self, dataset: Dataset, setup: Setup, folder: Path, ids: list[int], recorded: RecordedMaps):
        self.dataset, self.setup, self.folder, self.ids, self.recorded = dataset, setup, folder, ids, recorded
        self.cache: dict[tuple, dict] = {}

    def __call__(self, values: dict[str, Any]) -> dict:
        key = tuple(sorted(values.items()))
        if key not in self.cache:
            setup = Setup(**{**vars(self.setup), "decoder_values": key})
            run = run_images(setup, self.folder, replay=self.recorded)
            detections = detections_from_lines(run.records, self.dataset.image_ids)
            self.cache[key] = {**keypoint_ap(self.dataset.ground_truth, detections, self.ids),
                               "people": len(detections), "decode_ms": run.report["stages"]["postprocess"]["mean_ms"]}
            log.info("  %s: AP %.4f", ", ".join(f"{k}={v}" for k, v in key) or "defaults",
                     self.cache[key]["AP"])
        return self.cache[key]


def record(dataset: Dataset, setup: Setup, ids: list[int], folder: Path) -> RecordedMaps:
    link_images(dataset, ids, folder)
    run = run_images(setup, folder, record_maps=True)
    assert run.recorded is not None
    return run.recorded


def ascend(score: Scorer, params: list[str], rounds: int) -> tuple[dict, list[dict]]:
    """Coordinate ascent from the defaults; (best values, every step tried)."""
    best: dict[str, Any] = {}
    best_ap = score(best)["AP"]
    steps = [{"values": {}, "AP": best_ap}]
    for round_number in range(rounds):
        changed = False
        for param in params:
            for value in CANDIDATES[param]:
                trial = {**best, param: value}
                ap = score(trial)["AP"]
                steps.append({"values": trial, "AP": ap})
                if ap > best_ap + 1e-4:
                    best, best_ap, changed = trial, ap, True
        log.info("round %d: AP %.4f with %s", round_number + 1, best_ap, best or "the defaults")
        if not changed:
            break
    return best, steps


def tune(args: argparse.Namespace) -> list[Path]:
    logging.getLogger().setLevel(logging.INFO)
    dataset = load_dataset(args.images, args.annotations)
    setup = Setup(args.backbone, args.engine, args.precision, args.height)
    halves = {half: split_ids(dataset.image_ids.values(), half) for half in (args.split, OTHER_HALF[args.split])}
    with tempfile.TemporaryDirectory(prefix="posestream-tune-") as tmp:
        scorers = {half: Scorer(dataset, setup, Path(tmp) / half, ids,
                                record(dataset, setup, ids, Path(tmp) / half))
                   for half, ids in halves.items()}
        best, steps = ascend(scorers[args.split], args.params or list(CANDIDATES), args.rounds)
        report = {half: {"defaults": scorer({}), "tuned": scorer(best)} for half, scorer in scorers.items()}
    result = {"setup": setup.label, "tuned_on": args.split, "chosen": best, "halves": report, "steps": steps}
    picked = ", ".join(f"{key.split('.')[-1]}={value}" for key, value in best.items())
    paths = store.write_results("accuracy_tuning", result, markdown, out=args.out,
                                headline=f"coordinate ascent's pick: {picked or 'the defaults'}")
    print(markdown(result))
    return paths


def markdown(result: dict) -> str:
    lines = [f"# Decoder thresholds tuned on the {result['tuned_on']} image ids ({result['setup']})", "",
             store.machine_header(result), "",
             f"Chosen: {result['chosen'] or 'the defaults (no change raised AP)'}", ""]
    rows = [[half, "tuned on" if half == result["tuned_on"] else "held out", f"{scores['defaults']['AP']:.4f}",
             f"{scores['tuned']['AP']:.4f}", scores["defaults"]["people"], scores["tuned"]["people"]]
            for half, scores in result["halves"].items()]
    lines += store.markdown_table(("half", "role", "AP defaults", "AP tuned", "people defaults", "people tuned"),
                                  rows, align="llrrrr")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_tool("python -m benchmarks.accuracy_tune", lambda: tune(args))


if __name__ == "__main__":
    sys.exit(main())

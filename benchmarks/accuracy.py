"""COCO keypoint AP of every configuration, with end-to-end FPS measured in the same run.

    python -m benchmarks.accuracy [--images DIR --annotations FILE] [--split all|even|odd]
        [--backbones …] [--engines …] [--precisions …] [--heights …] [--set KEY=VALUE …]

Each configuration (backbone × engine × precision × input height) runs the real pipeline
(``stream.pipeline.Pipeline``, what ``run_stream.py --source FOLDER --json …`` runs) over the
images; its JSON lines (people in CMU-18 with their person ``score``) are mapped to COCO-17
(``coco_eval.to_coco17``) and scored by pycocotools' ``COCOeval`` with ``params.imgIds`` = every image of
the annotation file in the split.  With ``--split all`` every AP is also given for the even and
the odd image ids, so thresholds tuned on one half can be checked on the other.  Side by side on
the same images: the x8 reference decoder on the very maps of the openvino fp32 row
(``--no-x8`` skips it), the OMZ IR through posestream against Intel's own wrapper (``--no-peer``),
fp32 against the default's reduced precision.  FPS: each configuration's pipeline on the benchmark
clip in a fresh process (``bench_worker``; ``--no-fps`` skips it).  Results:
benchmarks/results/CLASS/accuracy.json, accuracy.md and accuracy.png (AP against FPS).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import accuracy_report, store
from benchmarks.accuracy_runs import OURS, X8, Setup, run_images
from benchmarks.bench_media import prepare_clip, find_shared
from benchmarks.coco_eval import SPLITS, Dataset, detections_from_lines, keypoint_ap, link_images, \
    load_dataset, split_ids
from benchmarks.machine import load_average
from benchmarks.workers import omz_python, omz_weights, run_peer, run_peer_images, run_worker
from posestream_common.errors import ConfigError, run_tool

log = logging.getLogger("benchmarks.accuracy")

DEFAULT_DATA = "coco-val2017"
DEFAULT_ANNOTATIONS = "person_keypoints_val2017_subset.json"
THIN = "mobilenet_thin"
# The default plan: mobilenet_thin on OpenVINO at three heights in each CPU precision, torch fp32
# at the default height; the x8 decoder on the openvino fp32 maps of the default height.
PLAN_ENGINES = ("openvino",)
PLAN_HEIGHTS = (256, 368, 480)
X8_SOURCE = ("openvino", "fp32")
# The default command as it was before issue 14 chose new defaults with this benchmark (commit
# 7e45b44): its row shows what the new defaults gain in AP and cost in FPS.  Config values, and
# the decoder's tuning internals (DecoderParams fields, given to the decoder directly).
PREVIOUS_DEFAULTS: tuple[tuple[str, Any], ...] = (
    ("model.input_height", 368), ("postprocess.peak_threshold", 0.1), ("postprocess.min_parts", 3),
    ("postprocess.min_mean_score", 0.4))
PREVIOUS_DECODER: tuple[tuple[str, Any], ...] = (("paf_threshold", 0.05), ("min_aligned_fraction", 0.8))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    data = find_shared() / DEFAULT_DATA
    parser = argparse.ArgumentParser(prog="python -m benchmarks.accuracy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=data / "images", help=f"image folder (default {data}/images)")
    parser.add_argument("--annotations", type=Path, default=data / DEFAULT_ANNOTATIONS,
                        help=f"COCO keypoint annotation file (default {data}/{DEFAULT_ANNOTATIONS})")
    parser.add_argument("--split", choices=SPLITS, default="all",
                        help="image ids run and scored: all (AP also per half), even or odd")
    parser.add_argument("--backbones", nargs="+", help="default: mobilenet_thin (+ omz where its IR is, + "
                                                       "cmu/mobilenet where their trained weights are)")
    parser.add_argument("--engines", nargs="+", help="default: openvino (+ torch at the default height)")
    parser.add_argument("--precisions", nargs="+", help="default: fp32 bf16 (bf16 on bf16 CPUs; int8 "
                                                        "where the project has it)")
    parser.add_argument("--heights", nargs="+", type=int, help="net input heights (default 256 368 480)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a config value for every configuration, e.g. postprocess.min_parts=4")
    parser.add_argument("--no-default", action="store_true", help="leave out the default command's rows "
                                                                  "(as it is, and as it was before issue 14)")
    parser.add_argument("--no-x8", action="store_true", help="skip the x8 reference decoder row")
    parser.add_argument("--no-peer", action="store_true", help="skip Intel's OMZ wrapper")
    parser.add_argument("--no-fps", action="store_true", help="skip the FPS runs on the benchmark clip")
    parser.add_argument("--fps-seconds", type=float, default=4.0, help="length of each FPS run (default 4)")
    parser.add_argument("--fps-repeats", type=int, default=2, help="FPS runs per configuration, the best "
                                                                   "kept (default 2)")
    parser.add_argument("--omz-weights", type=Path, help="human-pose-estimation-0001.xml "
                                                         "(default ../shared/weights/omz/…/FP16-INT8)")
    parser.add_argument("--omz-python", type=Path, help="Python with Intel's model API (default .venv-omz)")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "posestream-bench",
                        help="benchmark clip and scratch files")
    parser.add_argument("--out", type=Path, help="where accuracy.* go (default: benchmarks/results/CLASS, "
                                                 "this machine's class)")
    return parser.parse_args(argv)


def parse_overrides(texts: list[str]) -> tuple[tuple[str, Any], ...]:
    """``KEY=VALUE`` strings -> (key, typed value) pairs, checked by loading them once."""
    import yaml

    from stream.config import load_config

    pairs = []
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {text!r}: expected KEY=VALUE")
        pairs.append((key.strip(), yaml.safe_load(value)))
    load_config(None, values=dict(pairs))
    return tuple(pairs)


def precisions_available() -> list[str]:
    """The precisions the config accepts, beyond auto (int8 appears once the project has it)."""
    from typing import get_args

    from stream.config import InferenceConfig

    return [p for p in get_args(InferenceConfig.model_fields["precision"].annotation) if p != "auto"]


def has_trained_weights(backbone: str) -> bool:
    import backbones

    return backbones.default_weights_path(backbone).is_file()


def plan_setups(args: argparse.Namespace, omz_xml: Path | None, settings: tuple) -> list[Setup]:
    """The configurations to measure: the default command, the grid, omz, the x8 decoder."""
    from stages.engines import cpu_supports_bf16

    grid_given = any((args.backbones, args.engines, args.precisions, args.heights))
    backbones = args.backbones or [THIN] + [b for b in ("mobilenet", "cmu") if has_trained_weights(b)] \
        + (["omz"] if omz_xml is not None else [])
    available = precisions_available()
    default_precisions = [p for p in ("fp32", "bf16", "int8") if p in available
                          and (p != "bf16" or cpu_supports_bf16())]
    precisions = args.precisions or default_precisions
    setups = [] if args.no_default else [Setup("auto", settings=settings, role="default command")]
    if not args.no_default and not grid_given and _differs_from_previous(settings):
        setups.append(Setup(THIN, settings=PREVIOUS_DEFAULTS + settings, decoder_values=PREVIOUS_DECODER,
                            role="previous default"))
    for backbone in backbones:
        weights = str(omz_xml) if backbone == "omz" else None
        if backbone == "omz":
            engines, heights = ["openvino"], args.heights or [None]
        else:
            engines, heights = args.engines or list(PLAN_ENGINES), args.heights or list(PLAN_HEIGHTS)
        for engine, precision, height in itertools.product(engines, precisions, heights):
            if backbone == "omz" and precision == "int8":
                continue                      # Intel's IR is int8 already: the engine refuses it
            setups.append(Setup(backbone, engine, precision, height, weights, settings=settings))
        if not grid_given and backbone != "omz":
            setups.append(Setup(backbone, "torch", "fp32", None, weights, settings=settings))
    if not args.no_x8 and THIN in backbones:
        source = next((s for s in setups if s.backbone == THIN and (s.engine, s.precision) == X8_SOURCE
                       and s.height in (None, 368)), None)
        source = source or next((s for s in setups if s.backbone == THIN), None)
        if source is not None:
            setups.append(Setup(**{**vars(source), "decoder": X8, "role": "x8 reference decoder"}))
    return _without_duplicates(setups)


def _differs_from_previous(settings: tuple) -> bool:
    """Whether the default command (with ``settings``) is not the previous default any more."""
    from stream.config import load_config

    now = Setup(THIN, settings=settings)
    before = Setup(THIN, settings=PREVIOUS_DEFAULTS + settings, decoder_values=PREVIOUS_DECODER)
    config_now, config_before = (load_config(None, values=s.config_values()) for s in (now, before))
    height_now = config_now.model.input_height or default_height(THIN)
    return now.decoder_params(config_now) != before.decoder_params(config_before) or \
        height_now != config_before.model.input_height


def _without_duplicates(setups: list[Setup]) -> list[Setup]:
    """A grid row that is what the default command resolves to is left out (the default's row
    stands for it)."""
    default = next((s for s in setups if s.role == "default command"), None)
    resolved = resolved_setup(default) if default else None
    return [s for s in setups if s is default or s != resolved]


def resolved_setup(setup: Setup) -> Setup:
    """``setup`` with auto engine/precision and the default height made explicit; the default
    command (``--backbone auto``: chosen per machine when it runs) as it is."""
    from stages.engines import resolve_engine, resolve_precision
    from stream.config import load_config

    if setup.backbone == "auto":
        return setup
    config = load_config(None, values=setup.config_values())
    engine = resolve_engine(config)
    height = setup.height or default_height(setup.backbone)
    return Setup(**{**vars(setup), "engine": engine, "precision": resolve_precision(config, engine),
                    "height": height, "role": ""})


def calibrated_apart(setup: Setup, clip: Path) -> Setup:
    """An int8 setup calibrated on the benchmark clip unless ``--set inference.calibration`` says
    otherwise: by default int8 calibrates on the run's own source, here the very images scored."""
    if setup.precision != "int8" or "inference.calibration" in dict(setup.settings):
        return setup
    return Setup(**{**vars(setup), "settings": setup.settings + (("inference.calibration", str(clip)),)})


def default_height(backbone: str) -> int | None:
    """The net input height a backbone runs at when none is given."""
    import backbones

    if backbone in backbones.list_backbones():
        return backbones.get_spec(backbone).preprocess.default_height
    return None


def score_records(dataset: Dataset, records: list[dict], splits: list[str], image_ids: list[int]) -> dict:
    """AP per split from JSON-lines records."""
    detections = detections_from_lines(records, dataset.image_ids)
    return {split: keypoint_ap(dataset.ground_truth, detections, split_ids(image_ids, split))
            for split in splits}


def measure_setup(setup: Setup, folder: Path, dataset: Dataset, splits: list[str],
                  image_ids: list[int], recorded: dict, record: bool) -> dict:
    """One configuration's row: AP per split, people found, decode time, engine.  recorded: maps
    by ``_maps_key``, filled when ``record``, replayed for the x8 decoder."""
    replay = recorded.get(_maps_key(setup)) if setup.decoder == X8 else None
    started = time.monotonic()
    run = run_images(setup, folder, record_maps=record, replay=replay)
    if run.recorded is not None:
        recorded[_maps_key(setup)] = run.recorded
    stages = run.report.get("stages", {})
    return {"label": setup.label, "role": setup.role, "setup": _setup_json(setup),
            "resolved": _setup_json(resolved_setup(setup)),
            "engine": run.engine, "ap": score_records(dataset, run.records, splits, image_ids),
            "images": len(run.records), "people": sum(len(r["people"]) for r in run.records),
            "decode_ms": stages.get("postprocess", {}).get("mean_ms"),
            "run_s": round(time.monotonic() - started, 1)}


def _maps_key(setup: Setup) -> tuple:
    return (setup.backbone, setup.engine, setup.precision, setup.height, setup.weights, setup.settings)


def _setup_json(setup: Setup) -> dict:
    return {**vars(setup), "settings": dict(setup.settings), "decoder_values": dict(setup.decoder_values)}


def measure_fps(setup: Setup, clip: Path, args: argparse.Namespace) -> dict:
    """End-to-end FPS of ``setup``'s pipeline on the benchmark clip, each run in a fresh process;
    the best of ``--fps-repeats`` runs (the one least slowed by other work on the machine), and
    its CPU time per frame (ms of CPU, all threads), which other work disturbs far less."""
    case = {"kind": "pipeline", "backbone": setup.backbone, "engine": f"{setup.engine}-{setup.precision}",
            "config": setup.config_values(), "mode": "threaded", "height": setup.height,
            "weights": setup.weights, "clip": str(clip), "max_seconds": args.fps_seconds, "max_frames": None}
    results = [run_worker(case, args.work_dir) for _ in range(max(1, args.fps_repeats))]
    measured = [r for r in results if "error" not in r and r.get("fps")]
    if not measured:
        log.warning("  FPS run failed: %s", results[-1].get("error"))
        return {"fps_error": results[-1].get("error", "no frames")}
    best = max(measured, key=lambda r: r["fps"])
    cpu_ms = [10.0 * r["cpu_percent"] / r["fps"] for r in measured if r.get("cpu_percent")]
    return {"fps": best["fps"], "fps_runs": [r["fps"] for r in measured],
            "cpu_ms_per_frame": round(min(cpu_ms), 2) if cpu_ms else None,
            "fps_others_cpu_percent": best.get("others_cpu_percent")}


def measure_peer(args: argparse.Namespace, omz_xml: Path, folder: Path, dataset: Dataset,
                 splits: list[str], image_ids: list[int], clip: Path | None) -> dict | None:
    """Intel's wrapper row: AP on the images, FPS on the clip (sync and async)."""
    from benchmarks.coco_eval import coco_detection

    python = omz_python(args.omz_python)
    if python is None:
        log.warning("Intel's wrapper not measured: no Python with its model API (.venv-omz, see "
                    "benchmarks/README.md)")
        return None
    result = run_peer_images(python, omz_xml, folder, args.work_dir)
    if "error" in result:
        log.warning("Intel's wrapper failed: %s", result["error"])
        return {"label": "Intel OMZ wrapper", "error": result["error"]}
    detections = [coco_detection(person, dataset.image_ids[image["file"]], score)
                  for image in result["images"] for person, score in zip(image["people"], image["scores"])]
    row = {"label": "omz, Intel's OpenPose wrapper (model_api)", "role": "Intel wrapper",
           "engine": "openvino (Intel model_api)", "images": result["frames"],
           "people": len(detections), "ap": {split: keypoint_ap(dataset.ground_truth, detections,
                                                                 split_ids(image_ids, split))
                                             for split in splits}}
    if clip is not None:
        for mode in ("sync", "async"):
            peer = run_peer(python, omz_xml, clip, mode, None, args.work_dir)
            row[f"fps_{mode}"] = peer.get("fps")
        row["fps"] = row.get("fps_sync")
    return row


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_tool("python -m benchmarks.accuracy", lambda: benchmark(args))


def benchmark(args: argparse.Namespace) -> list[Path]:
    logging.getLogger().setLevel(logging.INFO)
    started = time.monotonic()
    dataset = load_dataset(args.images, args.annotations)
    settings = parse_overrides(args.overrides)
    image_ids = split_ids(dataset.image_ids.values(), args.split)
    splits = list(SPLITS) if args.split == "all" else [args.split]
    omz_xml = omz_weights(args.omz_weights)
    setups = plan_setups(args, omz_xml, settings)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    clip = None if args.no_fps else prepare_clip(args.work_dir)[0]
    setups = [calibrated_apart(setup, clip or prepare_clip(args.work_dir)[0]) for setup in setups]
    load_before = load_average()
    recorded: dict = {}
    wanted = {_maps_key(s) for s in setups if s.decoder == X8}
    rows = []
    with tempfile.TemporaryDirectory(prefix="posestream-accuracy-images-") as tmp:
        folder = link_images(dataset, image_ids, Path(tmp) / "images")
        for number, setup in enumerate(setups, 1):
            log.info("[%d/%d] %s", number, len(setups), setup.label)
            record = setup.decoder == OURS and _maps_key(setup) in wanted
            row = measure_setup(setup, folder, dataset, splits, image_ids, recorded, record)
            if clip is not None and setup.decoder == OURS:
                row.update(measure_fps(setup, clip, args))
            rows.append(row)
            log.info("  AP %s, %s", accuracy_report.ap_text(row), accuracy_report.fps_text(row))
        if omz_xml is not None and not args.no_peer and any(s.backbone == "omz" for s in setups):
            peer = measure_peer(args, omz_xml, folder, dataset, splits, image_ids, clip)
            if peer is not None:
                rows.append(peer)
    summary = accuracy_report.summarise(rows, dataset, args, splits, image_ids)
    summary["meta"] = accuracy_report.run_meta(load_before, load_average(), time.monotonic() - started,
                                               clip, settings)
    paths = store.write_results("accuracy", summary, accuracy_report.markdown, out=args.out,
                                chart=accuracy_report.write_chart, headline=accuracy_report.headline_line(summary),
                                load_before=load_before)
    for path in paths:
        print(path)
    print(accuracy_report.goals_text(summary))
    return paths


if __name__ == "__main__":
    sys.exit(main())

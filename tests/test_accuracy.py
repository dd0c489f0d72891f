"""The accuracy benchmark: CMU-18 <-> COCO-17 mapping, COCO scoring of JSON lines, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.coco_eval import (COCO_KEYPOINTS, NECK, detections_from_lines, from_coco17, keypoint_ap,
                                  load_dataset, split_ids, to_coco17)
from stream.items import Posed
from stream.sinks.json_lines import pose_record

ROOT = Path(__file__).resolve().parents[1]
SUBSET = "person_keypoints_val2017_subset.json"


@pytest.fixture(scope="module")
def coco_dir(shared_dir: Path) -> Path:
    folder = shared_dir / "coco-val2017"
    if not (folder / SUBSET).is_file():
        pytest.skip(f"no COCO subset at {folder}")
    return folder


def test_coco_order_matches_the_annotation_file(coco_dir: Path):
    categories = json.loads((coco_dir / SUBSET).read_text())["categories"]
    names = next(c["keypoints"] for c in categories if c["id"] == 1)
    assert [n.replace("left_", "l_").replace("right_", "r_") for n in names] == list(COCO_KEYPOINTS)


def test_from_and_to_coco17_round_trip_and_neck():
    rng = np.random.default_rng(1)
    coco = rng.uniform(1, 100, (3, 17, 3)).astype(np.float32)
    coco[1, COCO_KEYPOINTS.index("r_shoulder")] = 0          # person 1: no neck without both shoulders
    cmu = from_coco17(coco)
    assert np.array_equal(to_coco17(cmu), coco)
    left, right = coco[0, COCO_KEYPOINTS.index("l_shoulder")], coco[0, COCO_KEYPOINTS.index("r_shoulder")]
    assert np.allclose(cmu[0, NECK], (left + right) / 2)
    assert np.array_equal(cmu[1, NECK], np.zeros(3))


def _records(dataset, jitter_px: float) -> list[dict]:
    """Every image's ground-truth people as posestream JSON lines (pose_record), score 1."""
    rng = np.random.default_rng(0)
    records = []
    for index, (name, image_id) in enumerate(sorted(dataset.image_ids.items())):
        annotations = [a for a in dataset.ground_truth.imgToAnns[image_id] if a["num_keypoints"] > 0]
        keypoints = np.asarray([a["keypoints"] for a in annotations], dtype=np.float32).reshape(-1, 17, 3)
        keypoints[..., :2] += rng.normal(0, jitter_px, keypoints[..., :2].shape) * (keypoints[..., 2:] > 0)
        people = from_coco17(keypoints)
        item = Posed(image=np.zeros((1, 1, 3), np.uint8), index=index, capture_time=0.0, file=name,
                     net_input=None, scale=1.0, heatmaps=None, pafs=None, people=people,
                     person_ids=(-1,) * len(people))
        record = pose_record(item)
        for person in record["people"]:
            person["score"] = 1.0
        records.append(record)
    return records


def test_ground_truth_through_the_writer_scores_ap_1_and_jitter_lowers_it(coco_dir: Path):
    dataset = load_dataset(coco_dir / "images", coco_dir / SUBSET)
    ids = split_ids(dataset.image_ids.values(), "all")
    exact = keypoint_ap(dataset.ground_truth, detections_from_lines(_records(dataset, 0.0), dataset.image_ids), ids)
    jittered = keypoint_ap(dataset.ground_truth, detections_from_lines(_records(dataset, 4.0), dataset.image_ids),
                           ids)
    assert exact["AP"] == pytest.approx(1.0) and exact["AR"] == pytest.approx(1.0)
    assert 0.0 < jittered["AP"] < 0.9


def test_medium_and_large_ap_are_reported_and_small_people_suffer_more_from_jitter(coco_dir: Path):
    """pycocotools' AP medium / large (stats[3], stats[4]): 1 for the ground truth itself; the same
    pixel jitter costs medium people more AP than large ones (OKS scales with the person's area)."""
    dataset = load_dataset(coco_dir / "images", coco_dir / SUBSET)
    ids = split_ids(dataset.image_ids.values(), "all")
    exact = keypoint_ap(dataset.ground_truth, detections_from_lines(_records(dataset, 0.0), dataset.image_ids), ids)
    jittered = keypoint_ap(dataset.ground_truth, detections_from_lines(_records(dataset, 3.0), dataset.image_ids),
                           ids)
    assert exact["AP_medium"] == pytest.approx(1.0) and exact["AP_large"] == pytest.approx(1.0)
    assert 0.0 <= jittered["AP_medium"] < jittered["AP_large"] < 1.0


def test_markdown_has_medium_and_large_columns():
    from benchmarks.accuracy_report import area_ap, headline

    ap = {"AP": 0.5, "AP50": 0.7, "AP_medium": 0.41, "AP_large": -1.0, "AR": 0.6}
    row = {"label": "x", "role": "", "ap": {"all": ap}, "fps": 10.0, "setup": {"backbone": "mobilenet_thin"}}
    assert area_ap(row, "all", "AP_medium") == "0.410" and area_ap(row, "all", "AP_large") == "n/a"
    table = headline({"splits": ["all"], "rows": [{**row, "role": "default command",
                                                   "resolved": {"backbone": "mobilenet_thin"}}]})
    assert "| AP medium | AP large |" in table and "| 0.410 | n/a |" in table


def test_splits_and_bad_lines():
    assert split_ids([5, 2, 4, 7], "even") == [2, 4] and split_ids([5, 2, 4, 7], "odd") == [5, 7]
    assert split_ids([5, 2], "all") == [2, 5]
    person = {"person_id": -1, "pose_keypoints_2d": [1.0, 2.0, 0.5] * 18}
    with pytest.raises(ValueError, match="score"):
        detections_from_lines([{"frame": 0, "file": "a.jpg", "people": [person]}], {"a.jpg": 1})
    with pytest.raises(ValueError, match="b.jpg"):
        detections_from_lines([{"frame": 0, "file": "b.jpg", "people": []}], {"a.jpg": 1})


def _accuracy_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks.accuracy", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("case", ["no-folder", "no-file", "not-coco", "image-missing"])
def test_bad_images_or_annotations_exit_2_with_one_line(tmp_path: Path, case: str):
    images, annotations = tmp_path / "images", tmp_path / "gt.json"
    images.mkdir()
    content = {"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [],
               "categories": [{"id": 1, "name": "person", "keypoints": list(COCO_KEYPOINTS)}]}
    annotations.write_text(json.dumps(content if case != "not-coco" else {"images": []}))
    if case != "image-missing":
        (images / "a.jpg").write_bytes(b"")
    named = {"no-folder": str(tmp_path / "nowhere"), "no-file": str(tmp_path / "missing.json"),
             "not-coco": str(annotations), "image-missing": "a.jpg"}[case]
    done = _accuracy_cli("--images", str(tmp_path / "nowhere" if case == "no-folder" else images),
                         "--annotations", str(tmp_path / "missing.json" if case == "no-file" else annotations),
                         "--no-fps", "--out", str(tmp_path / "out"))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_cli_scores_the_real_pipeline_on_a_few_images(coco_dir: Path, tmp_path: Path):
    """Four real images (with people) through the pipeline and the x8 decoder: files written, every
    AP a number in [0, 1], the x8 row decoding the very maps of the row it copies."""
    import backbones

    if not backbones.default_weights_path("mobilenet_thin").is_file():
        pytest.skip("needs weights/mobilenet_thin.pth")
    content = json.loads((coco_dir / SUBSET).read_text())
    with_people = sorted({a["image_id"] for a in content["annotations"] if a["num_keypoints"] > 0})[:4]
    small = {**content, "images": [i for i in content["images"] if i["id"] in with_people],
             "annotations": [a for a in content["annotations"] if a["image_id"] in with_people]}
    annotations = tmp_path / "small.json"
    annotations.write_text(json.dumps(small))
    out = tmp_path / "out"
    done = _accuracy_cli("--images", str(coco_dir / "images"), "--annotations", str(annotations),
                         "--backbones", "mobilenet_thin", "--engines", "openvino", "--precisions", "fp32",
                         "--heights", "256", "--no-default", "--no-fps", "--no-peer", "--out", str(out),
                         timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((out / "accuracy.json").read_text())
    assert (out / "accuracy.md").read_text().startswith("# Accuracy")
    ours, x8 = summary["rows"]
    markdown = (out / "accuracy.md").read_text()
    assert "| AP medium | AP large |" in markdown
    assert x8["role"] == "x8 reference decoder" and x8["setup"]["height"] == ours["setup"]["height"] == 256
    for row in (ours, x8):
        assert row["images"] == 4 and row["people"] > 0
        assert all(0.0 <= row["ap"][split]["AP"] <= 1.0 for split in ("all", "even", "odd"))
        assert all(-1.0 <= row["ap"]["all"][name] <= 1.0 for name in ("AP_medium", "AP_large"))
    assert ours["ap"]["all"]["AP"] > 0.0


def test_default_plan_gives_omz_no_int8_row(tmp_path):
    """Intel's IR is int8 already and the engine refuses int8 for it: the default plan, which
    includes int8 where the project has it, must not ask for that row (it once ended a full run)."""
    from benchmarks.accuracy import parse_args, plan_setups, precisions_available

    xml = tmp_path / "human-pose-estimation-0001.xml"
    setups = plan_setups(parse_args([]), xml, ())
    omz = [setup for setup in setups if setup.backbone == "omz"]
    assert omz and all(setup.precision != "int8" for setup in omz)
    if "int8" in precisions_available():
        assert any(setup.precision == "int8" for setup in setups if setup.backbone != "omz")


def test_tuning_hands_decoder_values_to_the_decoder_not_the_config(coco_dir: Path, tmp_path: Path):
    """The tuning benchmark's candidates are DecoderParams fields (tuning internals included) given
    to the decoder directly: replaying one run's maps, a high peak threshold finds fewer people and
    an internal value reaches the pipeline's decoder without being a config key."""
    import dataclasses

    import backbones
    from benchmarks.accuracy_runs import Setup, run_images
    from benchmarks.accuracy_tune import CANDIDATES
    from benchmarks.coco_eval import link_images
    from stages.postprocess import DecoderParams
    from stream.config import load_config

    assert set(CANDIDATES) <= {f.name for f in dataclasses.fields(DecoderParams)}
    setup = Setup("mobilenet_thin", "openvino", "fp32", 256, decoder_values=(("paf_threshold", 0.2),))
    assert setup.decoder_params(load_config(None, values=setup.config_values())) == DecoderParams(paf_threshold=0.2)
    if not backbones.default_weights_path("mobilenet_thin").is_file():
        pytest.skip("needs weights/mobilenet_thin.pth")
    dataset = load_dataset(coco_dir / "images", coco_dir / SUBSET)
    with_people = sorted({a["image_id"] for a in dataset.ground_truth.dataset["annotations"]
                          if a["num_keypoints"] > 0})[:3]
    link_images(dataset, with_people, tmp_path / "images")
    recorded = run_images(Setup("mobilenet_thin", "openvino", "fp32", 256), tmp_path / "images",
                          record_maps=True).recorded
    found = {}
    for values in ((), (("peak_threshold", 0.6),), (("min_aligned_fraction", 1.0),)):
        run = run_images(Setup("mobilenet_thin", "openvino", "fp32", 256, decoder_values=values),
                         tmp_path / "images", replay=recorded)
        found[values] = sum(len(record["people"]) for record in run.records)
    assert found[()] > found[(("peak_threshold", 0.6),)]
    assert found[()] > found[(("min_aligned_fraction", 1.0),)]

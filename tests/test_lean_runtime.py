"""A run whose engine executes the exported network (OpenVINO, onnxruntime) never imports torch
once the ONNX export is cached; ``backbones`` gives the preprocessing without torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import backbones
from backbones.preprocessing import PREPROCESS_SPECS
from posestream_common.errors import ConfigError
from stream.demo import demo_photo_path

ROOT = Path(__file__).resolve().parents[1]

# The real CLI's main in a fresh interpreter (run as a script it ends with os._exit); after it
# returns, the line says whether torch was imported.
RUN_CLI_THEN_REPORT = """
import sys
import run_stream
code = run_stream.main(sys.argv[1:])
print("torch imported:", "torch" in sys.modules, "| openvino imported:", "openvino" in sys.modules)
sys.exit(code)
"""


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=240)


@pytest.fixture(scope="module")
def warm_export():
    """The default backbone's weights and its ONNX export, as a second run finds them."""
    if not backbones.default_weights_path("mobilenet_thin").is_file():
        pytest.skip("no weights/mobilenet_thin.pth (python -m backbones.fetch mobilenet_thin)")
    from stages.engines import onnx_model_path

    return onnx_model_path("mobilenet_thin", None)


@pytest.mark.parametrize("engine", ["auto", "onnxruntime"])
def test_one_photo_with_the_export_cached_never_imports_torch(warm_export, tmp_path, engine):
    poses = tmp_path / "poses.jsonl"
    run = _python(RUN_CLI_THEN_REPORT, "--image", str(demo_photo_path()), "--no-display",
                  "--engine", engine, "--output", str(tmp_path / "annotated"), "--json", str(poses))
    assert run.returncode == 0, run.stderr[-2000:]
    assert "torch imported: False" in run.stdout, run.stdout
    if engine == "auto":                             # auto chose OpenVINO on this CPU
        assert "openvino imported: True" in run.stdout
    assert poses.read_text().count("\n") == 1 and (tmp_path / "annotated").is_dir()


def test_backbones_give_preprocessing_without_torch():
    run = _python("import sys, backbones\n"
                  "print(backbones.preprocess_spec('mobilenet_thin').mean, 'torch' in sys.modules)")
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["0.0", "False"]


def test_preprocess_table_is_the_registered_networks_preprocessing():
    assert sorted(PREPROCESS_SPECS) == backbones.list_backbones()
    for name in backbones.list_backbones():
        assert backbones.preprocess_spec(name) is backbones.get_spec(name).preprocess
    with pytest.raises(ConfigError, match="nosuchnet.*mobilenet_thin"):
        backbones.preprocess_spec("nosuchnet")


def test_auto_asks_torch_about_cuda_only_where_an_nvidia_driver_is(monkeypatch):
    import torch

    import stages.engines as engines

    monkeypatch.setattr(engines, "nvidia_driver_present", lambda: False)
    assert engines._uses_cuda("auto") is False
    monkeypatch.setattr(engines, "nvidia_driver_present", lambda: True)
    assert engines._uses_cuda("auto") == torch.cuda.is_available()
    assert engines._uses_cuda("cuda:0") and not engines._uses_cuda("cpu")

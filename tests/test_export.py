"""backbones/export.py: ONNX files with dynamic batch/height/width that give torch's maps, the
metadata they carry, the CLI's one-line errors, and the engines' export cache.  Random weights
(no shared files needed)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import backbones
from backbones.export import export_onnx, main, read_metadata
from posestream_common.errors import ConfigError, WeightsError
from stages.engines import onnx_model_path
from tests.helpers_spine import ROOT, cli_env

ort = pytest.importorskip("onnxruntime")


TORCH_THREADS = 1   # intra-op threads while these tests run (tests/conftest.py)


def run_onnx(path, batch: np.ndarray) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(["heatmaps", "pafs"], {"image": batch})


@pytest.mark.parametrize("name", ["mobilenet", "cmu"])
def test_export_runs_at_another_batch_and_size_with_torch_maps(tmp_path, name):
    path = export_onnx(name, tmp_path / f"{name}.onnx", "random", height=48, width=64)
    batch = np.random.default_rng(1).uniform(-0.5, 0.5, (2, 3, 40, 72)).astype(np.float32)
    heatmaps, pafs = run_onnx(path, batch)
    with torch.no_grad():
        expected = backbones.build(name, "random")(torch.from_numpy(batch))
    assert heatmaps.shape == (2, 19, 5, 9) and pafs.shape == (2, 38, 5, 9)
    # fp32 in both runtimes: only the order of the additions differs (~1e-6 of the map range).
    for got, want in zip((heatmaps, pafs), expected):
        want = want.numpy()
        assert np.abs(got - want).max() <= 1e-4 * max(1.0, float(np.abs(want).max()))


def test_export_records_the_backbone_and_its_preprocessing(tmp_path):
    path = export_onnx("mobilenet", tmp_path / "m.onnx", "random", height=32, width=32)
    meta = read_metadata(path)
    spec = backbones.get_spec("mobilenet").preprocess
    assert meta["backbone"] == "mobilenet" and meta["weights"] == "random"
    assert float(meta["mean"]) == spec.mean and float(meta["scale"]) == spec.scale
    assert not list(tmp_path.glob(".*partial"))               # written whole, then renamed


def test_cli_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    assert main(["mobilenet", str(tmp_path / "a.onnx"), "--weights", "random", "--height", "30"]) == 2
    assert main(["nosuchnet", str(tmp_path / "b.onnx")]) == 2
    assert main(["mobilenet", str(tmp_path / "c.onnx"), "--weights", str(tmp_path / "none.pth")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3
    assert "--height 30" in lines[0] and "nosuchnet" in lines[1] and "none.pth" in lines[2]
    assert not list(tmp_path.glob("*.onnx"))


def test_cli_writes_a_file_onnxruntime_loads(tmp_path):
    out = tmp_path / "mobilenet.onnx"
    assert main(["mobilenet", str(out), "--weights", "random", "--height", "32", "--width", "48"]) == 0
    heatmaps, _ = run_onnx(out, np.zeros((1, 3, 64, 24), np.float32))
    assert heatmaps.shape == (1, 19, 8, 3)


def test_engine_cache_exports_once_per_weights_file(tmp_path):
    first = onnx_model_path("mobilenet", "random", cache_dir=tmp_path)
    stamp = first.stat().st_mtime_ns
    again = onnx_model_path("mobilenet", "random", cache_dir=tmp_path)
    assert again == first and again.stat().st_mtime_ns == stamp
    weights = tmp_path / "mine.pth"
    torch.save(backbones.build("mobilenet", "random").state_dict(), weights)
    own = onnx_model_path("mobilenet", str(weights), cache_dir=tmp_path)
    assert own != first and read_metadata(own)["weights"] == str(weights)


def test_engine_cache_passes_onnx_files_through_and_names_missing_ones(tmp_path):
    given = tmp_path / "given.onnx"
    given.write_bytes(b"not checked here")
    assert onnx_model_path("cmu", str(given), cache_dir=tmp_path) == given
    with pytest.raises(WeightsError, match="missing.onnx"):
        onnx_model_path("cmu", str(tmp_path / "missing.onnx"), cache_dir=tmp_path)
    with pytest.raises(WeightsError, match="nothere.pth"):
        onnx_model_path("cmu", str(tmp_path / "nothere.pth"), cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="nosuchnet"):
        onnx_model_path("nosuchnet", "random", cache_dir=tmp_path)


@pytest.mark.parametrize("tool, args, named", [
    ("backbones.export", ["nosuchnet", "{tmp}/out.onnx"], "'nosuchnet'"),
    ("backbones.export", ["mobilenet", "{tmp}/out.onnx", "--height", "30"], "--height 30"),
    ("backbones.export", ["cmu", "{tmp}/out.onnx", "--weights", "{tmp}/missing.pth"], "missing.pth"),
    ("backbones.fetch", ["cmu", "--out", "{tmp}/cmu.pth", "--url", "http://127.0.0.1:9/b.pth"],
     "Download http://127.0.0.1:9/b.pth and save it as"),
])
def test_tool_user_errors_are_one_line_exit_2_and_write_nothing(tool, args, named, tmp_path):
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    done = subprocess.run([sys.executable, "-m", tool, *args], cwd=ROOT, env=cli_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith(f"python -m {tool}: error: ") and named in lines[-1]
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []

"""The networks export with dynamic H/W (no Python control flow on tensor values), so the
inference engines can run them through torch.export / ONNX at any multiple-of-8 size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.export import Dim

import backbones


TORCH_THREADS = 2   # intra-op threads while these tests run (tests/conftest.py)


@pytest.mark.parametrize("name", ["cmu", "mobilenet", "mobilenet_thin"])
def test_torch_export_with_dynamic_size(name):
    network = backbones.build(name, "random")
    h8, w8 = Dim("h8", min=2, max=128), Dim("w8", min=2, max=128)
    exported = torch.export.export(network, (torch.rand(1, 3, 48, 64),),
                                   dynamic_shapes=({2: 8 * h8, 3: 8 * w8},))
    x = torch.rand(1, 3, 72, 40)          # another size than the one exported with
    with torch.inference_mode():
        expected = network(x)
    got = exported.module()(x)
    assert got[0].shape == (1, 19, 9, 5) and got[1].shape == (1, 38, 9, 5)
    torch.testing.assert_close(got[0], expected[0])
    torch.testing.assert_close(got[1], expected[1])


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore:Constant folding")
def test_onnx_export_runs_in_onnxruntime_at_another_size(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    network = backbones.build("mobilenet_thin", "random")
    path = tmp_path / "mobilenet_thin.onnx"
    torch.onnx.export(network, (torch.rand(1, 3, 64, 96) * 255,), str(path), dynamo=False,
                      input_names=["image"], output_names=["heatmaps", "pafs"],
                      dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 3, 80, 112) * 255
    with torch.inference_mode():
        heatmaps, pafs = network(x)
    onnx_heatmaps, onnx_pafs = session.run(None, {"image": x.numpy()})
    np.testing.assert_allclose(onnx_heatmaps, heatmaps.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(onnx_pafs, pafs.numpy(), rtol=1e-4, atol=1e-4)

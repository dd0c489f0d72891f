"""User errors of backbones.build (missing, truncated, foreign or mis-shaped weights), the
registry, random initialisation and the preprocessing specs."""

from __future__ import annotations

import logging

import pytest
import torch

import backbones
from backbones.registry import register_backbone
from posestream_common.errors import ConfigError, WeightsError
from tests.http_files import closed_port


TORCH_THREADS = 1   # intra-op threads while these tests run (tests/conftest.py)


@pytest.fixture(scope="module")
def mobilenet_state() -> dict[str, torch.Tensor]:
    return backbones.build("mobilenet", "random").state_dict()


def test_list_and_unknown_backbone():
    assert backbones.list_backbones() == ["cmu", "mobilenet", "mobilenet_thin", "omz"]
    with pytest.raises(ConfigError,
                       match="unknown backbone 'resnet'.*cmu, mobilenet, mobilenet_thin, omz"):
        backbones.build("resnet", "random")


def test_an_ir_network_is_registered_but_not_a_torch_module():
    spec = backbones.get_spec("omz")
    assert spec.builder is None and spec.ir.engines == ("openvino",)
    assert backbones.ir_backbone("omz") is spec and backbones.ir_backbone("cmu") is None
    with pytest.raises(ConfigError, match="'omz' is an OpenVINO IR, not a torch module.*"
                                          "--engine openvino"):
        backbones.build("omz")


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="'cmu' is already registered"):
        register_backbone("cmu")(lambda: torch.nn.Identity())
    assert backbones.get_spec("cmu").builder is backbones.cmu.build_cmu


@pytest.mark.parametrize("name, published, host", [
    ("cmu", "body_pose_model.pth", "https://huggingface.co/lllyasviel/Annotators/"),
    ("mobilenet", "checkpoint_iter_370000.pth", "https://download.01.org/opencv/"),
])
def test_missing_default_weights_offline_say_where_to_download(tmp_path, monkeypatch, name,
                                                               published, host):
    source = backbones.get_spec(name).sources[0]
    assert source.file_name == published and source.url.startswith(host)
    assert source.url.endswith(published)
    unreachable = f"http://127.0.0.1:{closed_port()}/{published}"    # as offline as it gets
    monkeypatch.setenv(f"POSESTREAM_WEIGHTS_URL_{name.upper()}", unreachable)
    monkeypatch.setattr(backbones, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(WeightsError) as info:
        backbones.build(name)
    message = str(info.value)
    assert f"Download {unreachable} and save it as {tmp_path / f'{name}.pth'}" in message
    assert list(tmp_path.iterdir()) == []


def test_missing_explicit_file(tmp_path):
    with pytest.raises(WeightsError, match="not found: .*nothing.pth"):
        backbones.build("mobilenet", tmp_path / "nothing.pth")


def test_wrong_key_is_named(tmp_path, mobilenet_state):
    state = dict(mobilenet_state)
    state["cpm.align.0.weights"] = state.pop("cpm.align.0.weight")
    torch.save(state, tmp_path / "renamed.pth")
    with pytest.raises(WeightsError,
                       match=r"missing key 'cpm\.align\.0\.weight' \[128, 512, 1, 1\]"):
        backbones.build("mobilenet", tmp_path / "renamed.pth")


def test_extra_key_is_named(tmp_path, mobilenet_state):
    state = dict(mobilenet_state)
    state["initial_stage.extra.0.bias"] = torch.zeros(38)
    torch.save(state, tmp_path / "extra.pth")
    with pytest.raises(WeightsError, match=r"unexpected key 'initial_stage\.extra\.0\.bias'"):
        backbones.build("mobilenet", tmp_path / "extra.pth")


def test_wrong_shape_is_named_with_both_shapes(tmp_path, mobilenet_state):
    state = dict(mobilenet_state)
    state["initial_stage.heatmaps.1.0.weight"] = torch.zeros(20, 512, 1, 1)
    torch.save(state, tmp_path / "shape.pth")
    with pytest.raises(WeightsError,
                       match=r"'initial_stage\.heatmaps\.1\.0\.weight' has shape "
                             r"\[20, 512, 1, 1\], the network needs \[19, 512, 1, 1\]"):
        backbones.build("mobilenet", tmp_path / "shape.pth")


def test_other_architecture_is_refused(tmp_path, mobilenet_state):
    torch.save(mobilenet_state, tmp_path / "mobilenet.pth")
    with pytest.raises(WeightsError, match="not cmu weights .*missing key"):
        backbones.build("cmu", tmp_path / "mobilenet.pth")


@pytest.mark.parametrize("zip_format", [True, False])
def test_truncated_file_says_truncated(tmp_path, mobilenet_state, zip_format):
    whole = tmp_path / "whole.pth"
    torch.save(mobilenet_state, whole, _use_new_zipfile_serialization=zip_format)
    data = whole.read_bytes()
    for cut in (len(data) // 2, len(data) - 7, 50):
        (tmp_path / "cut.pth").write_bytes(data[:cut])
        with pytest.raises(WeightsError, match="truncated"):
            backbones.build("mobilenet", tmp_path / "cut.pth")


def test_empty_and_garbage_files(tmp_path):
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(WeightsError, match="empty"):
        backbones.build("cmu", tmp_path / "empty.pth")
    (tmp_path / "text.pth").write_text("<html>404 not found</html>\n" * 20)
    with pytest.raises(WeightsError, match="cannot read weights file"):
        backbones.build("cmu", tmp_path / "text.pth")


class _NotAWeight:
    pass


def test_pickled_code_is_refused_by_weights_only(tmp_path, mobilenet_state):
    torch.save({"state_dict": mobilenet_state, "extra": _NotAWeight()}, tmp_path / "code.pth")
    with pytest.raises(WeightsError, match="weights_only=True"):
        backbones.build("mobilenet", tmp_path / "code.pth")


def test_random_weights_are_seeded_and_warned(caplog):
    rng_before = torch.random.get_rng_state()
    with caplog.at_level(logging.WARNING, logger="backbones"):
        first = backbones.build("mobilenet_thin", "random").state_dict()
    second = backbones.build("mobilenet_thin", "random").state_dict()
    assert all(torch.equal(first[key], second[key]) for key in first)
    assert any("random weights" in record.getMessage() for record in caplog.records)
    assert torch.equal(rng_before, torch.random.get_rng_state())   # global RNG untouched


def test_built_network_is_in_eval_mode_on_the_device():
    network = backbones.build("mobilenet", "random", device="auto")
    assert not network.training
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert next(network.parameters()).device.type == expected


def test_device_errors():
    with pytest.raises(ConfigError, match="unknown device 'tpu0'"):
        backbones.resolve_device("tpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            backbones.resolve_device("cuda")


@pytest.mark.parametrize("name, height, raw_pixel, normalised, pad", [
    ("cmu", 368, 0, -0.5, 128),          # x/256 - 0.5, padded with grey
    ("mobilenet", 256, 255, 127 / 256, 128),   # (x-128)/256; Osokin pads the normalised 0
    ("mobilenet_thin", 368, 200, 200.0, 0),    # raw 0-255
])
def test_preprocess_specs(name, height, raw_pixel, normalised, pad):
    spec = backbones.get_spec(name).preprocess
    assert (spec.channel_order, spec.stride, spec.size_multiple) == ("BGR", 8, 8)
    assert spec.default_height == height and spec.pad_value == pad
    assert spec.normalise([[raw_pixel]]) == pytest.approx(normalised)
    assert spec.normalise([[raw_pixel]]).dtype.name == "float32"

"""Inference engines: the torch engine's outputs, precision/layout options, and engine selection."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

import backbones
from posestream_common.errors import ConfigError
from stages.inference import TorchEngine, make_engine, register_engine
from stream.config import load_config


TORCH_THREADS = 1   # intra-op threads while these tests run (tests/conftest.py)


def config(**values):
    return load_config(None, values={"model.weights": "random", "inference.engine": "torch",
                                     "inference.precision": "fp32", "inference.threads": 1, **values})


@pytest.fixture(scope="module")
def engine():
    return make_engine(config())


def batch(count=1, height=64, width=96, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (count, 3, height, width)).astype(np.float32)


def test_engine_returns_numpy_heatmaps_and_pafs_at_stride_8(engine):
    heatmaps, pafs = engine(batch(2))
    assert isinstance(heatmaps, np.ndarray) and isinstance(pafs, np.ndarray)
    assert heatmaps.dtype == pafs.dtype == np.float32
    assert heatmaps.shape == (2, 19, 8, 12) and pafs.shape == (2, 38, 8, 12)
    assert engine.stride == 8
    assert engine.preprocess == backbones.get_spec("mobilenet_thin").preprocess


def test_engine_matches_the_network_and_batches_independently(engine):
    inputs = batch(2, seed=3)
    heatmaps, pafs = engine(inputs)
    with torch.inference_mode():
        expected_heatmaps, expected_pafs = engine.model(torch.from_numpy(inputs))
    assert np.allclose(heatmaps, expected_heatmaps.numpy(), atol=1e-5)
    assert np.allclose(pafs, expected_pafs.numpy(), atol=1e-5)
    single_heatmaps, _ = engine(inputs[1:])
    assert np.allclose(single_heatmaps[0], heatmaps[1], atol=1e-4)


def test_channels_last_gives_the_same_result(engine):
    inputs = batch(1, seed=5)
    model = backbones.build("mobilenet_thin", "random")
    nhwc = TorchEngine(model, engine.preprocess, torch.device("cpu"), channels_last=True)
    assert np.allclose(nhwc(inputs)[0], engine(inputs)[0], atol=1e-4)


def test_bf16_autocast_stays_close_to_fp32(engine):
    inputs = batch(1, seed=7)
    model = backbones.build("mobilenet_thin", "random")
    bf16 = TorchEngine(model, engine.preprocess, torch.device("cpu"), precision="bf16")
    low, _ = bf16(inputs)
    full, _ = engine(inputs)
    assert low.dtype == np.float32
    assert not np.array_equal(low, full)                      # it really ran in bf16
    assert np.abs(low - full).max() < 0.1 * max(1.0, np.abs(full).max())


def test_warmup_runs_the_network_on_zeros_of_the_given_size(engine):
    inputs = []
    hook = engine.model.register_forward_hook(lambda _module, args, _output: inputs.append(args[0].clone()))
    try:
        engine.warmup(32, 48, runs=2)
    finally:
        hook.remove()
    assert [tuple(batch.shape) for batch in inputs] == [(1, 3, 32, 48)] * 2
    assert all(not batch.any() for batch in inputs)


def test_threads_setting_sets_torch_intra_op_threads():
    make_engine(config(**{"inference.threads": 2}))
    assert torch.get_num_threads() == 2


def test_unknown_backbone_and_omz_on_torch_are_user_errors():
    with pytest.raises(ConfigError, match="'resnet'.*mobilenet_thin"):
        make_engine(config(**{"model.backbone": "resnet"}))
    with pytest.raises(ConfigError, match="omz.*openvino"):
        make_engine(config(**{"model.backbone": "omz"}))


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_is_a_user_error():
    with pytest.raises(ConfigError, match="cuda"):
        make_engine(config(**{"model.device": "cuda"}))


def test_engine_registry_refuses_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        register_engine("torch")(lambda cfg: None)


def test_an_engine_without_a_builder_is_reported_as_not_available():
    from stages import inference

    missing = [name for name in ("onnxruntime", "openvino") if name not in inference._BUILDERS]
    for name in missing:
        try:
            make_engine(config(**{"inference.engine": name}))
        except ConfigError as error:
            assert name in str(error) and "not available" in str(error)
        else:
            assert name in inference._BUILDERS      # a plug-in module registered it meanwhile


@pytest.mark.parametrize("threads, workers, mode, cores, expected", [
    (None, None, "threaded", 2, (1, 2)),      # two frames at once, one core each
    (None, None, "sequential", 2, (2, 1)),    # one frame on every core
    (None, None, "threaded", 16, (8, 2)),
    (None, None, "threaded", 1, (1, 1)),
    (3, None, "threaded", 2, (3, 2)),         # what the user set is kept
    (None, 4, "threaded", 16, (4, 4)),
])
def test_cpu_parallelism_fills_in_what_is_not_set(threads, workers, mode, cores, expected):
    from stages.inference import cpu_parallelism

    assert cpu_parallelism(threads, workers, mode, cores) == expected


def test_engine_carries_its_worker_count():
    threaded = make_engine(config(**{"inference.threads": 1, "inference.workers": 3}))
    assert threaded.workers == 3
    sequential = make_engine(config(**{"pipeline.mode": "sequential"}))
    assert sequential.workers == 1


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                    reason="torch.compile on a CPU needs a C compiler")
def test_compiled_engine_gives_the_eager_maps_with_one_worker(engine):
    compiled = make_engine(config(**{"inference.compile": True, "inference.workers": 2}))
    assert compiled.compiled and compiled.workers == 1
    inputs = batch(2, 32, 48, seed=4)
    for expected, got in zip(engine(inputs), compiled(inputs)):
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)

"""Each published checkpoint layout loads unchanged and computes what the published network does.

The key names and shapes below are written from reading the publishing projects (Hzzone
pytorch-openpose ``model.py``, tensorboy ``rtpose_vgg.py``, Osokin ``with_mobilenet.py`` and
``modules/conv.py``), not derived from our modules.  Seeded random weights are saved in each
layout, loaded with ``backbones.build`` and compared with (a) the same weights in the other
layouts and (b) a functional re-implementation of the published forward pass written here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import backbones


TORCH_THREADS = 1   # intra-op threads while these tests run (tests/conftest.py)


# ---------------------------------------------------------------- CMU (Caffe names)
CMU_TRUNK = [  # (caffe name, in, out, kernel); 2x2 max pools after conv1_2, conv2_2, conv3_4
    ("conv1_1", 3, 64, 3), ("conv1_2", 64, 64, 3),
    ("conv2_1", 64, 128, 3), ("conv2_2", 128, 128, 3),
    ("conv3_1", 128, 256, 3), ("conv3_2", 256, 256, 3), ("conv3_3", 256, 256, 3),
    ("conv3_4", 256, 256, 3),
    ("conv4_1", 256, 512, 3), ("conv4_2", 512, 512, 3), ("conv4_3_CPM", 512, 256, 3),
    ("conv4_4_CPM", 256, 128, 3),
]
POOL_AFTER = {"conv1_2", "conv2_2", "conv3_4"}
# rtpose_vgg model0 = [conv, ReLU]* with a MaxPool after conv1_2, conv2_2, conv3_4
TENSORBOY_TRUNK_POSITIONS = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25]


def cmu_branch(stage: int, branch: int) -> list[tuple[str, int, int, int]]:
    out = 38 if branch == 1 else 19
    if stage == 1:
        return [(f"conv5_1_CPM_L{branch}", 128, 128, 3), (f"conv5_2_CPM_L{branch}", 128, 128, 3),
                (f"conv5_3_CPM_L{branch}", 128, 128, 3), (f"conv5_4_CPM_L{branch}", 128, 512, 1),
                (f"conv5_5_CPM_L{branch}", 512, out, 1)]
    return [(f"Mconv1_stage{stage}_L{branch}", 185, 128, 7),
            (f"Mconv2_stage{stage}_L{branch}", 128, 128, 7),
            (f"Mconv3_stage{stage}_L{branch}", 128, 128, 7),
            (f"Mconv4_stage{stage}_L{branch}", 128, 128, 7),
            (f"Mconv5_stage{stage}_L{branch}", 128, 128, 7),
            (f"Mconv6_stage{stage}_L{branch}", 128, 128, 1),
            (f"Mconv7_stage{stage}_L{branch}", 128, out, 1)]


def random_cmu_caffe(seed: int = 0) -> dict[str, torch.Tensor]:
    """Hzzone body_pose_model.pth layout: raw Caffe names, seeded He-scaled random values."""
    generator = torch.Generator().manual_seed(seed)
    layers = list(CMU_TRUNK) + [layer for stage in range(1, 7) for branch in (1, 2)
                                for layer in cmu_branch(stage, branch)]
    state = {}
    for name, cin, cout, k in layers:
        scale = (2 / (cin * k * k)) ** 0.5
        state[f"{name}.weight"] = torch.randn(cout, cin, k, k, generator=generator) * scale
        state[f"{name}.bias"] = torch.randn(cout, generator=generator) * 0.01
    return state


def to_hzzone_modules(caffe: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state = {f"model0.{key}": value for key, value in caffe.items()
             if key.split(".")[0] in {name for name, *_ in CMU_TRUNK}}
    for stage in range(1, 7):
        for branch in (1, 2):
            for name, *_ in cmu_branch(stage, branch):
                for param in ("weight", "bias"):
                    state[f"model{stage}_{branch}.{name}.{param}"] = caffe[f"{name}.{param}"]
    return state


def to_tensorboy(caffe: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state = {}
    for (name, *_), position in zip(CMU_TRUNK, TENSORBOY_TRUNK_POSITIONS):
        for param in ("weight", "bias"):
            state[f"model0.{position}.{param}"] = caffe[f"{name}.{param}"]
    for stage in range(1, 7):
        for branch in (1, 2):
            for index, (name, *_) in enumerate(cmu_branch(stage, branch)):
                for param in ("weight", "bias"):
                    state[f"model{stage}_{branch}.{2 * index}.{param}"] = caffe[f"{name}.{param}"]
    return state


def reference_cmu(caffe: dict[str, torch.Tensor], x: torch.Tensor):
    """CMU's Caffe forward: ReLU after every conv but the last of each branch."""

    def conv(name, kernel, value, relu=True):
        out = F.conv2d(value, caffe[f"{name}.weight"], caffe[f"{name}.bias"], padding=kernel // 2)
        return F.relu(out) if relu else out

    def branch(stage, number, value):
        layers = cmu_branch(stage, number)
        for index, (name, _, _, kernel) in enumerate(layers):
            value = conv(name, kernel, value, relu=index < len(layers) - 1)
        return value

    features = x
    for name, _, _, kernel in CMU_TRUNK:
        features = conv(name, kernel, features)
        if name in POOL_AFTER:
            features = F.max_pool2d(features, 2, 2)
    pafs, heatmaps = branch(1, 1, features), branch(1, 2, features)
    for stage in range(2, 7):
        joined = torch.cat([pafs, heatmaps, features], dim=1)
        pafs, heatmaps = branch(stage, 1, joined), branch(stage, 2, joined)
    return heatmaps, pafs


def run(network, x):
    with torch.inference_mode():
        return network(x)


def test_cmu_published_layouts_load_and_match_caffe_forward(tmp_path):
    caffe = random_cmu_caffe(seed=1)
    x = torch.randn(1, 3, 48, 64, generator=torch.Generator().manual_seed(2))
    # Hzzone's 2018 file predates PyTorch's zip format: save that one in the legacy format
    torch.save(caffe, tmp_path / "body_pose_model.pth", _use_new_zipfile_serialization=False)
    torch.save(to_hzzone_modules(caffe), tmp_path / "bodypose_model")
    torch.save(to_tensorboy(caffe), tmp_path / "pose_model.pth")

    outputs = {name: run(backbones.build("cmu", tmp_path / name), x)
               for name in ("body_pose_model.pth", "bodypose_model", "pose_model.pth")}
    heatmaps_ref, pafs_ref = reference_cmu(caffe, x)

    assert heatmaps_ref.shape == (1, 19, 6, 8) and pafs_ref.shape == (1, 38, 6, 8)
    for heatmaps, pafs in outputs.values():
        assert torch.equal(heatmaps, outputs["body_pose_model.pth"][0])
        assert torch.equal(pafs, outputs["body_pose_model.pth"][1])
        torch.testing.assert_close(heatmaps, heatmaps_ref, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(pafs, pafs_ref, rtol=1e-4, atol=1e-5)
    # the final convs carry no ReLU: random weights must give negative outputs somewhere
    assert heatmaps_ref.min() < 0 and pafs_ref.min() < 0


def test_cmu_dataparallel_prefix_is_accepted(tmp_path):
    caffe = random_cmu_caffe(seed=3)
    torch.save({f"module.{k}": v for k, v in to_tensorboy(caffe).items()}, tmp_path / "dp.pth")
    network = backbones.build("cmu", tmp_path / "dp.pth")
    assert torch.equal(network.stages[5].heatmaps.Mconv7_stage6_L2[0].bias,
                       caffe["Mconv7_stage6_L2.bias"])


# ---------------------------------------------------------------- Osokin lightweight OpenPose
MOBILENET_DW = [(32, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 512),
                (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
MOBILENET_DW_STRIDE = {2: 2, 4: 2}      # model.<i> with stride 2 (model.0 is also stride 2)
MOBILENET_DW_DILATION = {7: 2}


def osokin_shapes() -> dict[str, tuple[int, ...]]:
    """checkpoint_iter_370000.pth state_dict keys and shapes."""
    shapes: dict[str, tuple[int, ...]] = {}

    def bn(prefix, channels):
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{name}"] = (channels,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    def conv(prefix, cout, cin, k, bias=True):
        shapes[f"{prefix}.weight"] = (cout, cin, k, k)
        if bias:
            shapes[f"{prefix}.bias"] = (cout,)

    conv("model.0.0", 32, 3, 3, bias=False)
    bn("model.0.1", 32)
    for index, (cin, cout) in enumerate(MOBILENET_DW, start=1):
        conv(f"model.{index}.0", cin, 1, 3, bias=False)
        bn(f"model.{index}.1", cin)
        conv(f"model.{index}.3", cout, cin, 1, bias=False)
        bn(f"model.{index}.4", cout)
    conv("cpm.align.0", 128, 512, 1)
    for index in range(3):
        conv(f"cpm.trunk.{index}.0", 128, 1, 3, bias=False)
        conv(f"cpm.trunk.{index}.2", 128, 128, 1, bias=False)
    conv("cpm.conv.0", 128, 128, 3)
    for index in range(3):
        conv(f"initial_stage.trunk.{index}.0", 128, 128, 3)
    conv("initial_stage.heatmaps.0.0", 512, 128, 1)
    conv("initial_stage.heatmaps.1.0", 19, 512, 1)
    conv("initial_stage.pafs.0.0", 512, 128, 1)
    conv("initial_stage.pafs.1.0", 38, 512, 1)
    for block in range(5):
        prefix = f"refinement_stages.0.trunk.{block}"
        conv(f"{prefix}.initial.0", 128, 185 if block == 0 else 128, 1)
        conv(f"{prefix}.trunk.0.0", 128, 128, 3)
        bn(f"{prefix}.trunk.0.1", 128)
        conv(f"{prefix}.trunk.1.0", 128, 128, 3)
        bn(f"{prefix}.trunk.1.1", 128)
    conv("refinement_stages.0.heatmaps.0.0", 128, 128, 1)
    conv("refinement_stages.0.heatmaps.1.0", 19, 128, 1)
    conv("refinement_stages.0.pafs.0.0", 128, 128, 1)
    conv("refinement_stages.0.pafs.1.0", 38, 128, 1)
    return shapes


def random_osokin(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in osokin_shapes().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(370000)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        elif key.endswith("weight") and len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            state[key] = torch.randn(shape, generator=generator) * (2 / fan_in) ** 0.5
        else:
            state[key] = torch.randn(shape, generator=generator) * 0.1
    return state


def reference_osokin(sd: dict[str, torch.Tensor], x: torch.Tensor):
    """Osokin's PoseEstimationWithMobileNet forward, written functionally from his code."""

    def conv(prefix, value, stride=1, padding=None, dilation=1, groups=1):
        weight = sd[f"{prefix}.weight"]
        pad = dilation * (weight.shape[-1] // 2) if padding is None else padding
        return F.conv2d(value, weight, sd.get(f"{prefix}.bias"), stride, pad, dilation, groups)

    def bn(prefix, value):
        return F.batch_norm(value, sd[f"{prefix}.running_mean"], sd[f"{prefix}.running_var"],
                            sd[f"{prefix}.weight"], sd[f"{prefix}.bias"], False, 0.0, 1e-5)

    value = F.relu(bn("model.0.1", conv("model.0.0", x, stride=2)))
    for index, (cin, _) in enumerate(MOBILENET_DW, start=1):
        dilation = MOBILENET_DW_DILATION.get(index, 1)
        value = conv(f"model.{index}.0", value, stride=MOBILENET_DW_STRIDE.get(index, 1),
                     dilation=dilation, groups=cin)
        value = F.relu(bn(f"model.{index}.1", value))
        value = F.relu(bn(f"model.{index}.4", conv(f"model.{index}.3", value)))
    aligned = F.relu(conv("cpm.align.0", value))
    trunk = aligned
    for index in range(3):
        trunk = F.elu(conv(f"cpm.trunk.{index}.0", trunk, groups=128))
        trunk = F.elu(conv(f"cpm.trunk.{index}.2", trunk))
    features = F.relu(conv("cpm.conv.0", aligned + trunk))

    trunk = features
    for index in range(3):
        trunk = F.relu(conv(f"initial_stage.trunk.{index}.0", trunk))
    heatmaps = conv("initial_stage.heatmaps.1.0", F.relu(conv("initial_stage.heatmaps.0.0", trunk)))
    pafs = conv("initial_stage.pafs.1.0", F.relu(conv("initial_stage.pafs.0.0", trunk)))

    value = torch.cat([features, heatmaps, pafs], dim=1)
    for block in range(5):
        prefix = f"refinement_stages.0.trunk.{block}"
        initial = F.relu(conv(f"{prefix}.initial.0", value))
        inner = F.relu(bn(f"{prefix}.trunk.0.1", conv(f"{prefix}.trunk.0.0", initial)))
        inner = F.relu(bn(f"{prefix}.trunk.1.1", conv(f"{prefix}.trunk.1.0", inner, dilation=2)))
        value = initial + inner
    heatmaps = conv("refinement_stages.0.heatmaps.1.0",
                    F.relu(conv("refinement_stages.0.heatmaps.0.0", value)))
    pafs = conv("refinement_stages.0.pafs.1.0", F.relu(conv("refinement_stages.0.pafs.0.0", value)))
    return heatmaps, pafs


def test_osokin_checkpoint_variants_load_and_match_published_forward(tmp_path):
    state = random_osokin(seed=4)
    x = torch.randn(1, 3, 64, 80, generator=torch.Generator().manual_seed(5))
    variants = {
        "checkpoint_iter_370000.pth": {"state_dict": state, "iter": 370000, "current_epoch": 9,
                                       "optimizer": {"state": {}, "param_groups": []}},
        "bare.pth": state,
        "dataparallel.pth": {"state_dict": {f"module.{k}": v for k, v in state.items()}},
        "old_pytorch.pth": {k: v for k, v in state.items() if "num_batches_tracked" not in k},
        # as published: trained with 3 refinement stages, of which the demo network uses one
        "three_stages.pth": {"state_dict": state | {
            key.replace("refinement_stages.0.", f"refinement_stages.{stage}.", 1): value + stage
            for key, value in state.items() if key.startswith("refinement_stages.0.")
            for stage in (1, 2)}},
    }
    outputs = {}
    for name, payload in variants.items():
        torch.save(payload, tmp_path / name)
        outputs[name] = run(backbones.build("mobilenet", tmp_path / name), x)

    heatmaps_ref, pafs_ref = reference_osokin(state, x)
    assert heatmaps_ref.shape == (1, 19, 8, 10) and pafs_ref.shape == (1, 38, 8, 10)
    first_heatmaps, first_pafs = outputs["checkpoint_iter_370000.pth"]
    for heatmaps, pafs in outputs.values():
        assert torch.equal(heatmaps, first_heatmaps) and torch.equal(pafs, first_pafs)
    torch.testing.assert_close(first_heatmaps, heatmaps_ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(first_pafs, pafs_ref, rtol=1e-4, atol=1e-5)


def test_saved_network_round_trips_through_its_own_layout(tmp_path):
    for name in ("mobilenet", "mobilenet_thin"):
        network = backbones.build(name, "random")
        torch.save(network.state_dict(), tmp_path / f"{name}.pth")
        loaded = backbones.build(name, tmp_path / f"{name}.pth")
        x = torch.rand(1, 3, 32, 48) * 255
        expected, got = run(network, x), run(loaded, x)
        assert torch.equal(expected[0], got[0]) and torch.equal(expected[1], got[1])

"""The original CMU OpenPose body network (COCO, 18 parts + background, 19 limbs).

VGG-19's first ten convs plus conv4_3_CPM/conv4_4_CPM give 128 features at stride 8.  Stage 1 has a
PAF branch (``*_L1``, 38 channels) and a heatmap branch (``*_L2``, 19 channels); stages 2-6 take
``cat(pafs, heatmaps, features)`` (185 channels) through 7x7 convs.  Every conv is followed by a
ReLU except the last conv of each branch (conv5_5_CPM_L*, Mconv7_stage*_L*), as in CMU's Caffe
prototxt.  (Hzzone's pytorch-openpose applies a ReLU after Mconv7_stage6_L2 by a typo in its
``no_relu_layers`` list; we follow the Caffe model.)

Layers are named with their Caffe names so each published layout maps onto them by a table
(``backbones/cmu_keys.py``).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import torch
from torch import Tensor, nn

from backbones import cmu_keys
from backbones.layers import conv
from backbones.preprocessing import PREPROCESS_SPECS
from backbones.registry import WeightSource, register_backbone

NUM_STAGES = 6
FEATURE_CHANNELS = 128
NUM_HEATMAPS = 19
NUM_PAFS = 38


class ConvSpec(NamedTuple):
    name: str              # Caffe layer name
    in_channels: int
    out_channels: int
    kernel_size: int
    relu: bool = True


POOL = "pool"   # marker in the trunk table; the Caffe names are pool1_stage1 .. pool3_stage1

TRUNK: tuple[ConvSpec | str, ...] = (
    ConvSpec("conv1_1", 3, 64, 3), ConvSpec("conv1_2", 64, 64, 3), POOL,
    ConvSpec("conv2_1", 64, 128, 3), ConvSpec("conv2_2", 128, 128, 3), POOL,
    ConvSpec("conv3_1", 128, 256, 3), ConvSpec("conv3_2", 256, 256, 3),
    ConvSpec("conv3_3", 256, 256, 3), ConvSpec("conv3_4", 256, 256, 3), POOL,
    ConvSpec("conv4_1", 256, 512, 3), ConvSpec("conv4_2", 512, 512, 3),
    ConvSpec("conv4_3_CPM", 512, 256, 3), ConvSpec("conv4_4_CPM", 256, FEATURE_CHANNELS, 3),
)

BRANCHES = {"pafs": ("L1", NUM_PAFS), "heatmaps": ("L2", NUM_HEATMAPS)}


def branch_layers(stage: int, branch: str) -> tuple[ConvSpec, ...]:
    """The convs of one branch ("pafs" or "heatmaps") of stage 1..6, with their Caffe names."""
    suffix, out_channels = BRANCHES[branch]
    if stage == 1:
        return (ConvSpec(f"conv5_1_CPM_{suffix}", FEATURE_CHANNELS, 128, 3),
                ConvSpec(f"conv5_2_CPM_{suffix}", 128, 128, 3),
                ConvSpec(f"conv5_3_CPM_{suffix}", 128, 128, 3),
                ConvSpec(f"conv5_4_CPM_{suffix}", 128, 512, 1),
                ConvSpec(f"conv5_5_CPM_{suffix}", 512, out_channels, 1, relu=False))
    stage_input = FEATURE_CHANNELS + NUM_PAFS + NUM_HEATMAPS
    return (ConvSpec(f"Mconv1_stage{stage}_{suffix}", stage_input, 128, 7),
            *(ConvSpec(f"Mconv{i}_stage{stage}_{suffix}", 128, 128, 7) for i in range(2, 6)),
            ConvSpec(f"Mconv6_stage{stage}_{suffix}", 128, 128, 1),
            ConvSpec(f"Mconv7_stage{stage}_{suffix}", 128, out_channels, 1, relu=False))


def _block(spec: ConvSpec) -> nn.Sequential:
    return conv(spec.in_channels, spec.out_channels, spec.kernel_size, relu=spec.relu)


def _trunk() -> nn.Sequential:
    layers: list[tuple[str, nn.Module]] = []
    pools = 0
    for item in TRUNK:
        if item == POOL:
            pools += 1
            layers.append((f"pool{pools}_stage1", nn.MaxPool2d(2, 2)))
        else:
            layers.append((item.name, _block(item)))
    return nn.Sequential(OrderedDict(layers))


class CmuStage(nn.Module):
    """One stage: a PAF branch and a heatmap branch reading the same input."""

    def __init__(self, stage: int):
        super().__init__()
        self.pafs = nn.Sequential(OrderedDict((s.name, _block(s))
                                              for s in branch_layers(stage, "pafs")))
        self.heatmaps = nn.Sequential(OrderedDict((s.name, _block(s))
                                                  for s in branch_layers(stage, "heatmaps")))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.heatmaps(x), self.pafs(x)


class CmuPoseNet(nn.Module):
    """CMU OpenPose body model; ``forward(x) -> (heatmaps [N,19,H/8,W/8], pafs [N,38,H/8,W/8])``."""

    def __init__(self):
        super().__init__()
        self.features = _trunk()
        self.stages = nn.ModuleList(CmuStage(stage) for stage in range(1, NUM_STAGES + 1))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.features(x)
        heatmaps, pafs = self.stages[0](features)
        for stage in self.stages[1:]:
            heatmaps, pafs = stage(torch.cat([pafs, heatmaps, features], dim=1))
        return heatmaps, pafs


PREPROCESS = PREPROCESS_SPECS["cmu"]


def _fetch_default(path, url=None):
    from backbones.fetch import fetch_published
    return fetch_published("cmu", path, url=url)


@register_backbone(
    "cmu",
    preprocess=PREPROCESS,
    sources=(
        # Hzzone's README links a Dropbox folder; lllyasviel/Annotators on Hugging Face mirrors
        # the same file, at a direct URL.  Its size and sha256 are those that public projects
        # downloading it from there pin (e.g. ControlNet annotator model lists); this project
        # could not download the file itself to confirm them (no internet where it was built).
        WeightSource("body_pose_model.pth",
                     "Hzzone/pytorch-openpose, 'Model Download' in its README "
                     "(https://github.com/Hzzone/pytorch-openpose); mirrored on Hugging Face "
                     "in lllyasviel/Annotators",
                     sha256="25a948c16078b0f08e236bda51a385d855ef4c153598947c28c0d47ed94bb746",
                     url="https://huggingface.co/lllyasviel/Annotators/resolve/main/"
                         "body_pose_model.pth",
                     size=209_267_595),
        WeightSource("bodypose_model",
                     "xuexingyu24/Real-time-human-pose-estimation-by-pytorch, 'Model Download' "
                     "in its README (https://github.com/xuexingyu24/"
                     "Real-time-human-pose-estimation-by-pytorch)"),
        WeightSource("pose_model.pth",
                     "tensorboy/pytorch_Realtime_Multi-Person_Pose_Estimation README "
                     "(https://github.com/tensorboy/"
                     "pytorch_Realtime_Multi-Person_Pose_Estimation)"),
    ),
    layouts=cmu_keys.LAYOUTS,
    fetch_default=_fetch_default,
    description="CMU OpenPose body model (VGG-19 + 6 stages), 368 px, Caffe weights",
)
def build_cmu() -> CmuPoseNet:
    return CmuPoseNet()

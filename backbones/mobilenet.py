"""Lightweight OpenPose (Osokin, arXiv 1811.12004): MobileNet-v1 trunk with dilation, CPM,
initial stage and one refinement stage.

Module and child names follow Osokin's ``PoseEstimationWithMobileNet`` exactly, so his published
``checkpoint_iter_370000.pth`` (``{'state_dict': …}``, a bare state_dict, or ``module.``-prefixed
keys) loads with the identity key map: ``model.0.0.weight``, ``cpm.align.0.weight``,
``initial_stage.heatmaps.1.0.weight``, ``refinement_stages.0.trunk.0.initial.0.weight``, …

Outputs are already in CMU order (his training labels use the same 19 limbs, PAF channel pairs
and x-first components as ``stages/skeleton.py``; heatmap 18 is the background).
"""

from __future__ import annotations

from functools import cache

import torch
from torch import Tensor, nn

from backbones.layers import conv, conv_dw, conv_dw_elu
from backbones.preprocessing import PREPROCESS_SPECS
from backbones.registry import KeyLayout, WeightSource, register_backbone

NUM_HEATMAPS = 19
NUM_PAFS = 38
NUM_CHANNELS = 128


def _mobilenet_trunk() -> nn.Sequential:
    """MobileNet-v1 up to conv5_5 at stride 8 (conv5_1 dilated instead of strided)."""
    return nn.Sequential(
        conv(3, 32, stride=2, bias=False, bn=True),
        conv_dw(32, 64),
        conv_dw(64, 128, stride=2),
        conv_dw(128, 128),
        conv_dw(128, 256, stride=2),
        conv_dw(256, 256),
        conv_dw(256, 512),                 # conv4_2
        conv_dw(512, 512, dilation=2),
        conv_dw(512, 512),
        conv_dw(512, 512),
        conv_dw(512, 512),
        conv_dw(512, 512),                 # conv5_5
    )


def _head(in_channels: int, hidden: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(conv(in_channels, hidden, 1),
                         conv(hidden, out_channels, 1, relu=False))


class Cpm(nn.Module):
    """Channel alignment to 128, a residual stack of ELU depthwise convs, then a 3x3 conv."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.align = conv(in_channels, out_channels, 1)
        self.trunk = nn.Sequential(*(conv_dw_elu(out_channels, out_channels) for _ in range(3)))
        self.conv = conv(out_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        aligned = self.align(x)
        return self.conv(aligned + self.trunk(aligned))


class InitialStage(nn.Module):
    def __init__(self, num_channels: int):
        super().__init__()
        self.trunk = nn.Sequential(*(conv(num_channels, num_channels) for _ in range(3)))
        self.heatmaps = _head(num_channels, 512, NUM_HEATMAPS)
        self.pafs = _head(num_channels, 512, NUM_PAFS)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        trunk_features = self.trunk(x)
        return self.heatmaps(trunk_features), self.pafs(trunk_features)


class RefinementStageBlock(nn.Module):
    """1x1 conv, then a residual pair of 3x3 convs (the second dilated), with batch norm."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.initial = conv(in_channels, out_channels, 1)
        self.trunk = nn.Sequential(conv(out_channels, out_channels, bn=True),
                                   conv(out_channels, out_channels, dilation=2, bn=True))

    def forward(self, x: Tensor) -> Tensor:
        initial_features = self.initial(x)
        return initial_features + self.trunk(initial_features)


class RefinementStage(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.trunk = nn.Sequential(RefinementStageBlock(in_channels, out_channels),
                                   *(RefinementStageBlock(out_channels, out_channels)
                                     for _ in range(4)))
        self.heatmaps = _head(out_channels, out_channels, NUM_HEATMAPS)
        self.pafs = _head(out_channels, out_channels, NUM_PAFS)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        trunk_features = self.trunk(x)
        return self.heatmaps(trunk_features), self.pafs(trunk_features)


class LightweightOpenPose(nn.Module):
    """``forward(x) -> (heatmaps [N,19,H/8,W/8], pafs [N,38,H/8,W/8])`` of the last stage."""

    def __init__(self, num_refinement_stages: int = 1):
        super().__init__()
        self.model = _mobilenet_trunk()
        self.cpm = Cpm(512, NUM_CHANNELS)
        self.initial_stage = InitialStage(NUM_CHANNELS)
        self.refinement_stages = nn.ModuleList(
            RefinementStage(NUM_CHANNELS + NUM_HEATMAPS + NUM_PAFS, NUM_CHANNELS)
            for _ in range(num_refinement_stages))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.cpm(self.model(x))
        heatmaps, pafs = self.initial_stage(features)
        for stage in self.refinement_stages:
            heatmaps, pafs = stage(torch.cat([features, heatmaps, pafs], dim=1))
        return heatmaps, pafs


@cache
def _network_keys() -> tuple[str, ...]:
    with torch.device("meta"):
        return tuple(LightweightOpenPose().state_dict())


PREPROCESS = PREPROCESS_SPECS["mobilenet"]


def _fetch_default(path, url=None):
    from backbones.fetch import fetch_published
    return fetch_published("mobilenet", path, url=url)


@register_backbone(
    "mobilenet",
    preprocess=PREPROCESS,
    # No sha256 or size of this file is published anywhere we could find: a download is checked
    # against the size the server announces and then by the layout check below.
    sources=(WeightSource(
        "checkpoint_iter_370000.pth",
        "Daniil-Osokin/lightweight-human-pose-estimation.pytorch README, 'Pre-trained model'",
        url="https://download.01.org/opencv/openvino_training_extensions/models/"
            "human_pose_estimation/checkpoint_iter_370000.pth"),),
    # The published checkpoint is a training checkpoint ({'state_dict', 'optimizer', …}) of the
    # network with 3 refinement stages; Osokin's demo keeps only the first, as we do.
    layouts=(KeyLayout("osokin", "Osokin PoseEstimationWithMobileNet state_dict "
                                 "(also this project's own keys)",
                       lambda: {key: key for key in _network_keys()},
                       optional_suffixes=(".num_batches_tracked",),
                       unused_prefixes=("refinement_stages.1.", "refinement_stages.2.")),),
    fetch_default=_fetch_default,
    description="Lightweight OpenPose (MobileNet-v1 + 1 refinement stage), 256 px",
)
def build_mobilenet() -> LightweightOpenPose:
    return LightweightOpenPose()

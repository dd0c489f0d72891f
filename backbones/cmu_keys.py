"""Checkpoint key layouts of the published CMU body model, mapped onto :class:`CmuPoseNet`.

Network keys are ``features.<caffe>.0.<param>`` and
``stages.<s-1>.<pafs|heatmaps>.<caffe>.0.<param>`` (param = weight | bias).  Published layouts:

- ``hzzone-caffe``: Hzzone pytorch-openpose ``body_pose_model.pth``, raw Caffe layer names:
  ``conv1_1.weight`` … ``Mconv7_stage6_L2.bias``.
- ``hzzone-modules``: the same weights saved from Hzzone's ``bodypose_model`` module, as
  xuexingyu24/Real-time-human-pose-estimation-by-pytorch ships them: ``model0.conv1_1.weight``,
  ``model1_1.conv5_1_CPM_L1.weight`` … ``model6_2.Mconv7_stage6_L2.bias`` (``model0`` = trunk,
  ``model<s>_1`` = stage s PAF branch, ``model<s>_2`` = stage s heatmap branch).
- ``tensorboy``: tensorboy pytorch_Realtime_Multi-Person_Pose_Estimation ``rtpose_vgg``: the same
  blocks as nn.Sequential with positional names; in ``model0`` each conv is followed by a ReLU and
  each pool takes one slot (conv1_1 = ``model0.0``, conv2_1 = ``model0.5``, conv4_4_CPM =
  ``model0.25``); in the stage blocks conv i sits at ``2*i`` (last conv without ReLU).
- ``posestream``: this project's own keys (files saved from :class:`CmuPoseNet`).
"""

from __future__ import annotations

from functools import cache

from backbones.registry import KeyLayout

_PARAMS = ("weight", "bias")


def _hzzone_block(stage: int, branch: str) -> str:
    return f"model{stage}_{1 if branch == 'pafs' else 2}"


@cache
def _param_table() -> tuple[tuple[str, str, str, str, str], ...]:
    """Rows (network key, caffe key, module key, positional key) for every conv parameter."""
    from backbones.cmu import NUM_STAGES, POOL, TRUNK, branch_layers

    rows = []
    position = 0
    for item in TRUNK:
        if item == POOL:
            position += 1
            continue
        for param in _PARAMS:
            rows.append((f"features.{item.name}.0.{param}", f"{item.name}.{param}",
                         f"model0.{item.name}.{param}", f"model0.{position}.{param}"))
        position += 2                       # conv + ReLU
    for stage in range(1, NUM_STAGES + 1):
        for branch in ("pafs", "heatmaps"):
            block = _hzzone_block(stage, branch)
            for index, layer in enumerate(branch_layers(stage, branch)):
                for param in _PARAMS:
                    rows.append((f"stages.{stage - 1}.{branch}.{layer.name}.0.{param}",
                                 f"{layer.name}.{param}", f"{block}.{layer.name}.{param}",
                                 f"{block}.{2 * index}.{param}"))
    return tuple(rows)


def _column(index: int) -> dict[str, str]:
    return {row[index]: row[0] for row in _param_table()}


LAYOUTS = (
    KeyLayout("hzzone-caffe", "Hzzone pytorch-openpose body_pose_model.pth (raw Caffe names)",
              lambda: _column(1)),
    KeyLayout("hzzone-modules", "Hzzone bodypose_model state_dict (model0.conv1_1.weight, …)",
              lambda: _column(2)),
    KeyLayout("tensorboy", "tensorboy rtpose_vgg state_dict (model0.0.weight, …)",
              lambda: _column(3)),
    KeyLayout("posestream", "this project's CmuPoseNet state_dict", lambda: _column(0)),
)

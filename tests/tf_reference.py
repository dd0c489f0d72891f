"""A small, independent numpy executor for frozen TensorFlow inference graphs.

It runs a GraphDef node by node in NHWC with TensorFlow's own op semantics (SAME/VALID padding,
HWIO kernels), in float64, without torch and without our network definitions.  Its only use is
as the reference that proves ``tf_convert`` + ``MobilenetThin`` compute what the frozen graph
computes.  Supported ops: Placeholder, Const, Identity, Conv2D, DepthwiseConv2dNative, BiasAdd,
Relu, Relu6, ConcatV2, MaxPool.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from backbones.graphdef import GraphNode


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow SAME padding (before, after) of one axis: the odd pixel goes after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad(x: np.ndarray, kernel_hw: tuple[int, int], strides: list[int], padding: str,
         value: float = 0.0) -> np.ndarray:
    if padding == "VALID":
        return x
    if padding != "SAME":
        raise ValueError(f"unsupported padding {padding!r}")
    pads = [(0, 0), same_padding(x.shape[1], kernel_hw[0], strides[1]),
            same_padding(x.shape[2], kernel_hw[1], strides[2]), (0, 0)]
    return np.pad(x, pads, constant_values=value)


def _shifted(x: np.ndarray, kernel_hw: tuple[int, int], strides: list[int]):
    """Yield (i, j, view): for each kernel tap (i, j), the strided input pixels it multiplies."""
    out_h = (x.shape[1] - kernel_hw[0]) // strides[1] + 1
    out_w = (x.shape[2] - kernel_hw[1]) // strides[2] + 1
    for i in range(kernel_hw[0]):
        for j in range(kernel_hw[1]):
            yield i, j, x[:, i:i + strides[1] * (out_h - 1) + 1:strides[1],
                          j:j + strides[2] * (out_w - 1) + 1:strides[2]]


def conv2d(x: np.ndarray, kernel: np.ndarray, strides: list[int], padding: str) -> np.ndarray:
    """NHWC conv with an HWIO kernel: a sum over kernel taps of (pixels @ kernel[i, j])."""
    kh, kw = kernel.shape[:2]
    x = _pad(x, (kh, kw), strides, padding)
    return sum(view @ kernel[i, j] for i, j, view in _shifted(x, (kh, kw), strides))


def depthwise_conv2d(x: np.ndarray, kernel: np.ndarray, strides: list[int],
                     padding: str) -> np.ndarray:
    """NHWC depthwise conv with an [kh, kw, C, multiplier] kernel (output channel c*m + k)."""
    kh, kw, channels, multiplier = kernel.shape
    x = _pad(x, (kh, kw), strides, padding)
    out = None
    for i, j, view in _shifted(x, (kh, kw), strides):
        term = view[..., None] * kernel[i, j]
        if out is None:
            out = term
        else:
            out += term
    return out.reshape(*out.shape[:3], channels * multiplier)


def max_pool(x: np.ndarray, ksize: list[int], strides: list[int], padding: str) -> np.ndarray:
    kernel_hw = (ksize[1], ksize[2])
    x = _pad(x, kernel_hw, strides, padding, value=-np.inf)
    return np.maximum.reduce([view for _, _, view in _shifted(x, kernel_hw, strides)])


def _check_nhwc(node: GraphNode) -> None:
    if node.attrs.get("data_format", "NHWC") != "NHWC":
        raise ValueError(f"{node.name}: only NHWC graphs are supported")
    if any(d != 1 for d in node.attrs.get("dilations", [1, 1, 1, 1])):
        raise ValueError(f"{node.name}: dilated convs are not supported")


def _run_op(node: GraphNode, args: list[np.ndarray]) -> np.ndarray:
    op = node.op
    if op == "Const":
        return np.asarray(node.value)
    if op == "Identity":
        return args[0]
    if op == "Conv2D":
        _check_nhwc(node)
        return conv2d(args[0], args[1].astype(np.float64), node.attrs["strides"],
                      node.attrs["padding"])
    if op == "DepthwiseConv2dNative":
        _check_nhwc(node)
        return depthwise_conv2d(args[0], args[1].astype(np.float64), node.attrs["strides"],
                                node.attrs["padding"])
    if op == "BiasAdd":
        return args[0] + args[1].astype(np.float64)
    if op == "Relu":
        return np.maximum(args[0], 0.0)
    if op == "Relu6":
        return np.clip(args[0], 0.0, 6.0)
    if op == "ConcatV2":
        return np.concatenate(args[:-1], axis=int(args[-1]))
    if op == "MaxPool":
        _check_nhwc(node)
        return max_pool(args[0], node.attrs["ksize"], node.attrs["strides"], node.attrs["padding"])
    raise ValueError(f"op {op!r} of node {node.name!r} is not supported")


def _evaluation_order(nodes: Mapping[str, GraphNode], output: str) -> list[str]:
    """Names of the nodes ``output`` depends on, inputs first (iterative depth-first search)."""
    order: list[str] = []
    done: set[str] = set()
    stack: list[tuple[str, bool]] = [(output, False)]
    while stack:
        name, inputs_done = stack.pop()
        if name in done:
            continue
        if inputs_done:
            done.add(name)
            order.append(name)
            continue
        stack.append((name, True))
        for source in nodes[name].inputs:
            source = source.lstrip("^").split(":")[0]
            if source not in done:
                stack.append((source, False))
    return order


def run_graph(nodes: list[GraphNode], feeds: Mapping[str, np.ndarray], output: str) -> np.ndarray:
    """Evaluate node ``output`` given placeholder values ``feeds`` (float64 result)."""
    by_name = {node.name: node for node in nodes}
    values: dict[str, np.ndarray] = {}
    for name in _evaluation_order(by_name, output):
        node = by_name[name]
        if node.op == "Placeholder":
            values[name] = np.asarray(feeds[name], np.float64)
            continue
        args = [values[source.split(":")[0]] for source in node.inputs
                if not source.startswith("^")]
        values[name] = _run_op(node, args)
    return values[output]

"""Export a backbone to ONNX with a dynamic batch, height and width.

    python -m backbones.export BACKBONE out.onnx [--weights PATH|random] [--height H --width W]

The graph reads ``image`` float32 [N,3,H,W] (BGR, normalised as the backbone's ``PreprocessSpec``
says, H and W multiples of 8) and writes ``heatmaps`` [N,19,H/8,W/8] and ``pafs``
[N,38,H/8,W/8], exactly as ``backbones.build(BACKBONE)(x)``; ``--height/--width`` only set the
size the network is traced at.  The onnxruntime and OpenVINO engines run this file.  The file
also records the backbone name and its preprocessing in the ONNX metadata (``posestream.*``).

The TorchScript-based exporter is used (``dynamo=False``): the networks are plain convolution
stacks, and the newer exporter needs the extra ``onnxscript`` package.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path

import torch

import backbones
from posestream_common.errors import ConfigError, run_tool

log = logging.getLogger(__name__)

INPUT_NAME = "image"
OUTPUT_NAMES = ("heatmaps", "pafs")
DEFAULT_OPSET = 17
TRACE_HEIGHT, TRACE_WIDTH = 256, 344        # 640x480 at net height 256, width padded to 8
METADATA_PREFIX = "posestream."


def export_onnx(backbone: str, out: str | Path, weights: str | Path | None = None, *,
                height: int = TRACE_HEIGHT, width: int = TRACE_WIDTH,
                opset: int = DEFAULT_OPSET) -> Path:
    """Write ``backbone`` (with ``weights``, as ``backbones.build`` takes them) to ``out`` as ONNX.

    Batch, height and width stay dynamic.  The file is written next to ``out`` and renamed over
    it, so a reader never sees half a file.  ConfigError for an unknown backbone or a size that is
    not a positive multiple of 8; WeightsError (from ``build``) for bad weights.
    """
    spec = backbones.get_spec(backbone)
    for name, value in (("height", height), ("width", width)):
        if value < spec.preprocess.size_multiple or value % spec.preprocess.size_multiple:
            raise ConfigError(f"--{name} {value}: must be a positive multiple of "
                              f"{spec.preprocess.size_multiple}")
    network = backbones.build(backbone, weights=weights, device="cpu")
    sample = torch.zeros(1, 3, height, width)
    dynamic = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}}
    dynamic.update({name: {0: "batch", 2: "map_height", 3: "map_width"} for name in OUTPUT_NAMES})
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)   # the TorchScript exporter's notice
            warnings.filterwarnings("ignore", "Constant folding", UserWarning)  # strided slices stay
            torch.onnx.export(network, (sample,), str(partial), dynamo=False,
                              input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                              dynamic_axes=dynamic, opset_version=opset, do_constant_folding=True)
        _add_metadata(partial, backbone, weights, spec.preprocess)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    log.info("%s exported to %s (opset %d, dynamic batch/height/width)", backbone, out, opset)
    return out


def _add_metadata(path: Path, backbone: str, weights: str | Path | None, preprocess) -> None:
    import onnx

    model = onnx.load(str(path))
    entries = {"backbone": backbone, "weights": str(weights or backbones.default_weights_path(backbone)),
               "channel_order": preprocess.channel_order, "mean": repr(float(preprocess.mean)),
               "scale": repr(float(preprocess.scale)), "stride": str(preprocess.stride)}
    for key, value in entries.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = METADATA_PREFIX + key, value
    onnx.save(model, str(path))


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``posestream.*`` metadata of an exported file (without the prefix); {} for others."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {prop.key[len(METADATA_PREFIX):]: prop.value for prop in model.metadata_props
            if prop.key.startswith(METADATA_PREFIX)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backbones.export",
                                     description="Export a backbone to ONNX (dynamic batch, height, width).")
    parser.add_argument("backbone", help=f"one of {', '.join(backbones.list_backbones())}")
    parser.add_argument("out", type=Path, help="output .onnx file")
    parser.add_argument("--weights", help="weights file or 'random' (default weights/<backbone>.pth)")
    parser.add_argument("--height", type=int, default=TRACE_HEIGHT, help="tracing height (multiple of 8)")
    parser.add_argument("--width", type=int, default=TRACE_WIDTH, help="tracing width (multiple of 8)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset version")
    args = parser.parse_args(argv)
    return run_tool(parser.prog, lambda: export_onnx(args.backbone, args.out, args.weights,
                                                     height=args.height, width=args.width,
                                                     opset=args.opset))


if __name__ == "__main__":
    sys.exit(main())

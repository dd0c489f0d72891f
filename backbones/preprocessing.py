"""Each network's published input normalisation, in a module that does not import torch.

The networks' specs (``backbones/registry.py``) take their ``preprocess`` from this table, and an
engine that runs an exported network (OpenVINO, onnxruntime) reads it with
:func:`preprocess_spec` without importing the networks, so without importing torch.
"""

from __future__ import annotations

from backbones.registry import PreprocessSpec
from posestream_common.errors import ConfigError

PREPROCESS_SPECS: dict[str, PreprocessSpec] = {
    "cmu": PreprocessSpec(channel_order="BGR", mean=128.0, scale=1 / 256, pad_value=128.0,
                          stride=8, size_multiple=8, default_height=368),
    "mobilenet": PreprocessSpec(channel_order="BGR", mean=128.0, scale=1 / 256,
                                # Osokin pads the *normalised* image with 0, i.e. raw pixel 128
                                pad_value=128.0, stride=8, size_multiple=8, default_height=256),
    "mobilenet_thin": PreprocessSpec(channel_order="BGR", mean=0.0, scale=1.0, pad_value=0.0,
                                     stride=8, size_multiple=8, default_height=368),
    # Intel's IR takes raw BGR 0-255 padded with black; its first layers normalise by themselves.
    "omz": PreprocessSpec(channel_order="BGR", mean=0.0, scale=1.0, pad_value=0.0,
                          stride=8, size_multiple=8, default_height=256),
}


def preprocess_spec(name: str) -> PreprocessSpec:
    """The ``name`` network's preprocessing; ConfigError listing the valid names otherwise."""
    try:
        return PREPROCESS_SPECS[name]
    except KeyError:
        raise ConfigError(f"unknown backbone {name!r}; valid backbones: "
                          f"{', '.join(PREPROCESS_SPECS)}") from None

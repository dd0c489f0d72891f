"""Read a weights file and turn it into a state_dict in the network's own keys.

``read_checkpoint`` opens a torch file with ``weights_only=True`` and tells truncated files from
other unreadable ones; ``unwrap_state_dict`` accepts ``{'state_dict': …}`` or a bare state_dict,
with or without DataParallel's ``module.`` prefix; ``match_layout`` picks the spec's published key
layout that fits the file best and maps it onto the network, naming the first missing, unexpected
or mis-shaped key when it does not fit exactly.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from backbones.registry import BackboneSpec, KeyLayout
from posestream_common.errors import WeightsError

log = logging.getLogger(__name__)

_ZIP_MAGIC = b"PK\x03\x04"
_MODULE_PREFIX = "module."


def _safe_globals():
    """Let weights_only loading accept collections.Counter (saved in LR-scheduler states)."""
    safe_globals = getattr(torch.serialization, "safe_globals", None)
    if safe_globals is None:   # torch < 2.5
        return contextlib.nullcontext()
    return safe_globals([collections.Counter])


def read_checkpoint(path: Path) -> object:
    """``torch.load(path, weights_only=True)``; WeightsError if missing, empty, truncated or
    unreadable."""
    if not path.exists():
        raise WeightsError(f"weights file not found: {path}")
    if not path.is_file():
        raise WeightsError(f"weights path is not a file: {path}")
    size = path.stat().st_size
    if size == 0:
        raise WeightsError(f"weights file is empty (0 bytes): {path}")
    with path.open("rb") as handle:
        head = handle.read(4)
    if head == _ZIP_MAGIC and not zipfile.is_zipfile(path):
        raise WeightsError(f"weights file is truncated ({size} bytes, its zip directory is "
                           f"missing): {path}")
    try:
        with _safe_globals():
            return torch.load(path, map_location="cpu", weights_only=True)
    except EOFError as exc:
        raise WeightsError(f"weights file is truncated ({size} bytes, unexpected end of "
                           f"data): {path}") from exc
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, KeyError, OSError …
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if "EOF" in first_line or "truncated" in first_line or "central directory" in first_line:
            raise WeightsError(f"weights file is truncated ({size} bytes): {path}: "
                               f"{first_line}") from exc
        raise WeightsError(f"cannot read weights file {path} with torch.load(weights_only=True): "
                           f"{type(exc).__name__}: {first_line}") from exc


def unwrap_state_dict(checkpoint: object, path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint: ``checkpoint['state_dict']`` or the checkpoint itself;
    a ``module.`` prefix on every key is removed."""
    state = checkpoint
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise WeightsError(f"{path} holds a {type(state).__name__}, not a state_dict")
    tensors = {str(key): value for key, value in state.items() if isinstance(value, torch.Tensor)}
    if not tensors:
        keys = ", ".join(map(str, list(state)[:5]))
        raise WeightsError(f"{path} holds no tensors (keys: {keys})")
    if all(key.startswith(_MODULE_PREFIX) for key in tensors):
        tensors = {key[len(_MODULE_PREFIX):]: value for key, value in tensors.items()}
    return tensors


def _is_optional(key: str, layout: KeyLayout) -> bool:
    return any(key.endswith(suffix) for suffix in layout.optional_suffixes)


def _shape(tensor: torch.Tensor) -> list[int]:
    return list(tensor.shape)


def match_layout(state: Mapping[str, torch.Tensor], spec: BackboneSpec,
                 expected: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Map ``state`` (a file's tensors) onto network keys through the best-fitting layout.

    ``expected`` is the network's own state_dict (shapes only are read).  WeightsError names the
    layout tried and the first key that is missing, unexpected or of the wrong shape.
    """
    key_maps = [(layout, layout.key_map()) for layout in spec.layouts]
    layout, key_map = max(key_maps, key=lambda item: len(item[1].keys() & state.keys()))
    unused = {key for key in state
              if layout.unused_prefixes and key.startswith(layout.unused_prefixes)}
    if unused:
        log.info("%s: %d published tensors this network does not use are left out (%s)", source,
                 len(unused), ", ".join(layout.unused_prefixes))
        state = {key: value for key, value in state.items() if key not in unused}
    where = f"{source}: not {spec.name} weights (compared with the {layout.name} layout: " \
            f"{layout.description})"

    for published_key, network_key in key_map.items():
        if published_key not in state and not _is_optional(published_key, layout):
            raise WeightsError(f"{where}: missing key {published_key!r} "
                               f"{_shape(expected[network_key])}")
    for published_key, tensor in state.items():
        if published_key not in key_map:
            if _is_optional(published_key, layout):
                continue
            raise WeightsError(f"{where}: unexpected key {published_key!r} {_shape(tensor)}")
        want = expected[key_map[published_key]]
        if tensor.shape != want.shape:
            raise WeightsError(f"{where}: key {published_key!r} has shape {_shape(tensor)}, "
                               f"the network needs {_shape(want)}")

    mapped = {network_key: state[published_key].detach().to(expected[network_key].dtype)
              for published_key, network_key in key_map.items() if published_key in state}
    for network_key, tensor in expected.items():   # optional buffers absent from the file
        if network_key not in mapped:
            mapped[network_key] = torch.zeros(tensor.shape, dtype=tensor.dtype)
    log.debug("%s: %d tensors in the %s layout", source, len(mapped), layout.name)
    return mapped


def load_network_state(spec: BackboneSpec, path: Path,
                       expected: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Read ``path`` (a torch checkpoint, or a format with a converter) into network keys."""
    converter = spec.converters.get(path.suffix.lower())
    if converter is not None:
        state = converter(path)
    else:
        state = unwrap_state_dict(read_checkpoint(path), path)
    return match_layout(state, spec, expected, str(path))

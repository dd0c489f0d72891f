"""The few places where a numpy array and a torch tensor need different calls.

The decoder's map-sized work (peak search, PAF sampling) is written with operations both libraries
share (slicing, comparisons, arithmetic, integer-array indexing, ``clip``, ``sum(axis=...)``), so
one code path runs on numpy arrays and on torch tensors on any device.  What differs lives here.
torch is never imported by this module: a tensor is recognised only when torch is already loaded,
so numpy-only users do not pay for importing it.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np


def is_tensor(array: Any) -> bool:
    """True for a torch tensor (without importing torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(array, torch.Tensor)


def to_numpy(array: Any) -> np.ndarray:
    """A numpy copy/view of ``array``; a tensor is detached and brought to the host."""
    if is_tensor(array):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def host_as_numpy(array: Any) -> Any:
    """A CPU tensor as a zero-copy numpy view (numpy is quicker on small maps); else unchanged."""
    if is_tensor(array) and array.device.type == "cpu":
        return array.detach().numpy()
    return array


def like(values: np.ndarray, reference: Any) -> Any:
    """``values`` (numpy) as the same kind of array as ``reference`` (to a tensor's device)."""
    if is_tensor(reference):
        return sys.modules["torch"].as_tensor(values, device=reference.device)
    return values


def floor(values: Any) -> Any:
    """Elementwise floor, same kind and dtype."""
    return values.floor() if is_tensor(values) else np.floor(values)


def to_index(values: Any) -> Any:
    """Whole-number floats as an integer index array of the same kind."""
    return values.long() if is_tensor(values) else values.astype(np.intp)


def nonzero(mask: Any) -> tuple[Any, ...]:
    """Index arrays of the True entries, one per axis (like ``np.nonzero``)."""
    if is_tensor(mask):
        return mask.nonzero(as_tuple=True)
    return np.nonzero(mask)


def as_float(array: Any) -> Any:
    """``array`` in float32 (half-precision network outputs included); no copy if it already is."""
    if is_tensor(array):
        return array.float()
    return np.asarray(array, dtype=np.float32)


def count_nonfinite(array: Any) -> int:
    """How many NaN/inf values ``array`` holds."""
    if is_tensor(array):
        return int((~sys.modules["torch"].isfinite(array)).sum().item())
    return int(array.size - np.count_nonzero(np.isfinite(array)))

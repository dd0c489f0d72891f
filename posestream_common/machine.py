"""What the CPU is: its model name, its feature flags and the instruction class they make.

The class decides how fast the engines run (``AMX``, ``AVX512-BF16``, ``AVX2``, ``other``): the
engines' precision rule, auto's measurement cache and the benchmark results are keyed by it.
"""

from __future__ import annotations

import platform
from functools import lru_cache
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


@lru_cache(maxsize=1)
def _cpuinfo() -> dict[str, str]:
    """The first processor's ``model name`` and ``flags`` lines of /proc/cpuinfo ({} elsewhere)."""
    try:
        lines = CPUINFO.read_text().splitlines()
    except OSError:
        return {}
    found: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("model name", "flags") and key.strip() not in found:
            found[key.strip()] = value.strip()
    return found


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` says."""
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux; empty elsewhere)."""
    return frozenset(_cpuinfo().get("flags", "").split())


def class_of_flags(flags: frozenset[str] | set[str]) -> str:
    """``AMX``, ``AVX512-BF16``, ``AVX2`` or ``other`` for a set of /proc/cpuinfo flags."""
    if "amx_bf16" in flags or "amx_tile" in flags:
        return "AMX"
    if "avx512_bf16" in flags:
        return "AVX512-BF16"
    if "avx2" in flags:
        return "AVX2"
    return "other"


def cpu_class() -> str:
    """This machine's CPU class (see ``class_of_flags``)."""
    return class_of_flags(cpu_flags())

"""What the CPU is: its model name, its feature flags and the instruction class they make.

The class decides how fast the engines run (``AMX``, ``AVX512-BF16``, ``AVX2``, ``other``): the
engines' precision rule, auto's measurement cache and the benchmark results are keyed by it.

``ONEDNN_MAX_CPU_ISA=AVX2`` (oneDNN's own setting, which OpenVINO's CPU plugin and torch obey)
caps the engines' kernels at AVX2; the flags above it are then hidden here too, so the
precision rule, auto and the benchmarks treat the machine as the AVX2 class it now runs as, and
the model name says so (benchmarks/README.md, "An AVX2 machine on a newer CPU").
"""

from __future__ import annotations

import os
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


CAP_ENV = "ONEDNN_MAX_CPU_ISA"
ABOVE_AVX2 = ("avx512", "amx", "avx_vnni")      # flag prefixes an AVX2 cap hides


def avx2_capped() -> bool:
    """Whether oneDNN is told to use nothing above AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2``)."""
    return os.environ.get(CAP_ENV, "").strip().upper() in ("AVX2", "AVX")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` says; marked when the
    engines are capped at AVX2."""
    name = _cpuinfo().get("model name") or platform.processor() or platform.machine()
    return f"{name} (capped at AVX2)" if avx2_capped() else name


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux; empty elsewhere), without those above AVX2 when the
    engines are capped there."""
    flags = frozenset(_cpuinfo().get("flags", "").split())
    if avx2_capped():
        flags = frozenset(flag for flag in flags if not flag.startswith(ABOVE_AVX2))
    return flags


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

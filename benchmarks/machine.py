"""The machine a benchmark ran on: CPU model, CPU class, cores, GPU, versions, load and date.

Every benchmark files its results under the machine's class (``cpu_class``), because what a
configuration is worth depends on it far more than on the exact model:

- ``AMX``: Intel CPUs with AMX tiles (``amx_bf16``): bf16 and int8 matrix units;
- ``AVX512-BF16``: AVX-512 with native bf16 dot products (``avx512_bf16``) but no AMX;
- ``AVX2``: AVX2 without either (bf16 is emulated and slower than fp32 there);
- ``CUDA``: a run whose networks ran on an NVIDIA GPU (``device="cuda"``, or ``"auto"`` on a
  machine that has one), whatever the CPU;
- ``other``: anything else (no AVX2, or no Linux ``/proc/cpuinfo``).

``describe_machine()`` is the one description every result file carries (key ``machine``), and
``machine_line()`` the one sentence the Markdown tables print.
"""

from __future__ import annotations

import datetime
import os
import platform
import time
from pathlib import Path
from typing import Any, Sequence

from posestream_common.machine import class_of_flags, cpu_flags, cpu_model

CPU_CLASSES = ("AMX", "AVX512-BF16", "AVX2", "CUDA", "other")


def gpu_name() -> str | None:
    """The first CUDA device's name, None without one (or without torch)."""
    try:
        import torch
    except ImportError:
        return None
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def cpu_class(device: str = "cpu") -> str:
    """The class a run on ``device`` is filed under: ``CUDA`` when its networks run on a GPU
    (``cuda…``, or ``auto`` with one present), else the CPU's class from its flags."""
    if device.startswith("cuda") or (device == "auto" and gpu_name() is not None):
        return "CUDA"
    return class_of_flags(cpu_flags())


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, rounded; None where the OS has none."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def machine_busy_s() -> float | None:
    """Seconds of CPU time all processes have used since boot (Linux /proc/stat), else None."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def machine_busy_percent(window_s: float = 2.0) -> float | None:
    """CPU used by all processes over ``window_s`` (percent of one core), from /proc/stat."""
    before = machine_busy_s()
    time.sleep(window_s)
    after = machine_busy_s()
    return None if before is None or after is None else 100.0 * (after - before) / window_s


def versions(modules: Sequence[str] = ("torch", "onnxruntime", "openvino", "numpy", "cv2")) -> dict:
    """The installed version of each module (None where it is missing)."""
    found: dict[str, str | None] = {}
    for name in modules:
        try:
            module = __import__(name)
        except ImportError:
            found[name] = None
            continue
        version = getattr(module, "__version__", None)
        if version is None and hasattr(module, "get_version"):
            version = module.get_version()
        found[name] = version
    return found


def describe_machine(device: str = "cpu", *, with_versions: bool = False) -> dict[str, Any]:
    """What a result file records of its machine: date (UTC), CPU class, CPU model, cores, GPU,
    Python, the load average now and, with ``with_versions``, the numeric packages' versions."""
    from stages.inference import available_cores

    described: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_class": cpu_class(device), "cpu": cpu_model(), "cores": available_cores(), "gpu": gpu_name(),
        "python": platform.python_version(), "load_average": load_average(),
    }
    if with_versions:
        described["versions"] = versions()
    return described


def machine_line(machine: dict[str, Any]) -> str:
    """One sentence for a Markdown header: ``2026-12-05, AVX512-BF16: AMD EPYC, 2 cores, …``."""
    text = (f"{str(machine.get('date', '?'))[:10]}, {machine.get('cpu_class', '?')} class: "
            f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores")
    if machine.get("gpu"):
        text += f", GPU {machine['gpu']}"
    if machine.get("load_average"):
        text += f"; load average {machine['load_average'][0]} at the start"
    return text

"""The cache of ``auto``'s engine measurements: core-ms a frame per machine, network and
precision, in ``<weights>/auto/measurements.json`` (one JSON object, written atomically; a
broken file is only measured again).  ``machine_key`` names what a figure depends on.

CPU time barely moves with other work on the machine, but not nothing: two busy hyperthreads
made mobilenet_thin cost 1.5x its quiet figure here.  So a figure measured while the machine
was busy (load average at least its cores) is marked, measured again at a later start on a quiet
machine (load under half its cores), and the lower figure is kept."""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger("stream.auto")


def default_cache_path() -> Path:
    import backbones

    return backbones.weights_dir() / "auto" / "measurements.json"


def machine_key() -> str:
    """CPU model, instruction class, cores and engine versions: what the measurements depend on."""
    from posestream_common.machine import cpu_class, cpu_model
    from stages.inference import available_cores

    return f"{cpu_model()}|{cpu_class()}|{available_cores()} cores|openvino {_version('openvino')}"


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return "none"


class MeasurementCache:
    """Engine core-ms a frame per (machine, network, precision) in one JSON file, written atomically; an unreadable
    file is treated as empty (it is only a cache)."""

    def __init__(self, path: Path):
        self.path = path

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> float | None:
        """The kept figure, or None."""
        entry = self._load().get(key)
        try:
            return float(entry["engine_core_ms"]) if entry else None
        except (AttributeError, TypeError, KeyError, ValueError):
            return None

    def worth_measuring(self, key: str, load: float | None = None) -> bool:
        """No figure yet, or one measured busy while the machine is quiet now."""
        entry = self._load().get(key)
        if self.get(key) is None:
            return True
        return bool(entry.get("busy")) and machine_load(load) < QUIET_LOAD

    def put(self, key: str, engine_core_ms: float, load: float | None = None) -> float:
        """Keep a new measurement (the lower of it and a figure measured busy); returns the kept one."""
        data = self._load()
        busy = machine_load(load) >= BUSY_LOAD
        old = self.get(key)
        if old is not None and old < engine_core_ms:
            engine_core_ms, busy = old, busy and bool(data[key].get("busy"))
        data[key] = {"engine_core_ms": round(engine_core_ms, 3),
                     "measured": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        if busy:
            data[key]["busy"] = True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.part")
            partial.write_text(json.dumps(data, indent=1, sort_keys=True))
            partial.replace(self.path)
        except OSError as error:
            log.warning("auto: cannot keep the measurement in %s (%s); it is measured again next time",
                        self.path, error)
        return engine_core_ms


BUSY_LOAD = 1.0        # load average per core from which a measurement counts as busy
QUIET_LOAD = 0.5       # and under which a busy one is measured again


def machine_load(load: float | None = None) -> float:
    """The 1-minute load average per core (``load``: given, for tests); 0 where unknown."""
    from stages.inference import available_cores

    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            return 0.0
    return float(load) / max(1, available_cores())

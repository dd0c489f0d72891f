"""Joining or starting the Ray cluster of a ``--ray`` run, and what is shipped to it.

``connect(ray, address, settings)``: ``local`` starts a Ray instance on this machine whose workers
import the project from this checkout; ``auto`` joins the cluster of ``$RAY_ADDRESS`` or of this
machine; any other address is that cluster's.  Joining ships the project's packages
(``CODE_PACKAGES``) unless ``ray.ship_code`` is false.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

from posestream_common.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
CODE_PACKAGES = ("stream", "stages", "backbones", "posestream_common")
CONNECT_TIMEOUT_S = 5.0 # a cluster address that does not accept a connection this soon is wrong
LOCAL_WORKER_NICENESS = 0  # a local cluster's workers: the priority of any other process


def import_ray(address: str) -> Any:
    try:
        import ray
    except ModuleNotFoundError:
        raise ConfigError(f"--ray {address}: Ray is not installed (pip install -e '.[ray]')") from None
    return ray


def connect(ray: Any, address: str, settings: Any) -> bool:
    """Join or start the cluster ``address`` names; True when this call started Ray.

    ``local``: a new Ray instance on this machine (``ray.num_cpus``), workers importing the
    project from this checkout.  ``auto``: the cluster in ``$RAY_ADDRESS``, else the one this
    machine belongs to (``ray start``; the newest, when several run here).
    Anything else: that cluster's address (``HOST:6379`` or ``ray://HOST:10001``).  Joining a
    cluster ships the project's packages (CODE_PACKAGES) to it unless ``ray.ship_code`` is false.
    """
    if ray.is_initialized():
        return False
    quiet = {"logging_level": logging.WARNING, "include_dashboard": False}
    if address == "local":
        # Ray starts its workers at niceness 15, so any other busy process on the machine starves
        # the cameras and the engine of a real-time run; the local cluster's run at normal priority
        os.environ.setdefault("RAY_worker_niceness", str(LOCAL_WORKER_NICENESS))
        python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        env = {"env_vars": {"PYTHONPATH": python_path}}
        ray.init(address="local", num_cpus=settings.num_cpus, runtime_env=env, **quiet)  # not $RAY_ADDRESS
        return True
    check_reachable(address)
    runtime_env = {"py_modules": [str(ROOT / name) for name in CODE_PACKAGES]} if settings.ship_code else None
    try:
        ray.init(address=address, runtime_env=runtime_env, logging_level=logging.WARNING)
    except ConnectionError as error:
        hint = " (start one with `ray start --head`, or use --ray local)" if address == "auto" else ""
        raise ConfigError(f"--ray {address}: no Ray cluster found{hint}: {error}") from None
    return True


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """ConfigError when a ``HOST:PORT`` address does not answer (Ray itself would wait minutes)."""
    host, separator, port = address.rpartition(":")
    if "://" in address or not separator or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as error:
        raise ConfigError(f"--ray {address}: no Ray cluster answers there ({error})") from None

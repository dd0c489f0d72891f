"""Fixtures for the live-source tests: a real RTSP server (benchmarks/rtsp_camera.py) as a subprocess.

Use with ``pytest_plugins = ["tests.fixtures_live"]`` or import the fixtures explicitly.
The server runs under Debian's ``/usr/bin/python3`` (which has ``gi`` and GstRtspServer);
the fixtures skip cleanly where that is missing.
"""

from __future__ import annotations

import contextlib
import threading
from types import SimpleNamespace
from typing import Any, Iterator

import pytest

from benchmarks.rtsp_camera import RtspServer, free_port, rtsp_server_missing  # noqa: F401 - re-exported


class Drained:
    """What :func:`drain_in_background` saw: ``count`` items so far, ``ended`` set at the end."""

    def __init__(self) -> None:
        self.count = 0
        self.ended = threading.Event()


def drain_in_background(source) -> Drained:
    """Iterate ``source`` to its end in a daemon thread, counting the items."""
    drained = Drained()

    def consume() -> None:
        for _ in source:
            drained.count += 1
        drained.ended.set()

    threading.Thread(target=consume, daemon=True).start()
    return drained


@contextlib.contextmanager
def rtsp_servers(count: int, **options: Any) -> Iterator[list[RtspServer]]:
    """``count`` running RTSP servers, each on its own port (``options`` as for RtspServer),
    stopped on the way out."""
    servers = [RtspServer(**options) for _ in range(count)]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="session")
def rtsp_available() -> None:
    """Skip the test where the real RTSP server cannot run."""
    reason = rtsp_server_missing()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def rtsp_server(rtsp_available) -> RtspServer:
    """A running RTSP server serving H.264 640x480 at 15 fps on 127.0.0.1 (a free port)."""
    server = RtspServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def live_config(url: str, **overrides) -> SimpleNamespace:
    """A source config with the SourceConfig fields, short timeouts for tests."""
    try:
        from stream.config import SourceConfig
    except ImportError:
        SourceConfig = None
    values = dict(uri=url, name="cam0", open_timeout_s=5.0, read_timeout_s=1.0, reconnect=True,
                  max_reconnects=0, backoff_initial_s=0.2, backoff_max_s=1.0)
    values.update(overrides)
    if SourceConfig is not None:
        fields = getattr(SourceConfig, "model_fields", {})
        return SourceConfig(**{key: value for key, value in values.items() if key in fields})
    return SimpleNamespace(**values)


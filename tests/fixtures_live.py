"""Fixtures for the live-source tests: a real RTSP server (benchmarks/rtsp_camera.py) as a subprocess.

Use with ``pytest_plugins = ["tests.fixtures_live"]`` or import the fixtures explicitly.
The server runs under Debian's ``/usr/bin/python3`` (which has ``gi`` and GstRtspServer);
the fixtures skip cleanly where that is missing.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from benchmarks.rtsp_camera import RtspServer, free_port, rtsp_server_missing  # noqa: F401 - re-exported


def drain_in_background(source) -> threading.Event:
    """Iterate ``source`` to its end in a daemon thread; the event is set when iteration ends."""
    ended = threading.Event()

    def consume() -> None:
        for _ in source:
            pass
        ended.set()

    threading.Thread(target=consume, daemon=True).start()
    return ended


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


"""Fixtures for the live-source tests: a real RTSP server (tests/rtsp_server.py) as a subprocess.

Use with ``pytest_plugins = ["tests.fixtures_live"]`` or import the fixtures explicitly.
The server runs under Debian's ``/usr/bin/python3`` (which has ``gi`` and GstRtspServer);
the fixtures skip cleanly where that is missing.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import pytest

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
READY_TIMEOUT_S = 15.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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


def rtsp_server_missing() -> str | None:
    """Why the RTSP server cannot run here, or None when it can."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} is missing"
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c",
         "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
         "from gi.repository import Gst, GstRtspServer; Gst.init(None);"
         "assert all(Gst.ElementFactory.find(e) for e in "
         "('videotestsrc', 'valve', 'x264enc', 'rtph264pay'))"],
        capture_output=True, text=True, timeout=60,
    )
    if probe.returncode != 0:
        last_line = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return f"{SYSTEM_PYTHON} lacks gi/GstRtspServer/GStreamer plugins: {last_line}"
    return None


class RtspServer:
    """Controls one tests/rtsp_server.py process: start, stall, resume, kill, restart (same port)."""

    def __init__(self, port: int | None = None, path: str = "/cam", fps: int = 15):
        self.port = port or free_port()
        self.path = path
        self.fps = fps
        self.url = f"rtsp://127.0.0.1:{self.port}{path}"
        self._process: subprocess.Popen | None = None
        self._lines: list[str] = []
        self._lines_cond = threading.Condition()

    def start(self) -> None:
        """Start the server and wait until it listens."""
        self._lines = []
        self._process = subprocess.Popen(
            [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(self.port), "--path", self.path,
             "--fps", str(self.fps)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, bufsize=1,
        )
        threading.Thread(target=self._collect, args=(self._process,), daemon=True).start()
        self._wait_line(lambda line: line.startswith(("READY", "ERROR")), "READY")
        if not self._lines[-1].startswith("READY"):
            raise RuntimeError(f"RTSP server failed: {self._lines[-1]}")

    def _collect(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            with self._lines_cond:
                self._lines.append(line.strip())
                self._lines_cond.notify_all()

    def _wait_line(self, matches, what: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        with self._lines_cond:
            while not any(matches(line) for line in self._lines):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._process.poll() is not None:
                    raise RuntimeError(f"RTSP server never said {what}: {self._lines}")
                self._lines_cond.wait(min(remaining, 0.1))

    def _command(self, command: str) -> None:
        with self._lines_cond:
            self._lines = [line for line in self._lines if line != f"OK {command}"]
        self._process.stdin.write(command + "\n")
        self._process.stdin.flush()
        self._wait_line(lambda line: line == f"OK {command}", f"OK {command}")

    def stall(self) -> None:
        """Stop sending frames; connections stay open."""
        self._command("stall")

    def resume(self) -> None:
        """Send frames again after a stall."""
        self._command("resume")

    def kill(self) -> None:
        """Kill the server process at once (SIGKILL): connections drop."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)

    def restart(self) -> None:
        """Start again on the same port after ``kill``."""
        self.kill()
        self.start()

    def stop(self) -> None:
        """Ask the server to quit, kill it if it does not."""
        if self._process is None or self._process.poll() is not None:
            return
        try:
            self._process.stdin.write("quit\n")
            self._process.stdin.flush()
            self._process.wait(timeout=5)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            self.kill()


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


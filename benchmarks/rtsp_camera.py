"""A real RTSP camera for the benchmarks and the tests: ``benchmarks/rtsp_server.py`` as a subprocess.

``RtspServer`` starts, stalls, resumes, kills and restarts one server process (same port), which
serves H.264 640x480 on 127.0.0.1.  The server runs under Debian's ``/usr/bin/python3`` (which has
``gi`` and GstRtspServer); ``rtsp_server_missing`` says why it cannot run where it cannot.
``benchmarks.multicam --live`` and ``benchmarks.wall_soak`` use it, and the tests' fixtures
(tests/fixtures_live.py) wrap it.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
READY_TIMEOUT_S = 15.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
    """Controls one benchmarks/rtsp_server.py process: start, stall, resume, kill, restart (same port)."""

    def __init__(self, port: int | None = None, path: str = "/cam", fps: int = 15,
                 frames: str | Path | None = None, video: str | Path | None = None):
        self.port = port or free_port()
        self.path = path
        self.fps = fps
        self.frames = frames            # a folder of 0000.png, 0001.png, …: served in a loop
        self.video = video              # an H.264 file: served as it is, once
        self.url = f"rtsp://127.0.0.1:{self.port}{path}"
        self._process: subprocess.Popen | None = None
        self._lines: list[str] = []
        self._lines_cond = threading.Condition()

    def start(self) -> None:
        """Start the server and wait until it listens."""
        self._lines = []
        self._process = subprocess.Popen(
            [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(self.port), "--path", self.path,
             "--fps", str(self.fps)] + (["--frames", str(self.frames)] if self.frames else [])
            + (["--video", str(self.video)] if self.video else []),
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

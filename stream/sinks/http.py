"""The ``--serve`` sink: a small browser page with the live annotated stream and the live stats.

Routes: ``/`` the HTML page, ``/stream.mjpg`` the annotated frames as multipart MJPEG,
``/stats.json`` the current run stats (the ``--stats`` shape), refreshed by the page each second.

``write()`` only swaps a reference to the newest frame, so the pipeline never waits on a client.
Each frame is JPEG-encoded at most once, by the first client thread that wants it; every client
gets the newest frame when it is ready for one, so a slow client skips frames and a stuck one
(its socket send blocks) is dropped after ``client_timeout_s`` without touching the others.
Standard library only (``http.server.ThreadingHTTPServer``).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import cv2
import numpy as np

from stream.errors import ConfigError
from stream.items import Posed
from stream.sinks.base import Sink

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
BOUNDARY = "posestream-frame"
CLIENT_WAIT_S = 0.5          # a streaming client re-checks for shutdown this often
POLL_INTERVAL_S = 0.1        # serve_forever's shutdown poll


PAGE_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{title}} live</title>
<style>
  body { margin: 0; background: #111; color: #ddd; font: 14px/1.4 system-ui, sans-serif; }
  main { display: flex; flex-wrap: wrap; gap: 16px; padding: 16px; align-items: flex-start; }
  #stream { max-width: 100%; background: #000; min-width: 320px; min-height: 240px; }
  table { border-collapse: collapse; }
  th, td { text-align: left; padding: 2px 10px 2px 0; font-variant-numeric: tabular-nums; }
  th { color: #999; font-weight: normal; }
  #status { color: #999; margin-top: 8px; }
</style>
</head>
<body>
<main>
  <img id="stream" src="stream.mjpg" alt="live annotated stream">
  <section>
    <h1>{{title}}</h1>
    <table id="stats">
      <tbody>
        <tr><th>frames</th><td id="frames">-</td></tr>
        <tr><th>fps</th><td id="fps">-</td></tr>
        <tr><th>latency p50 / p95 (ms)</th><td id="latency">-</td></tr>
        <tr><th>dropped</th><td id="dropped">-</td></tr>
        <tr><th>reconnects</th><td id="reconnects">-</td></tr>
        <tr><th>wall (s)</th><td id="wall">-</td></tr>
      </tbody>
      <tbody id="stages"></tbody>
    </table>
    <div id="status">waiting for stats</div>
  </section>
</main>
<script>
"use strict";
let updates = 0;
const fixed = (value, digits) => (typeof value === "number" ? value.toFixed(digits) : "-");
function show(stats) {
  const latency = stats.latency_ms || {};
  document.getElementById("frames").textContent = stats.frames ?? "-";
  document.getElementById("fps").textContent = fixed(stats.fps, 1);
  document.getElementById("latency").textContent =
    fixed(latency.p50, 0) + " / " + fixed(latency.p95, 0);
  document.getElementById("dropped").textContent = stats.dropped ?? "-";
  document.getElementById("reconnects").textContent = stats.reconnects ?? "-";
  document.getElementById("wall").textContent = fixed(stats.wall_s, 1);
  const stages = document.getElementById("stages");
  stages.replaceChildren();
  for (const [stage, timing] of Object.entries(stats.stages || {})) {
    const row = stages.insertRow();
    const name = document.createElement("th");
    name.textContent = stage + " p50 / p95 (ms)";
    row.appendChild(name);
    row.insertCell().textContent = fixed(timing.p50_ms, 1) + " / " + fixed(timing.p95_ms, 1);
  }
}
async function refresh() {
  try {
    const response = await fetch("stats.json", {cache: "no-store"});
    show(await response.json());
    updates += 1;
    document.getElementById("status").textContent = "stats updated " + updates + " times";
  } catch (error) {
    document.getElementById("status").textContent = "stats unavailable: " + error;
  }
}
refresh();
setInterval(refresh, 1000);
</script>
</body>
</html>
"""


def parse_serve_address(text: str | int) -> tuple[str, int]:
    """``--serve [HOST:]PORT`` → (host, port); HOST defaults to 127.0.0.1, ``[v6]:PORT`` works.

    Port 0 asks for any free port.  A bad value raises ``ConfigError`` naming it.
    """
    value = str(text).strip()
    host, sep, port_text = value.rpartition(":")
    if not sep:
        host, port_text = "", value
    host = host.strip("[]") or DEFAULT_HOST
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(f"--serve {value!r}: expected [HOST:]PORT with PORT in 0-65535")
    return host, int(port_text)


class LatestJpeg:
    """The newest frame, handed to any number of client threads as JPEG, encoded once per frame."""

    def __init__(self, jpeg_quality: int = 80):
        self.jpeg_quality = jpeg_quality
        self._cond = threading.Condition()
        self._encode_lock = threading.Lock()
        self._image: np.ndarray | None = None
        self._seq = 0
        self._jpeg: bytes | None = None
        self._jpeg_seq = 0
        self._closed = False
        self.encoded = 0

    def publish(self, image: np.ndarray) -> None:
        """Make ``image`` the newest frame (never blocks on clients or encoding)."""
        with self._cond:
            self._image = image
            self._seq += 1
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wait_newer(self, seen_seq: int, timeout_s: float) -> tuple[int, bytes] | None:
        """(seq, jpeg) of a frame newer than ``seen_seq``, or None on timeout or once closed."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._closed or self._seq > seen_seq, timeout_s):
                return None
            if self._closed:
                return None
            seq, image = self._seq, self._image
            if self._jpeg_seq == seq:
                return seq, self._jpeg
        with self._encode_lock:
            with self._cond:
                if self._jpeg_seq >= seq:
                    return self._jpeg_seq, self._jpeg
            ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if not ok:
                raise ValueError(f"cannot encode a frame of shape {image.shape} as JPEG")
            jpeg = buffer.tobytes()
            with self._cond:
                self._jpeg, self._jpeg_seq = jpeg, seq
                self.encoded += 1
        return seq, jpeg


class HttpSink(Sink):
    """Serves the browser view of a running pipeline on ``http://host:port/``.

    stats_provider: returns the current stats dict for ``/stats.json`` (None: ``{}``).
    client_timeout_s: a client that takes no data for this long is disconnected.
    Port 0 picks a free port; ``url`` tells which after ``open()``.
    """

    name = "http"

    def __init__(self, host: str = DEFAULT_HOST, port: int = 8080,
                 stats_provider: Callable[[], dict] | None = None, *, jpeg_quality: int = 80,
                 client_timeout_s: float = 10.0, title: str = "posestream"):
        self.host = host
        self.port = port
        self.stats_provider = stats_provider
        self.client_timeout_s = client_timeout_s
        self.title = title
        self.frames = LatestJpeg(jpeg_quality)
        self.frames_written = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._clients: set[socket.socket] = set()
        self._clients_lock = threading.Lock()
        self._closed = threading.Event()

    @property
    def url(self) -> str:
        """The page's address (the bound port once open)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def open(self) -> HttpSink:
        """Start serving in a background thread (idempotent); ``ConfigError`` if it cannot bind."""
        if self._server is not None:
            return self
        if self.closed:
            raise ConfigError(f"--serve {self.host}:{self.port}: the HTTP sink is closed")
        try:
            self._server = _Server(self, (self.host, self.port))
        except OSError as exc:
            raise ConfigError(
                f"--serve {self.host}:{self.port}: cannot listen ({exc.strerror or exc})"
            ) from None
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL_S},
            name="http-sink", daemon=True,
        )
        self._thread.start()
        log.info("serving the live view on %s", self.url)
        return self

    def write(self, item: Posed, annotated: np.ndarray) -> None:
        """Make ``annotated`` the frame clients get next (keeps a reference: do not modify it)."""
        self.frames.publish(annotated)
        self.frames_written += 1

    def close(self) -> None:
        """Stop serving and disconnect every client (idempotent, returns promptly)."""
        if self._closed.is_set():
            return
        self._closed.set()
        self.frames.close()
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._clients_lock:
            clients, self._clients = list(self._clients), set()
        for connection in clients:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=2.0)

    def client_count(self) -> int:
        """How many clients are connected right now (any route)."""
        with self._clients_lock:
            return len(self._clients)

    def stats_json(self) -> bytes:
        stats = self.stats_provider() if self.stats_provider is not None else {}
        return json.dumps(stats).encode()

    def page_html(self) -> bytes:
        return PAGE_HTML.replace("{{title}}", _html_escape(self.title)).encode()

    def _track(self, connection: socket.socket, connected: bool) -> None:
        with self._clients_lock:
            (self._clients.add if connected else self._clients.discard)(connection)


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, sink: HttpSink, address: tuple[str, int]):
        self.sink = sink
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "posestream"

    def setup(self) -> None:
        self.timeout = self.server.sink.client_timeout_s   # socket timeout: stuck clients fail
        super().setup()
        self.server.sink._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.sink._track(self.connection, False)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        route = urlsplit(self.path).path
        try:
            if route in ("/", "/index.html"):
                self._send_body(self.server.sink.page_html(), "text/html; charset=utf-8")
            elif route == "/stats.json":
                self._send_stats()
            elif route == "/stream.mjpg":
                self._send_stream()
            else:
                self.send_error(404, "not found: try / , /stream.mjpg or /stats.json")
        except (BrokenPipeError, ConnectionResetError, TimeoutError, OSError) as exc:
            log.debug("client %s gone: %s", self.address_string(), exc)

    def _send_stats(self) -> None:
        try:
            body = self.server.sink.stats_json()
        except Exception:  # a failing stats provider must not take the page down
            log.warning("stats provider failed", exc_info=True)
            self.send_error(500, "stats unavailable")
            return
        self._send_body(body, "application/json")

    def _send_body(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _send_stream(self) -> None:
        sink = self.server.sink
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        log.info("stream client %s connected", self.address_string())
        seen_seq = 0
        while not sink.closed:
            newest = sink.frames.wait_newer(seen_seq, CLIENT_WAIT_S)
            if newest is None:
                continue
            seen_seq, jpeg = newest
            part_header = (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                           f"Content-Length: {len(jpeg)}\r\n\r\n").encode()
            self.wfile.write(part_header + jpeg + b"\r\n")
        log.info("stream client %s done", self.address_string())

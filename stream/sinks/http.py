"""The ``--serve`` sink: a camera wall, per-source MJPEG, stats, Prometheus metrics and live poses.

Routes (every one behind the access token when one is set):

- ``/`` the page (``stream/sinks/wall_page.py``): a tile per source with its stream and status;
- ``/stream/NAME.mjpg`` that source's annotated frames as multipart MJPEG, ``/stream/NAME.jpg``
  its newest frame (``?after=SEQ``: wait up to a second for a newer one, else 204);
- ``/stream.mjpg`` the newest frame of any source;
- ``/stats.json`` the current stats (the ``--stats`` shape with ``sources`` and a ``serve``
  section: clients per route, ``/poses`` events lost);
- ``/metrics`` the same snapshot as Prometheus text (``stream/metrics.py``);
- ``/poses`` Server-Sent Events, one ``data: <JSON line>`` per frame of every source
  (``stream/sinks/pose_events.py``);
- ``/events`` Server-Sent Events, one ``data: <record>`` per event record (``stream/events/``
  publishes them to ``records``), with the same no-waiting, bounded-queue rules as ``/poses``.

``write()`` only swaps references and queues a line per ``/poses`` client, so the pipeline never
waits on a client; a stuck client (its socket send blocks) is dropped after ``client_timeout_s``.
Access token: ``Authorization: Bearer TOKEN`` or ``?token=TOKEN`` (so the page's images work);
the page passes it on.  Serving beyond loopback without a token logs a warning.
Standard library HTTP (``http.server.ThreadingHTTPServer``).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from posestream_common.errors import ConfigError
from stream.items import Posed
from stream.metrics import CONTENT_TYPE_LATEST, metrics_registry, metrics_text
from stream.sinks.base import Sink
from stream.sinks.mjpeg import BOUNDARY, LatestJpeg, mjpeg_part
from stream.sinks.pose_events import DEFAULT_MAX_QUEUED, PoseEvents, sse_message
from stream.sinks.wall_page import render_page

__all__ = ["BOUNDARY", "HttpSink", "LatestJpeg", "parse_serve_address"]

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_SOURCE = "cam0"      # frames written without a source name
CLIENT_WAIT_S = 0.5          # a streaming client re-checks for shutdown this often
FRAME_WAIT_S = 1.0           # /stream/NAME.jpg?after=SEQ waits this long for a newer frame
KEEPALIVE_S = 10.0           # an idle /poses stream gets a comment line this often
POLL_INTERVAL_S = 0.1        # serve_forever's shutdown poll
STREAM_SEND_BUFFER_BYTES = 256 * 1024   # kernel send buffer of an endless stream: a stuck client
                                        # holds at most this much there, and blocks (and is dropped) sooner
STREAM_ROUTE = re.compile(r"/stream/(?P<name>[^/]+)\.(?P<kind>mjpg|jpg)")
TOKEN_IN_QUERY = re.compile(r"(token=)[^&\s]*")
ROUTES = ("/", "/index.html", "/stats.json", "/metrics", "/poses", "/events", "/stream.mjpg")


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


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; any other host is reachable from elsewhere."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HttpSink(Sink):
    """Serves the browser view of a running pipeline on ``http://host:port/``.

    stats_provider: returns the current stats dict (None: ``{}``).  sources: the source names
    (tiles shown before their first frame; others appear as they write).  token: required by
    every route when set.  client_timeout_s: a client that takes no data for this long is
    disconnected.  max_queued_events: ``/poses`` lines held per client before it loses the
    oldest.  Port 0 picks a free port; ``url`` tells which after ``open()``.
    """

    name = "http"

    def __init__(self, host: str = DEFAULT_HOST, port: int = 8080,
                 stats_provider: Callable[[], dict] | None = None, *, sources: Iterable[str] = (),
                 token: str | None = None, jpeg_quality: int = 80, client_timeout_s: float = 10.0,
                 title: str = "posestream", max_queued_events: int = DEFAULT_MAX_QUEUED):
        self.host = host
        self.port = port
        self.stats_provider = stats_provider
        self.token = token or None
        self.client_timeout_s = client_timeout_s
        self.title = title
        self.jpeg_quality = jpeg_quality
        self.frames = LatestJpeg(jpeg_quality)              # the newest frame of any source
        self.source_frames = {name: LatestJpeg(jpeg_quality) for name in sources}
        self.events = PoseEvents(max_queued_events)
        self.records = PoseEvents(max_queued_events)          # /events: event records
        self.frames_written = 0
        self.registry = metrics_registry(self.snapshot)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._clients: dict[socket.socket, str] = {}
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
        log.info("serving the live view on %s%s", self.url, " (access token required)" if self.token else "")
        if self.token is None and not is_loopback(self.host):
            log.warning("--serve %s: reachable beyond this machine without an access token; anyone who "
                        "can reach it sees the cameras.  Set output.serve_token or $POSESTREAM_SERVE_TOKEN.",
                        self.host)
        return self

    def write(self, item: Posed | None, annotated: np.ndarray) -> None:
        """Make ``annotated`` its source's newest frame and queue the item's ``/poses`` line
        (keeps a reference: do not modify the image)."""
        name = getattr(item, "source", None) or DEFAULT_SOURCE
        frames = self.source_frames.get(name)
        if frames is None:
            frames = self.source_frames.setdefault(name, LatestJpeg(self.jpeg_quality))
        frames.publish(annotated)
        self.frames.publish(annotated)
        if item is not None:
            self.events.publish(item)
        self.frames_written += 1

    def close(self) -> None:
        """Stop serving and disconnect every client (idempotent, returns promptly)."""
        if self._closed.is_set():
            return
        self._closed.set()
        for frames in [self.frames, *list(self.source_frames.values())]:
            frames.close()
        self.events.close()
        self.records.close()
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._clients_lock:
            clients, self._clients = list(self._clients), {}
        for connection in clients:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=2.0)

    def client_count(self, route: str | None = None) -> int:
        """How many clients are connected right now (on ``route``, or any)."""
        with self._clients_lock:
            return sum(1 for seen in self._clients.values() if route is None or seen == route)

    def snapshot(self) -> dict:
        """The stats report plus this sink's own counts: what /stats.json and /metrics show."""
        report = dict(self.stats_provider() or {}) if self.stats_provider is not None else {}
        with self._clients_lock:
            routes = list(self._clients.values())
        report["serve"] = {
            "clients": {route: routes.count(route) for route in sorted(set(routes))},
            "pose_events_sent": self.events.published,
            "pose_events_lost": self.events.lost,
            "event_records_sent": self.records.published,
            "event_records_lost": self.records.lost,
        }
        return report

    def page_html(self) -> bytes:
        return render_page(self.title, list(self.source_frames), self.token)

    def authorized(self, headers, query: dict[str, list[str]]) -> bool:
        """Whether a request carries the token (always, where none is set)."""
        if self.token is None:
            return True
        scheme, _, given = (headers.get("Authorization") or "").partition(" ")
        candidates = query.get("token", []) + ([given.strip()] if scheme.lower() == "bearer" else [])
        return any(hmac.compare_digest(candidate.encode(), self.token.encode()) for candidate in candidates)

    def _track(self, connection: socket.socket, route: str | None) -> None:
        with self._clients_lock:
            if route is None:
                self._clients.pop(connection, None)
            else:
                self._clients[connection] = route


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
        self.server.sink._track(self.connection, "connecting")

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.sink._track(self.connection, None)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        log.debug("%s %s", self.address_string(), TOKEN_IN_QUERY.sub(r"\1***", format % args))

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        sink = self.server.sink
        parts = urlsplit(self.path)
        route, query = parts.path, parse_qs(parts.query)
        try:
            if not sink.authorized(self.headers, query):
                self._refuse()
                return
            stream = STREAM_ROUTE.fullmatch(route)
            sink._track(self.connection, "/stream/" if stream else route if route in ROUTES else "other")
            if route in ("/", "/index.html"):
                self._send_body(sink.page_html(), "text/html; charset=utf-8")
            elif route == "/stats.json":
                self._send_snapshot(lambda: json.dumps(sink.snapshot()).encode(), "application/json")
            elif route == "/metrics":
                self._send_snapshot(lambda: metrics_text(sink.registry), CONTENT_TYPE_LATEST)
            elif route == "/poses":
                self._send_events(sink.events, "poses")
            elif route == "/events":
                self._send_events(sink.records, "events")
            elif route == "/stream.mjpg":
                self._send_stream(sink.frames)
            elif stream and unquote(stream["name"]) in sink.source_frames:
                frames = sink.source_frames[unquote(stream["name"])]
                if stream["kind"] == "mjpg":
                    self._send_stream(frames)
                else:
                    self._send_frame(frames, _int_or_zero(query.get("after", ["0"])[0]))
            else:
                self.send_error(404, "not found: try / , /stream/NAME.mjpg, /stream.mjpg, /stats.json, "
                                     "/metrics, /poses or /events")
        except (BrokenPipeError, ConnectionResetError, TimeoutError, OSError) as exc:
            log.debug("client %s gone: %s", self.address_string(), exc)

    def _refuse(self) -> None:
        body = b"access token required: Authorization: Bearer TOKEN, or ?token=TOKEN\n"
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Bearer realm="posestream"')
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_snapshot(self, build: Callable[[], bytes], content_type: str) -> None:
        try:
            body = build()
        except Exception:  # a failing stats provider must not take the page down
            log.warning("stats provider failed", exc_info=True)
            self.send_error(500, "stats unavailable")
            return
        self._send_body(body, content_type)

    def _send_body(self, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _start_stream(self, content_type: str) -> None:
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SEND_BUFFER_BYTES)
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()

    def _send_stream(self, frames: LatestJpeg) -> None:
        sink = self.server.sink
        self._start_stream(f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        log.info("stream client %s connected", self.address_string())
        seen_seq = 0
        while not sink.closed:
            newest = frames.wait_newer(seen_seq, CLIENT_WAIT_S)
            if newest is None:
                continue
            seen_seq, jpeg = newest
            self.wfile.write(mjpeg_part(jpeg))
        log.info("stream client %s done", self.address_string())

    def _send_frame(self, frames: LatestJpeg, after: int) -> None:
        newest = frames.wait_newer(after, FRAME_WAIT_S)
        if newest is None:
            self.send_response(204)
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            return
        seq, jpeg = newest
        self._send_body(jpeg, "image/jpeg", {"X-Frame-Seq": str(seq)})

    def _send_events(self, events: PoseEvents, label: str) -> None:
        client = events.subscribe()
        try:
            self._start_stream("text/event-stream")
            self.wfile.write(f": posestream {label}\n\n".encode())
            log.info("%s client %s connected", label, self.address_string())
            last_write = time.monotonic()
            while (lines := events.take(client, CLIENT_WAIT_S)) is not None:
                if lines:
                    self.wfile.write(b"".join(sse_message(line) for line in lines))
                    last_write = time.monotonic()
                elif time.monotonic() - last_write > KEEPALIVE_S:
                    self.wfile.write(b": keepalive\n\n")
                    last_write = time.monotonic()
        finally:
            events.unsubscribe(client)
            log.info("%s client %s done (%d events lost)", label, self.address_string(), client.lost)


def _int_or_zero(text: str) -> int:
    return int(text) if text.isdigit() else 0

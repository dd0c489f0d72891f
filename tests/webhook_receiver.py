"""A real HTTP receiver on 127.0.0.1 for the webhook tests.

``HookReceiver`` records each POST's JSON body (``bodies``), path and headers (``requests``) and
answers as its mode says: ``delay_s`` seconds before answering (a slow receiver), ``fail_next = n``
answers the next ``n`` requests with ``status_fail`` (500 by default, a 4xx to refuse for good)
without recording them as delivered. ``stop()`` closes the socket (connections are then refused);
``start()`` again listens on the same port. ``HookReceiver(start=False)`` reserves a port that
refuses connections until ``start()``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _reserve_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class HookReceiver:
    def __init__(self, start: bool = True, port: int | None = None):
        self.port = port or _reserve_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.delay_s = 0.0
        self.fail_next = 0
        self.status_fail = 500
        self.bodies: list[dict] = []
        self.requests: list[tuple[str, dict]] = []
        self.attempts = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        if start:
            self.start()

    def start(self) -> None:
        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def received(self) -> list[dict]:
        with self._lock:
            return list(self.bodies)

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)    # the slow receiver itself, not a test wait
                with receiver._lock:
                    receiver.attempts += 1
                    receiver.requests.append((self.path, dict(self.headers)))
                    failing = receiver.fail_next > 0
                    if failing:
                        receiver.fail_next -= 1
                    else:
                        receiver.bodies.append(json.loads(body))
                status = receiver.status_fail if failing else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args) -> None:
                pass

        return Handler

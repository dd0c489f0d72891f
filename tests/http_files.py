"""A real HTTP file server on 127.0.0.1 for the download tests (weights, test media).

``FileServer`` serves ``files`` (URL path -> bytes) with ``Content-Length`` and HTTP ``Range``
support (206 + ``Content-Range``, 416 past the end), as download.01.org and Hugging Face do.
``cut_after[path] = n`` makes the next answer for ``path`` send only ``n`` body bytes and drop the
connection (an interrupted download); ``requests`` records ``(path, Range header)`` of each
request; ``ranges = False`` makes it ignore ``Range`` (200 with the whole file, as some servers
do).  ``closed_port()`` gives a port nothing listens on (an offline machine's failure).
"""

from __future__ import annotations

import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"bytes=(\d+)-$")


class FileServer:
    def __init__(self, files: dict[str, bytes] | None = None):
        self.files: dict[str, bytes] = dict(files or {})
        self.cut_after: dict[str, int] = {}
        self.ranges = True
        self.requests: list[tuple[str, str | None]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def __enter__(self) -> "FileServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:   # quiet test output
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path = self.path.lstrip("/")
                range_header = self.headers.get("Range")
                server.requests.append((path, range_header))
                data = server.files.get(path)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                match = _RANGE.match(range_header or "") if server.ranges else None
                if match:
                    start = int(match.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                cut = server.cut_after.pop(path, None)
                if cut is not None:
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

        return Handler


def closed_port() -> int:
    """A local port with no listener (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]

"""``/poses``: every finished frame's JSON line, fanned out to Server-Sent-Events clients (and
``/events``: event records, given as ready lines to ``publish_line``).

``publish(item)`` (the render thread) builds the line once with the ``--json`` record builder
(``pose_record``, ``"source"`` included) and appends it to each client's own bounded queue; it
never waits on a client.  A client whose queue is full loses its oldest event, and the loss is
counted (per client and in total), so a slow or stuck client costs at most ``max_queued`` lines
of memory and never slows the pipeline.  With no client connected nothing is built.
"""

from __future__ import annotations

import json
import threading
from collections import deque

from stream.items import Posed
from stream.sinks.json_lines import pose_record

DEFAULT_MAX_QUEUED = 256      # events held per client before its oldest is dropped


class EventClient:
    """One ``/poses`` subscriber: its pending lines and how many it lost."""

    def __init__(self, max_queued: int):
        self.pending: deque[str] = deque(maxlen=max_queued)
        self.lost = 0


class PoseEvents:
    """The fan-out of pose lines to subscribed clients; thread-safe."""

    def __init__(self, max_queued: int = DEFAULT_MAX_QUEUED):
        if max_queued < 1:
            raise ValueError(f"max_queued must be >= 1, got {max_queued}")
        self.max_queued = max_queued
        self.published = 0
        self.lost = 0
        self._cond = threading.Condition()
        self._clients: set[EventClient] = set()
        self._closed = False

    def subscribe(self) -> EventClient:
        client = EventClient(self.max_queued)
        with self._cond:
            self._clients.add(client)
        return client

    def unsubscribe(self, client: EventClient) -> None:
        with self._cond:
            self._clients.discard(client)

    def client_count(self) -> int:
        with self._cond:
            return len(self._clients)

    def publish(self, item: Posed) -> None:
        """Queue ``item``'s JSON line for every client (drops each full queue's oldest line)."""
        if not self._clients:
            return
        self.publish_line(json.dumps(pose_record(item, include_source=True)))

    def publish_line(self, line: str) -> None:
        """Queue one ready JSON line (no newline in it) for every client."""
        if not self._clients:
            return
        with self._cond:
            for client in self._clients:
                if len(client.pending) == self.max_queued:
                    client.lost += 1
                    self.lost += 1
                client.pending.append(line)
            self.published += 1
            self._cond.notify_all()

    def take(self, client: EventClient, timeout_s: float) -> list[str] | None:
        """The client's pending lines (waiting up to ``timeout_s``; [] when none came), None once closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or client.pending, timeout_s)
            if self._closed:
                return None
            lines = list(client.pending)
            client.pending.clear()
            return lines

    def close(self) -> None:
        """Wake every waiting client; ``take`` returns None from now on."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def sse_message(line: str) -> bytes:
    """One Server-Sent Event carrying ``line`` (a JSON line holds no newline)."""
    return f"data: {line}\n\n".encode()

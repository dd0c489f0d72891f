"""Webhook delivery of event records: an HTTP POST of each record's JSON, in order, retried.

``WebhookOutput.publish`` never blocks: records wait in an ``Outbox`` whose thread POSTs them one
at a time (``Content-Type: application/json``, the body is the record). A 2xx answer is delivered.
A connection error, a timeout, a 5xx, 408 or 429 answer is retried with exponential back-off
(capped) and nothing overtakes the record being retried. Any other answer (4xx, 3xx) means the
receiver does not want it: the record is dropped, counted and logged. Delivery is at least once:
a receiver that takes the record but answers after ``timeout_s`` gets it again, so receivers that
care deduplicate on the record's ``id``.

``user:password@`` in the URL becomes HTTP Basic authentication; the URL is logged only through
``redact_uri`` (no password, no ``?token=``-style secrets).
"""

from __future__ import annotations

import base64
import http.client
import logging
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from posestream_common.errors import ConfigError
from stream.events.outbox import Outbox, Rejected, payload_json
from stream.sources import redact_uri

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 429})


@dataclass(frozen=True)
class WebhookSettings:
    """One webhook: ``url`` (http or https) and the seconds allowed to connect and to answer."""

    url: str
    timeout_s: float = 5.0
    capacity: int = 1000          # records waiting while the receiver is down or slow
    backoff_s: float = 0.5        # first retry delay, doubled per failure...
    backoff_max_s: float = 30.0   # ...up to this

    def __post_init__(self) -> None:
        parts = urlsplit(str(self.url))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"events.webhooks: url {redact_uri(self.url)!r} is not an http(s) URL")
        if not self.timeout_s > 0:
            raise ConfigError(f"events.webhooks: timeout_s must be > 0, got {self.timeout_s}")


class _Target:
    """What a POST needs, parsed once from the URL."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.headers = {"Content-Type": "application/json", "User-Agent": "posestream"}
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")


class WebhookOutput:
    """POSTs event records to one URL from a background thread (see the module docstring)."""

    def __init__(self, settings: WebhookSettings):
        self.settings = settings
        self.shown = redact_uri(settings.url)
        self._target = _Target(settings.url)
        self._reachable = False
        self._outbox = Outbox(f"webhook {self.shown}", self._send, capacity=settings.capacity,
                              backoff_s=settings.backoff_s, backoff_max_s=settings.backoff_max_s)

    def open(self) -> WebhookOutput:
        """Start the sender thread; never raises for a receiver that is down."""
        self._outbox.start()
        return self

    def publish(self, record: dict) -> None:
        """Queue ``record`` for POSTing; never blocks."""
        self._outbox.put(record)

    def set_state(self, source: str, up: bool, people: int) -> None:
        """Webhooks carry events only: camera state is not sent."""

    def close(self, timeout_s: float = 2.0) -> None:
        """Deliver what can be delivered within ``timeout_s``; the rest is counted dropped."""
        self._outbox.close(timeout_s)

    def counters(self) -> dict:
        """``sent``, ``dropped``, ``queued`` and ``connected`` (the last try reached the receiver)."""
        return {**self._outbox.counters(), "connected": self._reachable}

    def _send(self, record: dict) -> None:
        target = self._target
        body = payload_json(record).encode("utf-8")
        kind = http.client.HTTPSConnection if target.https else http.client.HTTPConnection
        connection = kind(target.host, target.port, timeout=self.settings.timeout_s)
        try:
            try:
                connection.request("POST", target.path, body=body, headers=target.headers)
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as error:
                self._reachable = False
                raise ConnectionError(f"{type(error).__name__}: {error}") from None
        finally:
            connection.close()
        self._reachable = True
        status = response.status
        if 200 <= status < 300:
            return
        if status >= 500 or status in RETRY_STATUSES:
            raise ConnectionError(f"the receiver answered HTTP {status}")
        raise Rejected(f"the receiver answered HTTP {status} {response.reason}")

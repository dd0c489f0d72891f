"""MQTT delivery of event records (paho-mqtt), as camera-event systems such as Frigate publish them.

Topics (``<prefix>`` is ``topic_prefix``, ``posestream`` by default):
  - ``<prefix>/<source>/events``: one JSON event record per message, QoS 1, in order;
  - ``<prefix>/<source>/state``: retained ``{"up": bool, "people": int, "time": ISO-8601 UTC}``,
    published when it changes (at most once per ``state_interval_s`` per source, the latest value
    wins) and again after each (re)connection;
  - ``<prefix>/status``: retained ``online`` once connected, ``offline`` on a clean close and as the
    Last Will, which the broker publishes when the connection dies without a goodbye.

``open`` never raises for a broker that is down: paho's network thread connects in the background
and reconnects forever with back-off. ``publish`` never blocks: records wait in an ``Outbox`` whose
thread hands them to paho one at a time and waits for the broker's PUBACK before the next, so a
record counts as sent only once the broker has it, and records put while the broker is down go out
in order once it is back. paho keeps an unacknowledged message across a reconnection and sends it
again (QoS 1 is at least once: subscribers deduplicate on the record's ``id`` if they must).
The password never reaches a log line.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from posestream_common.errors import ConfigError
from stream.events.outbox import Outbox, payload_json

log = logging.getLogger(__name__)


def utc_now() -> str:
    """The wall-clock time as ISO-8601 UTC with milliseconds (the records' ``time`` format)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def topic_level(name: object) -> str:
    """``name`` as one MQTT topic level: ``/``, ``+``, ``#`` and NUL become ``_`` (a camera named
    ``a/b`` must not publish under another topic or as a wildcard)."""
    text = "".join("_" if c in "/+#\0" else c for c in str(name))
    return text or "_"


@dataclass(frozen=True)
class MqttSettings:
    """Where and how to publish; ``username``/``password`` optional (the password is never logged)."""

    host: str
    port: int = 1883
    topic_prefix: str = "posestream"
    username: str | None = None
    password: str | None = None
    keepalive_s: int = 30           # the broker declares us dead (Last Will) after 1.5 × this
    capacity: int = 1000            # records waiting while the broker is away
    state_interval_s: float = 1.0   # at most one state message per source this often
    reconnect_max_s: float = 30.0   # reconnect back-off cap

    def __post_init__(self) -> None:
        if not str(self.host).strip():
            raise ConfigError("events.mqtt.host: empty host name")
        if not 0 < int(self.port) < 65536:
            raise ConfigError(f"events.mqtt.port: {self.port} is not a TCP port")
        prefix = str(self.topic_prefix)
        if not prefix or any(c in prefix for c in "#+") or prefix.startswith("/") or prefix.endswith("/"):
            raise ConfigError(f"events.mqtt.topic_prefix: {prefix!r} is not a usable topic prefix "
                              "(no '#', '+', leading or trailing '/')")

    def __repr__(self) -> str:   # the dataclass repr would show the password
        return (f"MqttSettings(host={self.host!r}, port={self.port}, topic_prefix={self.topic_prefix!r}, "
                f"username={self.username!r}, password={'***' if self.password else None})")


class MqttOutput:
    """Publishes event records and camera state to one broker (see the module docstring)."""

    def __init__(self, settings: MqttSettings):
        self.settings = settings
        self.where = f"mqtt {settings.host}:{settings.port}"
        self._connected = threading.Event()
        self._lock = threading.Lock()          # guards the fields below (never held around paho calls)
        self._acked: dict[int, threading.Event] = {}
        self._early: set[int] = set()          # PUBACKs that came before publish() returned the mid
        self._ignored: set[int] = set()        # mids of messages nobody waits for (state, status)
        self._states: dict[str, tuple[bool, int]] = {}     # latest state per source
        self._state_sent: dict[str, tuple[tuple[bool, int], float]] = {}  # what went out, when
        self._state_timers: dict[str, threading.Timer] = {}
        self._outage_logged = False
        self._closed = False
        self._client = None
        self._outbox = Outbox(self.where, self._send, capacity=settings.capacity)

    # -- public ----------------------------------------------------------------------------------
    def open(self) -> MqttOutput:
        """Start connecting in the background; never raises for a broker that is down."""
        if self._client is not None:
            return self
        import paho.mqtt.client as mqtt

        s = self.settings
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=f"posestream-{os.getpid()}-{uuid.uuid4().hex[:8]}",
                             protocol=mqtt.MQTTv311)
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        client.will_set(self._topic("status"), "offline", qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=max(1, int(s.reconnect_max_s)))
        client.connect_timeout = 3.0         # a silent host must not hold close() for long
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_publish = self._on_publish
        self._client = client
        client.connect_async(s.host, int(s.port), keepalive=int(s.keepalive_s))
        client.loop_start()
        self._outbox.start()
        return self

    def publish(self, record: dict) -> None:
        """Queue ``record`` for ``<prefix>/<record["source"]>/events``; never blocks."""
        self._outbox.put(record)

    def set_state(self, source: str, up: bool, people: int) -> None:
        """Remember ``source``'s state; publish it (retained) when it changed, rate-limited."""
        state = (bool(up), int(people))
        with self._lock:
            if self._closed or self._states.get(source) == state:
                return
            self._states[source] = state
            sent = self._state_sent.get(source)
            wait = 0.0 if sent is None else sent[1] + self.settings.state_interval_s - time.monotonic()
            if wait > 0:
                if source not in self._state_timers:
                    timer = threading.Timer(wait, self._flush_state, args=(source,))
                    timer.daemon = True
                    self._state_timers[source] = timer
                    timer.start()
                return
        self._flush_state(source)

    def close(self, timeout_s: float = 2.0) -> None:
        """Deliver the waiting records within ``timeout_s`` (the rest count as dropped), publish
        ``offline``, disconnect."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            if self._closed:
                return
            self._closed = True
            timers = list(self._state_timers.values())
            self._state_timers.clear()
        for timer in timers:
            timer.cancel()
        self._outbox.close(max(0.0, 0.8 * timeout_s))
        client = self._client
        if client is None:
            return
        if self._connected.is_set():
            info = client.publish(self._topic("status"), "offline", qos=1, retain=True)
            self._wait_ack(info.mid, lambda: time.monotonic() > deadline or not self._connected.is_set())
        client.disconnect()
        client.loop_stop()
        self._connected.clear()

    def counters(self) -> dict:
        """``sent`` (PUBACKed), ``dropped``, ``queued`` and ``connected`` (to the broker now)."""
        return {**self._outbox.counters(), "connected": self._connected.is_set()}

    # -- internals -------------------------------------------------------------------------------
    def _topic(self, *parts: str) -> str:
        return "/".join((self.settings.topic_prefix, *parts))

    def _send(self, record: dict) -> None:
        """Outbox thread: hand one record to paho and wait for its PUBACK (paho resends it after a
        reconnection, so it is published once here however long the broker is away)."""
        while not self._connected.wait(0.2):
            if self._outbox.stopping.is_set():
                raise ConnectionError("closed while the broker was away")
        payload = payload_json(record)
        topic = self._topic(topic_level(record.get("source", "default")), "events")
        info = self._client.publish(topic, payload, qos=1)
        if not self._wait_ack(info.mid, self._outbox.stopping.is_set):
            raise ConnectionError("closed before the broker acknowledged the record")

    def _wait_ack(self, mid: int, give_up) -> bool:
        """Wait for the PUBACK of message ``mid``; False when ``give_up()`` said so first."""
        with self._lock:
            if mid in self._early:
                self._early.discard(mid)
                return True
            done = self._acked.setdefault(mid, threading.Event())
        try:
            while not done.wait(0.05):
                if give_up():
                    return False
            return True
        finally:
            with self._lock:
                self._acked.pop(mid, None)

    def _flush_state(self, source: str) -> None:
        """Publish ``source``'s latest state (retained) if connected; on_connect sends it otherwise."""
        with self._lock:
            self._state_timers.pop(source, None)
            state = self._states.get(source)
            if state is None or self._closed:
                return
            self._state_sent[source] = (state, time.monotonic())
        if self._connected.is_set():
            self._publish_state(source, state)

    def _publish_state(self, source: str, state: tuple[bool, int]) -> None:
        payload = json.dumps({"up": state[0], "people": state[1], "time": utc_now()})
        info = self._client.publish(self._topic(topic_level(source), "state"), payload, qos=1,
                                    retain=True)
        self._forget_ack(info.mid)

    def _forget_ack(self, mid: int) -> None:
        """A message nobody waits for: its PUBACK, come or to come, is ignored."""
        with self._lock:
            if mid in self._early:
                self._early.discard(mid)
            else:
                self._ignored.add(mid)

    # -- paho callbacks (its network thread) -----------------------------------------------------
    def _on_connect(self, client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            if not self._outage_logged:
                log.warning("%s: the broker refused the connection (%s); retrying", self.where, reason_code)
                self._outage_logged = True
            return
        log.info("%s: connected", self.where)
        self._outage_logged = False
        info = client.publish(self._topic("status"), "online", qos=1, retain=True)
        self._forget_ack(info.mid)
        with self._lock:
            states = dict(self._states)
            for source, state in states.items():
                self._state_sent[source] = (state, time.monotonic())
        for source, state in states.items():
            self._publish_state(source, state)
        self._connected.set()

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if was and not self._closed:
            log.warning("%s: connection lost (%s); reconnecting, records wait meanwhile",
                        self.where, reason_code)
            self._outage_logged = True

    def _on_connect_fail(self, _client, _userdata) -> None:
        if not self._outage_logged:
            log.warning("%s: cannot connect to the broker; retrying in the background, records "
                        "wait meanwhile", self.where)
            self._outage_logged = True

    def _on_publish(self, _client, _userdata, mid, _reason_code, _properties) -> None:
        with self._lock:
            if mid in self._ignored:
                self._ignored.discard(mid)
                return
            done = self._acked.get(mid)
            if done is None:
                self._early.add(mid)
        if done is not None:
            done.set()

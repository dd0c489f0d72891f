"""A real MQTT broker for the event-delivery tests: Debian's ``mosquitto`` on a loopback port.

``MosquittoBroker`` writes a config into its own temporary folder (one listener on 127.0.0.1, the
database persisted there so a persistent subscriber session and its queued QoS 1 messages survive
a restart), starts ``mosquitto`` and waits until it accepts connections. ``stop()`` ends it with
SIGTERM (it saves its database), ``kill()`` with SIGKILL (a crash: it saves nothing more, clients
see the connection die); ``start()`` again uses the same port and database. ``users`` (name →
password) turns anonymous access off and writes a password file with ``mosquitto_passwd``.

``Subscriber`` is a paho client for the tests' side: a persistent session (clean_session False,
fixed client id) subscribed with QoS 1, collecting ``(topic, payload, retain)`` in arrival order.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path
from benchmarks.rtsp_camera import free_port
from tests.waiting import wait_until

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def mosquitto_missing() -> str | None:
    """Why the broker cannot run here, or None when it can."""
    if not Path(MOSQUITTO).exists():
        return "mosquitto is not installed (apt-get install mosquitto)"
    return None


class MosquittoBroker:
    """One mosquitto process: start, stop (SIGTERM), kill (SIGKILL), start again on the same port."""

    def __init__(self, port: int | None = None, users: dict[str, str] | None = None):
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.users = dict(users or {})
        self._dir = Path(tempfile.mkdtemp(prefix="posestream-mosquitto-"))
        self._process: subprocess.Popen | None = None
        self.config = self._write_config()

    def _write_config(self) -> Path:
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {self._dir}/",
            "autosave_interval 1",
            # as root, mosquitto drops to the user `mosquitto`, who could not write this folder
            f"user {getpass.getuser()}",
            "max_queued_messages 10000",
            f"log_dest file {self._dir}/mosquitto.log",
            "log_type all",
        ]
        if self.users:
            passwords = self._dir / "passwd"
            passwords.touch()
            for name, password in self.users.items():
                subprocess.run([MOSQUITTO_PASSWD, "-b", str(passwords), name, password],
                               check=True, capture_output=True, timeout=30)
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        path = self._dir / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_s: float = 20.0) -> None:
        """Start the broker and wait until it accepts TCP connections."""
        if self.running:
            return
        self._process = subprocess.Popen([MOSQUITTO, "-c", str(self.config)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_until(self._accepts, timeout_s, message=f"mosquitto on port {self.port}", interval=0.05)

    def _accepts(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            error = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
            raise RuntimeError(f"mosquitto exited with {self._process.returncode}: {error.strip()}")
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM: the broker saves its database and closes the connections cleanly."""
        self._end(kill=False, timeout_s=timeout_s)

    def kill(self) -> None:
        """SIGKILL: the broker dies at once, as in a crash."""
        self._end(kill=True, timeout_s=10.0)

    def _end(self, kill: bool, timeout_s: float) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        (process.kill if kill else process.terminate)()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        if process.stderr:
            process.stderr.close()

    def log_text(self) -> str:
        """The broker's own log (for failure messages)."""
        path = self._dir / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self._dir, ignore_errors=True)


class Subscriber:
    """A QoS 1 test subscriber with a persistent session; ``messages`` in arrival order."""

    def __init__(self, broker: MosquittoBroker, topic: str, client_id: str | None = None,
                 clean: bool = False, username: str | None = None, password: str | None = None):
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self._topic = topic
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"test-sub-{free_port()}",
                                  clean_session=clean, protocol=mqtt.MQTTv311)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_: self.connected.clear()
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect_async(broker.host, broker.port, keepalive=10)
        self.client.loop_start()

    def _on_connect(self, client, _userdata, _flags, reason_code, _properties) -> None:
        if not reason_code.is_failure:
            client.subscribe(self._topic, qos=1)
            self.connected.set()

    def _on_message(self, _client, _userdata, message) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))

    def received(self, topic: str | None = None) -> list[tuple[str, bytes, bool]]:
        with self._lock:
            return [m for m in self.messages if topic is None or m[0] == topic]

    def wait_subscribed(self, timeout_s: float = 20.0) -> None:
        wait_until(self.subscribed.is_set, timeout_s, message="the test subscriber's SUBACK")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

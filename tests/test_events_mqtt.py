"""MQTT delivery against a real broker (Debian's mosquitto) and a real paho subscriber."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time

import pytest

from stream.events.mqtt import MqttOutput, MqttSettings
from tests.mqtt_broker import MosquittoBroker, Subscriber, free_port, mosquitto_missing
from tests.waiting import wait_until

pytestmark = pytest.mark.skipif(mosquitto_missing() is not None, reason=str(mosquitto_missing()))

PREFIX = "posestream"


@pytest.fixture
def broker():
    broker = MosquittoBroker()
    broker.start()
    yield broker
    broker.cleanup()


def record(i: int, source: str = "cam") -> dict:
    return {"id": f"ev-{i}", "source": source, "rule": "door", "kind": "line", "type": "instant",
            "frame": i}


def event_ids(subscriber: Subscriber, source: str = "cam") -> list[str]:
    return [json.loads(payload)["id"] for _, payload, _ in
            subscriber.received(f"{PREFIX}/{source}/events")]


def test_broker_killed_mid_stream_every_record_arrives_in_order(broker):
    subscriber = Subscriber(broker, f"{PREFIX}/#")
    subscriber.wait_subscribed()
    output = MqttOutput(MqttSettings(broker.host, broker.port)).open()
    wait_until(lambda: output.counters()["connected"], 20, message="the publisher's connection")
    published: list[str] = []
    longest = [0.0]
    stop = threading.Event()

    def publish_at_20_per_s() -> None:
        i = 0
        while not stop.is_set():
            started = time.perf_counter()
            output.publish(record(i))
            longest[0] = max(longest[0], time.perf_counter() - started)
            published.append(f"ev-{i}")
            i += 1
            stop.wait(0.05)

    thread = threading.Thread(target=publish_at_20_per_s)
    thread.start()
    try:
        wait_until(lambda: len(event_ids(subscriber)) >= 20, 30, message="records before the outage")
        broker.kill()
        wait_until(lambda: not output.counters()["connected"], 20, message="the publisher to see the outage")
        before_crash = set(event_ids(subscriber))     # all the dead broker had sent
        during = len(published)
        time.sleep(10.0)   # the outage itself: records keep coming meanwhile
        assert len(published) > during + 50, "the publishing thread stalled during the outage"
        assert output.counters()["queued"] > 0
        broker.start()
        wait_until(lambda: output.counters()["connected"], 40, message="the publisher's reconnection")
        count_after = len(published)
        wait_until(lambda: len(published) >= count_after + 20, 30, message="records after the outage")
    finally:
        stop.set()
        thread.join()
    wait_until(lambda: len(set(event_ids(subscriber))) >= len(published), 60,
               message=f"all {len(published)} records at the subscriber")
    received = event_ids(subscriber)
    # QoS 1 is at least once: a broker that crashes restarts from its last saved database (every
    # second here), so it may hand the subscriber again what it had sent just before the crash. A
    # copy may only be such a record; what the publisher sent must each arrive, in order.
    first_arrivals = list(dict.fromkeys(received))
    copies = [i for i in received if received.count(i) > 1]
    assert first_arrivals == published, (
        f"{len(first_arrivals)} distinct received vs {len(published)} published\n"
        f"{broker.log_text()[-2000:]}")
    assert set(copies) <= before_crash and len(copies) - len(set(copies)) <= 25, (
        f"copies beyond the crash's redelivery: {sorted(set(copies))[:10]}")
    counters = output.counters()
    assert counters["sent"] == len(published) and counters["dropped"] == 0
    assert longest[0] < 0.5, f"publish() blocked for {longest[0] * 1000:.0f} ms"
    output.close()
    subscriber.close()


def test_broker_down_at_start_records_wait_then_arrive_in_order(broker):
    subscriber = Subscriber(broker, f"{PREFIX}/cam/events", client_id="waiting-subscriber")
    subscriber.wait_subscribed()
    subscriber.close()
    broker.stop()      # the persistent session keeps the subscription while everyone is away

    output = MqttOutput(MqttSettings(broker.host, broker.port)).open()   # must not raise
    for i in range(30):
        output.publish(record(i))
    time.sleep(1.0)    # give a wrong implementation time to lose them
    counters = output.counters()
    assert counters == {"sent": 0, "dropped": 0, "queued": 30, "connected": False}

    broker.start()
    wait_until(lambda: output.counters()["sent"] == 30, 60, message="the 30 waiting records to be sent")
    subscriber = Subscriber(broker, f"{PREFIX}/cam/events", client_id="waiting-subscriber")
    wait_until(lambda: len(event_ids(subscriber)) >= 30, 30, message="the queued records at the subscriber")
    assert event_ids(subscriber) == [f"ev-{i}" for i in range(30)]
    output.close()
    subscriber.close()


PUBLISHER_SCRIPT = """
import sys, time
from stream.events.mqtt import MqttOutput, MqttSettings
from tests.waiting import wait_until
output = MqttOutput(MqttSettings("127.0.0.1", int(sys.argv[1]), keepalive_s=5)).open()
while not output.counters()["connected"]:
    time.sleep(0.05)
print("CONNECTED", flush=True)
time.sleep(600)
"""


def test_status_online_then_last_will_offline_when_the_publisher_dies(broker):
    subscriber = Subscriber(broker, f"{PREFIX}/status", clean=True)
    subscriber.wait_subscribed()
    process = subprocess.Popen([sys.executable, "-c", PUBLISHER_SCRIPT, str(broker.port)],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "CONNECTED"
        wait_until(lambda: (f"{PREFIX}/status", b"online", False) in subscriber.received(), 20, message="status online")
        process.kill()     # no DISCONNECT packet: the broker publishes the Last Will
        process.wait(10)
        wait_until(lambda: subscriber.received()[-1][1] == b"offline", 30, message="the Last Will")
    finally:
        process.kill()
        process.wait(10)
    subscriber.close()
    late = Subscriber(broker, f"{PREFIX}/status", clean=True)      # retained for newcomers
    wait_until(lambda: late.received(), 20, message="the retained status")
    assert late.received()[0][1:] == (b"offline", True)
    late.close()


def test_clean_close_publishes_offline(broker):
    output = MqttOutput(MqttSettings(broker.host, broker.port)).open()
    wait_until(lambda: output.counters()["connected"], 20, message="the connection")
    output.close()
    late = Subscriber(broker, f"{PREFIX}/status", clean=True)
    wait_until(lambda: late.received(), 20, message="the retained status")
    assert late.received()[0][1:] == (b"offline", True)
    late.close()


def test_state_is_retained_published_on_change_and_rate_limited(broker):
    output = MqttOutput(MqttSettings(broker.host, broker.port, state_interval_s=1.0)).open()
    wait_until(lambda: output.counters()["connected"], 20, message="the connection")
    watcher = Subscriber(broker, f"{PREFIX}/+/state", clean=True)
    watcher.wait_subscribed()
    output.set_state("cam1", True, 2)
    wait_until(lambda: watcher.received(), 20, message="the first state")
    for _ in range(20):
        output.set_state("cam1", True, 2)          # unchanged: nothing new goes out
    output.set_state("cam1", True, 3)
    output.set_state("cam1", False, 0)             # within the interval: only the latest goes out
    wait_until(lambda: len(watcher.received()) >= 2, 20, message="the changed state")
    time.sleep(1.5)    # the rate limit would let a third message out by now if one were due
    states = [json.loads(payload) for _, payload, _ in watcher.received()]
    assert [(s["up"], s["people"]) for s in states] == [(True, 2), (False, 0)]
    assert states[-1]["time"].endswith("Z")
    late = Subscriber(broker, f"{PREFIX}/cam1/state", clean=True)
    wait_until(lambda: late.received(), 20, message="the retained state")
    topic, payload, retained = late.received()[0]
    assert retained and (json.loads(payload)["up"], json.loads(payload)["people"]) == (False, 0)
    output.close()
    watcher.close()
    late.close()


def test_password_never_logged(caplog):
    broker = MosquittoBroker(users={"posestream": "hunter2-Sekrit"})
    broker.start()
    caplog.set_level(logging.DEBUG)
    try:
        wrong = MqttOutput(MqttSettings(broker.host, broker.port, username="posestream",
                                        password="wrong-Sekrit-99")).open()
        right = MqttOutput(MqttSettings(broker.host, broker.port, username="posestream",
                                        password="hunter2-Sekrit")).open()
        right.publish(record(1))
        wait_until(lambda: right.counters()["sent"] == 1, 30, message="an authenticated delivery")
        wait_until(lambda: "refused" in caplog.text, 30, message="the refusal of the wrong password")
        logging.getLogger("test").info("settings: %r %r", right.settings, wrong.settings)
        wrong.close(0.5)
        right.close()
    finally:
        broker.cleanup()
    assert "hunter2-Sekrit" not in caplog.text and "wrong-Sekrit-99" not in caplog.text
    assert "settings: MqttSettings(" in caplog.text


def test_close_with_the_broker_away_returns_in_time_and_counts_the_rest():
    port = free_port()                     # nothing listens there
    output = MqttOutput(MqttSettings("127.0.0.1", port)).open()
    for i in range(3):
        output.publish(record(i))
    started = time.monotonic()
    output.close(1.0)
    assert time.monotonic() - started < 5.0
    assert output.counters() == {"sent": 0, "dropped": 3, "queued": 0, "connected": False}


def test_odd_source_names_stay_one_topic_level_and_a_bad_record_does_not_stall(broker):
    subscriber = Subscriber(broker, f"{PREFIX}/#", clean=True)
    subscriber.wait_subscribed()
    output = MqttOutput(MqttSettings(broker.host, broker.port)).open()
    output.publish(record(0, source="yard/gate#1"))
    output.publish({**record(1), "box": object()})           # not JSON: dropped, not retried
    output.publish(record(2, source="yard/gate#1"))
    wait_until(lambda: output.counters()["sent"] == 2, 30, message="the two good records")
    wait_until(lambda: len(event_ids(subscriber, "yard_gate_1")) == 2, 30, message="their arrival")
    assert event_ids(subscriber, "yard_gate_1") == ["ev-0", "ev-2"]
    assert output.counters()["dropped"] == 1
    output.close()
    subscriber.close()

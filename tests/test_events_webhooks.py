"""Webhook delivery against a real local HTTP receiver: slow, refusing, failing, overflowing."""

from __future__ import annotations

import base64
import logging
import time

import pytest

from posestream_common.errors import ConfigError
from stream.events.webhooks import WebhookOutput, WebhookSettings
from tests.mqtt_broker import wait_for
from tests.webhook_receiver import HookReceiver


def record(i: int) -> dict:
    return {"id": f"ev-{i}", "source": "cam", "rule": "wave", "kind": "hands_up", "type": "start"}


def ids(bodies: list[dict]) -> list[str]:
    return [body["id"] for body in bodies]


def timed_publish(output: WebhookOutput, records) -> float:
    """Publish each record; the longest single call in seconds."""
    longest = 0.0
    for item in records:
        started = time.perf_counter()
        output.publish(item)
        longest = max(longest, time.perf_counter() - started)
    return longest


def test_slow_receiver_never_blocks_the_caller_and_gets_everything_in_order():
    receiver = HookReceiver()
    receiver.delay_s = 0.3
    output = WebhookOutput(WebhookSettings(receiver.url, timeout_s=5.0)).open()
    longest = timed_publish(output, [record(i) for i in range(10)])
    assert longest < 0.5, f"publish() blocked for {longest * 1000:.0f} ms"
    assert output.counters()["queued"] >= 5          # the receiver is still working through them
    wait_for(lambda: len(receiver.received()) == 10, 30, "the 10 records")
    assert ids(receiver.received()) == [f"ev-{i}" for i in range(10)]
    assert receiver.requests[0][0] == "/hook"
    assert receiver.requests[0][1]["Content-Type"] == "application/json"
    output.close()
    assert output.counters() == {"sent": 10, "dropped": 0, "queued": 0, "connected": True}
    receiver.stop()


def test_refused_connections_are_retried_until_the_receiver_comes_up():
    receiver = HookReceiver(start=False)
    output = WebhookOutput(WebhookSettings(receiver.url, backoff_s=0.1, backoff_max_s=0.5)).open()
    timed_publish(output, [record(i) for i in range(5)])
    time.sleep(1.0)    # several refused tries happen meanwhile
    assert output.counters() == {"sent": 0, "dropped": 0, "queued": 5, "connected": False}
    receiver.start()
    wait_for(lambda: len(receiver.received()) == 5, 30, "the records once the receiver is up")
    assert ids(receiver.received()) == [f"ev-{i}" for i in range(5)]
    output.close()
    receiver.stop()


def test_500_then_ok_delivers_each_record_once_in_order():
    receiver = HookReceiver()
    receiver.fail_next = 3
    output = WebhookOutput(WebhookSettings(receiver.url, backoff_s=0.05, backoff_max_s=0.2)).open()
    timed_publish(output, [record(i) for i in range(4)])
    wait_for(lambda: len(receiver.received()) == 4, 30, "the records after three 500s")
    assert ids(receiver.received()) == [f"ev-{i}" for i in range(4)]
    assert receiver.attempts == 7
    output.close()
    assert output.counters()["sent"] == 4
    receiver.stop()


def test_4xx_drops_the_record_without_retrying(caplog):
    receiver = HookReceiver()
    receiver.fail_next, receiver.status_fail = 1, 404
    output = WebhookOutput(WebhookSettings(receiver.url, backoff_s=0.05)).open()
    timed_publish(output, [record(0), record(1)])
    wait_for(lambda: len(receiver.received()) == 1, 30, "the second record")
    output.close()
    assert ids(receiver.received()) == ["ev-1"] and receiver.attempts == 2
    assert output.counters()["dropped"] == 1 and output.counters()["sent"] == 1
    assert "HTTP 404" in caplog.text
    receiver.stop()


def test_overflow_drops_the_oldest_and_counts_them(caplog):
    receiver = HookReceiver(start=False)
    output = WebhookOutput(WebhookSettings(receiver.url, capacity=10, backoff_s=0.05,
                                           backoff_max_s=0.1)).open()
    longest = timed_publish(output, [record(i) for i in range(50)])
    assert longest < 0.5      # a blocking call would wait for the refused connection and its back-off
    wait_for(lambda: output.counters()["dropped"] >= 39, 10, "the overflow count")
    receiver.start()
    wait_for(lambda: output.counters()["queued"] == 0, 30, "the queue to drain")
    output.close()
    delivered = ids(receiver.received())
    counters = output.counters()
    assert counters["sent"] + counters["dropped"] == 50 and counters["sent"] == len(delivered)
    assert delivered[-10:] == [f"ev-{i}" for i in range(40, 50)]     # the newest survive, in order
    assert delivered == sorted(delivered, key=lambda name: int(name[3:]))
    assert caplog.text.count("event queue full") == 1                  # once per burst
    receiver.stop()


def test_close_gives_up_within_its_timeout_and_counts_the_rest():
    receiver = HookReceiver(start=False)
    output = WebhookOutput(WebhookSettings(receiver.url, backoff_s=0.05)).open()
    timed_publish(output, [record(i) for i in range(3)])
    started = time.monotonic()
    output.close(0.5)
    assert time.monotonic() - started < 3.0
    assert output.counters()["dropped"] == 3 and output.counters()["queued"] == 0


def test_url_secrets_never_logged_and_basic_auth_sent(caplog):
    caplog.set_level(logging.DEBUG)
    receiver = HookReceiver(start=False)
    url = receiver.url.replace("http://", "http://hookuser:pa55-Sekrit@") + "?token=tok-Sekrit&x=1"
    output = WebhookOutput(WebhookSettings(url, backoff_s=0.05, backoff_max_s=0.1)).open()
    output.publish(record(0))
    wait_for(lambda: "cannot deliver" in caplog.text, 10, "the refused-connection warning")
    receiver.start()
    wait_for(lambda: receiver.received(), 30, "the record")
    output.close()
    path, headers = receiver.requests[0]
    assert path == "/hook?token=tok-Sekrit&x=1"
    assert base64.b64decode(headers["Authorization"].split()[1]) == b"hookuser:pa55-Sekrit"
    assert "pa55-Sekrit" not in caplog.text and "tok-Sekrit" not in caplog.text
    assert f"127.0.0.1:{receiver.port}/hook?token=***" in caplog.text
    receiver.stop()


@pytest.mark.parametrize("url", ["ftp://host/x", "not a url", "http:///nohost"])
def test_bad_url_is_a_config_error_without_secrets(url):
    with pytest.raises(ConfigError, match="events.webhooks"):
        WebhookSettings(url + "?password=Sekrit")
    try:
        WebhookSettings(url + "?password=Sekrit")
    except ConfigError as error:
        assert "Sekrit" not in str(error)

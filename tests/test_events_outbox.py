"""The event outbox's policy on its own: order, retry with back-off, overflow, close."""

from __future__ import annotations

import threading
import time

import pytest

from stream.events.outbox import Outbox, Rejected, backoff_delay
from tests.mqtt_broker import wait_for


class FlakyReceiver:
    """A send function that fails while ``down`` is set, records what it got and when."""

    def __init__(self):
        self.down = threading.Event()
        self.gate = threading.Event()
        self.gate.set()
        self.got: list = []
        self.tries: list[float] = []
        self.reject: set = set()

    def __call__(self, item) -> None:
        self.tries.append(time.monotonic())
        self.gate.wait()
        if item in self.reject:
            raise Rejected("no thanks")
        if self.down.is_set():
            raise ConnectionError("down")
        self.got.append(item)


def test_backoff_doubles_and_is_capped():
    delays = [backoff_delay(n, 0.5, 4.0) for n in range(0, 7)]
    assert delays == [0.0, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff_delay(10_000, 0.5, 30.0) == 30.0


def test_items_go_out_in_order_and_a_failing_item_is_retried_without_reordering():
    receiver = FlakyReceiver()
    receiver.down.set()
    box = Outbox("test", receiver, capacity=100, backoff_s=0.02, backoff_max_s=0.1)
    box.start()
    for i in range(20):
        box.put(i)
    wait_for(lambda: len(receiver.tries) >= 4, 10, "several failed tries")
    receiver.down.clear()
    wait_for(lambda: box.counters()["sent"] == 20, 10, "the 20 items")
    assert receiver.got == list(range(20))
    assert box.counters() == {"sent": 20, "dropped": 0, "queued": 0}
    box.close()


def test_put_never_blocks_while_send_hangs_and_overflow_drops_the_oldest(caplog):
    receiver = FlakyReceiver()
    receiver.gate.clear()                      # the send hangs (a receiver that never answers)
    box = Outbox("test", receiver, capacity=5)
    box.start()
    box.put("first")
    wait_for(lambda: receiver.tries, 10, "the first send to start")
    started = time.perf_counter()
    for i in range(100):
        box.put(i)
    assert time.perf_counter() - started < 1.0
    assert box.counters() == {"sent": 0, "dropped": 95, "queued": 6}   # 5 waiting + 1 in flight
    assert caplog.text.count("event queue full") == 1
    receiver.gate.set()
    wait_for(lambda: box.counters()["queued"] == 0, 10, "the queue to drain")
    assert receiver.got == ["first", 95, 96, 97, 98, 99]
    box.put("after")                            # a put with room ends the burst...
    box.put("again")
    wait_for(lambda: box.counters()["sent"] == 8, 10, "the last two")
    assert "95 records were dropped" in caplog.text
    box.close()


def test_rejected_items_are_dropped_and_the_rest_go_on():
    receiver = FlakyReceiver()
    receiver.reject = {2}
    box = Outbox("test", receiver)
    box.start()
    for i in range(5):
        box.put(i)
    wait_for(lambda: box.counters()["queued"] == 0, 10, "all items handled")
    assert receiver.got == [0, 1, 3, 4]
    assert box.counters() == {"sent": 4, "dropped": 1, "queued": 0}
    box.close()


def test_close_flushes_within_its_timeout_then_counts_the_rest_as_dropped():
    receiver = FlakyReceiver()
    box = Outbox("test", receiver, backoff_s=0.05, backoff_max_s=0.05)
    box.start()
    for i in range(3):
        box.put(i)
    box.close(5.0)
    assert receiver.got == [0, 1, 2] and box.counters()["sent"] == 3

    receiver = FlakyReceiver()
    receiver.down.set()
    box = Outbox("test", receiver, backoff_s=0.05, backoff_max_s=0.05)
    box.start()
    for i in range(3):
        box.put(i)
    started = time.monotonic()
    box.close(0.3)
    assert 0.25 < time.monotonic() - started < 3.0
    assert box.counters() == {"sent": 0, "dropped": 3, "queued": 0}
    box.put(4)                                   # after close: dropped, no error
    assert box.counters()["dropped"] == 4


def test_capacity_must_be_positive():
    with pytest.raises(ValueError):
        Outbox("test", print, capacity=0)


def test_payload_json_turns_numpy_values_plain_and_rejects_what_is_not_json():
    import numpy as np

    from stream.events.outbox import payload_json

    text = payload_json({"box": np.array([1.5, 2.0], np.float32), "frame": np.int64(7)})
    assert text == '{"box":[1.5,2.0],"frame":7}'
    with pytest.raises(Rejected):
        payload_json({"x": object()})

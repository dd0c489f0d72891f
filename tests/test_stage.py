"""Stage loops: order, END, timing, a failing stage stops everything fast, stop requests, closing."""

from __future__ import annotations

import threading
import time

from stream.items import END
from stream.queues import BoundedQueue, QueuePolicy
from stream.stage import Crew, EndCountdown, RunControl, Stage, StageRunner, run_sequential, run_threaded
from stream.stats import StatsRecorder


class Counter(Stage):
    """Produces 0..count-1 (endless when count is None)."""

    name = "capture"

    def __init__(self, count=None, delay_s=0.0, name="capture"):
        self.count, self.delay_s, self.name = count, delay_s, name
        self.next_value = 0
        self.closed = 0

    def read(self):
        if self.count is not None and self.next_value >= self.count:
            return END
        time.sleep(self.delay_s)                # a source paced like a camera
        self.next_value += 1
        return self.next_value - 1

    def close(self):
        self.closed += 1


class Apply(Stage):
    def __init__(self, name, function, delay_s=0.0):
        self.name, self.function, self.delay_s = name, function, delay_s
        self.closed = 0

    def process(self, item):
        time.sleep(self.delay_s)                # a stage that takes this long: what is tested
        return self.function(item)

    def close(self):
        self.closed += 1


class Collect(Stage):
    name = "render"

    def __init__(self):
        self.items = []
        self.closed = 0

    def process(self, item):
        self.items.append(item)
        return item

    def close(self):
        self.closed += 1


def build(producers, stages, control, stats, size=2, workers=None):
    """Runners for producers → stages; ``workers`` maps a stage name to its number of workers."""
    first = BoundedQueue(size, QueuePolicy.BLOCK)
    countdown = EndCountdown(len(producers))
    runners = [StageRunner(p, None, first, control, stats, countdown) for p in producers]
    inbox = first
    for position, stage in enumerate(stages):
        outbox = None if position == len(stages) - 1 else BoundedQueue(size)
        count = (workers or {}).get(stage.name, 1)
        crew = Crew(count) if count > 1 else None
        runners.extend(StageRunner(stage, inbox, outbox, control, stats, crew=crew, worker=worker)
                       for worker in range(count))
        inbox = outbox
    return runners


def stage_threads():
    return [t for t in threading.enumerate() if t.name.startswith("stage-")]


def test_threaded_items_arrive_in_order_and_every_stage_is_timed_and_closed():
    control, stats = RunControl(), StatsRecorder()
    producer, double, sink = Counter(300), Apply("preprocess", lambda x: 2 * x, delay_s=0.001), Collect()
    stuck = run_threaded(build([producer], [double, sink], control, stats), control)
    assert stuck == []
    assert sink.items == [2 * value for value in range(300)]
    assert stats.frames == 300
    timed = stats.report()["stages"]["preprocess"]
    assert timed["count"] == 300                                     # every call timed once
    assert timed["mean_ms"] >= 1.0 and timed["p50_ms"] >= 1.0        # a sleep lasts at least its time
    assert timed["p50_ms"] <= timed["p95_ms"]
    assert producer.closed == double.closed == sink.closed == 1
    assert control.error is None and not stage_threads()


def test_a_stage_returning_none_drops_only_that_item():
    control, stats = RunControl(), StatsRecorder()
    odd_only = Apply("postprocess", lambda x: x if x % 2 else None)
    sink = Collect()
    run_threaded(build([Counter(20)], [odd_only, sink], control, stats), control)
    assert sink.items == list(range(1, 20, 2))


def test_an_exception_stops_the_whole_run_quickly_and_names_the_stage():
    def explode(item):
        if item == 5:
            raise RuntimeError("boom")
        return item

    control, stats = RunControl(), StatsRecorder()
    producer = Counter(None, delay_s=0.001)      # endless: only the failure can end the run
    slow_tail = Apply("postprocess", lambda x: x, delay_s=0.01)
    sink = Collect()
    started = time.monotonic()
    run_threaded(build([producer], [Apply("inference", explode), slow_tail, sink], control, stats), control)
    assert time.monotonic() - started < 2.0
    assert control.failed_stage == "inference"
    assert isinstance(control.error, RuntimeError) and str(control.error) == "boom"
    assert 5 not in sink.items
    assert producer.closed == slow_tail.closed == sink.closed == 1
    assert not stage_threads()


def test_stop_ends_an_endless_run_with_blocked_producers_within_two_seconds():
    control, stats = RunControl(), StatsRecorder()
    producer = Counter(None)
    sink = Collect()
    slow = Apply("inference", lambda x: x, delay_s=0.05)     # producer mostly blocked on a full queue
    threading.Timer(0.3, control.stop).start()
    started = time.monotonic()
    stuck = run_threaded(build([producer], [slow, sink], control, stats), control)
    assert time.monotonic() - started < 2.0
    assert stuck == [] and control.error is None
    assert sink.items == list(range(len(sink.items)))         # in order, nothing skipped
    assert producer.closed == sink.closed == 1
    assert not stage_threads()


def test_end_passes_only_after_every_producer_finished():
    control, stats = RunControl(), StatsRecorder()
    fast = Counter(5, name="capture")
    slow = Counter(5, delay_s=0.02, name="capture")
    sink = Collect()
    run_threaded(build([fast, slow], [Apply("preprocess", lambda x: x), sink], control, stats), control)
    assert sorted(sink.items) == sorted(list(range(5)) * 2)


def test_sequential_runs_the_same_stages_in_one_thread():
    control, stats = RunControl(), StatsRecorder()
    threads_seen = set()

    def note(item):
        threads_seen.add(threading.get_ident())
        return item + 1

    stages = [Apply("preprocess", note), Apply("inference", note), Collect()]
    run_sequential([Counter(50)], stages, control, stats)
    assert stages[-1].items == [value + 2 for value in range(50)]
    assert threads_seen == {threading.get_ident()}
    assert stats.frames == 50
    assert all(stage.closed == 1 for stage in stages)
    assert set(stats.report()["stages"]) >= {"capture", "preprocess", "inference", "render"}


def test_sequential_failure_names_the_stage_and_closes_everything():
    control, stats = RunControl(), StatsRecorder()
    producer = Counter(None)
    stages = [Apply("postprocess", lambda x: 1 / (3 - x)), Collect()]
    run_sequential([producer], stages, control, stats)
    assert control.failed_stage == "postprocess"
    assert isinstance(control.error, ZeroDivisionError)
    assert producer.closed == 1 and all(stage.closed == 1 for stage in stages)


def test_a_failing_close_is_reported():
    class BadClose(Collect):
        def close(self):
            raise OSError("disk full")

    control, stats = RunControl(), StatsRecorder()
    run_threaded(build([Counter(3)], [BadClose()], control, stats), control)
    assert control.failed_stage == "render"
    assert isinstance(control.error, OSError)


def test_first_failure_wins():
    control = RunControl()
    control.fail("inference", ValueError("first"))
    control.fail("render", ValueError("second"))
    assert control.failed_stage == "inference" and str(control.error) == "first"
    assert control.stopping


def test_stop_interrupts_a_producer_blocked_in_read():
    class BlockedSource(Stage):
        name = "capture"

        def __init__(self):
            self.woken = threading.Event()
            self.closed = 0

        def read(self):
            self.woken.wait(30)          # like a live source waiting for a frame that never comes
            return END

        def interrupt(self):
            self.woken.set()

        def close(self):
            self.closed += 1

    control, stats = RunControl(), StatsRecorder()
    source, sink = BlockedSource(), Collect()
    threading.Timer(0.2, control.stop).start()
    started = time.monotonic()
    stuck = run_threaded(build([source], [sink], control, stats), control, join_grace_s=5.0)
    assert time.monotonic() - started < 1.0
    assert stuck == [] and source.closed == 1 and sink.closed == 1


def test_several_workers_share_a_stage_and_keep_the_order():
    import random

    delays = random.Random(4)
    seen_threads = set()

    def jittery(item):
        seen_threads.add(threading.get_ident())
        time.sleep(delays.uniform(0, 0.004))            # later items often finish first
        return None if item % 7 == 3 else item * 10

    control, stats = RunControl(), StatsRecorder()
    middle, sink = Apply("inference", jittery), Collect()
    runners = build([Counter(200)], [middle, sink], control, stats, size=3, workers={"inference": 3})
    assert [r.name for r in runners if r.stage is middle] == ["stage-inference-0", "stage-inference-1",
                                                             "stage-inference-2"]
    assert run_threaded(runners, control) == []
    assert sink.items == [value * 10 for value in range(200) if value % 7 != 3]
    assert len(seen_threads) > 1
    assert middle.closed == 1 and sink.closed == 1
    assert stats.report()["stages"]["inference"]["mean_ms"] > 0
    assert not stage_threads()


def test_a_failing_worker_stops_its_crew_and_the_run():
    def explode(item):
        if item == 30:
            raise ValueError("bad frame")
        time.sleep(0.002)                       # a stage that takes time, so the crew overlaps
        return item

    control, stats = RunControl(), StatsRecorder()
    middle, sink = Apply("inference", explode), Collect()
    started = time.monotonic()
    run_threaded(build([Counter(None)], [middle, sink], control, stats, workers={"inference": 2}), control)
    assert time.monotonic() - started < 2.0
    assert control.failed_stage == "inference" and str(control.error) == "bad frame"
    assert sink.items == list(range(len(sink.items))) and 30 not in sink.items
    assert middle.closed == 1
    assert not stage_threads()

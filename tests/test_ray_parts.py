"""The parts of a Ray run that need no cluster: batching, pool sizing, resuming, bookkeeping.

These run without ray installed (the Ray modules import it only inside remote calls).
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest

from posestream_common.errors import ConfigError, SourceError, StageError
from stream.config import load_config
from stream.items import Frame
from stream.ray.actors import Resume, Resumed
from stream.ray.inference import Batcher, plan_pool
from stream.ray.records import CameraRecord, build_report, raise_failures
from stream.sources import VideoFileSource
from stream.stats import StatsRecorder
from tests.helpers_spine import make_video
from tests.waiting import wait_until


@pytest.fixture(scope="module")
def engine():
    """The real torch engine (random weights, tiny input, one thread)."""
    import torch

    from stages.inference import make_engine

    threads = torch.get_num_threads()
    config = load_config(None, values={"model.weights": "random", "inference.threads": 1,
                                       "inference.workers": 1})
    yield make_engine(config)
    torch.set_num_threads(threads)


class GatedEngine:
    """The real engine behind a gate: the first call waits until ``open_gate`` (so requests pile
    up meanwhile); records the batch size of every call."""

    def __init__(self, engine):
        self.engine = engine
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.sizes: list[tuple[int, ...]] = []
        self._first = True

    def __call__(self, batch):
        if self._first:
            self._first = False
            self.entered.set()
            self.gate.wait(10)
        self.sizes.append(batch.shape)
        return self.engine(batch)


def submit_all(batcher, gated, inputs):
    """Submit each input from its own thread: the first one enters the gated engine, the others
    wait in submission order.  Returns (results in input order, threads)."""
    results = [None] * len(inputs)
    threads = []
    for position, net_input in enumerate(inputs):
        def work(position=position, net_input=net_input):
            results[position] = batcher.submit(net_input[np.newaxis])
        threads.append(threading.Thread(target=work))
        threads[-1].start()
        if position == 0:
            assert gated.entered.wait(10)
        wait_until(lambda: len(batcher._pending) >= position, 10, interval=0.001,
                   message=f"input {position} waiting in the batcher")
    return results, threads


def test_batcher_runs_waiting_frames_of_one_size_together_and_splits_the_results(engine):
    rng = np.random.default_rng(3)
    small = [rng.uniform(0, 255, (3, 32, 48)).astype(np.float32) for _ in range(5)]
    large = rng.uniform(0, 255, (3, 40, 48)).astype(np.float32)
    gated = GatedEngine(engine)
    batcher = Batcher(gated, max_batch=3)
    inputs = [small[0], small[1], large, small[2], small[3], small[4]]
    results, threads = submit_all(batcher, gated, inputs)
    gated.gate.set()
    for thread in threads:
        thread.join(30)
    batcher.close()

    # first the gated one alone, then three of the small size, the large one, the last small one
    assert [shape[0] for shape in gated.sizes] == [1, 3, 1, 1]
    assert [shape[2] for shape in gated.sizes] == [32, 32, 40, 32]
    for net_input, (heatmaps, pafs, _forward_s, frames) in zip(inputs, results):
        alone_heatmaps, alone_pafs = engine(net_input[np.newaxis])
        assert heatmaps.shape == alone_heatmaps.shape and pafs.shape == alone_pafs.shape
        np.testing.assert_allclose(heatmaps, alone_heatmaps, atol=1e-4)
        np.testing.assert_allclose(pafs, alone_pafs, atol=1e-4)
    assert [result[3] for result in results] == [1, 3, 1, 3, 3, 1]
    assert batcher.batches == 4 and batcher.frames == 6


def test_batcher_gives_an_engine_error_to_every_caller_of_the_batch():
    def failing(batch):
        raise ValueError(f"bad batch of {len(batch)}")

    batcher = Batcher(failing, max_batch=4)
    with pytest.raises(ValueError, match="bad batch of 1"):
        batcher.submit(np.zeros((1, 3, 8, 8), np.float32))
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(np.zeros((1, 3, 8, 8), np.float32))


def settings(**values):
    return load_config(None, values={f"ray.{key}": value for key, value in values.items()}).ray


def test_pool_plan_one_actor_per_gpu_else_the_cpus_the_cameras_leave():
    assert plan_pool(settings(), "auto", {"CPU": 64, "GPU": 4}, cameras=100) == (4, 1.0, 1.0)
    assert plan_pool(settings(inference_gpus=0.5), "cuda", {"CPU": 64, "GPU": 2}, 10) == (4, 1.0, 0.5)
    assert plan_pool(settings(), "cpu", {"CPU": 64, "GPU": 4}, cameras=16).actors == 60
    assert plan_pool(settings(inference_cpus=2.0), "auto", {"CPU": 16}, cameras=8) == (7, 2.0, 0.0)
    assert plan_pool(settings(), "auto", {"CPU": 2}, cameras=40).actors == 1
    assert plan_pool(settings(inference_actors=3), "auto", {"CPU": 2}, cameras=4).actors == 3
    with pytest.raises(ConfigError, match="no GPU"):
        plan_pool(settings(), "cuda", {"CPU": 8}, cameras=1)


def test_a_resumed_file_source_skips_what_was_delivered(tmp_path):
    with VideoFileSource(make_video(tmp_path / "clip.avi", 12), name="door") as source:
        frames = list(Resumed(source, Resume(after_index=6)))
    assert [frame.index for frame in frames] == list(range(7, 12))
    assert all(frame.source == "door" for frame in frames)


class LiveFrames:
    """A live-looking source of ready-made frames (``dropped``/``reconnects`` as live sources)."""

    is_live = True
    dropped = 3
    reconnects = 1

    def __init__(self, count):
        self.frames = [Frame(np.zeros((4, 4, 3), np.uint8), index, 0.0, time=index * 0.5) for index in range(count)]

    def __iter__(self):
        return iter(self.frames)


def test_a_resumed_live_source_numbers_and_times_its_frames_after_the_delivered_ones():
    resumed = Resumed(LiveFrames(3), Resume(after_index=9, after_time_s=4.5, gap_s=2.0))
    assert [(frame.index, frame.time) for frame in resumed] == [(10, 6.5), (11, 7.0), (12, 7.5)]
    assert (resumed.dropped, resumed.reconnects) == (3, 1)


def reply(incarnation, captured, dropped=0, reconnects=0, retries=0):
    return {"incarnation": incarnation, "captured": captured, "dropped": dropped,
            "reconnects": reconnects, "inference_retries": retries}


def test_camera_record_folds_counters_over_restarts_and_counts_live_frames_lost():
    run = load_config(None, values={"run.max_frames": 50, "run.max_seconds": 30}).run
    record = CameraRecord("cam0", handle=None, position=0)
    record.info = {"is_live": True}
    record.restarted("first")
    record.counters(reply("first", captured=10, dropped=2, reconnects=1, retries=1))
    for index in range(7):
        record.delivered(SimpleNamespace(index=index, time=index / 10))
    record.restarted("second")          # died with 3 frames captured but not delivered
    record.counters(reply("second", captured=4, dropped=1))
    assert record.restarts == 1 and record.lost == 3
    assert record.total("dropped") == 2 + 1 + 3
    assert record.total("reconnects") == 1 and record.total("inference_retries") == 1
    resume = record.resume(run, elapsed_s=10.0)
    assert (resume.after_index, resume.after_time_s) == (6, 0.6)
    assert resume.frames_left == 43 and resume.seconds_left == pytest.approx(20.0)

    file_record = CameraRecord("cam1", handle=None, position=1)
    file_record.info = {"is_live": False}
    file_record.restarted("first")
    file_record.counters(reply("first", captured=9))
    file_record.delivered(SimpleNamespace(index=4, time=0.4))
    file_record.restarted("second")     # a file camera re-reads: nothing lost
    assert file_record.lost == 0 and file_record.resume(run, 0.0).frames_left == 45


def test_report_has_the_local_keys_plus_ray_and_failures_follow_the_local_rules():
    records = [CameraRecord(name, None, position) for position, name in enumerate(("a", "b"))]
    report = build_report(StatsRecorder(), records, {"address": "local"}, {"forwards": 4, "mean_frames": 1.5})
    assert {"frames", "wall_s", "fps", "dropped", "reconnects", "latency_ms", "stages"} < set(report)
    assert set(report["sources"]) == {"a", "b"} and report["ray"]["address"] == "local"
    assert report["batches"] == {"forwards": 4, "mean_frames": 1.5}

    records[1].error = SourceError("stage 'capture': rtsp://cam/b: gave up after 3 reconnect attempts")
    raise_failures(records, {})                     # one camera's source failed: the others went on
    assert build_report(StatsRecorder(), records, {})["sources"]["b"]["error"].startswith("SourceError: ")
    records[0].error = SourceError("stage 'capture': rtsp://cam/a: stalled")
    with pytest.raises(SourceError, match="camera a: stage 'capture': rtsp://cam/a: stalled"):
        raise_failures(records, {})                 # every camera failed
    records[0].error = None
    records[1].error = StageError("stage 'inference' failed: boom")
    with pytest.raises(StageError, match="camera b: stage 'inference' failed: boom"):
        raise_failures(records, {})                 # a bug fails the run


def test_a_cluster_address_that_does_not_answer_is_a_user_error_at_once():
    from stream.ray.cluster import check_reachable
    from tests.fixtures_live import free_port

    with pytest.raises(ConfigError, match=r"--ray 127\.0\.0\.1:\d+: no Ray cluster answers there"):
        check_reachable(f"127.0.0.1:{free_port()}", timeout_s=2.0)
    for not_checked in ("auto", "local", "ray://head:10001"):
        check_reachable(not_checked)


def test_a_local_cluster_runs_its_workers_at_normal_priority():
    """Ray's default worker niceness (15) lets any busy process starve a real-time run."""
    ray = pytest.importorskip("ray")
    from stream.config import load_config
    from stream.ray.cluster import LOCAL_WORKER_NICENESS, connect

    if ray.is_initialized():
        pytest.skip("a Ray instance is already running in this process")
    started = connect(ray, "local", load_config(None, values={"ray.num_cpus": 1}).ray)
    try:
        @ray.remote
        def niceness() -> int:
            import os

            return os.nice(0)

        assert ray.get(niceness.remote(), timeout=120) == LOCAL_WORKER_NICENESS
    finally:
        if started:
            ray.shutdown()

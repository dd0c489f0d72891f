"""StatsRecorder: the contract's stats object, percentiles, latency, reservoir, atomic writing."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import numpy as np

from stream.stats import STAGE_NAMES, StatsRecorder, format_summary, write_stats


def test_report_has_the_contract_shape_and_right_numbers():
    stats = StatsRecorder()
    stats.start()
    durations_s = [0.001 * value for value in range(1, 101)]          # 1..100 ms
    for seconds in durations_s:
        stats.record_stage("inference", seconds)
    now = time.monotonic()
    for _ in range(10):
        stats.record_done(SimpleNamespace(capture_time=now - 0.05))
    time.sleep(0.05)                    # the run's wall time, asserted below as a lower bound
    stats.finish()
    report = stats.report(dropped=3, reconnects=1)
    assert set(report) == {"frames", "wall_s", "fps", "dropped", "reconnects", "latency_ms", "stages"}
    assert set(report["stages"]) == set(STAGE_NAMES)
    inference = report["stages"]["inference"]
    assert abs(inference["mean_ms"] - 50.5) < 1e-6
    assert abs(inference["p50_ms"] - float(np.percentile(durations_s, 50)) * 1000) < 1e-3
    assert abs(inference["p95_ms"] - float(np.percentile(durations_s, 95)) * 1000) < 1e-3
    assert report["stages"]["capture"] == {"mean_ms": 0.0, "p50_ms": 0.0, "p95_ms": 0.0, "count": 0}
    assert inference["count"] == 100
    assert report["frames"] == 10 and report["dropped"] == 3 and report["reconnects"] == 1
    assert report["latency_ms"]["p50"] >= 50.0
    assert report["wall_s"] >= 0.05
    assert abs(report["fps"] - 10 / report["wall_s"]) < 0.01 * report["fps"]
    assert "10 frames" in format_summary(report)


def test_source_sections_hold_state_people_recent_fps_and_a_latency_histogram():
    stats = StatsRecorder()
    stats.start()
    now = time.monotonic()
    latencies_s = [0.004, 0.03, 0.03, 0.2, 20.0]
    for latency_s in latencies_s:
        stats.record_done(SimpleNamespace(capture_time=now - latency_s, source="left", people=np.zeros((2, 18, 3))))
    stats.record_done(SimpleNamespace(capture_time=now, source="left", people=np.zeros((1, 18, 3))))
    report = stats.report(sources={"left": {"dropped": 1, "reconnects": 2, "error": None, "state": "reconnecting"},
                                   "right": {"dropped": 0, "reconnects": 0, "error": "gone", "state": "down"},
                                   "new": {}})
    left, right, new = (report["sources"][name] for name in ("left", "right", "new"))
    assert left["people"] == 1, "people in the last frame, not a total"
    assert (left["state"], left["up"], right["state"], right["up"]) == ("reconnecting", 0, "down", 0)
    assert (new["state"], new["up"], new["frames"], new["fps_recent"]) == ("live", 1, 0, 0.0)
    assert left["fps_recent"] > 0
    histogram = left["latency_histogram"]
    assert histogram["count"] == 6 and len(histogram["counts"]) == len(histogram["le_s"])
    expected = [sum(1 for value in [*latencies_s, 0.0] if value <= bound + 0.002) for bound in histogram["le_s"]]
    assert histogram["counts"] == expected, "cumulative counts per bound"
    assert histogram["counts"][-1] == 5, "the 20 s frame is only in +Inf"
    assert abs(histogram["sum_s"] - sum(latencies_s)) < 0.01


def test_reservoir_keeps_percentiles_close_and_the_mean_exact():
    stats = StatsRecorder(max_samples=1000)
    values_s = np.random.default_rng(0).uniform(0.0, 0.2, 20_000)
    for seconds in values_s:
        stats.record_stage("render", float(seconds))
    render = stats.report()["stages"]["render"]
    assert abs(render["mean_ms"] - values_s.mean() * 1000) < 1e-2
    assert abs(render["p50_ms"] - np.percentile(values_s, 50) * 1000) < 15     # within ~7% of range
    assert abs(render["p95_ms"] - np.percentile(values_s, 95) * 1000) < 15


def test_on_done_is_called_per_finished_item():
    seen = []
    stats = StatsRecorder(on_done=seen.append)
    for index in range(4):
        stats.record_done(SimpleNamespace(capture_time=time.monotonic(), index=index))
    assert [item.index for item in seen] == [0, 1, 2, 3]


def test_write_stats_is_atomic_and_valid_json(tmp_path):
    target = tmp_path / "deep" / "stats.json"
    write_stats(target, {"frames": 1})
    assert json.loads(target.read_text()) == {"frames": 1}
    assert [p.name for p in target.parent.iterdir()] == ["stats.json"]


def test_fps_recent_is_each_slow_cameras_real_rate_when_frames_finish_in_bursts(monkeypatch):
    """Two cameras at 1.7 and 2.1 fps whose frames finish in bursts (rounds of batched inference
    every 1.2 s finish together): after 45 s each source's fps_recent is its camera's rate."""
    import stream.stats as stats_module

    clock = {"now": 0.0}
    monkeypatch.setattr(stats_module, "time", SimpleNamespace(monotonic=lambda: clock["now"]))
    stats = StatsRecorder()
    stats.start()
    frames = [(index / rate, name) for name, rate in (("slow", 1.7), ("fast", 2.1))
              for index in range(int(45 * rate))]
    finished = sorted((np.ceil(captured / 1.2) * 1.2 + 0.3, captured, name) for captured, name in frames)
    assert len({done for done, _, _ in finished}) < len(finished) / 2, "frames finish in bursts"
    for done, captured, name in finished:
        clock["now"] = done
        stats.record_done(SimpleNamespace(capture_time=captured, source=name, people=np.zeros((0, 18, 3))))
    clock["now"] = 45.0
    sources = stats.report(sources={"slow": {}, "fast": {}})["sources"]
    assert abs(sources["slow"]["fps_recent"] - 1.7) < 0.1
    assert abs(sources["fast"]["fps_recent"] - 2.1) < 0.1
    clock["now"] = 60.0
    assert stats.report(sources={"slow": {}})["sources"]["slow"]["fps_recent"] == 0.0, \
        "a source with no frame in the window shows 0"


def test_recent_rate_over_a_trailing_window():
    from stream.stats import recent_rate

    steady = [(t + 0.5, t) for t in np.arange(0, 10, 0.25)]              # 4 fps, done 0.5 s later
    assert abs(recent_rate(steady, now=10.2, window_s=5.0) - 4.0) < 1e-6
    assert recent_rate(steady[:1], now=1.0, window_s=5.0) == 0.0
    together = [(3.0, 2.0)] * 6                                           # captured at once
    assert recent_rate(together, now=3.0, window_s=5.0) == 6 / 5.0

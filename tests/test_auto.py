"""``auto``: the most accurate configuration that keeps run.target_fps on this machine, from
measured engine speed (injected here where a test needs chosen figures, real where it measures)."""

from __future__ import annotations

import json
import logging

import pytest

from posestream_common.machine import cpu_model
from stream import auto
from stream.config import load_config

# engine core-ms a frame at REFERENCE_HEIGHT (368 rows of a 640x480 frame)
COSTS = {("omz", "auto"): 30.0, ("omz", "fp32"): 40.0, ("omz", "bf16"): 30.0,
         ("mobilenet_thin", "fp32"): 140.0, ("mobilenet_thin", "bf16"): 60.0}


@pytest.fixture(autouse=True)
def quiet_machine(monkeypatch):
    """A load average of 0: no measurement counts as busy (the busy rule has its own test)."""
    monkeypatch.setattr("stream.measurements.machine_load", lambda load=None: 0.0 if load is None else load)


def config_with(**values):
    return load_config(None, values={"output.display": False, **values})


class Measure:
    """Engine core-ms by network and precision, counting the calls (the cache must spare them)."""

    def __init__(self, costs=COSTS):
        self.costs, self.calls = costs, []

    def __call__(self, config):
        pair = (config.model.backbone, config.inference.precision)
        self.calls.append((*pair, config.model.input_height))
        return self.costs[pair]


def chosen_height(config):
    """The input height auto chose: ``model.whole_height`` (the inference plan keeps small frames
    whole at it), or ``model.input_height`` with ``model.plan: whole``."""
    return config.model.input_height or config.model.whole_height


def everywhere(backbone, weights):
    return True


def without_omz(backbone, weights):
    return backbone != "omz"


def test_the_most_accurate_candidate_that_keeps_the_target_wins(tmp_path):
    measure = Measure()
    chosen = auto.resolve(config_with(), measure=measure, cache_path=tmp_path / "m.json",
                          available=everywhere)
    assert chosen.model.backbone == "omz" and chosen_height(chosen) == 256
    assert measure.calls == [("omz", "auto", auto.REFERENCE_HEIGHT)]     # one measurement


def test_offline_without_omz_the_next_network_is_taken_by_measured_speed(tmp_path, monkeypatch):
    monkeypatch.setattr("stages.engines.cpu_supports_bf16", lambda: True)
    measure = Measure()
    chosen = auto.resolve(config_with(), measure=measure, cache_path=tmp_path / "m.json",
                          available=without_omz)
    # fp32 (140 core-ms at h368) gives 8 fps at h480; bf16 (60) gives 18 fps at h480
    assert (chosen.model.backbone, chosen.inference.precision, chosen_height(chosen)) == \
        ("mobilenet_thin", "bf16", 480)
    assert [call[:2] for call in measure.calls] == [("mobilenet_thin", "fp32"), ("mobilenet_thin", "bf16")]


def test_a_higher_target_trades_accuracy_for_speed(tmp_path, monkeypatch):
    monkeypatch.setattr("stages.engines.cpu_supports_bf16", lambda: True)
    chosen = auto.resolve(config_with(**{"run.target_fps": 40}), measure=Measure(),
                          cache_path=tmp_path / "m.json", available=without_omz)
    assert chosen_height(chosen) == 256         # only the smallest input reaches 40 fps


def test_when_nothing_reaches_the_target_the_fastest_is_taken(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr("stages.engines.cpu_supports_bf16", lambda: False)
    slow = Measure({("mobilenet_thin", "fp32"): 400.0})
    with caplog.at_level(logging.INFO, logger="stream.auto"):
        chosen = auto.resolve(config_with(), measure=slow, cache_path=tmp_path / "m.json",
                              available=without_omz)
    assert (chosen.inference.precision, chosen_height(chosen)) == ("fp32", 256)
    lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("auto:")]
    assert len(lines) == 1 and "none reaches 15 fps" in lines[0]


def test_measurements_are_kept_per_machine(tmp_path):
    cache = tmp_path / "m.json"
    first = Measure()
    auto.resolve(config_with(), measure=first, cache_path=cache, available=everywhere)
    again = Measure()
    auto.resolve(config_with(), measure=again, cache_path=cache, available=everywhere)
    assert first.calls and not again.calls
    ((key, entry),) = json.loads(cache.read_text()).items()
    assert entry["engine_core_ms"] == COSTS[("omz", "auto")] and cpu_model() in key
    cache.write_text("not json")                    # a broken cache is only measured again
    broken = Measure()
    auto.resolve(config_with(), measure=broken, cache_path=cache, available=everywhere)
    assert broken.calls


def test_int8_is_estimated_from_its_network_never_quantized_to_choose(tmp_path, monkeypatch):
    monkeypatch.setattr("stages.engines.cpu_supports_bf16", lambda: False)
    measure = Measure({("mobilenet_thin", "fp32"): 60.0})
    chosen = auto.resolve(config_with(**{"run.target_fps": 33}), measure=measure,
                          cache_path=tmp_path / "m.json", available=without_omz)
    # fp32 h368 is 29.6 fps, int8 h368 (60 / 1.2 core-ms) 34.8 fps: int8, never measured itself
    assert (chosen.inference.precision, chosen_height(chosen)) == ("int8", 368)
    assert {call[1] for call in measure.calls} == {"fp32"}
    assert chosen.inference.calibrate_first is False              # calibrated in the background


def test_every_explicit_setting_is_kept(tmp_path, monkeypatch):
    monkeypatch.setattr("stages.engines.cpu_supports_bf16", lambda: True)
    measure = Measure()
    kwargs = {"measure": measure, "cache_path": tmp_path / "m.json", "available": everywhere}
    fixed_net = auto.resolve(config_with(**{"model.backbone": "mobilenet_thin"}), **kwargs)
    assert fixed_net.model.backbone == "mobilenet_thin"
    fixed_precision = auto.resolve(config_with(**{"inference.precision": "fp32"}), **kwargs)
    assert fixed_precision.inference.precision == "fp32" and fixed_precision.model.backbone == "omz"
    fixed_size = auto.resolve(config_with(**{"model.input_height": 200, "inference.precision": "bf16"}), **kwargs)
    assert fixed_size.model.input_height == 200 and fixed_size.inference.precision == "bf16"
    assert fixed_size.model.backbone == "omz"        # the most accurate network, at the given size
    calls = len(measure.calls)
    # network and size both given: nothing to choose, nothing measured
    both = config_with(**{"model.backbone": "cmu", "model.input_height": 184})
    assert auto.resolve(both, **kwargs) == both and len(measure.calls) == calls


def test_weights_without_a_network_name_theirs(tmp_path):
    measure = Measure()
    kwargs = {"measure": measure, "cache_path": tmp_path / "m.json", "available": everywhere}
    ir = auto.resolve(config_with(**{"model.weights": str(tmp_path / "net.xml")}), **kwargs)
    assert ir.model.backbone == "omz"
    random = auto.resolve(config_with(**{"model.weights": "random", "model.input_height": 64}), **kwargs)
    assert random.model.backbone == "mobilenet_thin"


def test_a_real_engine_is_measured_in_cpu_time():
    def cost(height):
        return auto.measure_engine_cost(config_with(**{
            "model.backbone": "mobilenet_thin", "model.weights": "random",
            "model.input_height": height, "inference.precision": "fp32"}))
    small, large = cost(64), cost(256)
    assert 0 < small < large                         # 16x the pixels costs more CPU


def test_the_pixel_budget_comes_from_the_measured_cost_of_the_chosen_network(tmp_path, monkeypatch):
    monkeypatch.setattr("stages.inference.available_cores", lambda: 2)
    cache = tmp_path / "m.json"
    config = config_with(**{"model.backbone": "omz"})
    assert auto.pixel_budget(config, (720, 1280), cache_path=cache) is None      # nothing measured
    chosen = auto.resolve(config, measure=Measure(), cache_path=cache, available=everywhere)
    budget = auto.pixel_budget(chosen, (720, 1280), cache_path=cache)
    # what is left of 2 cores at 15 fps after the rest of a 720p frame, at 30 core-ms per 368 rows
    left_ms = 2000 / 15 - auto.OTHER_CORE_MS * 3
    assert budget == pytest.approx(left_ms / 30.0 * auto.net_pixels(auto.REFERENCE_HEIGHT), rel=1e-3)
    faster = chosen.model_copy(update={"run": chosen.run.model_copy(update={"target_fps": 30})})
    assert auto.pixel_budget(faster, (720, 1280), cache_path=cache) < budget


def test_a_figure_measured_busy_is_measured_again_when_quiet_and_the_lower_kept(tmp_path):
    from stream.measurements import MeasurementCache

    cache = MeasurementCache(tmp_path / "m.json")
    assert cache.worth_measuring("k")
    assert cache.put("k", 60.0, load=2.0) == 60.0                   # busy: kept, marked
    assert not cache.worth_measuring("k", load=1.5)                 # still busy: no new measurement
    assert cache.worth_measuring("k", load=0.1)
    assert cache.put("k", 40.0, load=0.1) == 40.0                   # quiet and lower: kept, unmarked
    assert not cache.worth_measuring("k", load=0.1)
    assert cache.put("k", 45.0, load=0.1) == 40.0 and cache.get("k") == 40.0


def test_estimate_is_the_cores_over_a_frames_cost():
    assert auto.estimate_fps(92.5, auto.NOMINAL_FRAME, cores=2) == pytest.approx(
        2000 / (92.5 + auto.OTHER_CORE_MS))
    assert auto.estimate_fps(50.0, (960, 1280), cores=2) < auto.estimate_fps(50.0, (480, 640), cores=2)


def test_the_ap_table_is_the_accuracy_benchmarks():
    """auto ranks by the COCO AP that benchmarks.accuracy measured: each candidate with a row in
    the results file has that row's AP (all 260 images), to the third decimal."""
    from pathlib import Path

    results = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "AVX512-BF16" / "accuracy.json"
    rows = {row["label"]: row["ap"]["all"]["AP"] for row in json.loads(results.read_text())["rows"]}
    checked = 0
    for candidate in auto.CANDIDATES:
        label = ("omz openvino bf16 default height" if candidate.backbone == "omz" else
                 f"{candidate.backbone} openvino {candidate.precision} h{candidate.input_height}")
        if label in rows:
            assert candidate.ap == pytest.approx(rows[label], abs=0.0015), label
            checked += 1
    assert checked >= 4


def test_candidates_are_ranked_best_first():
    aps = [candidate.ap for candidate in auto.CANDIDATES]
    assert aps == sorted(aps, reverse=True)


def test_the_chosen_height_is_the_plans_for_small_frames_and_the_input_height_with_plan_whole(tmp_path):
    kwargs = dict(measure=Measure(), cache_path=tmp_path / "m.json", available=everywhere)
    planned = auto.resolve(config_with(), **kwargs)
    assert planned.model.input_height is None and planned.model.whole_height == 256
    whole = auto.resolve(config_with(**{"model.plan": "whole"}), **kwargs)
    assert whole.model.input_height == 256 and whole.model.whole_height is None


def test_measurements_are_kept_per_engine(tmp_path):
    cache = tmp_path / "m.json"
    measure = Measure()
    openvino = config_with(**{"model.backbone": "mobilenet_thin", "inference.engine": "openvino",
                              "inference.precision": "fp32"})
    auto.resolve(openvino, measure=measure, cache_path=cache, available=everywhere)
    assert measure.calls and auto.pixel_budget(openvino, (720, 1280), cache_path=cache) is not None
    torch_run = openvino.model_copy(update={"inference": openvino.inference.model_copy(update={"engine": "torch"})})
    assert auto.pixel_budget(torch_run, (720, 1280), cache_path=cache) is None   # OpenVINO's figure is not torch's
    calls = len(measure.calls)
    auto.resolve(torch_run, measure=measure, cache_path=cache, available=everywhere)
    assert len(measure.calls) == calls + 1                                       # measured for torch
    assert auto.pixel_budget(torch_run, (720, 1280), cache_path=cache) is not None

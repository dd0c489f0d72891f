"""Two RTSP cameras from the real server fixture in one process: one server is killed, the other
camera keeps producing frames, the run goes on and ends normally, and the stats say which source
failed.  Live lanes keep only the newest frame before inference.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from stream.config import load_config
from stream.pipeline import Pipeline
from stream.queues import QueuePolicy
from tests.fixtures_live import rtsp_available, rtsp_servers  # noqa: F401 - fixture
from tests.waiting import wait_until

FAST = {"model.weights": "random", "model.input_height": 32, "inference.threads": 1,
        "inference.warmup": 0, "output.display": False, "run.progress": False}


@pytest.fixture
def two_servers(rtsp_available):
    with rtsp_servers(2) as servers:
        yield servers


def json_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().split("\n")[:-1]]


def test_a_killed_camera_ends_alone_while_the_other_goes_on(two_servers, tmp_path):
    steady, doomed = two_servers
    config = load_config(None, values={
        **FAST, "output.json": str(tmp_path / "{source}.jsonl"), "output.stats": str(tmp_path / "stats.json"),
        "source.read_timeout_s": 1.0, "source.open_timeout_s": 10.0,
        "sources": [{"uri": steady.url, "name": "steady"},
                    {"uri": doomed.url, "name": "doomed", "reconnect": False}]})
    outcome: dict = {}
    pipeline = Pipeline(config).open()

    def run() -> None:
        try:
            outcome["report"] = pipeline.run()
        except BaseException as error:  # noqa: BLE001 - checked below
            outcome["error"] = error

    runner = threading.Thread(target=run)
    runner.start()
    try:
        wait_until(lambda: len(json_lines(tmp_path / "doomed.jsonl")) >= 3
                   and len(json_lines(tmp_path / "steady.jsonl")) >= 3, 60, message="frames from both cameras")
        lanes = {queue.name: queue for queue in pipeline.queues if "lane" in queue.name}
        doomed.kill()
        wait_until(lambda: "doomed" in pipeline.control.source_failures, 30, message="the killed camera to fail")
        at_failure = len(json_lines(tmp_path / "steady.jsonl"))
        wait_until(lambda: len(json_lines(tmp_path / "steady.jsonl")) >= at_failure + 10, 60,
                   message="10 more frames from the steady camera after the other failed")
        assert runner.is_alive()
    finally:
        pipeline.stop()
        runner.join(timeout=10)
        pipeline.close()
    assert "error" not in outcome, outcome.get("error")
    report = outcome["report"]
    assert report["sources"]["doomed"]["error"] and doomed.url in report["sources"]["doomed"]["error"]
    assert report["sources"]["steady"]["error"] is None
    assert report["sources"]["steady"]["frames"] == len(json_lines(tmp_path / "steady.jsonl"))
    assert report["frames"] == sum(section["frames"] for section in report["sources"].values())
    assert json.loads((tmp_path / "stats.json").read_text()) == report
    assert set(lanes) == {"steady:lane->inference", "doomed:lane->inference"}
    assert all(lane.size == 1 and lane.policy is QueuePolicy.DROP_OLDEST for lane in lanes.values())

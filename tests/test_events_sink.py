"""The events sink on synthetic frames: records in the --events file (contract keys, flushed as
written, every start ended at close), the same records on a real ``--serve`` sink's ``/events``
stream, snapshot JPEGs, the stats' ``events`` section read back through prometheus_client's
parser, the state of each source handed to outputs that take it, and the config/CLI checks
(a bad rule: exit 2, one line naming the key, no file written)."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from stream.config import load_config
from stream.events.sink import EventSink
from stream.events.wiring import ServeOutput, build_event_sink
from stream.items import Posed
from stream.metrics import metrics_registry, metrics_text
from stream.sinks.http import HttpSink
from tests.test_events_rules import lying, rule, standing
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
RECORD_KEYS = {"id", "source", "rule", "kind", "type", "person_id", "time", "stream_time", "frame",
               "keypoints", "box", "snapshot", "clip"}
FPS = 10.0


def posed(index: int, poses: list[np.ndarray], source: str = "cam0") -> Posed:
    image = np.full((480, 640, 3), 90, np.uint8)
    people = np.array(poses, np.float32).reshape(-1, 18, 3)
    return Posed(image=image, index=index, capture_time=time.monotonic(), time=index / FPS, source=source,
                 net_input=None, scale=1.0, heatmaps=None, pafs=None, people=people,
                 person_ids=tuple(range(len(people))), person_scores=(0.8,) * len(people))


class Receiver:
    """An event output that keeps what it is given (the interface MQTT and webhooks implement)."""

    def __init__(self):
        self.records, self.states, self.closed = [], [], False

    def publish(self, record: dict) -> None:
        self.records.append(record)

    def set_state(self, source: str, up: bool, people: int) -> None:
        self.states.append((source, up, people))

    def counters(self) -> dict:
        return {"sent": len(self.records), "dropped": 0, "queued": 0, "connected": True}

    def close(self, timeout_s: float = 2.0) -> None:
        self.closed = True


def test_records_go_to_the_file_events_stream_snapshots_and_metrics(tmp_path):
    http_sink = HttpSink(port=0).open()
    receiver = Receiver()
    rules = {"cam0": [rule(name="floor", kind="person_down", seconds=0.5),
                      rule(name="door", kind="line", points=[[0.5, 0.0], [0.5, 1.0]])]}
    live = {"sources": {"cam0": {"state": "live", "people": 1}}}
    sink = EventSink(rules, str(tmp_path / "ev" / "events.jsonl"), snapshot_dir=str(tmp_path / "snaps"),
                     outputs={"serve": ServeOutput(http_sink), "hook": receiver}, live_stats=lambda: live).open()
    connection = http.client.HTTPConnection("127.0.0.1", http_sink.port, timeout=10)
    try:
        connection.request("GET", "/events")
        response = connection.getresponse()
        assert response.headers["Content-Type"] == "text/event-stream"
        wait_until(lambda: http_sink.records.client_count() == 1, 10.0)
        frames = [[standing((100 + 40 * step, 400))] for step in range(12)]        # walks across the door
        frames += [[lying((560, 400))]] * 10                                        # then lies down
        for index, poses in enumerate(frames):
            sink.write(posed(index, poses), posed(index, poses).image)
        lines = (tmp_path / "ev" / "events.jsonl").read_text().splitlines()
        assert len(lines) == 2, "instant and start are in the file at once (flushed as written)"
        streamed = []
        while len(streamed) < 2:
            line = response.fp.readline().decode()
            if line.startswith("data: "):
                streamed.append(json.loads(line[len("data: "):]))
        assert streamed == [json.loads(line) for line in lines]
        wait_until(lambda: ("cam0", True, 1) in receiver.states, 10.0)
        report = sink.report()
    finally:
        sink.close()
        connection.close()
        http_sink.close()
    records = [json.loads(line) for line in (tmp_path / "ev" / "events.jsonl").read_text().splitlines()]
    assert [(r["rule"], r["type"]) for r in records] == [("door", "instant"), ("floor", "start"), ("floor", "end")]
    assert records == receiver.records and receiver.closed
    for record in records:
        assert RECORD_KEYS <= set(record) and record["source"] == "cam0" and record["clip"] is None
        assert len(record["keypoints"]) == 54 and len(record["box"]) == 4
        assert record["time"].endswith("Z") and record["person_id"] == 0
        image = cv2.imread(record["snapshot"])
        assert image is not None and image.shape == (480, 640, 3), "an annotated JPEG of the event"
    door, start, end = records
    assert door["direction"] == "right" and door["points"] == [[320.0, 0.0], [320.0, 480.0]]
    assert start["id"].rsplit(".", 1)[0] == end["id"].rsplit(".", 1)[0] and start["id"] != end["id"]
    assert end["frame"] == len(frames) - 1, "the open start ends at the last frame when the run ends"
    assert report["sources"]["cam0"]["rules"] == {"floor": 1, "door": 1}
    assert report["sources"]["cam0"]["lines"] == {"door": {"right": 1}}
    assert [entry["rule"] for entry in report["sources"]["cam0"]["recent"]] == ["door", "floor"]
    assert report["outputs"]["serve"]["sent"] == 2 and report["outputs"]["hook"]["sent"] == 2

    samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
               for family in text_string_to_metric_families(
                   metrics_text(metrics_registry(lambda: {"events": report})).decode())
               for sample in family.samples}
    assert samples[("posestream_events_total", (("rule", "floor"), ("source", "cam0")))] == 1
    assert samples[("posestream_line_crossings_total", (("direction", "right"), ("rule", "door"),
                                                        ("source", "cam0")))] == 1
    assert samples[("posestream_event_output_sent_total", (("output", "hook"),))] == 2
    assert samples[("posestream_event_output_dropped_total", (("output", "serve"),))] == 0


def test_per_source_rules_and_tracking_turned_on():
    config = load_config(None, ["events.rules=[{name: wave, kind: hands_up}]",
                                "sources=[{uri: a.mp4, name: a}, {uri: b.mp4, name: b, events: "
                                "{rules: [{name: door, kind: line, points: [[0, 0], [1, 1]]}]}}]"])
    assert config.tracking.enabled, "a rule turns tracking on"
    sink = build_event_sink(config)
    assert {name: [r.name for r in engine.rules] for name, engine in sink.engines.items()} == \
        {"a": ["wave"], "b": ["wave", "door"]}
    assert build_event_sink(load_config(None, [])) is None


def test_a_bad_rule_exits_2_naming_the_key_and_writes_nothing(tmp_path, media):
    events = tmp_path / "events.jsonl"
    config = tmp_path / "rules.yaml"
    config.write_text("events:\n  rules:\n    - {name: a, kind: hands_up}\n    - {name: b, kind: person_down}\n"
                      "    - {name: c, kind: zone, polygon: [[0, 0], [1, 1]]}\n")
    run = subprocess.run([sys.executable, "run_stream.py", "--config", str(config), "--source",
                          str(media("dance2.mp4")), "--events", str(events), "--no-display"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1].startswith("posestream: error: invalid value for "
                                                          "'events.rules[2].polygon'")
    assert "needs at least 3 points" in run.stderr and "Traceback" not in run.stderr
    assert not events.exists()


class Clips:
    """Keeps the calls a clip recorder gets (the interface of stream.events.clips.ClipRecorder)."""

    def __init__(self):
        self.frames, self.calls, self.closed = 0, [], False

    def add_frame(self, source: str, stream_time: float, annotated: np.ndarray) -> None:
        self.frames += 1

    def start_clip(self, source: str, event_id: str, stream_time: float) -> str:
        self.calls.append(("start", event_id, stream_time))
        return f"clips/{event_id}.mp4"

    def end_clip(self, source: str, event_id: str, stream_time: float) -> None:
        self.calls.append(("end", event_id, stream_time))

    def close(self, timeout_s: float = 10.0) -> None:
        self.closed = True


def test_clips_get_every_frame_and_each_act_and_records_name_the_clip(tmp_path):
    clips = Clips()
    rules = {"cam0": [rule(name="floor", kind="person_down", seconds=0.5),
                      rule(name="door", kind="line", points=[[0.5, 0.0], [0.5, 1.0]])]}
    sink = EventSink(rules, str(tmp_path / "events.jsonl"), clips=clips).open()
    frames = [[standing((100 + 40 * step, 400))] for step in range(12)] + [[lying((560, 400))]] * 10
    for index, poses in enumerate(frames):
        item = posed(index, poses)
        sink.write(item, item.image)
    sink.close()
    door, start, end = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    act = start["id"].rsplit(".", 1)[0]
    assert start["clip"] == end["clip"] == f"clips/{act}.mp4" and door["clip"].endswith(".mp4")
    door_act = door["id"].rsplit(".", 1)[0]
    assert clips.calls == [("start", door_act, door["stream_time"]), ("end", door_act, door["stream_time"]),
                           ("start", act, start["stream_time"]), ("end", act, end["stream_time"])]
    assert clips.frames == len(frames) and clips.closed
    assert start["snapshot"] is None, "no snapshots folder set"

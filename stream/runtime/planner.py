"""Per source: which inference plan a frame gets, and its network inputs.

``FramePlanner.prepare(frame)`` returns the fields preprocess adds to a frame (``net_input``,
``scale``, ``pad``, and for the crops plan ``plan``, ``crops``, ``canvases``), following
``stages.plan``: the plan is made once per frame size; the crops come from the people
postprocess last reported for the source (``PeopleFeedback``), the cells that moved since the
source's previous frame, and the scan window.  A source's first frame (nobody known yet) and
image sources run the whole frame (at the plan's scale).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import replace
from typing import Any, Callable

import cv2
import numpy as np

from stages.plan import Plan, choose_regions, make_plan, motion_boxes, shifted
from stages.plan_pack import canvases_used, pack
from stages.preprocess import prepare, prepare_canvases
from stream.runtime.governor import CanvasGovernor

log = logging.getLogger(__name__)


GREYS_KEPT = 32          # small grey frames kept per source, to follow the camera since feedback
MIN_RESPONSE = 0.05      # phase correlation peaks below this say nothing about a shift


class _SourceState:
    def __init__(self) -> None:
        self.plans: dict[tuple[int, int, bool], Plan] = {}
        self.grey: np.ndarray | None = None
        self.greys: OrderedDict[int, np.ndarray] = OrderedDict()
        self.scan = 0

    def keep(self, index: int, grey: np.ndarray) -> None:
        self.grey = grey
        self.greys[index] = grey
        while len(self.greys) > GREYS_KEPT:
            self.greys.popitem(last=False)


class FramePlanner:
    """mode: auto, whole or crops (``model.plan``); network: the backbone's name (its reliable
    person height, see ``stages.plan.RELIABLE_PX``); feedback: a ``PeopleFeedback``;
    default_height: the input height of frames the plan keeps whole (``model.whole_height``,
    which auto chooses; None: the network's default); budget: frame size -> the net pixels a
    frame may cost at the target fps here, or None (``stream.auto.pixel_budget``); governor: a
    ``CanvasGovernor`` that moves auto's crops plan's canvases with the measured cost a frame."""

    def __init__(self, spec: Any, mode: str, min_person_px: float, network: str, feedback: Any,
                 default_height: int | None = None,
                 budget: Callable[[tuple[int, int]], int | None] | None = None,
                 governor: CanvasGovernor | None = None):
        self.spec = spec
        self.default_height = int(default_height or spec.default_height)
        self.mode = mode
        self.min_person_px = min_person_px
        self.network = network
        self.feedback = feedback
        self.budget = budget
        self.governor = governor if mode == "auto" else None
        self._states: dict[str, _SourceState] = {}
        self._lock = threading.Lock()

    def plan_for(self, source: str, frame_size: tuple[int, int], still: bool) -> Plan:
        state = self._state(source)
        key = (int(frame_size[0]), int(frame_size[1]), still)
        plan = state.plans.get(key)
        if plan is None:
            budget = self.budget(key[:2]) if self.budget is not None and self.mode == "auto" else None
            plan = state.plans[key] = make_plan(frame_size, self.min_person_px, self.network, self.mode,
                                                default_height=self.default_height, still=still,
                                                budget_pixels=budget)
            # one line for a source's first size; an image folder's other sizes only when debugging
            log.log(logging.INFO if len(state.plans) == 1 else logging.DEBUG,
                    "%s: %dx%d frames, min_person_px %g: %s%s", source, key[1], key[0],
                    self.min_person_px, describe(plan),
                    "" if budget is None else f" (this machine's budget at the target fps: {budget} net px a frame)")
        return plan

    def _state(self, source: str) -> _SourceState:
        with self._lock:
            return self._states.setdefault(source, _SourceState())

    def prepare(self, frame: Any) -> dict[str, Any]:
        image = frame.image
        plan = self.plan_for(frame.source, image.shape[:2], frame.file is not None)
        governor = self.governor if plan.kind == "crops" else None
        if governor is not None:
            plan = replace(plan, max_canvases=governor.limit(plan.max_canvases))
        seen = self.feedback.get(frame.source) if plan.kind == "crops" else None
        state = self._state(frame.source)
        if seen is None:
            net_input, scale, pad = prepare(image, self.spec, scale=plan.scale)
            if plan.kind == "crops":
                state.keep(frame.index, small_grey(image, plan))
            if governor is not None:
                governor.observe(frame.source, 0)
            return {"net_input": net_input, "scale": scale, "pad": pad, "plan": plan}
        net_input, scale, pad = prepare(image, self.spec, scale=plan.overview_scale)
        grey = small_grey(image, plan)
        motion = motion_boxes(state.grey, grey, image.shape[:2])
        people, seen_index = seen
        then = state.greys.get(seen_index)
        state.keep(frame.index, grey)
        if then is not None and seen_index != frame.index:
            people = shifted(people, camera_shift(then, grey, image.shape[:2]))
        crops = pack(choose_regions(plan, people, motion, state.scan), plan)
        state.scan += 1
        count = canvases_used(crops)
        if governor is not None:
            governor.observe(frame.source, count)
        canvases = prepare_canvases(image, crops, count, plan.canvas, self.spec) if count else None
        return {"net_input": net_input, "scale": scale, "pad": pad, "plan": plan,
                "crops": crops if count else (), "canvases": canvases}


def small_grey(image: np.ndarray, plan: Plan) -> np.ndarray:
    """The frame in grey at the overview's scale (motion cells, the camera's shift)."""
    height, width = image.shape[:2]
    size = (max(8, round(width * plan.overview_scale)), max(8, round(height * plan.overview_scale)))
    return cv2.cvtColor(cv2.resize(image, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)


def camera_shift(before: np.ndarray, after: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """How far (x, y) frame pixels the picture moved from grey frame ``before`` to ``after``
    (phase correlation: a shaking or panning camera); zero when the peak is too weak."""
    (dx, dy), response = cv2.phaseCorrelate(before.astype(np.float32), after.astype(np.float32))
    if not response >= MIN_RESPONSE:
        return np.zeros(2)
    return np.array([dx * frame_size[1] / before.shape[1], dy * frame_size[0] / before.shape[0]])


def describe(plan: Plan) -> str:
    """One line saying what a plan does, for the log."""
    if plan.kind == "whole":
        height, width = plan.frame_size
        return f"whole frame at {round(height * plan.scale)}x{round(width * plan.scale)}"
    return (f"crops: overview at scale {plan.overview_scale:.2f}, people crops at scale up to "
            f"{plan.scale:.2f} on up to {plan.max_canvases} canvases of "
            f"{plan.canvas[0]}x{plan.canvas[1]}")

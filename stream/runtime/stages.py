"""The five pipeline stages: capture, preprocess, inference, postprocess, render (+ sinks).

Each is a :class:`stream.stage.Stage` that only computes; the loops in ``stream/stage.py`` move
items between them, and ``stream.runtime.build`` puts them together from a config.  Items are the frozen dataclasses of ``stream/items.py``, each stage extending
the previous one: Frame → Prepared → Inferred → Posed.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import fields
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from stages.preprocess import prepare
from stream.runtime.batching import group_by_shape
from stream.items import END, Frame, Inferred, Posed, Prepared
from stream.stage import Stage

log = logging.getLogger(__name__)


def _fields_of(item: Any) -> dict[str, Any]:
    """An item's fields, shallow (``dataclasses.asdict`` would deep-copy the arrays)."""
    return {field.name: getattr(item, field.name) for field in fields(item)}


class CaptureStage(Stage):
    """Reads frames from an opened ``Source`` until it ends, ``max_frames`` or ``max_seconds``.

    It never skips frames itself: on a live source, the queue behind it drops the old ones.
    """

    name = "capture"

    def __init__(self, source: Any, max_frames: int | None = None, max_seconds: float | None = None):
        self.source = source
        self.max_frames = max_frames
        self.max_seconds = max_seconds
        self._frames = None
        self._count = 0
        self._deadline: float | None = None

    @property
    def source_name(self) -> str:
        return self.source.name

    def read(self) -> Frame | Any:
        if self._frames is None:
            self._frames = iter(self.source)
            if self.max_seconds is not None:
                self._deadline = time.monotonic() + self.max_seconds
        if self.max_frames is not None and self._count >= self.max_frames:
            return END
        if self._deadline is not None and time.monotonic() >= self._deadline:
            return END
        frame = next(self._frames, END)
        if frame is not END:
            self._count += 1
        return frame

    def interrupt(self) -> None:
        # Closing a source from another thread wakes an iteration waiting for a frame.
        self.source.close()

    def close(self) -> None:
        self.source.close()


class PreprocessStage(Stage):
    """Frame → Prepared: resize, pad and normalise for the backbone (``stages.preprocess``).

    planner: a ``stream.runtime.planner.FramePlanner`` choosing each frame's inference plan (and its
    crops); None (or an explicit ``input_height``/``scale``) = the whole frame at that size."""

    name = "preprocess"

    def __init__(self, spec: Any, input_height: int | None = None, scale: float | None = None,
                 planner: Any = None):
        self.spec = spec
        self.input_height = input_height
        self.scale = scale
        self.planner = planner if input_height is None and scale is None else None

    def process(self, frame: Frame) -> Prepared:
        if self.planner is not None:
            return Prepared(**_fields_of(frame), **self.planner.prepare(frame))
        net_input, scale, pad = prepare(frame.image, self.spec, self.input_height, self.scale)
        return Prepared(**_fields_of(frame), net_input=net_input, scale=scale, pad=pad)


class InferenceStage(Stage):
    """Prepared → Inferred through the engine: one frame (``process``) or a round of frames from
    several sources (``process_batch``).

    A round is split by net-input shape — frames of one size go through the engine as one batch
    [N,3,H,W], at most ``max_batch`` frames each (None = no limit) — so no frame is padded beyond
    what its own preprocessing did and its maps equal a single-frame run's up to float rounding.
    ``forwards``/``frames``: engine calls and frames so far.
    """

    name = "inference"
    batched = True

    def __init__(self, engine: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
                 max_batch: int | None = None):
        self.engine = engine
        self.max_batch = max_batch
        self.forwards = 0
        self.frames = 0
        self._count_lock = threading.Lock()

    def process(self, item: Prepared) -> Inferred:
        return self._forward([item])[0]

    def process_batch(self, items: Sequence[Prepared]) -> list[Inferred]:
        results: list[Inferred | None] = [None] * len(items)
        for positions in group_by_shape(items, lambda item: np.shape(item.net_input), self.max_batch):
            group = [items[position] for position in positions]
            inferred = [self.process(group[0])] if len(group) == 1 else self._forward(group)
            for position, result in zip(positions, inferred):
                results[position] = result
        return results

    def _forward(self, items: Sequence[Prepared]) -> list[Inferred]:
        """Same-shape items through the engine as one batch."""
        batch = (items[0].net_input[np.newaxis] if len(items) == 1       # a view: no copy
                 else np.stack([item.net_input for item in items]))
        heatmaps, pafs = self.engine(batch)
        with self._count_lock:
            self.forwards += 1
            self.frames += len(items)
        return [Inferred(**_fields_of(item), heatmaps=heatmaps[row], pafs=pafs[row],
                         canvas_maps=self._canvases(item))
                for row, item in enumerate(items)]

    def _canvases(self, item: Prepared) -> tuple:
        """(heatmaps, pafs) of each of the item's canvases (crops plan), one engine call each:
        one input shape for every frame and count."""
        if item.canvases is None:
            return ()
        maps = []
        for canvas in item.canvases:
            heatmaps, pafs = self.engine(canvas[np.newaxis])
            maps.append((heatmaps[0], pafs[0]))
        with self._count_lock:
            self.forwards += len(maps)
        return tuple(maps)


class PostprocessStage(Stage):
    """Inferred → Posed: decode, map to frame pixels, then optional tracking and smoothing.

    decode_people(heatmaps, pafs, stride=, **decoder_params) -> (people [P,18,3], scores [P]);
    tracking and smoothing keep the people's order, so each score stays with its person.

    make_tracker / make_smoother: factories of per-source ``Tracker`` / ``Smoother`` objects
    (None = off).  The smoother needs ids, so give it a tracker too; ``publish_ids=False`` then
    keeps the tracker's ids internal.  Published ids are -1 without a tracker or with
    ``publish_ids=False`` (tracking off).
    """

    name = "postprocess"

    def __init__(self, decode_people: Callable[..., tuple[np.ndarray, np.ndarray]],
                 to_frame: Callable[..., np.ndarray],
                 decoder_params: Mapping[str, Any], stride: int = 8,
                 make_tracker: Callable[[], Any] | None = None,
                 make_smoother: Callable[[], Any] | None = None, publish_ids: bool = True,
                 feedback: Any = None):
        self.decode_people = decode_people
        self.to_frame = to_frame
        self.decoder_params = dict(decoder_params)
        self.stride = stride
        self.make_tracker = make_tracker
        self.make_smoother = make_smoother
        self.publish_ids = publish_ids
        self.feedback = feedback
        self._trackers: dict[str, Any] = {}
        self._smoothers: dict[str, Any] = {}

    def process(self, item: Inferred) -> Posed:
        people_net, scores = self.decode_people(item.heatmaps, item.pafs, stride=self.stride,
                                                **self.decoder_params)
        person_scores = tuple(float(score) for score in scores)
        people = np.asarray(self.to_frame(people_net, item.scale, item.pad), dtype=np.float32)
        looked_for = people
        if item.crops:
            looked_for, people, scores = self._with_crops(item, people, np.asarray(scores, dtype=np.float32))
            person_scores = tuple(float(score) for score in scores)
        if self.feedback is not None and item.plan is not None and item.plan.kind == "crops":
            self.feedback.put(item.source, looked_for, item.index)
        untracked: tuple[int, ...] = (-1,) * len(people)
        person_ids = untracked
        if self.make_tracker is not None:
            tracker = _per_source(self._trackers, item.source, self.make_tracker)
            person_ids = tuple(int(person_id) for person_id in tracker.update(people, item.time))
        if self.make_smoother is not None:
            smoother = _per_source(self._smoothers, item.source, self.make_smoother)
            people = np.asarray(smoother.update(people, person_ids, item.time), dtype=np.float32)
        published = person_ids if self.publish_ids else untracked
        return Posed(**_fields_of(item), people=people, person_ids=published,
                     person_scores=person_scores)


    def _with_crops(self, item: Inferred, people: np.ndarray,
                    scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The overview's people merged with those decoded on the item's canvases: (all of them,
        for the next frames' crops; those published, their scores)."""
        from stages.plan_merge import merge_people, published
        from stages.plan_pack import split_people

        found, found_scores = [np.zeros((0, 18, 3), np.float32)], [np.zeros(0, np.float32)]
        found_cut = [np.zeros(0, bool)]
        height, width = item.image.shape[:2]
        for canvas, (heatmaps, pafs) in enumerate(item.canvas_maps):
            people_net, scores_net = self.decode_people(heatmaps, pafs, stride=self.stride,
                                                        **self.decoder_params)
            for _crop, in_frame, in_scores, cut in split_people(people_net, item.crops, canvas, scores_net,
                                                                height, width):
                found.append(in_frame)
                found_scores.append(in_scores)
                found_cut.append(cut)
        merged, merged_scores, from_overview, cut = merge_people(
            people, scores, np.concatenate(found), np.concatenate(found_scores), item.plan.big_px,
            np.concatenate(found_cut))
        shown = published(merged, from_overview, item.plan.big_px, cut)
        return merged, merged[shown], merged_scores[shown]


class RenderStage(Stage):
    """Posed → drawn image → every sink of the item's source.

    draw(item) -> annotated image.  sinks: source name → a Sink (a fan-out of the source's
    sinks; several names may share one sink).  Closing closes each sink once.
    """

    name = "render"

    def __init__(self, draw: Callable[[Posed], np.ndarray], sinks: Mapping[str, Any]):
        self.draw = draw
        self.sinks = dict(sinks)

    def process(self, item: Posed) -> Posed:
        annotated = self.draw(item)
        sink = self.sinks.get(item.source)
        if sink is not None:
            sink.write(item, annotated)
        return item

    def close(self) -> None:
        first_error = None
        for sink in _unique(self.sinks.values()):
            try:
                sink.close()
            except Exception as error:  # noqa: BLE001 - close every sink, report the first failure
                log.error("closing %r failed: %s", sink, error)
                first_error = first_error or error
        if first_error is not None:
            raise first_error


def _per_source(objects: dict[str, Any], source: str, make: Callable[[], Any]) -> Any:
    """The source's object in ``objects``, made on first use."""
    found = objects.get(source)
    if found is None:
        found = objects[source] = make()
    return found


def _unique(objects: Any) -> list[Any]:
    seen: dict[int, Any] = {}
    for obj in objects:
        seen.setdefault(id(obj), obj)
    return list(seen.values())


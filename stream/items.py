"""Typed items that cross threads, and the end-of-stream sentinel.

Only frozen dataclasses travel on queues.  A stage extends an item with
``dataclasses.replace`` and never mutates an item after it has been put on a queue.

``Frame`` comes from a source.  Preprocess turns it into a ``Prepared`` item (the frame plus the
net input and how the frame maps into it), inference fills ``heatmaps``/``pafs`` (an ``Inferred``),
postprocess fills ``people`` (a ``Posed``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


class _End:
    """The single end-of-stream sentinel type; use the ``END`` instance."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "END"


END = _End()


@dataclass(frozen=True)
class Frame:
    """One captured image.

    image: HxWx3 uint8 BGR.  index: increasing per source, from 0.  capture_time: time.monotonic()
    when the frame was read (latency is measured from it).  time: seconds into the stream (the
    frame's position for files, elapsed capture time for live sources); the JSON "time".
    source: the source's name (cam0, …).  file: the file name for image sources, else None.
    """

    image: np.ndarray
    index: int
    capture_time: float
    time: float = 0.0
    source: str = "cam0"
    file: str | None = None


@dataclass(frozen=True, kw_only=True)
class Prepared(Frame):
    """A frame plus its network input.

    net_input: the preprocessed tensor, float32 [3, H_net, W_net] (normalised for the backbone).
    scale: net-input pixels per frame pixel (same on both axes).
    pad: (top, left) padding in net-input pixels; frame_xy = (net_xy - (left, top)) / scale.
    plan: the frame's ``stages.plan.Plan`` when the planner chose it; with crops (``crops``:
    ``stages.plan_pack.Crop``), net_input is the whole-frame overview and ``canvases`` (float32
    [N,3,H,W]) hold them; else None and ().
    """

    net_input: Any
    scale: float
    pad: tuple[int, int] = (0, 0)
    plan: Any = None
    crops: tuple = ()
    canvases: Any = None


@dataclass(frozen=True, kw_only=True)
class Inferred(Prepared):
    """Network output of one frame: heatmaps (19,h,w) and pafs (38,h,w), numpy float32 or torch;
    canvas_maps: (heatmaps, pafs) of each of the item's canvases (crops plan), else ()."""

    heatmaps: Any
    pafs: Any
    canvas_maps: tuple = ()


@dataclass(frozen=True, kw_only=True)
class Posed(Inferred):
    """Decoded people in frame pixels: people float32 [P,18,3] (x, y, score); person_ids [P]
    (-1 where tracking is off); person_scores [P] the decoder's confidence in each whole person
    (the JSON ``"score"``), in the order of ``people`` (empty = not known)."""

    people: np.ndarray
    person_ids: tuple[int, ...] = field(default=())
    person_scores: tuple[float, ...] = field(default=())

    def __post_init__(self) -> None:
        count = 0 if self.people is None else len(self.people)
        if self.person_scores and len(self.person_scores) != count:
            raise ValueError(
                f"Posed has {len(self.person_scores)} person_scores for {count} people")

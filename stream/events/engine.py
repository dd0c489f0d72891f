"""Per-source rule state machines: tracked people of each frame in, ``Event``s out.

``EventEngine(rules).update(frame, time, people, ids, scores, width, height)`` runs every rule on
one frame of one source and returns the events it caused; ``finish()`` ends every open event
(the end of the run).  Times are the stream's (``item.time``), so a file gives the same events at
any speed.  People with id -1 (untracked pieces) or a score below ``rules.MIN_SCORE`` are ignored.

Hysteresis (``Hold``): a rule's condition must hold for ``max(seconds, SETTLE_S)`` (a zone:
``max(loiter_seconds, SETTLE_S)``) before a start, and be false for ``SETTLE_S`` before the end,
so one real act gives one start and one end.  A line crossing counts when the ground point has
been on the other side (beyond ``rules.LINE_MARGIN``) for ``SETTLE_S``.  A person unseen for
``TRACK_GONE_S`` has left: their open events end then ("every start gets its end").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from stream.events import rules as geo

SETTLE_S = 0.3          # a condition must hold (or clear) this long before a start (or end)
TRACK_GONE_S = 1.0      # a person not seen for this long has left: their open events end
NO_KEYPOINTS = np.zeros((18, 3), np.float32)


@dataclass(frozen=True)
class Event:
    """One thing that happened.  type: start / end / instant; pair: ties an end to its start
    (instants have their own); keypoints [18, 3] of the person (zeros for counts); geometry:
    ``{"polygon": …}`` or ``{"points": …}`` in pixels, or {}."""

    rule: str
    kind: str
    type: str
    pair: int
    person_id: int
    stream_time: float
    frame: int
    keypoints: np.ndarray
    box: tuple[float, float, float, float]
    geometry: dict = field(default_factory=dict)
    direction: str | None = None
    count: int | None = None


@dataclass
class Hold:
    """A debounced boolean: ``update(condition, t)`` returns "start"/"end" when the state flips,
    after the condition has disagreed with it for ``on_s`` (to start) or ``off_s`` (to end)."""

    on_s: float
    off_s: float
    active: bool = False
    since: float | None = None

    def update(self, condition: bool, time_s: float) -> str | None:
        if condition == self.active:
            self.since = None
            return None
        if self.since is None:
            self.since = time_s
        if time_s - self.since >= (self.off_s if self.active else self.on_s) - 1e-9:
            self.active, self.since = condition, None
            return "start" if condition else "end"
        return None


@dataclass(frozen=True)
class FrameView:
    """One frame as the rules see it: (person_id, keypoints) of the people that count."""

    frame: int
    time: float
    width: int
    height: int
    people: tuple[tuple[int, np.ndarray], ...]
    lying: tuple[tuple[int, np.ndarray], ...] = ()     # found only in a turned look (person_down)


@dataclass
class _Person:
    hold: Hold | None = None
    pair: int = 0
    last_seen: float = 0.0
    keypoints: np.ndarray = field(default_factory=lambda: NO_KEYPOINTS)
    side: int = 0                   # lines: the confirmed side
    pending: int = 0                # lines: a new side not yet held for SETTLE_S
    pending_since: float = 0.0
    point_before: Any = None        # lines: the ground point on the confirmed side


class EventEngine:
    """The rules of one source.  ``counts``: acts per rule (starts and instants);
    ``directions``: per line rule, crossings per direction."""

    def __init__(self, rules: Sequence[Any]):
        self.rules = tuple(rules)
        self.counts = {rule.name: 0 for rule in self.rules}
        self.directions = {rule.name: {} for rule in self.rules if rule.kind == "line"}
        self._people: dict[str, dict[int, _Person]] = {rule.name: {} for rule in self.rules}
        self._count_holds = {rule.name: _Person() for rule in self.rules if rule.kind == "count"}
        self._pixels: dict[tuple[str, int, int], np.ndarray] = {}
        self._pairs = 0
        self._last: FrameView | None = None

    # -- frames ---------------------------------------------------------------------------------

    @property
    def watches_down(self) -> bool:
        """Whether a person_down rule runs here (turned looks help it)."""
        return any(rule.kind == "person_down" for rule in self.rules)

    def update(self, frame: int, time_s: float, people: np.ndarray, ids: Sequence[int],
               scores: Sequence[float], width: int, height: int,
               lying: Sequence[tuple[int, np.ndarray]] = ()) -> list[Event]:
        """Run every rule on one frame; the events it caused, in rule order.  ``lying``: (id,
        keypoints) of people found only in a turned look, for the person_down rules."""
        view = FrameView(frame, float(time_s), int(width), int(height), counted_people(people, ids, scores),
                         tuple(lying))
        self._last = view
        events: list[Event] = []
        for rule in self.rules:
            if rule.kind == "count":
                events.extend(self._count(rule, view))
            elif rule.kind == "line":
                events.extend(self._line(rule, view))
            else:
                events.extend(self._presence(rule, view))
        return events

    def finish(self) -> list[Event]:
        """End every open start (the run is over), at the last frame seen."""
        view = self._last
        if view is None:
            return []
        events = []
        for rule in self.rules:
            if rule.kind == "count":
                state = self._count_holds[rule.name]
                if state.hold is not None and state.hold.active:
                    events.append(self._count_event(rule, view, "end", state.pair, None))
                continue
            for person_id, state in sorted(self._people[rule.name].items()):
                if state.hold is not None and state.hold.active:
                    events.append(self._event(rule, view, "end", state.pair, person_id, state.keypoints))
            self._people[rule.name].clear()
        return events

    # -- person rules: zone, person_down, hands_up ------------------------------------------------

    def _condition(self, rule: Any, view: FrameView, keypoints: np.ndarray) -> bool:
        if rule.kind == "person_down":
            return geo.is_down(keypoints)
        if rule.kind == "hands_up":
            return geo.hands_up(keypoints)
        point = geo.ground_point(keypoints)
        return point is not None and geo.inside_polygon(point, self.pixels(rule, "polygon", view))

    def _presence(self, rule: Any, view: FrameView) -> list[Event]:
        people = self._people[rule.name]
        on_s = max(rule.loiter_seconds or 0.0, SETTLE_S) if rule.kind == "zone" else \
            max(rule_seconds(rule), SETTLE_S)
        events = []
        for person_id, keypoints in view.people + (view.lying if rule.kind == "person_down" else ()):
            state = people.get(person_id)
            if state is None:
                state = people[person_id] = _Person(hold=Hold(on_s, SETTLE_S))
            state.last_seen, state.keypoints = view.time, keypoints
            change = state.hold.update(self._condition(rule, view, keypoints), view.time)
            if change == "start":
                state.pair = self._next_pair()
                self.counts[rule.name] += 1
            if change is not None:
                events.append(self._event(rule, view, change, state.pair, person_id, keypoints))
        events.extend(self._gone(rule, view))
        return events

    def _gone(self, rule: Any, view: FrameView) -> list[Event]:
        """End the open events of people unseen for ``TRACK_GONE_S``; forget them."""
        people = self._people[rule.name]
        events = []
        for person_id in [pid for pid, state in people.items() if view.time - state.last_seen >= TRACK_GONE_S - 1e-9]:
            state = people.pop(person_id)
            if state.hold is not None and state.hold.active:
                events.append(self._event(rule, view, "end", state.pair, person_id, state.keypoints))
        return events

    # -- lines ----------------------------------------------------------------------------------

    def _line(self, rule: Any, view: FrameView) -> list[Event]:
        a, b = self.pixels(rule, "points", view)
        margin = geo.LINE_MARGIN * view.height
        people = self._people[rule.name]
        events = []
        for person_id, keypoints in view.people:
            point = geo.ground_point(keypoints)
            state = people.setdefault(person_id, _Person())
            state.last_seen = view.time
            if point is None:
                continue
            side = geo.line_side(point, a, b, margin)
            if side == 0 or side == state.side:
                state.pending = 0
                if side != 0:
                    state.point_before = point
                continue
            if state.side == 0:                         # first side seen: nothing crossed yet
                state.side, state.point_before = side, point
                continue
            if state.pending != side:
                state.pending, state.pending_since = side, view.time
            if view.time - state.pending_since >= SETTLE_S - 1e-9:
                direction = geo.crossing_direction(state.point_before, point, a, b)
                state.side, state.pending, state.point_before = side, 0, point
                self.counts[rule.name] += 1
                per_direction = self.directions[rule.name]
                per_direction[direction] = per_direction.get(direction, 0) + 1
                events.append(self._event(rule, view, "instant", self._next_pair(), person_id, keypoints,
                                          direction=direction))
        for person_id in [pid for pid, state in people.items() if view.time - state.last_seen >= TRACK_GONE_S - 1e-9]:
            del people[person_id]
        return events

    # -- counts ---------------------------------------------------------------------------------

    def _counted(self, rule: Any, view: FrameView) -> list[np.ndarray]:
        if not rule.zone:
            return [keypoints for _, keypoints in view.people]
        zone = next(other for other in self.rules if other.name == rule.zone)
        polygon = self.pixels(zone, "polygon", view)
        return [keypoints for _, keypoints in view.people
                if (point := geo.ground_point(keypoints)) is not None and geo.inside_polygon(point, polygon)]

    def _count(self, rule: Any, view: FrameView) -> list[Event]:
        state = self._count_holds[rule.name]
        if state.hold is None:
            state.hold = Hold(max(rule_seconds(rule), SETTLE_S), SETTLE_S)
        counted = self._counted(rule, view)
        number = len(counted)
        condition = number > rule.above if rule.above is not None else number < rule.below
        change = state.hold.update(condition, view.time)
        if change is None:
            return []
        if change == "start":
            state.pair = self._next_pair()
            self.counts[rule.name] += 1
        return [self._count_event(rule, view, change, state.pair, counted)]

    def _count_event(self, rule: Any, view: FrameView, kind: str, pair: int,
                     counted: list[np.ndarray] | None) -> Event:
        counted = self._counted(rule, view) if counted is None else counted
        boxes = [geo.person_box(keypoints) for keypoints in counted]
        box = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
               max(b[3] for b in boxes)) if boxes else (0.0, 0.0, 0.0, 0.0)
        geometry = self._geometry(next((r for r in self.rules if r.name == rule.zone), None), view)
        return Event(rule.name, rule.kind, kind, pair, -1, view.time, view.frame, NO_KEYPOINTS, box,
                     geometry, count=len(counted))

    # -- helpers --------------------------------------------------------------------------------

    def pixels(self, rule: Any, key: str, view: FrameView) -> np.ndarray:
        """A rule's polygon or points in this frame size's pixels (cached per size)."""
        cache_key = (rule.name, view.width, view.height)
        found = self._pixels.get(cache_key)
        if found is None:
            found = self._pixels[cache_key] = geo.to_pixels(getattr(rule, key), view.width, view.height)
        return found

    def _geometry(self, rule: Any, view: FrameView) -> dict:
        if rule is None or rule.kind not in ("zone", "line"):
            return {}
        key = "polygon" if rule.kind == "zone" else "points"
        return {key: [[round(float(x), 1), round(float(y), 1)] for x, y in self.pixels(rule, key, view)]}

    def _event(self, rule: Any, view: FrameView, kind: str, pair: int, person_id: int,
               keypoints: np.ndarray, direction: str | None = None) -> Event:
        return Event(rule.name, rule.kind, kind, pair, person_id, view.time, view.frame,
                     np.asarray(keypoints, np.float32), geo.person_box(keypoints),
                     self._geometry(rule, view), direction=direction)

    def _next_pair(self) -> int:
        self._pairs += 1
        return self._pairs


def counted_people(people: np.ndarray, ids: Sequence[int],
                   scores: Sequence[float]) -> tuple[tuple[int, np.ndarray], ...]:
    """(id, keypoints) of the people rules look at: tracked (id >= 0), scored >= MIN_SCORE."""
    return tuple((int(person_id), people[row]) for row, person_id in enumerate(ids)
                 if person_id >= 0 and (not len(scores) or scores[row] >= geo.MIN_SCORE))


DEFAULT_SECONDS = {"person_down": 1.0, "hands_up": 1.0, "count": 1.0}


def rule_seconds(rule: Any) -> float:
    """The rule's ``seconds``, or its kind's default (person_down, hands_up, count: 1 s)."""
    seconds = getattr(rule, "seconds", None)
    return float(seconds) if seconds is not None else DEFAULT_SECONDS.get(rule.kind, 0.0)

"""The events sink: runs each source's rules on its finished frames and sends the records out.

``EventSink.write(item, annotated)`` (the render thread) runs the source's ``EventEngine``; for
each event it builds the record (``stream/events/record.py``), draws and encodes the snapshot
(only then), and fans the record out: the ``--events`` JSON lines file (written and flushed at
once), ``publish(record)`` of every output (the ``--serve`` sink's ``/events``, MQTT, webhooks:
each queues and never blocks) and, with clips on, the clip recorder (``add_frame`` every frame,
``start_clip``/``end_clip`` at events).  ``close()`` ends every open event (each start gets its
end), then closes the file and the outputs.  ``report()`` is the stats' ``events`` section.

A ``StatePoller`` thread gives outputs with ``set_state(source, up, people)`` (MQTT's retained
state) each source's state whenever it changes, read from the live stats once a second.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from stream.events.engine import Event, EventEngine, counted_people
from stream.events.record import event_id, make_record, recent_entry, run_stamp
from stream.events.snapshot import SnapshotWriter, draw_event, encode_jpeg
from stream.items import Posed
from stream.sinks.base import Sink

log = logging.getLogger(__name__)

# What a stop leaves to delivering waiting records and finishing clips: a signal must end the
# run within 2 s, and the stage threads take their share first.
CLOSE_BUDGET_S = 1.0

RECENT_EVENTS = 8          # records per source kept for the wall and /stats.json
STATE_POLL_S = 1.0         # how often the StatePoller reads the live stats


class EventSink(Sink):
    """rules: source name → its rule configs (sources without rules only feed clips).
    path: the ``--events`` file (opened at the first frame).  snapshot_dir: where snapshots go
    (None: no snapshots).  outputs: name → object with ``publish(record)``, ``close(timeout_s)``
    and optionally ``counters()``, ``set_state``, ``open()``.  clips: a clip recorder or None."""

    name = "events"

    def __init__(self, rules: Mapping[str, Sequence[Any]], path: str | None = None, *,
                 snapshot_dir: str | None = None, outputs: Mapping[str, Any] | None = None,
                 clips: Any = None, live_stats: Callable[[], dict] | None = None):
        self.path = path
        self.snapshot_dir = snapshot_dir
        self.outputs = dict(outputs or {})
        self.clips = clips
        self.engines = {name: EventEngine(source_rules) for name, source_rules in rules.items() if source_rules}
        self.run = run_stamp()
        self.written = 0
        self._file = None
        self._lock = threading.Lock()
        self._acts: dict[tuple[str, int], tuple[str, str | None]] = {}   # open pairs: act id, clip
        self._recent = {name: deque(maxlen=RECENT_EVENTS) for name in self.engines}
        self._last_image: dict[str, np.ndarray] = {}
        self._snapshots = SnapshotWriter() if snapshot_dir else None
        self._poller = StatePoller(live_stats, self.outputs) if live_stats is not None and any(
            hasattr(output, "set_state") for output in self.outputs.values()) else None
        self._opened = self._closed = False
        self.turned: Any = None          # a TurnedLook, set where the network is at hand

    def open(self) -> "EventSink":
        """Open the outputs and start the state poller (once; later calls do nothing)."""
        if self._opened:
            return self
        self._opened = True
        for name, output in self.outputs.items():
            if hasattr(output, "open"):
                output.open()
        if self._poller is not None:
            self._poller.start()
        return self

    def write(self, item: Posed, annotated: np.ndarray) -> None:
        source = item.source
        if self.clips is not None:
            self.clips.add_frame(source, item.time, annotated)
        engine = self.engines.get(source)
        if self.path is not None and self._file is None:
            self._open_file()
        if engine is None:
            return
        height, width = (item.image if item.image is not None else annotated).shape[:2]   # Ray: no image
        lying = ()
        if self.turned is not None and item.image is not None and engine.watches_down:
            found = len(counted_people(item.people, item.person_ids, item.person_scores))
            lying = self.turned.update(source, item.image, item.time, found)
        with self._lock:                  # report() reads the engine's counts from other threads
            events = engine.update(item.index, item.time, item.people, item.person_ids,
                                   item.person_scores, width, height, lying)
        self._last_image[source] = annotated
        for event in events:
            self.emit(source, event, annotated)

    def emit(self, source: str, event: Event, annotated: np.ndarray | None) -> dict[str, Any]:
        """Send one event's record everywhere; returns the record."""
        key = (source, event.pair)
        if event.type == "end":
            act_id, clip = self._acts.pop(key, (event_id(source, self.run, event.pair), None))
            if clip is not None:
                self.clips.end_clip(source, act_id, event.stream_time)
        else:
            act_id, clip = event_id(source, self.run, event.pair), None
            if self.clips is not None:
                clip = self.clips.start_clip(source, act_id, event.stream_time)
                if event.type == "instant":
                    self.clips.end_clip(source, act_id, event.stream_time)
            if event.type == "start":
                self._acts[key] = (act_id, clip)
        snapshot = None
        if self._snapshots is not None and annotated is not None:
            snapshot = str(Path(self.snapshot_dir) / f"{act_id}.{event.type}.jpg")
            if not self._snapshots.put(snapshot, encode_jpeg(draw_event(annotated, event))):
                snapshot = None
        record = make_record(event, source, act_id, time.time(), snapshot, clip)
        if self._file is not None:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
        for name, output in self.outputs.items():
            try:
                output.publish(record)
            except Exception:  # noqa: BLE001 - one output's fault must not stop the others
                log.warning("event output %s failed to take a record", name, exc_info=True)
        with self._lock:
            self.written += 1
            self._recent.setdefault(source, deque(maxlen=RECENT_EVENTS)).append(recent_entry(record))
        return record

    def close(self) -> None:
        """End every open event at its source's last frame, then close the file and outputs."""
        if self._closed:
            return
        self._closed = True
        try:
            for source, engine in self.engines.items():
                with self._lock:
                    events = engine.finish()
                for event in events:
                    self.emit(source, event, self._last_image.get(source))
        finally:
            if self._poller is not None:
                self._poller.stop()
            if self._file is not None:
                self._file.close()
                log.info("wrote %d event records to %s", self.written, self.path)
            if self._snapshots is not None:
                self._snapshots.close()
            deadline = time.monotonic() + CLOSE_BUDGET_S
            for name, output in self.outputs.items():
                try:
                    output.close(timeout_s=max(0.1, deadline - time.monotonic()))
                except Exception:  # noqa: BLE001
                    log.warning("closing event output %s failed", name, exc_info=True)
            if self.clips is not None:
                self.clips.close(timeout_s=max(0.1, deadline - time.monotonic()))

    def report(self) -> dict[str, Any]:
        """The stats' ``events`` section: acts per source and rule, line crossings per direction,
        recent records, each output's counters, and how many turned looks ran."""
        with self._lock:
            sources = {name: {"rules": dict(engine.counts),
                              "lines": {rule: dict(counts) for rule, counts in engine.directions.items()},
                              "recent": list(self._recent.get(name, ()))}
                       for name, engine in self.engines.items()}
            written = self.written
        outputs: dict[str, Any] = {}
        if self.path is not None:
            outputs["file"] = {"sent": written, "dropped": 0, "queued": 0, "connected": True}
        if self._snapshots is not None:
            outputs["snapshots"] = {"sent": self._snapshots.sent, "queued": self._snapshots.queued,
                                    "dropped": self._snapshots.dropped + self._snapshots.failed,
                                    "connected": True}
        for name, output in self.outputs.items():
            if hasattr(output, "counters"):
                outputs[name] = dict(output.counters())
        if self.clips is not None and hasattr(self.clips, "counters"):
            clips = dict(self.clips.counters())       # written, failed, removed, open, …
            outputs["clips"] = {**clips, "sent": clips.get("written", 0), "dropped": clips.get("failed", 0),
                                "queued": clips.get("open", 0), "connected": True}
        return {"total": sum(sum(section["rules"].values()) for section in sources.values()),
                "sources": sources, "outputs": outputs,
                "turned_looks": self.turned.looks if self.turned is not None else 0}

    def _open_file(self) -> None:
        target = Path(self.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        self._file = target.open("w", encoding="utf-8")


class StatePoller:
    """Calls ``set_state(source, up, people)`` on the outputs that have it when a source's state
    or people count changes (read from ``live_stats()['sources']`` every ``STATE_POLL_S``)."""

    def __init__(self, live_stats: Callable[[], dict], outputs: Mapping[str, Any]):
        self.live_stats = live_stats
        self.outputs = [output for output in outputs.values() if hasattr(output, "set_state")]
        self._seen: dict[str, tuple[bool, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="event-state", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)
        self.poll()                     # the final state (a file that ended: down)

    def poll(self) -> None:
        try:
            sources = (self.live_stats() or {}).get("sources") or {}
        except Exception:  # noqa: BLE001 - stats are best effort here
            log.debug("live stats unavailable", exc_info=True)
            return
        for name, section in sources.items():
            state = (section.get("state") == "live" and not self._stop.is_set(), int(section.get("people", 0)))
            if self._seen.get(name) != state:
                self._seen[name] = state
                for output in self.outputs:
                    output.set_state(name, *state)

    def _run(self) -> None:
        while not self._stop.wait(STATE_POLL_S):
            self.poll()

"""The event record: one JSON object, the same in ``--events`` lines, MQTT payloads, webhook
bodies and ``/events`` (README, section Events).

``{"id", "source", "rule", "kind", "type", "person_id", "time", "stream_time", "frame",
"keypoints", "box", "snapshot", "clip"}`` plus ``"polygon"`` (zones, counts in a zone) or
``"points"`` (lines) in pixels, ``"direction"`` for line crossings and ``"count"`` for counts.

Ids: ``event_id(source, run, pair)`` names one act (``cam0-20260101T120000Z-7``); a record's
``id`` is that plus its type (``…-7.start``, ``…-7.end``, ``…-7.instant``), so a start and its end
share everything before the last dot, and ids differ between runs.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from stream.events.engine import Event

RECENT_KEYS = ("id", "rule", "kind", "type", "person_id", "time", "stream_time", "direction", "count")
UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def run_stamp(now: datetime | None = None) -> str:
    """The run's part of event ids: its start, UTC, to the second."""
    return (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")


def event_id(source: str, run: str, pair: int) -> str:
    """The id of one act (a start/end pair, or an instant) of ``source``, safe as a file name."""
    return f"{UNSAFE.sub('_', source)}-{run}-{pair}"


def iso_time(wall_time: float) -> str:
    """ISO-8601 UTC with milliseconds (``2026-01-01T12:00:00.123Z``)."""
    moment = datetime.fromtimestamp(wall_time, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def make_record(event: Event, source: str, act_id: str, wall_time: float,
                snapshot: str | None = None, clip: str | None = None) -> dict[str, Any]:
    """The record of ``event`` (``act_id`` from ``event_id``; ``wall_time``: time.time())."""
    record: dict[str, Any] = {
        "id": f"{act_id}.{event.type}",
        "source": source,
        "rule": event.rule,
        "kind": event.kind,
        "type": event.type,
        "person_id": int(event.person_id),
        "time": iso_time(wall_time),
        "stream_time": round(float(event.stream_time), 3),
        "frame": int(event.frame),
        "keypoints": [round(float(value), 2) for value in event.keypoints.reshape(-1)],
        "box": [round(float(value), 1) for value in event.box],
        "snapshot": snapshot,
        "clip": clip,
    }
    record.update(event.geometry)
    if event.direction is not None:
        record["direction"] = event.direction
    if event.count is not None:
        record["count"] = int(event.count)
    return record


def recent_entry(record: dict[str, Any]) -> dict[str, Any]:
    """The short form of a record the wall shows (no keypoints)."""
    return {key: record[key] for key in RECENT_KEYS if key in record}

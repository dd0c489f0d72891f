"""Event snapshots: the annotated frame of an event, with the rule's zone or line and the
person's box drawn on it, as a JPEG file.

``draw_event(annotated, event)`` (pure) and ``encode_jpeg`` run in the render thread, only when an
event fires; ``SnapshotWriter`` writes the bytes to disk in a thread of its own, from a bounded
queue (a full queue drops the snapshot and counts it), so a slow disk never stalls the pipeline.
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path

import cv2
import numpy as np

from stream.events.engine import Event

log = logging.getLogger(__name__)

JPEG_QUALITY = 85
MAX_PENDING = 32                 # snapshots waiting for the disk before new ones are dropped
COLOURS = {"start": (0, 0, 255), "end": (0, 200, 0), "instant": (0, 200, 255)}   # BGR


def draw_event(annotated: np.ndarray, event: Event) -> np.ndarray:
    """A copy of ``annotated`` with the event's zone/line, the person's box and a caption."""
    image = annotated.copy()
    colour = COLOURS.get(event.type, (255, 255, 255))
    geometry = event.geometry.get("polygon") or event.geometry.get("points")
    if geometry:
        points = np.round(np.asarray(geometry)).astype(np.int32)
        cv2.polylines(image, [points], isClosed="polygon" in event.geometry, color=colour, thickness=2)
    x0, y0, x1, y1 = (int(round(value)) for value in event.box)
    if x1 > x0 or y1 > y0:
        cv2.rectangle(image, (x0, y0), (x1, y1), colour, 2)
    caption = f"{event.rule} {event.type}" + (f" {event.direction}" if event.direction else "") + \
        (f" count {event.count}" if event.count is not None else "") + \
        (f" id {event.person_id}" if event.person_id >= 0 else "")
    cv2.putText(image, caption, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 4, cv2.LINE_AA)
    cv2.putText(image, caption, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, colour, 2, cv2.LINE_AA)
    return image


def encode_jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return encoded.tobytes()


class SnapshotWriter:
    """Writes JPEG bytes to their paths in a background thread.  ``put`` never blocks;
    ``sent``/``dropped``/``failed`` count; ``close`` writes what is queued, then stops."""

    def __init__(self, max_pending: int = MAX_PENDING):
        self.sent = 0
        self.dropped = 0
        self.failed = 0
        self._queue: queue.Queue = queue.Queue(max_pending)
        self._thread = threading.Thread(target=self._run, name="event-snapshots", daemon=True)
        self._thread.start()

    def put(self, path: str, jpeg: bytes) -> bool:
        try:
            self._queue.put_nowait((path, jpeg))
            return True
        except queue.Full:
            self.dropped += 1
            log.warning("event snapshot %s dropped: %d snapshots already wait for the disk", path,
                        self._queue.maxsize)
            return False

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def close(self, timeout_s: float = 2.0) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            path, jpeg = job
            try:
                target = Path(path)
                target.parent.mkdir(parents=True, exist_ok=True)
                temporary = target.with_name(f".{target.name}.tmp")
                temporary.write_bytes(jpeg)
                temporary.replace(target)
                self.sent += 1
            except OSError as error:
                self.failed += 1
                log.warning("cannot write event snapshot %s: %s", path, error)

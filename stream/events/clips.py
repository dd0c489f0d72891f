"""Event clips: an annotated H.264 MP4 per event, from ``pre_s`` before its start to ``post_s`` after
its end, under a disk quota.

The render thread calls ``add_frame`` for every annotated frame. That call only keeps a reference
(frames are never copied or encoded there): a per-source ring holds the last ``pre_s`` seconds
(about ``pre_s`` × fps frames, one more so that its first frame is at least ``pre_s`` old), and
each clip being recorded gets the same reference. So the caller must not draw into a frame after
handing it over (the pipeline draws each annotated frame anew).

``start_clip`` opens a clip with the ring's frames, returns the path it will have and starts its
encoder thread (PyAV, libx264, yuv420p; frame times are the stream times, so a camera's uneven
rate plays at its real speed). ``end_clip`` lets it run ``post_s`` longer. Clips of one source may
overlap; each is written to ``<path>.part`` and renamed when complete, so a clip path either does
not exist yet or holds a playable file. After each clip the oldest clips under ``dir`` are removed
until all fit in ``max_mb`` (MiB). A clip that cannot be written (unwritable folder, full disk,
encoder error) fails alone: its part file is removed, the failure is counted and logged once per
run of failures, and the pipeline never waits for it.
"""

from __future__ import annotations

import collections
import logging
import re
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    """``text`` as one file-name component (no separators, no leading dots)."""
    return _UNSAFE.sub("_", str(text)).lstrip(".") or "_"


@dataclass(frozen=True)
class ClipSettings:
    """Where clips go and how long they are. ``max_s`` caps a clip whose end never comes;
    ``max_open`` caps the clips encoding at once (more fail, counted)."""

    dir: str | Path
    pre_s: float = 5.0
    post_s: float = 5.0
    max_mb: float = 2000
    max_s: float = 300.0
    max_open: int = 8


class _Clip:
    """One clip being recorded: frames waiting for its encoder thread, and when to stop."""

    def __init__(self, source: str, event_id: str, path: Path, frames, limit: int, max_until: float):
        self.source = source
        self.event_id = event_id
        self.path = path
        frames = list(frames)
        self.frames = collections.deque(frames)
        self.limit = limit                  # frames waiting at most (beyond: skipped, counted)
        self.until = max_until              # stream time of the last frame it needs
        self.ended = False                  # end_clip was called
        self.complete = False               # no more frames will come
        self.skipped = 0
        self.last_t = frames[-1][0] if frames else float("-inf")   # the newest frame fed
        self.cond = threading.Condition()

    def feed(self, stream_time: float, image) -> None:
        with self.cond:
            if self.complete:
                return
            self.last_t = stream_time
            if len(self.frames) < self.limit:
                self.frames.append((stream_time, image))
            else:
                self.skipped += 1
            if stream_time >= self.until:
                self.complete = True
            self.cond.notify()

    def finish(self) -> None:
        with self.cond:
            self.complete = True
            self.cond.notify()

    def next_frame(self):
        """The next frame to encode, or None when the clip is complete and drained."""
        with self.cond:
            while not self.frames and not self.complete:
                self.cond.wait()
            return self.frames.popleft() if self.frames else None


class ClipRecorder:
    """Rings of recent annotated frames per source and the clips being encoded from them."""

    def __init__(self, settings: ClipSettings):
        self.settings = settings
        self.dir = Path(settings.dir)
        self._lock = threading.Lock()
        self._rings: dict[str, collections.deque] = {}
        self._open: dict[str, list[_Clip]] = {}
        self._threads: list[threading.Thread] = []
        self._counts = {"written": 0, "failed": 0, "removed": 0, "skipped_frames": 0}
        self._failing = False
        self._quota_lock = threading.Lock()

    # -- the render thread -----------------------------------------------------------------------
    def add_frame(self, source: str, stream_time: float, annotated: np.ndarray) -> None:
        """Keep a reference to ``annotated`` (BGR uint8) at ``stream_time`` seconds; cheap."""
        t = float(stream_time)
        with self._lock:
            ring = self._rings.get(source)
            if ring is None:
                ring = self._rings[source] = collections.deque()
            elif ring and t < ring[-1][0]:
                ring.clear()                    # the stream started over: old frames are not "before"
            ring.append((t, annotated))
            horizon = t - self.settings.pre_s
            while len(ring) > 1 and ring[1][0] <= horizon:
                ring.popleft()
            clips = self._open.get(source)
            if clips:
                for clip in clips:
                    clip.feed(t, annotated)
                self._open[source] = [clip for clip in clips if not clip.complete]

    def buffered(self, source: str) -> int:
        """Frames held in ``source``'s ring now."""
        with self._lock:
            return len(self._rings.get(source, ()))

    def start_clip(self, source: str, event_id: str, stream_time: float) -> str:
        """Start recording ``event_id``'s clip with the frames of the last ``pre_s`` seconds;
        returns the path the finished clip will have. Never raises for I/O trouble."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        path = self.dir / safe_name(source) / f"{stamp}-{safe_name(event_id)}.mp4"
        with self._lock:
            ring = list(self._rings.get(source, ()))
            busy = sum(len(clips) for clips in self._open.values())
            if busy >= self.settings.max_open:
                self._failed(f"clip {path.name}: {busy} clips are being written already")
                return str(path)
            limit = 2 * len(ring) + 64
            clip = _Clip(source, event_id, path, ring, limit,
                         float(stream_time) + self.settings.max_s)
            self._open.setdefault(source, []).append(clip)
            thread = threading.Thread(target=self._record, args=(clip,),
                                      name=f"clip-{safe_name(event_id)}", daemon=True)
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return str(path)

    def end_clip(self, source: str, event_id: str, stream_time: float) -> None:
        """``event_id`` ended at ``stream_time``: its clip runs ``post_s`` longer, then closes."""
        with self._lock:
            for clip in self._open.get(source, ()):
                if clip.event_id == event_id and not clip.ended:
                    clip.ended = True
                    with clip.cond:
                        clip.until = min(clip.until, float(stream_time) + self.settings.post_s)
                        if clip.last_t >= clip.until:
                            clip.complete = True
                            clip.cond.notify()
                    return
        log.debug("clips: no open clip for event %s of %s", event_id, source)

    def close(self, timeout_s: float = 10.0) -> None:
        """Finish every open clip with the frames it has (playable files), wait for the encoders."""
        with self._lock:
            clips = [clip for clips in self._open.values() for clip in clips]
            self._open.clear()
            self._rings.clear()
            threads = list(self._threads)
        for clip in clips:
            clip.finish()
        deadline = time.monotonic() + timeout_s
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def counters(self) -> dict[str, int]:
        """``written``, ``failed`` and ``removed`` (quota) clips, ``skipped_frames`` (an encoder
        that fell behind), ``open`` clips."""
        with self._lock:
            return {**self._counts, "open": sum(len(clips) for clips in self._open.values())}

    # -- encoder threads -------------------------------------------------------------------------
    def _record(self, clip: _Clip) -> None:
        part = clip.path.with_name(clip.path.name + ".part")
        try:
            clip.path.parent.mkdir(parents=True, exist_ok=True)
            frames = encode_mp4(part, iter(clip.next_frame, None))
            if frames == 0:
                raise RuntimeError("no frames")
            part.replace(clip.path)
        except Exception as error:  # noqa: BLE001 - a clip fails alone, the pipeline goes on
            clip.finish()
            clip.frames.clear()
            try:
                part.unlink(missing_ok=True)
            except OSError:
                pass
            with self._lock:
                self._failed(f"clip {clip.path} could not be written: {error}")
            return
        with self._lock:
            self._counts["written"] += 1
            self._counts["skipped_frames"] += clip.skipped
            if self._failing:
                log.info("clips: writing clips again")
            self._failing = False
        self._enforce_quota(keep=clip.path)

    def _failed(self, message: str) -> None:
        """Count a failed clip; log the first of a run of failures as a warning (lock held)."""
        self._counts["failed"] += 1
        if self._failing:
            log.debug("clips: %s", message)
        else:
            log.warning("clips: %s (further failures are logged at debug level until one works)",
                        message)
            self._failing = True

    def _enforce_quota(self, keep: Path) -> None:
        """Remove the oldest clips under ``dir`` until they fit in ``max_mb`` MiB (never ``keep``)."""
        limit = self.settings.max_mb * 1024 * 1024
        with self._quota_lock:
            try:
                clips = []
                for path in self.dir.rglob("*.mp4"):
                    stat = path.stat()
                    clips.append((stat.st_mtime, path.name, path, stat.st_size))
            except OSError as error:
                log.debug("clips: cannot list %s for the quota: %s", self.dir, error)
                return
            total = sum(size for *_, size in clips)
            for _, _, path, size in sorted(clips):
                if total <= limit:
                    break
                if path == keep:
                    continue
                try:
                    path.unlink()
                except OSError as error:
                    log.debug("clips: cannot remove %s: %s", path, error)
                    continue
                total -= size
                with self._lock:
                    self._counts["removed"] += 1
                log.info("clips: removed %s (over the %s MiB quota)", path.name, self.settings.max_mb)


def encode_mp4(path: Path, frames) -> int:
    """Encode ``(stream_time, BGR image)`` pairs into an H.264 (yuv420p) MP4 at ``path``; frame
    times follow the stream times (millisecond time base). Returns the number of frames written.
    Frames of another size than the first are resized to it."""
    import av
    import cv2

    container = av.open(str(path), mode="w", format="mp4")
    try:
        stream = None
        first_t = None
        last_pts = -1
        count = 0
        for stream_time, image in frames:
            if stream is None:
                height, width = (image.shape[0] // 2) * 2, (image.shape[1] // 2) * 2
                stream = container.add_stream("libx264", rate=30,
                                              options={"preset": "veryfast", "crf": "23"})
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                stream.codec_context.time_base = Fraction(1, 1000)
                stream.codec_context.thread_count = 2
                first_t = stream_time
            if image.shape[0] != stream.height or image.shape[1] != stream.width:
                if image.shape[0] // 2 * 2 == stream.height and image.shape[1] // 2 * 2 == stream.width:
                    image = image[:stream.height, :stream.width]
                else:
                    image = cv2.resize(image, (stream.width, stream.height))
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
            pts = max(last_pts + 1, int(round((stream_time - first_t) * 1000)))
            frame.pts, frame.time_base, last_pts = pts, Fraction(1, 1000), pts
            for packet in stream.encode(frame):
                container.mux(packet)
            count += 1
        if stream is not None:
            for packet in stream.encode(None):
                container.mux(packet)
    finally:
        container.close()
    return count

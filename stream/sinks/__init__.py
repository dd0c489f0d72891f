"""Outputs at the end of the pipeline: one file per sink kind, all sharing :class:`Sink`.

- :class:`JsonLinesSink` (``--json``): one contract JSON object per frame, flushed at once.
- :class:`VideoSink` (``--output x.mp4|x.avi``): H.264 via PyAV, or MJPG in AVI.
- :class:`ImageFolderSink` (``--output folder`` for image sources): annotated images by input name.
- :class:`DisplaySink` (``--display``): a window, only when :func:`has_display` says one exists.
- :class:`MultiSink`: fan-out that catches and reports each sink's failure once.
"""

from stream.sinks.base import Sink
from stream.sinks.display import DisplaySink, has_display
from stream.sinks.images import ImageFolderSink
from stream.sinks.json_lines import JsonLinesSink, pose_record
from stream.sinks.multi import MultiSink
from stream.sinks.video import VideoSink

__all__ = [
    "Sink", "DisplaySink", "has_display", "ImageFolderSink", "JsonLinesSink", "pose_record",
    "MultiSink", "VideoSink",
]

"""The outputs of a run, per source: video (or image folder), JSON lines, window, browser page,
events (``stream/events/``).

``build_sinks`` gives each source name a ``MultiSink`` of that source's outputs.  A path with a
``{source}`` placeholder gives every source its own file; a JSON path without one is shared, each
line then carrying ``"source"`` when there are several sources.  The window is one per source,
the browser page (a tile per source, metrics, live poses) one for all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from stream.config import Config


def build_sinks(config: Config, sources: list[Any], stop: Callable[[], None],
                live_stats: Callable[[], dict]) -> dict[str, Any]:
    """Source name → a MultiSink of that source's outputs (shared ones appear under every name).

    Sinks open their files lazily at the first frame, so nothing is written before the run.
    """
    from stream.sinks import DisplaySink, JsonLinesSink, MultiSink, has_display

    output = config.output
    several = len(sources) > 1
    shared_json = None
    if output.json and "{source}" not in output.json:
        shared_json = JsonLinesSink(output.json, include_source=several)
    names = [source.name for source in sources]
    shared_http = _http_sink(output, names, live_stats) if output.serve else None
    show_window = output.display if output.display is not None else has_display()
    from stream.events.wiring import build_event_sink

    events = build_event_sink(config, shared_http, live_stats)
    routes = {}
    for source in sources:
        sinks = []
        if output.video:
            sinks.append(_video_sink(output.video.format(source=source.name), source))
        if shared_json is not None:
            sinks.append(shared_json)
        elif output.json:
            sinks.append(JsonLinesSink(output.json.format(source=source.name), include_source=several))
        if show_window:
            sinks.append(DisplaySink(window=f"posestream {source.name}" if several else "posestream",
                                     on_quit=stop))
        if shared_http is not None:
            sinks.append(shared_http)
        if events is not None:
            sinks.append(events)
        for sink in sinks:
            sink.open()
        routes[source.name] = MultiSink(sinks)
    return routes


def _video_sink(path: str, source: Any) -> Any:
    from stream.sinks import ImageFolderSink, VideoSink
    from stream.sources import ImageFileSource, ImageFolderSource

    is_images = isinstance(source, (ImageFileSource, ImageFolderSource))
    if is_images and Path(path).suffix.lower() not in (".mp4", ".mkv", ".mov", ".avi"):
        input_folder = getattr(source, "path", None) if isinstance(source, ImageFolderSource) else None
        return ImageFolderSink(path, source_folder=input_folder)
    # A live source's frames arrive irregularly: stamp them with their own times.
    return VideoSink(path, fps=source.fps, frame_times=bool(getattr(source, "is_live", False)))


def _http_sink(output: Any, names: list[str], live_stats: Callable[[], dict]) -> Any:
    """The browser view, metrics and live poses: one for all sources (a tile per source)."""
    from stream.sinks.http import HttpSink, parse_serve_address

    host, port = parse_serve_address(output.serve)
    return HttpSink(host, port, stats_provider=live_stats, sources=names, token=output.serve_token)

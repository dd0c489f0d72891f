"""A real RTSP server for the live-source tests (GStreamer gst-rtsp-server).

Run it with Debian's python (it needs ``gi`` and GstRtspServer, which the project's python lacks)::

    /usr/bin/python3 benchmarks/rtsp_server.py --port 8554 [--path /cam] [--fps 15] [--frames DIR | --video FILE]

It serves H.264 (640x480 by default) at ``rtsp://127.0.0.1:PORT/PATH`` and prints one line
``READY rtsp://…`` on stdout once it listens.  One shared pipeline feeds every client::

    videotestsrc is-live=true ! video/x-raw,… ! valve name=gate ! x264enc tune=zerolatency … ! rtph264pay

``--frames DIR`` serves a real clip instead: DIR's ``0000.png``, ``0001.png``, … (at their own
size) in a loop, at ``--fps``.  ``--video FILE`` serves an H.264 file (MP4, MKV) as it is, once,
in real time: no decoding or encoding, so the camera costs next to no CPU (about 1 % of a core
for 720p at 25 fps, against 47 % for ``--frames``, which decodes PNGs and encodes each frame) —
the camera to measure a pipeline with on the same machine.  Loop a short clip into a long file
first (``ffmpeg -stream_loop 9 -i clip.mp4 -c copy long.mp4``).

Commands, one per line on stdin (each answered ``OK <command>`` on stdout):
  ``stall``  the valve drops every buffer: no more frames, connections stay open;
  ``resume`` frames flow again;
  ``quit``   stops the server (so does closing stdin, SIGTERM or SIGINT).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def launch_description(width: int, height: int, fps: int, frames: str | None = None,
                       video: str | None = None) -> str:
    """The gst-launch description of the served media (one keyframe per second): the test
    pattern, or the PNG frames of the folder ``frames`` in a loop; or the H.264 file ``video``
    as it is (its own keyframes and rate)."""
    if video:
        return (f"( filesrc location={video} ! parsebin ! video/x-h264 "
                f"! valve name=gate drop=false "
                f"! rtph264pay name=pay0 pt=96 config-interval=1 )")
    source = (
        f"multifilesrc location={frames}/%04d.png loop=true caps=image/png,framerate={fps}/1 "
        f"! pngdec ! videoconvert ! video/x-raw,format=I420 " if frames else
        f"videotestsrc is-live=true pattern=ball "
        f"! video/x-raw,width={width},height={height},framerate={fps}/1,format=I420 "
    )
    return (
        f"( {source}"
        f"! valve name=gate drop=false "
        f"! x264enc tune=zerolatency speed-preset=ultrafast bitrate=800 key-int-max={fps} "
        f"! video/x-h264,profile=baseline "
        f"! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )


class StallableFactory:
    """A shared media factory whose valves can all be closed (stall) or opened (resume)."""

    def __init__(self, description: str):
        self.factory = GstRtspServer.RTSPMediaFactory()
        self.factory.set_launch(description)
        self.factory.set_shared(True)
        self.factory.connect("media-configure", self._on_media_configure)
        self._valves: list[Gst.Element] = []
        self._stalled = False

    def _on_media_configure(self, _factory, media) -> None:
        valve = media.get_element().get_by_name("gate")
        valve.set_property("drop", self._stalled)
        self._valves.append(valve)

    def set_stalled(self, stalled: bool) -> None:
        self._stalled = stalled
        for valve in self._valves:
            valve.set_property("drop", stalled)


def read_commands(loop: GLib.MainLoop, factory: StallableFactory) -> None:
    """Stdin reader thread: hands each command to the main loop; EOF quits."""
    for line in sys.stdin:
        command = line.strip()
        if command in ("stall", "resume"):
            GLib.idle_add(_apply, factory, command)
        elif command == "quit":
            break
        elif command:
            print(f"ERROR unknown command {command!r}", flush=True)
    GLib.idle_add(loop.quit)


def _apply(factory: StallableFactory, command: str) -> bool:
    factory.set_stalled(command == "stall")
    print(f"OK {command}", flush=True)
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--path", default="/cam")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=int, default=15)
    media = parser.add_mutually_exclusive_group()
    media.add_argument("--frames", help="folder of 0000.png, 0001.png, … served in a loop")
    media.add_argument("--video", help="H.264 file (MP4, MKV) served as it is, once, in real time")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    factory = StallableFactory(launch_description(args.width, args.height, args.fps, args.frames, args.video))
    server.get_mount_points().add_factory(args.path, factory.factory)
    if server.attach(None) == 0:
        print(f"ERROR cannot listen on {args.host}:{args.port}", flush=True)
        return 1

    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, lambda *_: loop.quit() or False)
    threading.Thread(target=read_commands, args=(loop, factory), daemon=True).start()
    print(f"READY rtsp://{args.host}:{args.port}{args.path}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

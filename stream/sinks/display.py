"""On-screen window, only where a display exists.

opencv-python aborts the whole process when ``imshow`` runs without a display, so the check comes
first: on Linux a display exists when ``DISPLAY`` is set, or ``WAYLAND_DISPLAY`` where OpenCV's GUI
can speak Wayland (opencv-python's bundled Qt ships only the X11 ``xcb`` plugin, so there a
Wayland-only session, without XWayland's ``DISPLAY``, counts as none).  Without one the sink logs
once and does nothing.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from stream.items import Posed
from stream.sinks.base import Sink

log = logging.getLogger(__name__)

QUIT_KEYS = frozenset({ord("q"), ord("Q"), 27})     # q or Esc closes the window and stops the run


def has_display() -> bool:
    """Whether a window can be shown: always on Windows/macOS; elsewhere DISPLAY or a usable
    WAYLAND_DISPLAY must be set.  Looks only at the environment and files, never opens a window."""
    if sys.platform in ("win32", "darwin"):
        return True
    if os.environ.get("DISPLAY"):
        return True
    return bool(os.environ.get("WAYLAND_DISPLAY")) and _gui_speaks_wayland()


def _gui_speaks_wayland() -> bool:
    """False when OpenCV's GUI is a bundled Qt without a Wayland platform plugin (opencv-python)."""
    import importlib.util

    spec = importlib.util.find_spec("cv2")
    if spec is None or not spec.submodule_search_locations:
        return False
    platforms = Path(next(iter(spec.submodule_search_locations))) / "qt" / "plugins" / "platforms"
    if not platforms.is_dir():
        return True                  # not the bundled Qt (e.g. a GTK build): Wayland works
    return any("wayland" in plugin.name for plugin in platforms.iterdir())


class DisplaySink(Sink):
    """Shows each annotated frame in a window named ``window``.

    Pressing q/Esc or closing the window calls ``on_quit`` once (the pipeline passes its stop
    function) and stops showing frames.  Without a display: one log line, then nothing.
    """

    def __init__(self, window: str = "posestream", on_quit: Callable[[], None] | None = None):
        self.window = window
        self.on_quit = on_quit
        self.name = f"display:{window}"
        self.enabled = has_display()
        self.quit_requested = False
        self._shown = False
        self._no_display_logged = False

    def open(self) -> DisplaySink:
        self._log_no_display()
        return self

    def write(self, item: Posed | None, annotated: np.ndarray) -> None:
        if not self.enabled:
            self._log_no_display()
            return
        if self.quit_requested:
            return
        import cv2

        cv2.imshow(self.window, annotated)
        self._shown = True
        key = cv2.waitKey(1) & 0xFF
        if key in QUIT_KEYS or cv2.getWindowProperty(self.window, cv2.WND_PROP_VISIBLE) < 1:
            self._quit()

    def close(self) -> None:
        if self._shown:
            import cv2

            self._shown = False
            try:
                cv2.destroyWindow(self.window)
                cv2.waitKey(1)
            except cv2.error:
                pass

    def _quit(self) -> None:
        self.quit_requested = True
        log.info("display window closed: stopping")
        if self.on_quit is not None:
            self.on_quit()

    def _log_no_display(self) -> None:
        if not self.enabled and not self._no_display_logged:
            self._no_display_logged = True
            log.info("no display (DISPLAY unset): not showing a window")

"""The project's few error types.

Every user error derives from :class:`PoseStreamError`; ``run_stream.py`` and the command-line
tools (:func:`run_tool`) turn them into one readable line on stderr and exit code 2.  Anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import sys
from typing import Callable


class PoseStreamError(Exception):
    """Base of all user-facing errors (bad input, not bugs)."""


class ConfigError(PoseStreamError):
    """A config file, key or value is wrong; the message names the dotted key."""


class SourceError(PoseStreamError):
    """A source cannot be opened or read; the message names the source."""


class WeightsError(PoseStreamError):
    """A weights file is missing, unreadable, truncated or for another architecture."""


class StageError(PoseStreamError):
    """A pipeline stage raised; the message names the stage and the error."""

    exit_code = 1


def one_line(error: BaseException) -> str:
    """The error's message on one line."""
    return " ".join(str(error).split())


def run_tool(prog: str, action: Callable[[], object]) -> int:
    """Run a command-line tool's ``action`` with INFO logging; its exit code: 0, or for a user
    error one line ``PROG: error: …`` on stderr and the error's exit code (2)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        action()
    except PoseStreamError as error:
        print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
        return int(getattr(error, "exit_code", 2))
    return 0

"""The project's few error types.

Every user error derives from :class:`PoseStreamError`; ``run_stream.py`` turns them into one
readable line on stderr and exit code 2.  Anything else is a bug and keeps its traceback.
"""


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

"""The command lines of the project posestream reimplements, accepted as written.

xuexingyu24/Real-time-human-pose-estimation-by-pytorch runs

    python Demo_picture.py -backbone {CMU,Mobilenet} -image PATH -scale F -show [PART ...]
    python Demo_video.py   -backbone {CMU,Mobilenet} -video PATH -scale F -show [PART ...]

(single dash).  ``python run_stream.py`` takes the same flags: ``-backbone`` in any case
(Mobilenet = the lightweight network ``mobilenet``), ``-scale`` = ``--scale``, ``-show`` with no
value or ``-1`` = the skeleton, ``-show PART`` (a name or a CMU heatmap index, 18 = background) =
that part's heatmap, ``-thre F`` = ``postprocess.peak_threshold``.

Outputs: the seed shows the picture in a window and writes the video to ``output.avi`` (MJPG) in
the working directory.  Here, a ``-image`` or ``-video`` run that names no output of its own
(``--output`` or ``output.video``) writes, in the working directory, ``output.avi`` for a video
and ``output/<image name>`` for a picture, besides the window where a display exists.
"""

from __future__ import annotations

import argparse
from typing import Any

from posestream_common.errors import ConfigError
from stages.skeleton import BACKGROUND, KEYPOINTS

SEED_VIDEO_OUTPUT = "output.avi"
SEED_IMAGE_OUTPUT = "output"


def add_seed_flags(parser: argparse.ArgumentParser) -> None:
    """``-image``, ``-video``, ``-show`` and ``-thre`` (``-backbone`` and ``-scale`` are second
    names of ``--backbone`` and ``--scale``)."""
    add = parser.add_argument
    add("-image", dest="seed_image", metavar="PATH",
        help="the seed's picture demo: annotated image saved under output/ unless --output")
    add("-video", dest="seed_video", metavar="PATH",
        help="the seed's video demo: annotated video saved as output.avi unless --output")
    add("-show", dest="seed_show", nargs="*", metavar="PART",
        help="the seed's -show: no value or -1 = skeleton, a part name or index = its heatmap")
    add("-thre", dest="seed_threshold", type=float, metavar="F",
        help="the seed's -thre: least heatmap value of a keypoint (postprocess.peak_threshold)")


def seed_show_view(values: list[str]) -> str:
    """The ``render.show`` view for ``-show VALUES``."""
    if not values or values[0] in ("-1", "skeleton"):
        return "skeleton"
    if len(values) > 1:
        raise ConfigError(f"-show {' '.join(values)}: one part at a time, e.g. -show r_wrist")
    value = values[0]
    if value == "none" or ":" in value:
        return value
    names = KEYPOINTS + (BACKGROUND,)
    if value.isdigit():
        if int(value) >= len(names):
            raise ConfigError(f"-show {value}: part indices are 0-{len(names) - 1} "
                              f"({', '.join(f'{i} {n}' for i, n in enumerate(names))})")
        value = names[int(value)]
    return f"heatmap:{value}"


def seed_values(args: argparse.Namespace) -> dict[str, Any]:
    """Config keys set by the seed's flags that were given."""
    values: dict[str, Any] = {}
    if args.seed_show is not None:
        values["render.show"] = seed_show_view(args.seed_show)
    if args.seed_threshold is not None:
        values["postprocess.peak_threshold"] = args.seed_threshold
    return values


def seed_sources(args: argparse.Namespace) -> list[str]:
    """The paths given with ``-image`` / ``-video``."""
    return [path for path in (args.seed_image, args.seed_video) if path is not None]


def seed_default_output(args: argparse.Namespace, config: Any) -> Any:
    """``config`` with the seed demo's output file set when a ``-image``/``-video`` run names
    none of its own."""
    if config.output.video is not None or not seed_sources(args) or len(config.sources) > 1:
        return config
    target = SEED_VIDEO_OUTPUT if args.seed_video is not None else SEED_IMAGE_OUTPUT
    output = config.output.model_copy(update={"video": target})
    return config.model_copy(update={"output": output})

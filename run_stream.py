#!/usr/bin/env python3
"""posestream: multi-person 2D pose estimation on a video stream, drawn as skeletons.

    python run_stream.py [--config configs/NAME.yaml] [flags]

Every flag is a shortcut for a config key (see README.md and configs/default.yaml);
``--set dotted.key=value`` sets any key.  The single-dash command lines of the project this one
reimplements also work as written (``-backbone CMU -image x.jpg -scale 0.5 -show``, see
seed_flags.py).  User errors exit with code 2 and one line on stderr;
SIGINT/SIGTERM stop the run within 2 s with every output flushed and closed (exit 0).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import Any, Sequence

from posestream_common.errors import ConfigError, PoseStreamError, one_line
from seed_flags import add_seed_flags, seed_default_output, seed_sources, seed_values

log = logging.getLogger("posestream")

# flag dest → config key it is a shortcut for
FLAG_KEYS = {
    "backbone": "model.backbone",
    "device": "model.device",
    "weights": "model.weights",
    "input_height": "model.input_height",
    "scale": "model.scale",
    "show": "render.show",
    "display": "output.display",
    "output": "output.video",
    "json": "output.json",
    "stats": "output.stats",
    "serve": "output.serve",
    "events": "output.events",
    "engine": "inference.engine",
    "precision": "inference.precision",
    "threads": "inference.threads",
    "workers": "inference.workers",
    "queue_size": "pipeline.queue_size",
    "mode": "pipeline.mode",
    "track": "tracking.enabled",
    "smooth": "smoothing.enabled",
    "ray": "run.ray",
    "max_frames": "run.max_frames",
    "max_seconds": "run.max_seconds",
    "log_level": "run.log_level",
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line as one line (ConfigError → exit 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="run_stream.py", description=__doc__.split("\n\n")[0],
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--config", metavar="PATH", help="YAML config file (configs/NAME.yaml, or just NAME)")
    add("--source", dest="sources", action="append", metavar="SRC",
        help="webcam index, video file, image file, image folder, rtsp://, http(s)://, or demo; "
             "repeat for several sources (default: webcam 0 if it opens, else demo)")
    add("--image", dest="sources", action="append", metavar="PATH", help="alias of --source")
    add("--video", dest="sources", action="append", metavar="PATH", help="alias of --source")
    add("--backbone", "-backbone", metavar="NAME", type=str.lower,
        help="auto (default: the most accurate that keeps run.target_fps here), cmu, mobilenet, "
             "mobilenet_thin or omz (Intel's OpenVINO IR; any case)")
    add("--device", metavar="DEV", help="auto (default), cpu or cuda")
    add("--weights", metavar="PATH", help="weights file (omz: an IR .xml), or 'random' "
                                          "(tests/benchmarks only); default weights/<backbone>.pth, "
                                          "omz: weights/omz/FP16-INT8/")
    add("--input-height", type=int, metavar="H", help="net input height (width keeps the aspect ratio)")
    add("--scale", "-scale", type=float, metavar="F",
        help="net input = frame size x F (instead of --input-height)")
    add("--show", metavar="VIEW", help="skeleton (default), heatmap:PART, paf:LIMB or none")
    add("--display", action=argparse.BooleanOptionalAction, default=None,
        help="show a window (default: only when a display exists)")
    add("--output", metavar="PATH", help="annotated video (.mp4 H.264, .avi MJPG) or, for image "
                                         "sources, a folder; {source} = source name")
    add("--json", metavar="PATH", help="JSON lines, one object per frame; {source} = source name")
    add("--stats", metavar="PATH", help="JSON run summary (fps, per-stage times, latency, drops)")
    add("--serve", metavar="[HOST:]PORT", help="browser page with the live stream and stats")
    add("--events", metavar="PATH", help="event records (the config's events.rules) as JSON lines")
    add("--engine", metavar="NAME", help="auto (default: openvino on a CPU when installed, "
                                         "torch on CUDA), torch, onnxruntime or openvino")
    add("--precision", metavar="P", help="auto (default: fp16 on CUDA, bf16 on CPUs with "
                                         "AMX/AVX512-BF16, else fp32), fp32, fp16, bf16 or int8 "
                                         "(OpenVINO: quantized once with NNCF, cached under weights/int8/)")
    add("--threads", type=int, metavar="N", help="torch intra-op threads per worker "
                                                  "(default: cores / workers on a CPU)")
    add("--workers", type=int, metavar="N", help="frames in inference at once, threaded mode "
                                                  "(default: 2 on a multi-core CPU, else 1)")
    add("--queue-size", type=int, metavar="N", help="capacity of each queue between stages (default 4)")
    add("--mode", metavar="MODE", help="threaded (default) or sequential")
    add("--track", action="store_true", default=None, help="keep person ids across frames")
    add("--smooth", action="store_true", default=None, help="smooth keypoints over time (One-Euro)")
    add("--ray", metavar="ADDRESS", help="run on Ray: local, auto or a cluster address")
    add("--max-frames", type=int, metavar="N", help="stop after N frames per source")
    add("--max-seconds", type=float, metavar="S", help="stop after S seconds")
    add("--log-level", metavar="LEVEL", type=str.upper, help="DEBUG, INFO (default), WARNING, ERROR")
    add("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="set any config key, e.g. --set pipeline.queue_size=2 (value parsed as YAML)")
    add_seed_flags(parser)
    return parser


def flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """The config keys the given flags stand for (flags not given are left out)."""
    values: dict[str, Any] = {}
    for dest, key in FLAG_KEYS.items():
        value = getattr(args, dest)
        if value is not None:
            values[key] = value
    if args.input_height is not None:
        values["model.scale"] = None
    if args.scale is not None:
        values["model.input_height"] = None
    values.update(seed_values(args))
    sources = (args.sources or []) + seed_sources(args)
    if len(sources) == 1:                           # replaces any sources list of the config file
        values["source.uri"], values["sources"] = sources[0], []
    elif sources:
        values["sources"] = [{"uri": uri} for uri in sources]
    return values


def configure_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level, logging.INFO), stream=sys.stderr,
                        format="%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")


def install_stop_handlers(stop_event: threading.Event) -> None:
    """SIGINT/SIGTERM set ``stop_event`` (a clean, flushed stop); a second signal acts as usual."""

    def request_stop(signum: int, _frame: Any) -> None:
        log.info("%s received: stopping", signal.Signals(signum).name)
        stop_event.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)


def run(config: Any, stop_event: threading.Event) -> dict[str, Any]:
    """Run ``config`` locally, or on Ray when ``run.ray`` is set."""
    if config.run.ray:
        try:
            from stream.ray.runner import run_on_ray
        except ModuleNotFoundError as error:
            if error.name != "ray":
                raise
            raise ConfigError(f"--ray {config.run.ray}: Ray is not installed "
                              "(pip install -e \".[ray]\")") from None
        return run_on_ray(config, stop_event)
    from stream.pipeline import run_pipeline

    return run_pipeline(config, stop_event)


def main(argv: Sequence[str] | None = None) -> int:
    stop_event = threading.Event()
    try:
        args = build_parser().parse_args(argv)
        from stream.config import load_config

        config = seed_default_output(args, load_config(args.config, args.overrides, flag_values(args)))
        configure_logging(config.run.log_level)
        install_stop_handlers(stop_event)
        run(config, stop_event)
    except PoseStreamError as error:
        print(f"posestream: error: {one_line(error)}", file=sys.stderr)
        return int(getattr(error, "exit_code", 2))
    return 0


def exit_now(code: int) -> None:
    """Exit without the interpreter's teardown, once ``main`` has closed every output: freeing the
    engines (OpenVINO's compiled models, torch, Ray) and the modules takes seconds when the cores
    are busy, longer than the 2 s a signal allows for the whole stop."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())

"""Recall of inference plans against the frame's own resolution, with their speed, in one run.

    python -m benchmarks.recall [--clip PATH|RTSP-URL] [--max-frames N] [--plan NAME=K=V,K=V ...]
        [--backbone B] [--weights W] [--out DIR]

A plan is a name and config overrides (``--set KEY=VALUE`` pairs; ``model.input_height=frame``
or ``=frame*0.5`` stand for the frame's height, times 0.5).  The reference is the same network on
the whole frame at the frame's own resolution (input height = frame height).  Every plan, and
the reference, runs the project's pipeline in a fresh process (``recall_worker``) with tracking
on; its people are matched to the reference's frame by frame (``recall_metrics``: recall, extra
people, median keypoint offset, people a frame) and its run gives fps end to end and CPU ms a frame
(both after the first frames, see ``recall_worker``) and the id figures (share of detections on
ids lasting >= 3 s, ids a minute).  The reference's
JSON lines are cached by clip digest + network + frames + overrides + CPU model
(``--fresh-reference``).

A live URL (rtsp://…): its first ``--max-frames`` frames are read once, every one, into a
lossless recording; the reference runs on the recording.  Each plan then runs on the live stream
(frames dropped counted) and keeps a thumbnail of every frame it processed; those found among the
recorded frames (nearest thumbnail, mean grey difference <= ``MATCH_GREY``) are compared.  So
recall needs a stream that repeats what was recorded (a clip served in a loop; its frames are
then those of the recording encoded again, so even the reference's own settings score a little
under 1); for a camera it is n/a, the speed figures stand.  Results: benchmarks/results/<CPU class>/recall.{json,md,png}.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):          # run as a script: make the project importable
    sys.path.insert(0, str(ROOT))

from benchmarks import recall_metrics, recall_report  # noqa: E402
from benchmarks.bench_media import find_shared  # noqa: E402
from posestream_common.errors import ConfigError, PoseStreamError, SourceError, run_tool  # noqa: E402

log = logging.getLogger("benchmarks.recall")

DEFAULT_CLIP = "video.avi"
REFERENCE = "reference"
# name -> config overrides.  The coordinator extends this list with the inference plans.
DEFAULT_PLANS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("default", ()),                                     # the current default command as it is
    ("crops", ("model.plan=crops",)),                    # the crops plan, whatever the frame size
    ("h368", ("model.input_height=368",)),               # the whole frame at the old default size
    ("frame*0.75", ("model.input_height=frame*0.75",)),
)
REFERENCE_OVERRIDES = ("model.input_height=frame",)
MATCH_GREY = 1.0             # a live frame is a recorded one when their thumbnails differ this little
TRACK_SECONDS = 3.0
CACHE_VERSION = 2            # bump when the worker's result changes shape


@dataclass(frozen=True)
class Plan:
    name: str
    overrides: tuple[str, ...]


def parse_plan(text: str) -> Plan:
    """``NAME=K=V,K=V`` (or ``NAME=`` for no overrides) -> Plan; ConfigError naming the text."""
    name, sep, rest = text.partition("=")
    overrides = tuple(item.strip() for item in rest.split(",") if item.strip())
    if not sep or not name.strip() or any("=" not in item for item in overrides):
        raise ConfigError(f"--plan {text!r}: expected NAME=KEY=VALUE[,KEY=VALUE…] (NAME= for none)")
    return Plan(name.strip(), overrides)


def resolve_overrides(overrides: tuple[str, ...], frame_height: int) -> tuple[str, ...]:
    """``model.input_height=frame`` / ``=frame*F`` made a number of rows for this clip."""
    resolved = []
    for item in overrides:
        key, _, value = item.partition("=")
        if key.strip() == "model.input_height" and value.strip().startswith("frame"):
            factor = value.strip()[len("frame"):].lstrip("*") or "1"
            try:
                value = str(max(8, int(round(frame_height * float(factor)))))
            except ValueError:
                raise ConfigError(f"plan value {item!r}: expected frame or frame*FACTOR") from None
        resolved.append(f"{key.strip()}={value.strip()}")
    return tuple(resolved)


def is_live(source: str) -> bool:
    from posestream_common.media import is_live_uri

    return not Path(source).exists() and is_live_uri(source)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def run_plan(source: str, values: dict, overrides: tuple[str, ...], json_path: Path, work_dir: Path,
             fingerprints: bool = False, timeout_s: float = 1800) -> dict:
    """One plan in a fresh interpreter (``recall_worker``); its result (``error`` when it failed)."""
    from benchmarks.workers import run_in_fresh_process

    case = {"source": source, "values": values, "overrides": list(overrides), "json": str(json_path),
            "fingerprints": fingerprints}
    return run_in_fresh_process("benchmarks.recall_worker", case, work_dir, timeout_s)


def read_frames(json_path: Path) -> dict[int, tuple[float, np.ndarray, list[int]]]:
    """frame index -> (time, people [P,18,3], ids) of a JSON-lines file."""
    frames = {}
    for line in Path(json_path).read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            people = recall_metrics.as_people([p["pose_keypoints_2d"] for p in record["people"]])
            frames[int(record["frame"])] = (float(record["time"]), people,
                                            [int(p["person_id"]) for p in record["people"]])
    return frames


def reference_run(clip: Path, values: dict, overrides: tuple[str, ...], work_dir: Path,
                  fresh: bool) -> tuple[dict, Path]:
    """The reference's result and JSON lines, from the cache when the same clip, network, frames
    and overrides ran before (result ``cached``: the date it ran)."""
    from posestream_common.machine import cpu_model

    # the machine too: the reference's speed is one of the figures (cpu_model names an AVX2 cap)
    key = hashlib.sha256(json.dumps([CACHE_VERSION, file_digest(clip), values, overrides, _weights_id(values),
                                     cpu_model()], sort_keys=True).encode()).hexdigest()[:16]
    json_path, result_path = work_dir / f"reference-{key}.jsonl", work_dir / f"reference-{key}.json"
    if not fresh and json_path.is_file() and result_path.is_file():
        result = json.loads(result_path.read_text())
        log.info("reference: cached run of %s (%s)", result.get("ran_at"), json_path)
        return {**result, "cached": result.get("ran_at")}, json_path
    log.info("reference: %s on %s (the slow pass)", " ".join(overrides), clip.name)
    result = run_plan(str(clip), values, overrides, json_path, work_dir)
    if "error" not in result:
        result["ran_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        result_path.write_text(json.dumps(result))
    return result, json_path


def _weights_id(values: dict) -> str | list[str] | None:
    """What names the reference's weights in its cache key: the file (size, date), or, for a run
    that picks its network (``auto``: the weights present decide), the networks present."""
    weights = values.get("model.weights")
    if weights and weights != "random" and Path(weights).is_file():
        stat = Path(weights).stat()
        return f"{weights}:{stat.st_size}:{int(stat.st_mtime)}"
    if weights is None and values.get("model.backbone") in (None, "auto"):
        import backbones
        return [name for name in backbones.list_backbones() if backbones.weights_present(name)]
    return weights


def record_stream(url: str, frames: int, work_dir: Path, timeout_s: float = 10.0) -> tuple[Path, float]:
    """Every one of the stream's first ``frames`` frames, read once, into a lossless FFV1 file;
    (its path, the stream's fps)."""
    import av

    from stream.live import create_capture
    from stream.sources import redact_uri

    shown = redact_uri(url)                              # credentials never reach a message
    capture = create_capture(url, timeout_s, timeout_s)
    if not capture.isOpened():
        raise SourceError(f"--clip {shown}: the stream did not open")
    fps = capture.get(5) or 25.0                       # cv2.CAP_PROP_FPS
    path = work_dir / f"recorded-{int(time.time())}.mkv"
    try:
        with av.open(str(path), "w") as container:
            stream = None
            for _ in range(frames):
                ok, image = capture.read()
                if not ok:
                    break
                if stream is None:
                    stream = container.add_stream("ffv1", rate=int(round(fps)))
                    stream.width, stream.height, stream.pix_fmt = image.shape[1], image.shape[0], "bgr0"
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                    container.mux(packet)
            if stream is None:
                raise SourceError(f"--clip {shown}: no frame arrived")
            for packet in stream.encode():
                container.mux(packet)
    finally:
        capture.release()
    return path, float(fps)


def recorded_thumbnails(path: Path) -> np.ndarray:
    from benchmarks.recall_worker import thumbnail
    from posestream_common.media import read_video_frames

    return np.stack([thumbnail(image) for image in read_video_frames(path)]).astype(np.float32)


def match_fingerprints(prints: dict[str, str], recorded: np.ndarray) -> dict[int, int]:
    """Live frame index -> recorded frame index, for the live frames found among the recorded."""
    found = {}
    for index, text in prints.items():
        thumb = np.frombuffer(bytes.fromhex(text), dtype=np.uint8).reshape(recorded.shape[1:]).astype(np.float32)
        differences = np.abs(recorded - thumb).mean(axis=(1, 2))
        best = int(np.argmin(differences))
        if differences[best] <= MATCH_GREY:
            found[int(index)] = best
    return found


def figures(result: dict, frames: dict, reference: dict, mapping: dict[int, int] | None) -> dict:
    """A row: recall figures against the reference, speed, ids."""
    if "error" in result:
        return {"error": result["error"]}
    pairs = [(index, mapping.get(index) if mapping is not None else index) for index in sorted(frames)]
    comparisons = [recall_metrics.compare_frame(reference[ref][1], frames[index][1])
                   for index, ref in pairs if ref is not None and ref in reference]
    ordered = [frames[index] for index in sorted(frames)]
    ids = recall_metrics.id_figures([f[0] for f in ordered], [f[1] for f in ordered], [f[2] for f in ordered],
                                    min_seconds=TRACK_SECONDS)
    processed = result.get("frames") or 0
    steady = result.get("steady") or {}
    timed = steady.get("frames") or 0
    return {**recall_metrics.summarise(comparisons), **{f"track_{k}": v for k, v in ids.items()},
            "frames": processed, "dropped": result.get("dropped"),
            "fps": round(timed / steady["wall_s"], 3) if timed and steady.get("wall_s") else None,
            "cpu_ms_per_frame": round(1000.0 * steady["cpu_s"] / timed, 1) if timed else None,
            "fps_whole_run": result.get("fps"),
            "cpu_ms_per_frame_whole_run": round(1000.0 * result["cpu_s"] / processed, 1) if processed else None,
            "input_height": result.get("input_height"), "backbone": result.get("backbone"),
            "cached": result.get("cached")}


def first_frame_height(clip: Path) -> int:
    from posestream_common.media import read_video_frames

    frames = read_video_frames(clip, 1)
    if not frames:
        raise SourceError(f"--clip {clip}: no frame could be read")
    return int(frames[0].shape[0])


def measure(args: argparse.Namespace) -> dict:
    started = time.monotonic()
    load_before = os.getloadavg()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    from stream.config import load_config

    plans = [parse_plan(text) for text in args.plan] if args.plan else [Plan(n, o) for n, o in DEFAULT_PLANS]
    source = str(args.clip) if args.clip else str(find_shared() / "media" / DEFAULT_CLIP)
    live = is_live(source)
    values: dict = {"run.max_frames": args.max_frames}
    if args.backbone:
        values["model.backbone"] = args.backbone
    if args.weights:
        values["model.weights"] = args.weights
    for plan in plans:                   # a bad key or value stops the run before anything runs
        load_config(None, overrides=resolve_overrides(plan.overrides, 720), values=values)
    if live:
        clip, stream_fps = record_stream(source, args.max_frames, args.work_dir)
        log.info("recorded %s frames of the stream into %s", args.max_frames, clip)
    else:
        clip, stream_fps = Path(source), None
        if not clip.is_file():
            raise SourceError(f"--clip {clip}: no such file (the default is {DEFAULT_CLIP} of the test "
                              "media: ../shared, $POSESTREAM_SHARED or `python -m tests.media_cache`)")
    height = first_frame_height(clip)
    ref_overrides = resolve_overrides(REFERENCE_OVERRIDES, height)
    ref_result, ref_json = reference_run(clip, values, ref_overrides, args.work_dir, args.fresh_reference)
    if "error" in ref_result:
        raise PoseStreamError(f"the reference pass failed: {ref_result['error']}")
    reference = read_frames(ref_json)
    recorded = recorded_thumbnails(clip) if live else None
    rows = []
    for plan in plans:
        overrides = resolve_overrides(plan.overrides, height)
        log.info("plan %s: %s", plan.name, " ".join(overrides) or "(no overrides)")
        with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
            json_path = Path(tmp) / "people.jsonl"
            result = run_plan(source, values, overrides, json_path, args.work_dir, fingerprints=live)
            frames = read_frames(json_path) if json_path.is_file() else {}
        mapping = match_fingerprints(result.get("fingerprints", {}), recorded) if live else None
        row = {"plan": plan.name, "overrides": list(overrides), **figures(result, frames, reference, mapping)}
        rows.append(row)
        log.info("  %s", recall_report.row_text(row))
    rows.append({"plan": REFERENCE, "overrides": list(ref_overrides),
                 **figures(ref_result, reference, reference, None)})
    return {"rows": rows, "meta": recall_report.run_meta(
        args, source, clip, live, stream_fps, height, load_before, time.monotonic() - started)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.recall", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", help=f"video file or rtsp:// URL (default: {DEFAULT_CLIP} of the test media)")
    parser.add_argument("--max-frames", type=int, default=150, help="frames each plan and the reference "
                                                                   "run (default 150)")
    parser.add_argument("--plan", action="append", default=[], metavar="NAME=K=V,K=V",
                        help="a plan: name and config overrides (repeat; default: the built-in list); "
                             "model.input_height=frame or =frame*F is the frame's height (x F)")
    parser.add_argument("--backbone", help="model.backbone of every plan and of the reference")
    parser.add_argument("--weights", help="model.weights of every plan and of the reference "
                                          "(random: seeded random weights, for tests)")
    parser.add_argument("--busy-note", help="say in the results that the machine was busy, and how "
                                            "(e.g. '7 other sessions on 2 cores')")
    parser.add_argument("--fresh-reference", action="store_true", help="run the reference even when cached")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "posestream-bench" / "recall",
                        help="reference cache, recordings and scratch files")
    parser.add_argument("--out", type=Path, default=None,
                        help="where recall.{json,md,png} go (default: benchmarks/results/<CPU class>/)")
    args = parser.parse_args(argv)
    if args.max_frames < 1:
        parser.error("--max-frames must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def action() -> None:
        summary = measure(args)
        for path in recall_report.write_all(summary, args.out):
            print(path)
        print(recall_report.markdown(summary))

    return run_tool("python -m benchmarks.recall", action)


if __name__ == "__main__":
    sys.exit(main())

"""The strongest CPU peer: Intel's own OpenPose wrapper and pipeline on human-pose-estimation-0001.

Runs in a separate environment with Intel's Open Model Zoo model API (PyPI
``openmodelzoo-modelapi`` 2022.3.0, which needs ``openvino`` 2024.x and ``numpy<2``; install it with
``--no-deps`` beside ``openvino==2024.6`` ``numpy<2`` ``scipy`` ``opencv-python-headless``).  It
imports nothing from this project (no torch there), so ``benchmarks/run.py`` calls it as a
subprocess and compares its figures and the people it finds with ours on the same clip.

    python benchmarks/omz_peer.py --model human-pose-estimation-0001.xml --video clip.mp4 \
        --mode sync|async [--max-frames N] [--out result.json]
    python benchmarks/omz_peer.py --model human-pose-estimation-0001.xml --images DIR --out result.json

Both modes do what Intel's human_pose_estimation_demo.py does per frame, minus the window:
read the frame, run the wrapper (resize, infer, Intel's decoder), draw the skeletons.
``sync``: ``model(frame)`` one frame at a time (PERFORMANCE_HINT LATENCY).  ``async``: Intel's
``AsyncPipeline`` keeping several requests in flight (PERFORMANCE_HINT THROUGHPUT), results
taken in frame order.  Output JSON: fps, wall_s, latency_ms p50/p95, and per frame the people
found (COCO-17 keypoints x, y, score in frame pixels).
``--images DIR`` (for the accuracy benchmark): every image of the folder, in name order, through
the wrapper in sync mode, as their demo runs one input: the model is reshaped to the image's
aspect ratio (one compiled model per input width).  Output JSON: per image its file name, the
people (COCO-17) and Intel's person scores.
"""

from __future__ import annotations

import argparse
import os
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

# COCO-17 limbs drawn, as Intel's demo draws them (keypoint index pairs).
COCO_LIMBS = ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
              (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6))
POINT_THRESHOLD = 0.1


def draw_poses(image: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """Skeletons drawn on a copy of ``image`` (keypoints with score > threshold, limbs between)."""
    canvas = image.copy()
    for pose in poses:
        points = pose[:, :2].astype(np.int32)
        present = pose[:, 2] > POINT_THRESHOLD
        for index in np.flatnonzero(present):
            cv2.circle(canvas, tuple(int(v) for v in points[index]), 2, (0, 255, 255), cv2.FILLED)
        for a, b in COCO_LIMBS:
            if present[a] and present[b]:
                cv2.line(canvas, tuple(int(v) for v in points[a]), tuple(int(v) for v in points[b]),
                         (255, 128, 0), 2, cv2.LINE_AA)
    return canvas


def build_model(model_xml: str, frame_shape: tuple[int, ...], mode: str, max_requests: int):
    """Intel's OpenPose wrapper over an OpenvinoAdapter, configured as their demo does."""
    from openvino.model_zoo.model_api.adapters import OpenvinoAdapter, create_core
    from openvino.model_zoo.model_api.models import OpenPose

    hint = "LATENCY" if mode == "sync" else "THROUGHPUT"
    config = {"PERFORMANCE_HINT": hint}
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() in ("AVX2", "AVX"):
        # kernels capped at AVX2 (an AVX2 machine emulated on a newer CPU): OpenVINO still sees
        # the CPU's bf16 and would use it; on a real AVX2 CPU its default is f32
        config["INFERENCE_PRECISION_HINT"] = "f32"
    adapter = OpenvinoAdapter(create_core(), model_xml, device="CPU", plugin_config=config,
                              max_num_requests=1 if mode == "sync" else max_requests)
    settings = {"target_size": None, "aspect_ratio": frame_shape[1] / frame_shape[0],
                "confidence_threshold": POINT_THRESHOLD}
    return OpenPose(adapter, settings, preload=True)


def first_frame_shape(video: str) -> tuple[int, ...]:
    capture = cv2.VideoCapture(video)
    ok, frame = capture.read()
    capture.release()
    if not ok:
        raise SystemExit(f"error: cannot read a frame from {video}")
    return frame.shape


def run_sync(model, video: str, max_frames: int | None) -> tuple[list, list, float]:
    """Frames one at a time: (people per frame, latency per frame in s, wall seconds)."""
    capture = cv2.VideoCapture(video)
    people, latencies = [], []
    started = time.perf_counter()
    while max_frames is None or len(people) < max_frames:
        read_at = time.perf_counter()
        ok, frame = capture.read()
        if not ok:
            break
        (poses, _scores), _meta = model(frame)
        draw_poses(frame, poses)
        people.append(np.asarray(poses, dtype=np.float32))
        latencies.append(time.perf_counter() - read_at)
    wall_s = time.perf_counter() - started
    capture.release()
    return people, latencies, wall_s


def run_async(model, video: str, max_frames: int | None) -> tuple[list, list, float]:
    """Intel's AsyncPipeline: submit while a request is free, show results in frame order."""
    from openvino.model_zoo.model_api.pipelines import AsyncPipeline

    pipeline = AsyncPipeline(model)
    capture = cv2.VideoCapture(video)
    people, latencies = [], []
    next_id = shown_id = 0
    ended = False
    started = time.perf_counter()
    while not ended or shown_id < next_id:
        if pipeline.callback_exceptions:
            raise pipeline.callback_exceptions[0]
        result = pipeline.get_result(shown_id)
        if result:
            (poses, _scores), meta = result
            draw_poses(meta["frame"], poses)
            people.append(np.asarray(poses, dtype=np.float32))
            latencies.append(time.perf_counter() - meta["read_at"])
            shown_id += 1
            continue
        if not ended and pipeline.is_ready():
            read_at = time.perf_counter()
            ok, frame = capture.read() if max_frames is None or next_id < max_frames else (False, None)
            if not ok:
                ended = True
                pipeline.await_all()
                continue
            pipeline.submit_data(frame, next_id, {"frame": frame, "read_at": read_at})
            next_id += 1
        else:
            pipeline.await_any()
    wall_s = time.perf_counter() - started
    capture.release()
    return people, latencies, wall_s


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


def run_images(model_xml: str, folder: Path) -> dict:
    """Every image of ``folder`` through the wrapper: file, people (COCO-17) and scores each."""
    models: dict[int, object] = {}
    images = []
    started = time.perf_counter()
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS):
        frame = cv2.imread(str(path))
        if frame is None:
            raise SystemExit(f"error: not an image: {path}")
        model = models.get(_input_width(models, frame.shape))
        if model is None:                                     # one compiled model per input width
            model = build_model(model_xml, frame.shape, "sync", 1)
            models[int(model.w)] = model
        (poses, scores), _meta = model(frame)
        images.append({"file": path.name, "people": np.asarray(poses, dtype=np.float32).round(2).tolist(),
                       "scores": np.asarray(scores, dtype=np.float32).round(5).tolist()})
    return {"mode": "images", "frames": len(images), "wall_s": round(time.perf_counter() - started, 3),
            "models_compiled": len(models), "images": images}


def _input_width(models: dict, frame_shape: tuple[int, ...]) -> int | None:
    """The wrapper's input width for this frame (its own rounding), once a model gave the height."""
    if not models:
        return None
    model = next(iter(models.values()))
    width = round(model.h * frame_shape[1] / frame_shape[0])
    return (width + model.size_divisor - 1) // model.size_divisor * model.size_divisor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="human-pose-estimation-0001.xml")
    inputs = parser.add_mutually_exclusive_group(required=True)
    inputs.add_argument("--video", help="video file (read with OpenCV)")
    inputs.add_argument("--images", type=Path, help="folder of images (accuracy: people per image)")
    parser.add_argument("--mode", choices=("sync", "async"), default="sync")
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument("--requests", type=int, default=0,
                        help="async: infer requests in flight (0: OpenVINO's optimal number + 1)")
    parser.add_argument("--out", type=Path, help="write the JSON result here (default: stdout)")
    args = parser.parse_args(argv)
    if not Path(args.model).is_file():
        print(f"error: model not found: {args.model}", file=sys.stderr)
        return 2
    if args.images is not None:
        _write(run_images(args.model, args.images), args.out)
        return 0
    model = build_model(args.model, first_frame_shape(args.video), args.mode, args.requests)
    run = run_sync if args.mode == "sync" else run_async
    run(model, args.video, 5)                                   # warm-up, as our pipeline does
    people, latencies, wall_s = run(model, args.video, args.max_frames)
    latency_ms = np.asarray(latencies) * 1000.0
    from openvino.runtime import get_version

    result = {
        "mode": args.mode, "frames": len(people), "wall_s": round(wall_s, 3),
        "fps": round(len(people) / wall_s, 2) if wall_s > 0 else 0.0,
        "latency_ms": {"p50": round(float(np.percentile(latency_ms, 50)), 2),
                       "p95": round(float(np.percentile(latency_ms, 95)), 2)} if len(people) else {},
        "input_size": [int(model.h), int(model.w)], "openvino": get_version(),
        "people": [pose.round(2).tolist() for pose in people],
    }
    _write(result, args.out)
    return 0


def _write(result: dict, out: Path | None) -> None:
    text = json.dumps(result)
    if out:
        out.write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    sys.exit(main())

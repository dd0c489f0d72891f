"""The two loops the original projects run, rewritten here to time them beside our pipeline.

Both are sequential, torch fp32 eager with torch's default threads, on the same networks and
(for untrained networks) the same realistic maps as our pipeline (``bench_media.MapDonor``).
Written after the projects' methods, not their code:

- ``lightweight``: the lightweight-OpenPose demo loop (Osokin's demo.py): frame resized to net
  height 256 (bicubic, fx = fy), normalised, padded to a multiple of 8 centred left/right; the
  network; maps resized x4 bicubic; its decoder (``reference_lightweight_decoder``); keypoints
  mapped back; skeletons drawn and blended 60/40 with the frame.  The window and its 33 ms
  ``waitKey`` pause are left out (that would cap it at 30 fps), as is id tracking (our pipeline
  runs without tracking too).
- ``cmu``: the original CMU loop as its PyTorch port runs it (pytorch-openpose body.py): one
  scale, 0.5 x 368 / frame height (net height 184 on 480-line frames), bicubic resize, pad
  bottom/right with 128, x/256 - 0.5; the network; maps resized x8 bicubic, the padding cropped,
  resized again to the full frame (bicubic); Gaussian-blurred peaks, per-pair PAF loops and
  grouping (``reference_decoder``, the same steps on full-frame maps); skeletons drawn as its
  util.draw_bodypose does (each limb a filled ellipse blended onto the canvas).

``run_reference_loop(kind, clip, …)`` returns the same report shape as the pipeline's stats
(frames, fps, latency, per-stage p50/p95 under the pipeline's stage names) plus the people found.
"""

from __future__ import annotations

import math
import time
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np

from benchmarks.bench_worker import CpuUse
from benchmarks.reference_decoder import connect_limb, find_candidates, group_candidates  # full-frame maps
from benchmarks.reference_lightweight_decoder import UPSAMPLE, lightweight_decode, upsample_maps
from stages.postprocess import DecoderParams
from stages.skeleton import LIMBS, NUM_DRAWN_LIMBS
from stream.stats import StatsRecorder

LIGHTWEIGHT, CMU = "lightweight", "cmu"
LOOPS = {LIGHTWEIGHT: "lightweight-OpenPose demo loop", CMU: "original CMU loop (pytorch-openpose)"}
LIGHTWEIGHT_HEIGHT = 256
CMU_BOX_SIZE, CMU_SCALE = 368, 0.5
CMU_PAD_VALUE = 128
STRIDE = 8


def cmu_net_height(frame_height: int) -> int:
    """The CMU loop's net input height before padding: round(frame height x 0.5 x 368 / frame height)."""
    return round(frame_height * CMU_SCALE * CMU_BOX_SIZE / frame_height)


class _Network:
    """The torch network, or its realistic-map stand-in: runs the network, returns donor maps."""

    def __init__(self, model: Any, donor: Any | None, device: Any):
        self.model = model
        self.donor = donor
        self.device = device
        self.frame = 0

    def __call__(self, net_input: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.no_grad():
            heatmaps, pafs = self.model(torch.from_numpy(net_input).to(self.device))
            heatmaps, pafs = heatmaps[0].float().cpu().numpy(), pafs[0].float().cpu().numpy()
        if self.donor is not None:
            heatmaps, pafs = self.donor.maps_of(self.frame % len(self.donor))
        self.frame += 1
        return heatmaps, pafs


# -- the lightweight-OpenPose demo loop ------------------------------------------------------------

def _lightweight_prepare(image: np.ndarray, spec: Any) -> tuple[np.ndarray, float, tuple[int, int]]:
    scale = LIGHTWEIGHT_HEIGHT / image.shape[0]
    resized = cv2.resize(image, (0, 0), fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    normalised = (resized.astype(np.float32) - np.float32(spec.mean)) * np.float32(spec.scale)
    height, width = normalised.shape[:2]
    padded_height = math.ceil(max(height, LIGHTWEIGHT_HEIGHT) / STRIDE) * STRIDE
    padded_width = math.ceil(max(width, LIGHTWEIGHT_HEIGHT) / STRIDE) * STRIDE
    top, left = (padded_height - height) // 2, (padded_width - width) // 2
    pad_normalised = (float(spec.pad_value) - float(spec.mean)) * float(spec.scale)
    padded = cv2.copyMakeBorder(normalised, top, padded_height - height - top, left,
                                padded_width - width - left, cv2.BORDER_CONSTANT,
                                value=(pad_normalised,) * 3)
    return np.ascontiguousarray(padded.transpose(2, 0, 1)[np.newaxis]), scale, (top, left)


def _lightweight_decode(heatmaps: np.ndarray, pafs: np.ndarray, scale: float,
                        pad: tuple[int, int]) -> np.ndarray:
    people = lightweight_decode(upsample_maps(heatmaps), upsample_maps(pafs))
    present = people[..., 2] > 0
    people[..., 0] = np.where(present, (people[..., 0] * STRIDE / UPSAMPLE - pad[1]) / scale, 0)
    people[..., 1] = np.where(present, (people[..., 1] * STRIDE / UPSAMPLE - pad[0]) / scale, 0)
    return people


def _lightweight_draw(image: np.ndarray, people: np.ndarray) -> np.ndarray:
    canvas = image.copy()
    for person in people:
        points = person[:, :2].astype(np.int32)
        for limb in LIMBS[:NUM_DRAWN_LIMBS]:
            for part in (limb.part_a, limb.part_b):
                if person[part, 2] > 0:
                    cv2.circle(canvas, (int(points[part, 0]), int(points[part, 1])), 3, (0, 255, 255), -1)
            if person[limb.part_a, 2] > 0 and person[limb.part_b, 2] > 0:
                cv2.line(canvas, tuple(map(int, points[limb.part_a])), tuple(map(int, points[limb.part_b])),
                         (0, 255, 255), 2)
    return cv2.addWeighted(image, 0.6, canvas, 0.4, 0)


# -- the original CMU loop ------------------------------------------------------------------------

def _cmu_prepare(image: np.ndarray, spec: Any) -> tuple[np.ndarray, float, tuple[int, int]]:
    scale = CMU_SCALE * CMU_BOX_SIZE / image.shape[0]
    resized = cv2.resize(image, (0, 0), fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    height, width = resized.shape[:2]
    pad_bottom, pad_right = (-height) % STRIDE, (-width) % STRIDE
    padded = cv2.copyMakeBorder(resized, 0, pad_bottom, 0, pad_right, cv2.BORDER_CONSTANT,
                                value=(CMU_PAD_VALUE,) * 3)
    net_input = (padded.astype(np.float32).transpose(2, 0, 1)[np.newaxis] - np.float32(spec.mean)) \
        * np.float32(spec.scale)
    return np.ascontiguousarray(net_input), scale, (pad_bottom, pad_right)


def _cmu_full_size(maps: np.ndarray, pad: tuple[int, int], frame_shape: tuple[int, ...]) -> np.ndarray:
    up = cv2.resize(np.ascontiguousarray(maps.transpose(1, 2, 0)), (0, 0), fx=STRIDE, fy=STRIDE,
                    interpolation=cv2.INTER_CUBIC)
    up = up[:up.shape[0] - pad[0], :up.shape[1] - pad[1], :]
    return cv2.resize(up, (frame_shape[1], frame_shape[0]), interpolation=cv2.INTER_CUBIC)


def _cmu_decode(heatmaps: np.ndarray, pafs: np.ndarray, frame_shape: tuple[int, ...],
                pad: tuple[int, int], params: DecoderParams = DecoderParams()) -> np.ndarray:
    heatmaps_full = _cmu_full_size(heatmaps, pad, frame_shape)
    pafs_full = _cmu_full_size(pafs, pad, frame_shape)
    candidates = find_candidates(heatmaps_full, params.peak_threshold)
    connections = [connect_limb(pafs_full, candidates, limb, params) for limb in LIMBS]
    return group_candidates(candidates, connections, params)


def _cmu_draw(image: np.ndarray, people: np.ndarray) -> np.ndarray:
    canvas = image.copy()
    for person in people:
        for x, y, score in person:
            if score > 0:
                cv2.circle(canvas, (int(x), int(y)), 4, (0, 0, 255), thickness=-1)
    for limb in LIMBS[:NUM_DRAWN_LIMBS]:
        for person in people:
            a, b = person[limb.part_a], person[limb.part_b]
            if a[2] <= 0 or b[2] <= 0:
                continue
            layer = canvas.copy()
            centre = (int((a[0] + b[0]) / 2), int((a[1] + b[1]) / 2))
            length = int(math.hypot(a[0] - b[0], a[1] - b[1]) / 2)
            angle = int(math.degrees(math.atan2(a[1] - b[1], a[0] - b[0])))
            polygon = cv2.ellipse2Poly(centre, (length, 4), angle, 0, 360, 1)
            cv2.fillConvexPoly(layer, polygon, (255, 0, 0))
            canvas = cv2.addWeighted(canvas, 0.4, layer, 0.6, 0)
    return canvas


# -- running a loop -------------------------------------------------------------------------------

def run_reference_loop(kind: str, clip: str, backbone: str, weights: str | None, donor: Any | None,
                       max_frames: int | None = None, max_seconds: float | None = None,
                       device: str = "cpu") -> dict:
    """Run one reference loop over ``clip``; the pipeline's report shape + ``people`` per frame.
    ``device``: where the network runs (the originals move it to CUDA when asked)."""
    import backbones

    spec = backbones.get_spec(backbone).preprocess
    target = backbones.resolve_device(device)
    network = _Network(backbones.build(backbone, weights=weights, device=target), donor, target)
    prepare_input = _lightweight_prepare if kind == LIGHTWEIGHT else _cmu_prepare
    capture = cv2.VideoCapture(clip)
    ok, first = capture.read()
    if ok:                                              # warm up once, as our pipeline does
        network(prepare_input(first, spec)[0])
        network.frame = 0
    capture.release()
    capture = cv2.VideoCapture(clip)
    stats, people_per_frame = StatsRecorder(), []
    with CpuUse() as cpu:
        stats.start()
        deadline = time.monotonic() + max_seconds if max_seconds else None
        while max_frames is None or len(people_per_frame) < max_frames:
            if deadline is not None and time.monotonic() >= deadline:
                break
            people = _one_frame(kind, capture, network, prepare_input, spec, stats)
            if people is None:
                break
            people_per_frame.append(people)
        stats.finish()
    capture.release()
    report = stats.report()
    report.update(cpu.percentages())
    report["people"] = people_per_frame
    return report


def _one_frame(kind: str, capture: Any, network: _Network, prepare_input: Any, spec: Any,
               stats: StatsRecorder) -> np.ndarray | None:
    """Read, prepare, infer, decode and draw one frame, timing each step; None at the end."""
    started = time.perf_counter()
    capture_time = time.monotonic()
    ok, image = capture.read()
    if not ok:
        return None
    times = [time.perf_counter()]
    net_input, scale, pad = prepare_input(image, spec)
    times.append(time.perf_counter())
    heatmaps, pafs = network(net_input)
    times.append(time.perf_counter())
    if kind == LIGHTWEIGHT:
        people = _lightweight_decode(heatmaps, pafs, scale, pad)
    else:
        people = _cmu_decode(heatmaps, pafs, image.shape, pad)
    times.append(time.perf_counter())
    (_lightweight_draw if kind == LIGHTWEIGHT else _cmu_draw)(image, people)
    times.append(time.perf_counter())
    steps = ("capture", "preprocess", "inference", "postprocess", "render")
    for name, begin, end in zip(steps, [started] + times[:-1], times):
        stats.record_stage(name, end - begin)
    stats.record_done(SimpleNamespace(capture_time=capture_time))
    return people

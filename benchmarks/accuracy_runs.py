"""What the accuracy benchmark runs: one configuration of the real pipeline over an image folder.

A ``Setup`` is a plain set of configuration values (backbone, engine, precision, input height,
weights, any other config key such as ``postprocess.min_parts``), decoder values given to the
decoder directly (``DecoderParams`` fields, the tuning internals included) and which decoder runs.
``run_images`` runs ``stream.pipeline.Pipeline`` (the code path of ``run_stream.py --source FOLDER
--json …``) over the folder and returns the JSON lines it wrote and its stats report.

Identical maps for two decoders: ``MapsRecorder`` wraps the engine of a first run and keeps every
map it returns (by a fingerprint of the net input); ``MapsReplay`` hands those very maps to a
second run without running the network, so the x8 reference decoder (``decoder="x8"``) and ours
decode bit-identical maps, and threshold tuning can re-decode without re-inferring.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from benchmarks.bench_media import fingerprint
from benchmarks.coco_eval import read_lines

log = logging.getLogger(__name__)

OURS, X8 = "ours", "x8"
DECODERS = (OURS, X8)


@dataclass(frozen=True)
class Setup:
    """One configuration: config values and the decoder.

    height None = the backbone's default; settings: other config values (dotted keys), e.g.
    ``(("postprocess.min_parts", 4),)``; decoder_values: ``DecoderParams`` fields over the
    config's, e.g. ``(("paf_threshold", 0.1),)``; role: why it is in the table (e.g. "default
    command").
    """

    backbone: str
    engine: str = "auto"
    precision: str = "auto"
    height: int | None = None
    weights: str | None = None
    decoder: str = OURS
    settings: tuple[tuple[str, Any], ...] = ()
    decoder_values: tuple[tuple[str, Any], ...] = ()
    role: str = ""

    def config_values(self) -> dict[str, Any]:
        values = {"model.backbone": self.backbone, "model.weights": self.weights,
                  "model.input_height": self.height, "inference.engine": self.engine,
                  "inference.precision": self.precision}
        values.update(dict(self.settings))
        return values

    @property
    def label(self) -> str:
        height = f"h{self.height}" if self.height else "default height"
        text = f"{self.backbone} {self.engine} {self.precision} {height}"
        if self.decoder != OURS:
            text += f", {self.decoder} decoder"
        if self.settings or self.decoder_values:
            text += ", " + ", ".join(f"{key}={value}" for key, value in self.settings + self.decoder_values)
        return text

    def decoder_params(self, config: Any) -> Any:
        """The ``DecoderParams`` this setup decodes with: the config's, ``decoder_values`` over them."""
        return replace(config.postprocess.params(), **dict(self.decoder_values))


@dataclass(frozen=True)
class RecordedMaps:
    """The maps of one run per net-input fingerprint, and what a replay needs of its engine."""

    maps: dict[bytes, tuple[np.ndarray, np.ndarray]]
    preprocess: Any
    stride: int
    engine: str


@dataclass
class ImagesRun:
    """What one run over the image folder gave: JSON-lines records, the stats report, the
    engine's description, and the maps when they were recorded."""

    records: list[dict]
    report: dict[str, Any]
    engine: str
    recorded: RecordedMaps | None = None


def pipeline_values(setup: Setup, folder: Path, json_path: Path) -> dict[str, Any]:
    """The run's config values: the project's defaults, the setup's, and the image folder in,
    JSON lines out, no window, no progress bar of its own unless on a terminal."""
    return {**setup.config_values(), "source.uri": str(folder), "output.json": str(json_path),
            "output.display": False, "run.log_level": "WARNING"}


def run_images(setup: Setup, folder: Path, record_maps: bool = False,
               replay: RecordedMaps | None = None) -> ImagesRun:
    """The pipeline over ``folder`` as ``setup`` says.  record_maps: keep the maps; replay:
    use these recorded maps instead of loading and running the network."""
    from stages.engines import describe
    from stream.config import load_config
    from stream.pipeline import Pipeline
    from stream.runtime import load_engine

    with tempfile.TemporaryDirectory(prefix="posestream-accuracy-") as tmp:
        json_path = Path(tmp) / "people.jsonl"
        config = load_config(None, values=pipeline_values(setup, folder, json_path))
        if replay is None:
            from stream.auto import resolve

            config = resolve(config)        # what the CLI would run: auto decided
        if replay is not None:
            engine: Any = MapsReplay(replay)
            described = replay.engine
        else:
            engine = load_engine(config)
            described = describe(engine)
            if record_maps:
                engine = MapsRecorder(engine)
        params = setup.decoder_params(config)
        with Pipeline(config, engine=engine) as pipeline:
            use_decoder(pipeline, x8_decoder(params) if setup.decoder == X8 else None, params)
            report = pipeline.run()
        records = read_lines(json_path) if json_path.is_file() else []
    recorded = None
    if isinstance(engine, MapsRecorder):
        recorded = RecordedMaps(engine.maps, engine.preprocess, engine.stride, described)
    return ImagesRun(records, report, described, recorded)


def use_decoder(pipeline: Any, decode: Callable[..., Any] | None, params: Any) -> None:
    """Decode with ``params`` (``DecoderParams``) in the opened pipeline's postprocess stage, and
    with ``decode`` (``decode_people``'s signature) instead of ours unless it is None."""
    if not pipeline.stages:
        pipeline.open()
    stage = next(stage for stage in pipeline.stages if stage.name == "postprocess")
    stage.decoder_params = asdict(params)
    if decode is not None:
        stage.decode_people = decode


def x8_decoder(params: Any) -> Callable[..., Any]:
    """The x8-upsampling reference decoder with these thresholds (``DecoderParams``), in the
    signature the postprocess stage calls."""
    from benchmarks.reference_decoder import reference_decode_people

    def decode(heatmaps: Any, pafs: Any, stride: int = 8, **_params: Any) -> Any:
        return reference_decode_people(np.asarray(heatmaps), np.asarray(pafs), stride, params)

    return decode


class MapsRecorder:
    """An engine that runs ``engine`` and keeps a copy of every frame's maps, by fingerprint."""

    def __init__(self, engine: Any):
        self.engine = engine
        self.maps: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()
        self.name = getattr(engine, "name", "engine")
        self.preprocess, self.stride = engine.preprocess, engine.stride
        self.workers = getattr(engine, "workers", 1)

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        heatmaps, pafs = self.engine(batch)
        with self._lock:
            for net_input, frame_heatmaps, frame_pafs in zip(batch, heatmaps, pafs):
                self.maps[fingerprint(net_input)] = (np.array(frame_heatmaps, dtype=np.float32),
                                                     np.array(frame_pafs, dtype=np.float32))
        return heatmaps, pafs


class MapsReplay:
    """An engine that returns recorded maps for the net inputs it is given (no network)."""

    def __init__(self, recorded: RecordedMaps):
        self.maps = recorded.maps
        self.name = "replayed-maps"
        self.preprocess, self.stride = recorded.preprocess, recorded.stride
        self.workers = 1

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        found = [self.maps.get(fingerprint(net_input)) for net_input in batch]
        if any(maps is None for maps in found):
            raise ValueError("a net input the maps were not recorded for (other images or size)")
        return np.stack([h for h, _ in found]), np.stack([p for _, p in found])

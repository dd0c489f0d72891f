"""The run's configuration: typed, frozen pydantic models, validated once.

``load_config(path, overrides, values)`` reads a YAML file (optional), applies CLI shortcuts
(``values``: dotted key → value) and ``--set dotted.key=value`` overrides (values parsed as YAML),
then validates everything into a frozen :class:`Config`.  Unknown keys (with the nearest valid
key suggested), wrong types and out-of-range values raise ``ConfigError`` naming the dotted key.
Defaults live only in these models, and for the ``postprocess``, ``tracking`` and ``smoothing``
sections in the dataclasses of the decoder, tracker and smoother: those sections expose the few
fields users turn (``section.params()`` builds the dataclass); the other fields are tuning
internals, set from Python only, and a config that names one gets an error saying so.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal, Mapping, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from posestream_common.errors import ConfigError
from stages.postprocess.params import DecoderParams
from stages.skeleton import keypoint_index, limb_index
from stages.smoothing import SmootherParams
from stages.tracking import TrackerParams
from stream.config_errors import config_error
from stream.events.settings import EventsConfig, SourceEventsConfig, check_source_rules, tracking_for_rules

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
SERVE_TOKEN_ENV = "POSESTREAM_SERVE_TOKEN"   # output.serve_token where the config leaves it unset


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PipelineConfig(_Section):
    queue_size: int = Field(4, ge=1)
    mode: Literal["threaded", "sequential"] = "threaded"
    queue_policy: Literal["auto", "block", "drop_oldest", "drop_newest"] = "auto"


class SourceConfig(_Section):
    uri: str | None = None
    name: str | None = None
    open_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(5.0, gt=0)
    reconnect: bool = True
    max_reconnects: int = Field(0, ge=0)
    backoff_initial_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(8.0, gt=0)
    loop: bool = False
    events: SourceEventsConfig | None = None    # this source's own event rules

    @field_validator("uri", mode="before")
    @classmethod
    def _index_as_text(cls, value: Any) -> Any:
        # YAML reads `uri: 0` (a webcam index) as an int.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class ModelConfig(_Section):
    backbone: str = "auto"                              # auto: chosen per machine (stream/auto.py)
    weights: str | None = None
    weights_url: str | None = None
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    input_height: int | None = Field(None, ge=8, le=4096)
    scale: float | None = Field(None, gt=0, le=8)
    plan: Literal["auto", "whole", "crops"] = "auto"
    min_person_px: float = Field(60.0, gt=0, le=10000)
    whole_height: int | None = Field(None, ge=8, le=4096)

    @model_validator(mode="after")
    def _one_size_rule(self) -> "ModelConfig":
        if self.input_height is not None and self.scale is not None:
            raise ValueError("model.scale is an alternative to model.input_height: set only one")
        return self


class InferenceConfig(_Section):
    engine: Literal["auto", "torch", "onnxruntime", "openvino"] = "auto"
    precision: Literal["auto", "fp32", "fp16", "bf16", "int8"] = "auto"
    calibration: str | None = None                      # int8: a video or image folder; None: the run's own frames
    calibration_frames: int = Field(32, ge=1, le=1000)  # int8: frames NNCF calibrates on
    calibrate_first: bool | None = None                 # int8: quantize before the first frame? None: files yes
    threads: int | None = Field(None, ge=1, le=256)
    workers: int | None = Field(None, ge=1, le=16)
    channels_last: bool = True
    compile: bool = False
    warmup: int = Field(1, ge=0, le=100)
    max_batch: int | None = Field(None, ge=1, le=64)


class RenderConfig(_Section):
    show: str = "skeleton"
    line_width: int = Field(3, ge=1, le=64)
    point_radius: int = Field(4, ge=0, le=64)
    draw_ids: bool = True

    @field_validator("show")
    @classmethod
    def _known_view(cls, value: str) -> str:
        kind, _, name = value.partition(":")
        if value in ("skeleton", "none"):
            return value
        if kind == "heatmap" and name:
            keypoint_index(name)
        elif kind == "paf" and name:
            limb_index(name)
        else:
            raise ValueError(f"{value!r} is not skeleton, none, heatmap:PART or paf:LIMB")
        return value


class OutputConfig(_Section):
    video: str | None = None
    json_: str | None = Field(None, alias="json")
    stats: str | None = None
    serve: str | None = None
    serve_token: str | None = Field(None, min_length=1)   # else $POSESTREAM_SERVE_TOKEN
    display: bool | None = None
    events: str | None = None                    # event records as JSON lines (--events)

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @property
    def json(self) -> str | None:  # type: ignore[override]  # the YAML key is `json`
        return self.json_


class RunConfig(_Section):
    max_frames: int | None = Field(None, ge=1)
    max_seconds: float | None = Field(None, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    progress: bool = True
    ray: str | None = None
    target_fps: float = Field(15.0, gt=0, le=1000)     # what auto keeps the stream at


class RayConfig(_Section):
    """How a Ray run (``run.ray`` / ``--ray``) places its actors; see docs/scaling.md."""

    num_cpus: int | None = Field(None, ge=1)                 # a local cluster's CPUs (None = all)
    camera_cpus: float = Field(0.25, gt=0)                   # reserved per camera actor
    inference_actors: int | None = Field(None, ge=1)         # None = one per GPU, else fill the CPUs
    inference_cpus: float = Field(1.0, gt=0)                 # per inference actor (its torch threads)
    inference_gpus: float = Field(1.0, gt=0, le=1)           # per inference actor on a GPU
    max_batch: int = Field(8, ge=1, le=256)                  # frames per forward in an inference actor
    in_flight: int = Field(2, ge=1, le=64)                   # frames per camera in inference at once
    max_restarts: int = Field(3, ge=-1)                      # per actor; -1 = forever
    restart_timeout_s: float = Field(60.0, gt=0)             # an actor silent this long is given up
    poll_s: float = Field(0.05, gt=0, le=5)                  # how often a camera hands results over
    ship_code: bool = True                                   # send the project's packages to a cluster


class _ParamsSection(_Section):
    """The few fields of a params dataclass that users turn, each declared by hand with the
    dataclass's default; building the dataclass checks the ranges.  Its other fields are tuning
    internals, set from Python only (``DecoderParams(...)``, the tuning benchmark)."""

    params_type: ClassVar[type]

    def params(self) -> Any:
        """The params dataclass: this section's values, the dataclass defaults for the rest."""
        return self.params_type(**self.model_dump(exclude={"enabled"}))

    @model_validator(mode="after")
    def _params_check(self) -> "_ParamsSection":
        try:
            self.params()
        except (TypeError, ValueError) as error:
            raise ValueError(str(error)) from None
        return self


class PostprocessConfig(_ParamsSection):
    params_type: ClassVar[type] = DecoderParams
    peak_threshold: float = DecoderParams.peak_threshold
    min_parts: int = DecoderParams.min_parts
    min_mean_score: float = DecoderParams.min_mean_score


class TrackingConfig(_ParamsSection):
    params_type: ClassVar[type] = TrackerParams
    enabled: bool = False
    oks_threshold: float = TrackerParams.oks_threshold
    max_age: int = TrackerParams.max_age


class SmoothingConfig(_ParamsSection):
    params_type: ClassVar[type] = SmootherParams
    enabled: bool = False
    min_cutoff: float = SmootherParams.min_cutoff
    beta: float = SmootherParams.beta


class Config(_Section):
    pipeline: PipelineConfig = PipelineConfig()
    source: SourceConfig = SourceConfig()
    sources: tuple[SourceConfig, ...] = ()
    model: ModelConfig = ModelConfig()
    inference: InferenceConfig = InferenceConfig()
    postprocess: PostprocessConfig = PostprocessConfig()
    render: RenderConfig = RenderConfig()
    tracking: TrackingConfig = TrackingConfig()
    smoothing: SmoothingConfig = SmoothingConfig()
    output: OutputConfig = OutputConfig()
    run: RunConfig = RunConfig()
    ray: RayConfig = RayConfig()
    events: EventsConfig = EventsConfig()

    _rules_track = model_validator(mode="before")(tracking_for_rules)

    @model_validator(mode="after")
    def _sources_fit_outputs(self) -> "Config":
        names = [name for name, _ in self.source_configs()]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"sources: duplicate source name(s) {', '.join(duplicates)}")
        if len(names) > 1 and self.output.video and "{source}" not in self.output.video:
            raise ValueError("output.video: needs a {source} placeholder in the path with several sources")
        check_source_rules(self)
        return self

    def source_configs(self) -> list[tuple[str, SourceConfig]]:
        """(name, settings) of every source: ``sources`` entries inherit unset keys from ``source``."""
        if not self.sources:
            return [(self.source.name or "cam0", self.source)]
        merged = []
        for position, entry in enumerate(self.sources):
            settings = self.source.model_copy(
                update={"uri": entry.uri, **{key: getattr(entry, key) for key in entry.model_fields_set}})
            merged.append((settings.name or f"cam{position}", settings))
        return merged


def load_config(path: str | Path | None = None, overrides: Sequence[str] = (),
                values: Mapping[str, Any] | None = None) -> Config:
    """Read, override and validate the configuration.

    path: a YAML file (or the name of one in configs/); None = the models' defaults.
    values: dotted key → value, already typed (the CLI's shortcut flags).
    overrides: ``dotted.key=value`` strings; each value is parsed as YAML (``4``, ``true``,
    ``null``, ``[a, b]``).  Later layers win: file, then values, then overrides.
    """
    data: dict[str, Any] = {}
    origin: dict[str, str] = {}
    file_label = None
    if path is not None:
        config_path = _resolve(path)
        file_label = str(path)
        data = _read_yaml(config_path)
    for key, value in (values or {}).items():
        _set_dotted(data, key, value)
        origin[key] = "command-line flag"
    for text in overrides:
        key, value = _parse_override(text)
        _set_dotted(data, key, value)
        origin[key] = f"--set {text}"
    _token_from_environment(data, origin)
    try:
        return Config.model_validate(data)
    except ValidationError as error:
        raise config_error(Config, error, origin, file_label) from None


def _token_from_environment(data: dict[str, Any], origin: dict[str, str]) -> None:
    """``output.serve_token`` from ``$POSESTREAM_SERVE_TOKEN`` (when set and not empty) where no
    other layer set it."""
    token = os.environ.get(SERVE_TOKEN_ENV)
    output = data.get("output")
    if not token or (isinstance(output, dict) and output.get("serve_token") is not None):
        return
    _set_dotted(data, "output.serve_token", token)
    origin["output.serve_token"] = f"environment variable {SERVE_TOKEN_ENV}"


def _resolve(path: str | Path) -> Path:
    candidate = Path(path)
    if candidate.is_file():
        return candidate
    named = CONFIG_DIR / f"{candidate.name}.yaml"
    if candidate.suffix == "" and named.is_file():
        return named
    raise ConfigError(f"config file not found: {path}")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{path}: malformed YAML{where}: {problem}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read config file: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config must be a mapping of sections, got {type(data).__name__}")
    # A section whose keys are all commented out reads as null: treat it as empty.
    return {key: ({} if value is None and key != "sources" else value) for key, value in data.items()}


def _parse_override(text: str) -> tuple[str, Any]:
    key, separator, raw = text.partition("=")
    key = key.strip()
    if not separator or not key:
        raise ConfigError(f"--set {text!r}: expected dotted.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key, value


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value

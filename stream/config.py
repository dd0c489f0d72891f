"""The run's configuration: typed, frozen pydantic models, validated once.

``load_config(path, overrides, values)`` reads a YAML file (optional), applies CLI shortcuts
(``values``: dotted key → value) and ``--set dotted.key=value`` overrides (values parsed as YAML),
then validates everything into a frozen :class:`Config`.  Unknown keys (with the nearest valid
key suggested), wrong types and out-of-range values raise ``ConfigError`` naming the dotted key.
Defaults live only in these models (and the dataclasses of the decoder, tracker and smoother,
whose fields become the ``postprocess``, ``tracking`` and ``smoothing`` sections).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import os
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

from posestream_common.errors import ConfigError
from stages.skeleton import keypoint_index, limb_index

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

    @field_validator("uri", mode="before")
    @classmethod
    def _index_as_text(cls, value: Any) -> Any:
        # YAML reads `uri: 0` (a webcam index) as an int.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class ModelConfig(_Section):
    backbone: str = "mobilenet_thin"
    weights: str | None = None
    weights_url: str | None = None
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    input_height: int | None = Field(None, ge=8, le=4096)
    scale: float | None = Field(None, gt=0, le=8)
    plan: Literal["auto", "whole", "crops"] = "auto"
    min_person_px: float = Field(60.0, gt=0, le=10000)

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


def _section_from_dataclass(module_name: str, class_name: str, model_name: str,
                            with_enabled: bool) -> type[_Section]:
    """A config section whose keys are a params dataclass's fields (plus ``enabled``).

    The dataclass stays the one place its defaults live; building it checks its own ranges.  When
    the module does not exist yet, the section holds only ``enabled``.
    """
    extra: dict[str, Any] = {"enabled": (bool, False)} if with_enabled else {}
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as missing:
        if not module_name.startswith(str(missing.name)):
            raise
        module = None
    params_type = getattr(module, class_name, None)
    if params_type is None:
        return create_model(model_name, __base__=_Section, **extra)
    hints = typing.get_type_hints(params_type)
    fields = {}
    for field in dataclasses.fields(params_type):
        if not field.init:
            continue
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        fields[field.name] = (hints[field.name], default)

    def build_params(section: Any) -> Any:
        try:
            params_type(**{name: getattr(section, name) for name in fields})
        except (TypeError, ValueError) as error:
            raise ValueError(str(error)) from None
        return section

    model = create_model(model_name, __base__=_Section,
                         __validators__={"_params_check": model_validator(mode="after")(build_params)},
                         **extra, **fields)
    model.params_type = params_type
    return model


PostprocessConfig = _section_from_dataclass("stages.postprocess", "DecoderParams", "PostprocessConfig", False)
TrackingConfig = _section_from_dataclass("stages.tracking", "TrackerParams", "TrackingConfig", True)
SmoothingConfig = _section_from_dataclass("stages.smoothing", "SmootherParams", "SmoothingConfig", True)


def section_params(section: BaseModel) -> dict[str, Any]:
    """A dataclass-backed section's values without ``enabled`` (the params dataclass's kwargs)."""
    return {name: value for name, value in section if name != "enabled"}


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

    @model_validator(mode="after")
    def _sources_fit_outputs(self) -> "Config":
        names = [name for name, _ in self.source_configs()]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"sources: duplicate source name(s) {', '.join(duplicates)}")
        if len(names) > 1 and self.output.video and "{source}" not in self.output.video:
            raise ValueError("output.video: needs a {source} placeholder in the path with several sources")
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
        raise _as_config_error(error, origin, file_label) from None


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


def _as_config_error(error: ValidationError, origin: Mapping[str, str], file_label: str | None) -> ConfigError:
    """One readable line for the first validation problem, naming the dotted key."""
    problem = error.errors()[0]
    location = list(problem["loc"])
    message = problem["msg"].removeprefix("Value error, ")
    named = _key_named_in(message, location)
    if named is not None:                          # the check named the exact key itself
        location = named
        message = message.split(" ", 1)[1].lstrip(": ")
    key = _dotted(location)
    where = origin.get(key) or next(
        (origin[k] for k in origin if key.startswith((k + ".", k + "["))), None)
    where = where or file_label
    suffix = f" (from {where})" if where else ""
    if problem["type"] == "extra_forbidden":
        parent = _dotted(location[:-1])
        valid = _field_names(Config, location[:-1])
        guess = difflib.get_close_matches(str(location[-1]), valid, n=1)
        hint = f"; did you mean '{_join(parent, guess[0])}'?" if guess else ""
        if not guess and valid:
            hint = f"; valid keys: {', '.join(_join(parent, name) for name in valid)}"
        return ConfigError(f"unknown config key '{key}'{suffix}{hint}")
    if not key:
        return ConfigError(f"invalid config{suffix}: {message}")
    shown = problem.get("input")
    got = f" (got {shown!r})" if not isinstance(shown, (dict, list)) and shown is not None else ""
    return ConfigError(f"invalid value for '{key}'{suffix}: {message}{got}")


def _key_named_in(message: str, location: list[Any]) -> list[Any] | None:
    """The full location of a key a validator's message starts with (``output.video: …``,
    ``oks_threshold must …``, ``DecoderParams.refine must …``), else None."""
    parts = message.split(" ", 1)[0].rstrip(":").split(".")
    if len(message.split(" ", 1)) < 2:
        return None
    if len(parts) > 1 and parts[0] in _field_names(Config, location) and \
            parts[-1] in _field_names(Config, location + parts[:-1]):
        return location + parts
    if parts[-1] in _field_names(Config, location) and not _field_names(Config, location + parts[-1:]):
        return location + parts[-1:]
    return None


def _dotted(location: Sequence[Any]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _join(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def _field_names(model: type[BaseModel], location: Sequence[Any]) -> list[str]:
    """The valid keys of the section at ``location`` (YAML spellings, aliases included)."""
    for part in location:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        nested = _model_in(field.annotation) if field is not None else None
        if nested is None:
            return []
        model = nested
    return [field.alias or name for name, field in model.model_fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None

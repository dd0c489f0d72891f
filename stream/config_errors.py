"""One readable line for a config validation error: the dotted key at fault, where it was set,
and the nearest valid key for an unknown one (or, for a tuning internal of the decoder, tracker or
smoother, that it is set from Python only).  ``stream.config.load_config`` raises what
``config_error`` returns.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from typing import Any, Mapping, Sequence

from pydantic import BaseModel, ValidationError

from posestream_common.errors import ConfigError


def config_error(root: type[BaseModel], error: ValidationError, origin: Mapping[str, str],
                 file_label: str | None) -> ConfigError:
    """One readable line for the first validation problem, naming the dotted key."""
    problem = error.errors()[0]
    location = list(problem["loc"])
    message = problem["msg"].removeprefix("Value error, ")
    named = _key_named_in(root, message, location)
    if named is not None:                          # the check named the exact key itself
        location = named
        message = message.split(" ", 1)[1].lstrip(": ")
    key = _dotted(location)
    where = origin.get(key) or next(
        (origin[k] for k in origin if key.startswith((k + ".", k + "["))), None)
    where = where or file_label
    suffix = f" (from {where})" if where else ""
    if problem["type"] == "extra_forbidden":
        internal = _internal_field(root, location)
        if internal is not None:
            return ConfigError(f"'{key}'{suffix} is not a config key: it is an internal tuning value "
                               f"({internal}, set from Python only)")
        parent = _dotted(location[:-1])
        valid = _field_names(root, location[:-1])
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


def _key_named_in(root: type[BaseModel], message: str, location: list[Any]) -> list[Any] | None:
    """The full location of a key a validator's message starts with (``output.video: …``,
    ``oks_threshold must …``, ``DecoderParams.refine must …``), else None."""
    parts = message.split(" ", 1)[0].rstrip(":").split(".")
    if len(message.split(" ", 1)) < 2:
        return None
    if len(parts) > 1 and parts[0] in _field_names(root, location) and \
            parts[-1] in _field_names(root, location + parts[:-1]):
        return location + parts
    if parts[-1] in _field_names(root, location) and not _field_names(root, location + parts[-1:]):
        return location + parts[-1:]
    return None


def _dotted(location: Sequence[Any]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _join(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def _internal_field(root: type[BaseModel], location: Sequence[Any]) -> str | None:
    """``DecoderParams.close_peak_fit_error`` where ``location`` is a tuning internal, else None."""
    section = _model_at(root, location[:-1])
    params_type = getattr(section, "params_type", None)
    if params_type is None or str(location[-1]) not in {f.name for f in dataclasses.fields(params_type)}:
        return None
    return f"{params_type.__name__}.{location[-1]}"


def _field_names(model: type[BaseModel], location: Sequence[Any]) -> list[str]:
    """The valid keys of the section at ``location`` (YAML spellings, aliases included)."""
    section = _model_at(model, location)
    return [field.alias or name for name, field in section.model_fields.items()] if section else []


def _model_at(model: type[BaseModel], location: Sequence[Any]) -> type[BaseModel] | None:
    """The section model at ``location`` (list indices skipped), None where it is not a section."""
    for part in location:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        nested = _model_in(field.annotation) if field is not None else None
        if nested is None:
            return None
        model = nested
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None

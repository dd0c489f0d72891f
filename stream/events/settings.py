"""The ``events:`` config section (and a ``sources:`` entry's ``events: {rules: […]}``).

Pydantic models, frozen with unknown keys refused like the rest of ``stream/config.py``.  One
model holds every rule kind; its check refuses the keys a kind does not use and names the key at
fault (``polygon: needs at least 3 points`` becomes ``events.rules[2].polygon: …``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

RULE_KEYS = {   # the keys each kind takes besides name and kind
    "zone": {"polygon", "loiter_seconds"},
    "line": {"points"},
    "person_down": {"seconds"},
    "hands_up": {"seconds"},
    "count": {"seconds", "above", "below", "zone"},
}

Point = tuple[float, float]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EventRuleConfig(_Model):
    """One rule: ``name`` (unique per source) and ``kind``, plus the kind's own keys."""

    name: str = Field(min_length=1)
    kind: Literal["zone", "line", "person_down", "hands_up", "count"]
    seconds: float | None = Field(None, ge=0)
    polygon: tuple[Point, ...] | None = None
    loiter_seconds: float | None = Field(None, ge=0)
    points: tuple[Point, ...] | None = None
    above: int | None = Field(None, ge=0)
    below: int | None = Field(None, ge=1)
    zone: str | None = None

    @field_validator("polygon", "points")
    @classmethod
    def _not_negative(cls, value: Any) -> Any:
        if value is not None and any(coordinate < 0 for point in value for coordinate in point):
            raise ValueError("coordinates are 0-1 fractions of the frame or pixels, never negative")
        return value

    @model_validator(mode="after")
    def _keys_of_kind(self) -> "EventRuleConfig":
        allowed = RULE_KEYS[self.kind]
        for key in sorted(self.model_fields_set - allowed - {"name", "kind"}):
            if getattr(self, key) is not None:
                raise ValueError(f"{key}: not a key of a {self.kind} rule (it takes {', '.join(sorted(allowed))})")
        if self.kind == "zone":
            if self.polygon is None or len(self.polygon) < 3:
                raise ValueError("polygon: needs at least 3 points")
        elif self.kind == "line":
            if self.points is None or len(self.points) != 2:
                raise ValueError("points: needs exactly 2 points")
            if self.points[0] == self.points[1]:
                raise ValueError("points: the 2 points must differ")
        elif self.kind == "count" and (self.above is None) == (self.below is None):
            raise ValueError("above: a count rule takes one of above or below")
        return self


def check_rule_set(rules: tuple[EventRuleConfig, ...], where: str) -> None:
    """Names unique, and each count's ``zone`` names a zone rule of the set (ValueError)."""
    names = [rule.name for rule in rules]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"{where}: duplicate rule name(s) {', '.join(duplicates)}")
    zones = {rule.name for rule in rules if rule.kind == "zone"}
    for rule in rules:
        if rule.zone is not None and rule.zone not in zones:
            raise ValueError(f"{where}: rule {rule.name!r} counts in zone {rule.zone!r}, "
                             f"which is not a zone rule{' (zones: ' + ', '.join(sorted(zones)) + ')' if zones else ''}")


class MqttConfig(_Model):
    """Field names as ``stream.events.mqtt.MqttSettings``."""

    host: str = Field(min_length=1)
    port: int = Field(1883, ge=1, le=65535)
    topic_prefix: str = Field("posestream", min_length=1)
    username: str | None = None
    password: str | None = None


class WebhookConfig(_Model):
    """Field names as ``stream.events.webhooks.WebhookSettings``."""

    url: str = Field(pattern=r"^https?://")
    timeout_s: float = Field(5.0, gt=0)


class ClipsConfig(_Model):
    """Field names as ``stream.events.clips.ClipSettings``."""

    dir: str = Field(min_length=1)
    pre_s: float = Field(5.0, ge=0)
    post_s: float = Field(5.0, ge=0)
    max_mb: float = Field(2000, gt=0)


class EventsConfig(_Model):
    """``rules`` apply to every source; ``snapshots``: a folder for the annotated JPEG of each
    record (default: the clips folder when clips are on, else none)."""

    rules: tuple[EventRuleConfig, ...] = ()
    mqtt: MqttConfig | None = None
    webhooks: tuple[WebhookConfig, ...] = ()
    clips: ClipsConfig | None = None
    snapshots: str | None = None

    @model_validator(mode="after")
    def _rule_set(self) -> "EventsConfig":
        check_rule_set(self.rules, "rules")
        return self

    @property
    def snapshot_dir(self) -> str | None:
        return self.snapshots or (self.clips.dir if self.clips is not None else None)


class SourceEventsConfig(_Model):
    """A ``sources:`` entry's own rules (besides the global ones)."""

    rules: tuple[EventRuleConfig, ...] = ()


def rules_by_source(config: Any) -> dict[str, tuple[EventRuleConfig, ...]]:
    """Source name → its rules: the global ones, then the source entry's own."""
    return {name: config.events.rules + (settings.events.rules if settings.events is not None else ())
            for name, settings in config.source_configs()}


def check_source_rules(config: Any) -> None:
    """Each source's rule set (global + its own) is consistent (ValueError naming the source)."""
    for position, entry in enumerate(config.sources):
        if entry.events is not None and entry.events.rules:
            check_rule_set(config.events.rules + entry.events.rules, f"sources[{position}].events.rules")


def tracking_for_rules(data: Any) -> Any:
    """Config data (before validation) with ``tracking.enabled`` set when any rule exists: rules
    run on tracked people."""
    if not isinstance(data, dict):
        return data
    events = data.get("events")
    has_rules = isinstance(events, dict) and bool(events.get("rules")) or \
        isinstance(events, EventsConfig) and bool(events.rules)
    for entry in data.get("sources") or ():
        entry_events = entry.get("events") if isinstance(entry, dict) else getattr(entry, "events", None)
        has_rules = has_rules or bool(entry_events.get("rules") if isinstance(entry_events, dict)
                                      else getattr(entry_events, "rules", None))
    if not has_rules:
        return data
    tracking = data.get("tracking")
    if isinstance(tracking, BaseModel):
        tracking = tracking.model_copy(update={"enabled": True})
    else:
        tracking = {**(tracking if isinstance(tracking, dict) else {}), "enabled": True}
    return {**data, "tracking": tracking}

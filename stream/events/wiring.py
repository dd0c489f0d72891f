"""Builds the events sink of a run from its config: the rules of each source, the ``--events``
file, snapshots, ``/events`` on the ``--serve`` sink, and the delivery outputs (MQTT, webhooks,
clips), whose modules are imported only when configured.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable

from stream.events.settings import rules_by_source
from stream.events.sink import EventSink

log = logging.getLogger(__name__)


class ServeOutput:
    """``/events`` of the ``--serve`` sink as an event output (the HTTP sink is closed by its
    owner, not here)."""

    def __init__(self, http: Any):
        self.http = http

    def publish(self, record: dict) -> None:
        self.http.records.publish_line(json.dumps(record))

    def counters(self) -> dict:
        records = self.http.records
        return {"sent": records.published, "dropped": records.lost, "queued": 0,
                "connected": records.client_count() > 0}

    def close(self, timeout_s: float = 2.0) -> None:
        """Nothing to do: the HTTP sink closes with the other sinks."""


def delivery_outputs(events: Any) -> dict[str, Any]:
    """name → output for MQTT (``mqtt``) and each webhook (``webhook0``, …), as configured."""
    outputs: dict[str, Any] = {}
    if events.mqtt is not None:
        from stream.events.mqtt import MqttOutput, MqttSettings

        outputs["mqtt"] = MqttOutput(MqttSettings(**events.mqtt.model_dump()))
    for position, hook in enumerate(events.webhooks):
        from stream.events.webhooks import WebhookOutput, WebhookSettings

        outputs[f"webhook{position}"] = WebhookOutput(WebhookSettings(**hook.model_dump()))
    return outputs


def build_event_sink(config: Any, http: Any = None,
                     live_stats: Callable[[], dict] | None = None) -> EventSink | None:
    """The run's events sink, or None when no rule, events file or delivery output is set."""
    events = config.events
    rules = rules_by_source(config)
    wanted = any(rules.values()) or config.output.events or events.mqtt is not None or events.webhooks
    if not wanted:
        return None
    if config.output.events and not any(rules.values()):
        log.warning("--events %s: no rule in events.rules or a source's events.rules, so no event "
                    "will be written", config.output.events)
    outputs = {"serve": ServeOutput(http)} if http is not None and any(rules.values()) else {}
    outputs.update(delivery_outputs(events))
    clips = None
    if events.clips is not None:
        from stream.events.clips import ClipRecorder, ClipSettings

        clips = ClipRecorder(ClipSettings(**events.clips.model_dump()))
    return EventSink(rules, config.output.events, snapshot_dir=events.snapshot_dir, outputs=outputs,
                     clips=clips, live_stats=live_stats)


def events_report(sinks: Any) -> dict | None:
    """The ``events`` stats section of the run's event sink among ``sinks`` (source → MultiSink),
    or None when there is none."""
    for sink in sinks.values():
        for member in getattr(sink, "sinks", [sink]):
            if isinstance(member, EventSink):
                return member.report()
    return None


def attach_turned_look(sinks: Any, config: Any, engine: Any) -> None:
    """Give the run's event sink a ``TurnedLook`` through ``engine`` when a person_down rule runs
    (``stream/events/turned.py``)."""
    sink = next((member for route in sinks.values() for member in getattr(route, "sinks", [route])
                 if isinstance(member, EventSink)), None)
    if sink is None or engine is None or not any(e.watches_down for e in sink.engines.values()):
        return
    from dataclasses import asdict

    from stages.tracking import Tracker
    from stream.events.turned import TurnedLook, network_people

    params = config.tracking.params()
    sink.turned = TurnedLook(network_people(engine, config.model.input_height, config.model.scale,
                                            asdict(config.postprocess.params())),
                             lambda: Tracker(params))

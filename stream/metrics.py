"""``/metrics``: the stats snapshot as Prometheus text exposition, taken at scrape time.

One collector (:class:`StatsCollector`) reads the current stats report (the ``/stats.json``
object, with its ``sources`` section) when Prometheus scrapes and maps its typed fields to
metric families; nothing is counted in the per-frame path, so ``/metrics`` and ``/stats.json``
cannot disagree.  One small function per family; per-source series carry a ``source`` label:

==========================================  =========  ===========================================
``posestream_frames_total``                 counter    frames that left the last stage
``posestream_dropped_frames_total``         counter    frames dropped to keep up (reader, queues)
``posestream_reconnects_total``             counter    successful reconnects of a live source
``posestream_source_up``                    gauge      1 while the source is live, else 0
``posestream_source_state``                 gauge      1 for the source's state label (live, …)
``posestream_people``                       gauge      people in the source's last frame
``posestream_fps``                          gauge      frames per second over the recent frames
``posestream_latency_seconds``              histogram  capture → done, per source
``posestream_stage_seconds``                summary    time per call of each stage (label ``stage``,
                                                       quantiles 0.5 and 0.95 over the run)
``posestream_pose_events_lost_total``       counter    ``/poses`` events a slow client lost
``posestream_http_clients``                 gauge      connected clients per route
``posestream_events_total``                 counter    event acts (starts and instants) per source
                                                       and rule
``posestream_line_crossings_total``         counter    line crossings per source, rule, direction
``posestream_event_output_sent_total``      counter    records an event output delivered (label
                                                       ``output``: file, serve, mqtt, webhook0, …)
``posestream_event_output_dropped_total``   counter    records an event output lost (queue full)
``posestream_event_output_queued``          gauge      records waiting in an event output's queue
``posestream_event_output_connected``       gauge      1 while the output reaches its receiver
==========================================  =========  ===========================================

The exposition itself is written by prometheus_client (``generate_latest``), with its standard
``process_*`` collector beside ours.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)

Report = Mapping[str, Any]
SOURCE_STATES = ("live", "reconnecting", "down")
STAGE_QUANTILES = (("0.5", "p50_ms"), ("0.95", "p95_ms"))

__all__ = ["CONTENT_TYPE_LATEST", "StatsCollector", "metrics_registry", "metrics_text"]


def _sources(report: Report) -> Mapping[str, Mapping[str, Any]]:
    return report.get("sources") or {}


def _per_source(family: Metric, report: Report, field: str) -> Metric:
    for name, section in _sources(report).items():
        family.add_metric([name], section.get(field, 0))
    return family


def frames_family(report: Report) -> Metric:
    return _per_source(CounterMetricFamily(
        "posestream_frames", "Frames that left the last stage.", labels=["source"]), report, "frames")


def dropped_family(report: Report) -> Metric:
    return _per_source(CounterMetricFamily(
        "posestream_dropped_frames", "Frames dropped to keep up with a live source.", labels=["source"]),
        report, "dropped")


def reconnects_family(report: Report) -> Metric:
    return _per_source(CounterMetricFamily(
        "posestream_reconnects", "Successful reconnects of a live source.", labels=["source"]),
        report, "reconnects")


def up_family(report: Report) -> Metric:
    return _per_source(GaugeMetricFamily(
        "posestream_source_up", "1 while the source is live, 0 while reconnecting or down.",
        labels=["source"]), report, "up")


def state_family(report: Report) -> Metric:
    family = GaugeMetricFamily("posestream_source_state", "1 for the state the source is in.",
                               labels=["source", "state"])
    for name, section in _sources(report).items():
        for state in SOURCE_STATES:
            family.add_metric([name, state], int(section.get("state") == state))
    return family


def people_family(report: Report) -> Metric:
    return _per_source(GaugeMetricFamily(
        "posestream_people", "People in the source's last frame.", labels=["source"]), report, "people")


def fps_family(report: Report) -> Metric:
    return _per_source(GaugeMetricFamily(
        "posestream_fps", "Frames per second over the source's recent frames.", labels=["source"]),
        report, "fps_recent")


def latency_family(report: Report) -> Metric:
    family = HistogramMetricFamily("posestream_latency_seconds",
                                   "Seconds from a frame's capture to the end of the pipeline.",
                                   labels=["source"])
    for name, section in _sources(report).items():
        histogram = section.get("latency_histogram")
        if not histogram:
            continue
        buckets = [(_bound(bound), count) for bound, count in zip(histogram["le_s"], histogram["counts"])]
        buckets.append(("+Inf", histogram["count"]))
        family.add_metric([name], buckets, sum_value=histogram["sum_s"])
    return family


def stage_family(report: Report) -> Metric:
    family = SummaryMetricFamily("posestream_stage_seconds", "Seconds per call of each pipeline stage.",
                                 labels=["stage"])
    for stage, timing in (report.get("stages") or {}).items():
        count = timing.get("count", 0)
        family.add_metric([stage], count_value=count, sum_value=timing["mean_ms"] * count / 1000.0)
        for quantile, field in STAGE_QUANTILES:
            family.add_sample("posestream_stage_seconds", {"stage": stage, "quantile": quantile},
                              timing[field] / 1000.0)
    return family


def lost_events_family(report: Report) -> Metric:
    family = CounterMetricFamily("posestream_pose_events_lost",
                                 "/poses events dropped because a client did not keep up.")
    family.add_metric([], (report.get("serve") or {}).get("pose_events_lost", 0))
    return family


def clients_family(report: Report) -> Metric:
    family = GaugeMetricFamily("posestream_http_clients", "Connected clients per route.", labels=["route"])
    for route, count in ((report.get("serve") or {}).get("clients") or {}).items():
        family.add_metric([route], count)
    return family


def _event_sources(report: Report) -> Mapping[str, Mapping[str, Any]]:
    return (report.get("events") or {}).get("sources") or {}


def events_family(report: Report) -> Metric:
    family = CounterMetricFamily("posestream_events", "Event acts (starts and instants) per rule.",
                                 labels=["source", "rule"])
    for name, section in _event_sources(report).items():
        for rule, count in (section.get("rules") or {}).items():
            family.add_metric([name, rule], count)
    return family


def crossings_family(report: Report) -> Metric:
    family = CounterMetricFamily("posestream_line_crossings", "Line crossings per direction.",
                                 labels=["source", "rule", "direction"])
    for name, section in _event_sources(report).items():
        for rule, directions in (section.get("lines") or {}).items():
            for direction, count in directions.items():
                family.add_metric([name, rule, direction], count)
    return family


def _event_outputs(family: Metric, report: Report, field: str) -> Metric:
    for name, counters in ((report.get("events") or {}).get("outputs") or {}).items():
        family.add_metric([name], int(counters.get(field, 0) or 0))
    return family


def output_sent_family(report: Report) -> Metric:
    return _event_outputs(CounterMetricFamily(
        "posestream_event_output_sent", "Event records an output delivered.", labels=["output"]),
        report, "sent")


def output_dropped_family(report: Report) -> Metric:
    return _event_outputs(CounterMetricFamily(
        "posestream_event_output_dropped", "Event records an output lost (its queue was full).",
        labels=["output"]), report, "dropped")


def output_queued_family(report: Report) -> Metric:
    return _event_outputs(GaugeMetricFamily(
        "posestream_event_output_queued", "Event records waiting in an output's queue.",
        labels=["output"]), report, "queued")


def output_connected_family(report: Report) -> Metric:
    return _event_outputs(GaugeMetricFamily(
        "posestream_event_output_connected", "1 while an event output reaches its receiver.",
        labels=["output"]), report, "connected")


FAMILIES: tuple[Callable[[Report], Metric], ...] = (
    frames_family, dropped_family, reconnects_family, up_family, state_family, people_family,
    fps_family, latency_family, stage_family, lost_events_family, clients_family,
    events_family, crossings_family, output_sent_family, output_dropped_family,
    output_queued_family, output_connected_family,
)


def _bound(seconds: float) -> str:
    return repr(float(seconds))


class StatsCollector:
    """A prometheus_client collector over ``snapshot()`` (the stats report), read per scrape."""

    def __init__(self, snapshot: Callable[[], Report]):
        self.snapshot = snapshot

    def describe(self) -> list[Metric]:
        return []            # nothing to check at registration: the names come from FAMILIES

    def collect(self) -> Iterator[Metric]:
        report = self.snapshot()
        for family in FAMILIES:
            yield family(report)


def metrics_registry(snapshot: Callable[[], Report]) -> CollectorRegistry:
    """A registry of its own (not the global one) with our collector and the process collector."""
    registry = CollectorRegistry()
    registry.register(StatsCollector(snapshot))
    ProcessCollector(registry=registry)
    return registry


def metrics_text(registry: CollectorRegistry) -> bytes:
    """The exposition of ``registry`` in Prometheus text format."""
    return generate_latest(registry)

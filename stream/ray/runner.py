"""The same pipeline on Ray: ``run_on_ray(config, stop_event)`` (``--ray ADDRESS`` / ``run.ray``).

::

    driver (this process)                camera actor × source          inference actor × N
    sinks, stats  ◄── poll ──  capture ─q─ preprocess ─q─ inference ── infer ──►  Batcher → engine
                               ─q─ postprocess ─q─ render (draw)  ◄───────────────┘

One camera actor per source runs the local pipeline for that source (``stream.ray.actors``); a
pool of inference actors (one per GPU, or N on CPU) runs the engine over batches of the frames
the cameras send at the same time (``stream.ray.inference``).  The driver owns what the local
run's render stage feeds — the sinks (JSON lines, video, window, browser page, written on this
machine) and the stats — so outputs have the local formats.  A camera or inference actor that dies
is restarted by Ray (``ray.max_restarts``); a restarted camera carries on after the last frame
the driver received, and the stats count restarts under ``"ray"``.  A camera whose source fails
for good ends while the others go on, as in a local run with several sources.

Ray is imported only when a Ray run starts: the rest of the project never needs it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from typing import Any

from posestream_common.errors import ConfigError
from stream.config import Config
from stream.ray.cluster import connect, import_ray
from stream.ray.inference import plan_pool
from stream.ray.records import CameraRecord, build_report, raise_failures, stand_in_source, user_error
from stream.stats import StatsRecorder, format_summary, write_stats

log = logging.getLogger(__name__)

# A signal must end the run within 2 s, and a local cluster's own shutdown (ray.shutdown) takes
# ~1.4 s of that here: the steps after a stop get what is left.
STOP_GRACE_S = 0.5      # after a stop, how long cameras get to hand over their last frames
STOP_TOTALS_S = 0.2     # after a stop, how long the inference actors get to report their totals
PING_S = 1.0            # how often the inference actors are asked who they are (restart count)
RETRY_S = 0.2           # wait before asking a camera actor that did not answer again
RESTART_WAIT_S = 10.0   # at the end, how long an inference actor seen dead is waited for


def run_on_ray(config: Config, stop_event: threading.Event | None = None) -> dict[str, Any]:
    """Run ``config`` on the Ray cluster ``config.run.ray`` names; returns the stats report."""
    address = config.run.ray or "local"
    ray = import_ray(address)
    from stream.auto import resolve

    config = resolve(config)            # measured here, on the driver's machine
    started = connect(ray, address, config.ray)
    try:
        return RayRun(config, stop_event).run()
    finally:
        if started:
            ray.shutdown()


class RayRun:
    """One Ray run: start the actors, move finished frames into the sinks, write the stats."""

    def __init__(self, config: Config, stop_event: threading.Event | None = None):
        import ray

        self.ray = ray
        self.config = config
        self.settings = config.ray
        self.stop_event = stop_event if stop_event is not None else threading.Event()
        self.cameras: dict[str, CameraRecord] = {}
        self.pool: list[Any] = []
        self.pool_incarnations: list[str | None] = []
        self.pool_restarts = 0
        self.pool_info: dict[str, Any] = {}
        self.sinks: dict[str, Any] = {}
        self.stats = StatsRecorder()
        self.report: dict[str, Any] | None = None
        self._pings: dict[Any, int] = {}     # describe() ref -> member, unanswered
        self._pool_down: set[int] = set()          # inference actors seen dead and not back yet
        self._next_ping = 0.0

    # -- set-up ---------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the run to end (sinks, signals); outputs are still flushed and closed."""
        self.stop_event.set()

    def run(self) -> dict[str, Any]:
        try:
            pool_ready = self._start_pool()
            self._open_cameras()
            self._wait_pool(pool_ready)
            self._build_sinks()
        except BaseException:
            self._close_sinks()
            self._kill_actors()
            raise
        try:
            starts = [self._start_camera(record, resume=None) for record in self.cameras.values()]
            self.ray.wait(starts, num_returns=len(starts), timeout=self.settings.restart_timeout_s)
            self.stats.start()
            self._loop()
        finally:
            self._finish()
        raise_failures(self.cameras.values(), self.sinks)
        return self.report

    def _start_pool(self) -> list[Any]:
        from stream.ray.inference import InferenceWorker

        sources = self.config.source_configs()
        plan = plan_pool(self.settings, self.config.model.device, self.ray.cluster_resources(), len(sources))
        per_actor_calls = math.ceil(len(sources) * self.settings.in_flight / plan.actors)
        data = self.config.model_dump(by_alias=True)
        if plan.num_gpus == 0 and self.config.inference.threads is None:
            data["inference"]["threads"] = max(1, int(plan.num_cpus))      # the CPUs it reserved
        data["inference"]["workers"] = self.config.inference.workers or 1
        actor = self.ray.remote(InferenceWorker).options(
            num_cpus=plan.num_cpus, num_gpus=plan.num_gpus, max_restarts=self.settings.max_restarts,
            max_task_retries=0, max_concurrency=per_actor_calls + 4)
        self.pool = [actor.remote(data) for _ in range(plan.actors)]
        log.info("ray: %d inference actor(s) (%g CPU, %g GPU each), %d camera actor(s) (%g CPU each)",
                 plan.actors, plan.num_cpus, plan.num_gpus, len(sources), self.settings.camera_cpus)
        return [member.ready.remote() for member in self.pool]

    def _open_cameras(self) -> None:
        from stream.ray.actors import CameraWorker
        from stream.sinks import has_display

        output = self.config.output
        window = output.display if output.display is not None else has_display()
        send_images = bool(output.video or output.serve or window)     # else cameras skip drawing
        data = self.config.model_dump(by_alias=True)
        data["output"] = {"display": False}
        data["run"]["progress"] = False
        actor = self.ray.remote(CameraWorker).options(
            num_cpus=self.settings.camera_cpus, max_restarts=self.settings.max_restarts, max_task_retries=0)
        for position, (name, _) in enumerate(self.config.source_configs()):
            self.cameras[name] = CameraRecord(name, actor.remote(data, name, send_images), position)
        infos = self._get([record.handle.open.remote() for record in self.cameras.values()], "camera actors")
        for record, info in zip(self.cameras.values(), infos):
            record.info, record.incarnation = info, info["incarnation"]
            described = " ".join(part for part in (info["kind"], info["label"]) if part)
            log.info("source %s: %s%s (camera actor)", record.name, described,
                     f", {info['frame_count']} frames" if info["frame_count"] else "")

    def _wait_pool(self, pool_ready: list[Any]) -> None:
        answers = self._get(pool_ready, "inference actors")
        self.pool_incarnations = [answer["incarnation"] for answer in answers]
        self.pool_info = {"preprocess": answers[0]["preprocess"], "stride": answers[0]["stride"],
                          "engine": answers[0]["engine"]}

    def _get(self, refs: list[Any], what: str) -> list[Any]:
        """``ray.get`` with user errors raised as themselves and a placement timeout."""
        timeout_s = self.settings.restart_timeout_s
        try:
            return self.ray.get(refs, timeout=timeout_s)
        except self.ray.exceptions.GetTimeoutError:
            raise ConfigError(f"ray: the {what} did not start within {timeout_s:g} s (ray.restart_timeout_s); "
                              f"the cluster has {self.ray.cluster_resources()}") from None
        except self.ray.exceptions.RayError as error:
            cause = user_error(error)
            if cause is not None:
                raise cause from None
            raise

    def _build_sinks(self) -> None:
        from stream.outputs import build_sinks

        sources = [stand_in_source(record.name, record.info) for record in self.cameras.values()]
        self.sinks = build_sinks(self.config, sources, self.stop, self.live_report)

    def _start_camera(self, record: CameraRecord, resume: Any) -> Any:
        info = self.pool_info
        return record.handle.start.remote(self.pool, info["preprocess"], info["stride"], resume, record.position)

    # -- running --------------------------------------------------------------------------------

    def _loop(self) -> None:
        ray = self.ray
        polls = {record.handle.poll.remote(self.settings.poll_s): record for record in self.cameras.values()}
        retry: dict[str, float] = {}
        stop_deadline = None
        while polls or retry:
            now = time.monotonic()
            if self.stop_event.is_set() and stop_deadline is None:
                stop_deadline = now + STOP_GRACE_S
                for record in self.cameras.values():
                    if not record.done:
                        record.handle.stop.remote()
            if stop_deadline is not None and now > stop_deadline:
                log.warning("ray: camera(s) %s did not finish within %.1f s of the stop",
                            ", ".join(r.name for r in self.cameras.values() if not r.done), STOP_GRACE_S)
                break
            for name, due in list(retry.items()):
                if due <= now:
                    del retry[name]
                    polls[self.cameras[name].handle.poll.remote(self.settings.poll_s)] = self.cameras[name]
            ready = []
            if polls:
                ready, waiting = ray.wait(list(polls), num_returns=1, timeout=0.1)
                if ready and waiting:
                    ready += ray.wait(waiting, num_returns=len(waiting), timeout=0)[0]
            else:
                time.sleep(0.02)
            for ref in ready:
                record = polls.pop(ref)
                again = self._answer(record, ref, stopping=stop_deadline is not None)
                if again == "poll":
                    polls[record.handle.poll.remote(self.settings.poll_s)] = record
                elif again == "retry":
                    retry[record.name] = time.monotonic() + RETRY_S
            self._ping_pool()

    def _answer(self, record: CameraRecord, ref: Any, stopping: bool) -> str:
        """Take one poll answer; what next: ``poll`` again, ``retry`` later, or ``done``."""
        try:
            reply = self.ray.get(ref)
        except self.ray.exceptions.RayActorError as error:
            if record.actor_down(error, self.settings.restart_timeout_s):
                return "done"
            return "done" if stopping else "retry"
        record.actor_up()
        if reply["incarnation"] != record.incarnation:
            record.restarted(reply["incarnation"])
        for slim, annotated, latency_s, ready_wall in reply["results"]:
            if slim.index > record.last_index:
                self._write(record, slim, annotated, latency_s, ready_wall)
        for stage, seconds in reply["samples"]:
            self.stats.record_stage(stage, seconds)
        record.counters(reply)
        if reply["state"] == "new":
            if stopping:
                record.done = True
                return "done"
            self._start_camera(record, record.resume(self.config.run, time.monotonic() - self.stats.started_at))
            return "poll"
        if reply["state"] == "ended":
            record.done = True
            record.error = reply["error"]
            return "done"
        return "poll"

    def _write(self, record: CameraRecord, slim: Any, annotated: Any, latency_s: float, ready_wall: float) -> None:
        """Hand one finished frame to its sinks; latency runs from capture to the end of this."""
        transit_s = max(0.0, time.time() - ready_wall)
        item = dataclasses.replace(slim, capture_time=time.monotonic() - latency_s - transit_s)
        sink = self.sinks.get(record.name)
        if sink is not None:
            sink.write(item, annotated)
        self.stats.record_done(item)
        record.delivered(item)

    def _ping_pool(self) -> None:
        """Ask each inference actor who it is, once a second; a new incarnation is a restart."""
        now = time.monotonic()
        if self._pings:
            ready = self.ray.wait(list(self._pings), num_returns=len(self._pings), timeout=0)[0]
            for ref in ready:
                member = self._pings.pop(ref)
                try:
                    self._note_incarnation(member, self.ray.get(ref)["incarnation"])
                except self.ray.exceptions.RayActorError:
                    self._pool_down.add(member)
                except self.ray.exceptions.RayError:
                    continue
        if now >= self._next_ping:
            self._next_ping = now + PING_S
            busy = set(self._pings.values())
            for member, handle in enumerate(self.pool):
                if member not in busy:
                    self._pings[handle.describe.remote()] = member

    def _note_incarnation(self, member: int, incarnation: str) -> None:
        self._pool_down.discard(member)
        if incarnation != self.pool_incarnations[member]:
            self.pool_restarts += 1
            self.pool_incarnations[member] = incarnation
            log.warning("ray: inference actor %d was restarted (%d restart(s) so far)", member, self.pool_restarts)

    def live_report(self) -> dict[str, Any]:
        """The stats so far (the browser page's /stats.json)."""
        totals = self.pool_info.get("totals", {})
        ray_section = {"address": self.config.run.ray or "local", "inference_actors": len(self.pool),
                       "inference_restarts": self.pool_restarts,
                       "forward_mean_ms": totals.get("forward_mean_ms", 0.0)}
        batches = {"forwards": totals["forwards"], "mean_frames": totals["mean_frames"]} if totals else None
        return build_report(self.stats, self.cameras.values(), ray_section, batches,
                            per_source=bool(self.config.output.serve))

    # -- shutdown -------------------------------------------------------------------------------

    def _finish(self) -> None:
        self.stats.finish()
        self._close_sinks()
        self._collect_pool_totals()
        self._kill_actors()
        self.report = self.live_report()
        log.info("%s", format_summary(self.report))
        if self.report["dropped"]:
            log.info("dropped %d frame(s) to keep up with the live source(s)", self.report["dropped"])
        if self.config.output.stats:
            write_stats(self.config.output.stats, self.report)
            log.info("wrote stats to %s", self.config.output.stats)

    def _suspects(self) -> set[int]:
        """Inference actors seen dead, or with a ping unanswered (a live one answers within
        milliseconds): perhaps being restarted."""
        return self._pool_down | set(self._pings.values())

    def _collect_pool_totals(self) -> None:
        """Batches and forward time of the inference actors (since their last restart); an actor
        seen dead or silent, that does not answer in the usual time, or whose answer says its
        incarnation died, is asked again and waited for longer (it answers once restarted; not
        after a stop), so its restart is counted even when the run ends before a ping saw it."""
        stopping = self.stop_event.is_set()
        long_s = min(RESTART_WAIT_S, self.settings.restart_timeout_s)
        short_s = STOP_TOTALS_S if stopping else 2.0
        suspects = bool(self._suspects())
        end = time.monotonic() + (long_s if suspects else short_s)
        extended = stopping or suspects         # the long wait is given once
        pending = {member: handle.describe.remote() for member, handle in enumerate(self.pool)}
        answers: dict[int, dict] = {}
        while pending:
            left = end - time.monotonic()
            ready = self.ray.wait(list(pending.values()), num_returns=len(pending),
                                  timeout=max(0.0, left))[0]
            for member, ref in list(pending.items()):
                if ref not in ready:
                    continue
                del pending[member]
                try:
                    answers[member] = self.ray.get(ref)
                except self.ray.exceptions.RayActorError:     # asked a dead incarnation
                    if not extended:
                        extended, end = True, time.monotonic() + long_s
                    if not stopping and time.monotonic() < end:
                        pending[member] = self.pool[member].describe.remote()
                        time.sleep(0.05)              # (a restarting actor fails calls at once)
                except self.ray.exceptions.RayError:
                    continue
            if pending and time.monotonic() >= end:
                if extended:
                    break
                extended, end = True, time.monotonic() + long_s   # silent: perhaps restarting
        batches = frames = 0
        forward_s = 0.0
        for member, answer in answers.items():
            self._note_incarnation(member, answer["incarnation"])
            batches, frames = batches + answer["batches"], frames + answer["frames"]
            forward_s += answer["forward_s"]
        self.pool_info["totals"] = {
            "forwards": batches, "mean_frames": round(frames / batches, 3) if batches else 0.0,
            "forward_mean_ms": round(1000.0 * forward_s / batches, 3) if batches else 0.0}

    def _close_sinks(self) -> None:
        closed: set[int] = set()
        for sink in self.sinks.values():
            if id(sink) in closed:
                continue
            closed.add(id(sink))
            try:
                sink.close()
            except Exception as error:  # noqa: BLE001 - close every sink
                log.error("closing %r failed: %s", sink, error)

    def _kill_actors(self) -> None:
        for handle in [*(record.handle for record in self.cameras.values()), *self.pool]:
            try:
                self.ray.kill(handle)
            except Exception as error:  # noqa: BLE001 - best effort on the way out
                log.debug("ray.kill: %s", error)


"""The camera wall's goals, measured on real RTSP cameras (benchmarks/rtsp_camera.py), in one run.

    python -m benchmarks.wall_soak [--seconds 180] [--cameras 3] [--input-height 96]

Runs ``run_stream.py --serve`` on N cameras (random weights, ``--input-height``) and measures:

- the time until every endpoint answers for every camera (``/stats.json`` frames, ``/metrics``
  parsed by prometheus_client, a ``/poses`` event per camera, the page);
- with a stuck ``/poses`` client and a stuck stream client connected the whole time (each is
  reconnected when the server drops it after its client timeout), the process's RSS sampled
  every ``--sample-s``: memory is flat when the growth after the warm-up is small;
- camera 0 killed at ``--kill-at`` s: the time until ``posestream_source_up`` is 0 for it (goal:
  within ``source.read_timeout_s`` + 5 s) while the others keep counting; restarted
  ``--down-s`` later: the time until it is live again;
- camera 1 stalled (connection open, no frames) at ``--stall-at`` s for ``--down-s``: the time
  until it is reported not live (about ``source.read_timeout_s``) and live again after it resumes;
- SIGINT at the end: the exit code (goal 0) and how long the exit took.

Results: benchmarks/results/CLASS/wall_soak.json (every sample) and wall_soak.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import yaml
from prometheus_client.parser import text_string_to_metric_families

from benchmarks import store
from benchmarks.bench_media import ROOT
from benchmarks.machine import describe_machine
from benchmarks.rtsp_camera import RtspServer, free_port

READ_TIMEOUT_S = 2.0
WARMUP_S = 30.0           # RSS growth is measured from here on
QUIET_AFTER_S = 10.0      # ... and separately from this long after the last reconnect on


def get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def metric(base: str, name: str) -> dict[str, float]:
    """source → value of the per-source sample ``name`` in /metrics ({} when it did not answer)."""
    text = get(base + "metrics")
    if text is None:
        return {}
    return {sample.labels["source"]: sample.value
            for family in text_string_to_metric_families(text.decode()) for sample in family.samples
            if sample.name == name and "source" in sample.labels}


def stats(base: str) -> dict:
    body = get(base + "stats.json")
    return json.loads(body) if body else {}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def stuck_client(port: int, path: str) -> socket.socket:
    """A client that asks for an endless stream and never reads it."""
    client = socket.create_connection(("127.0.0.1", port))
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return client


def poses_sources(port: int, names: set[str], within_s: float) -> set[str]:
    """The sources seen on /poses within ``within_s``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=within_s)
    connection.request("GET", "/poses")
    response = connection.getresponse()
    seen, deadline = set(), time.monotonic() + within_s
    while seen < names and time.monotonic() < deadline:
        line = response.fp.readline().decode()
        if line.startswith("data: "):
            seen.add(json.loads(line[len("data: "):])["source"])
    connection.close()
    return seen


def wait_until(condition, within_s: float, step_s: float = 0.1) -> float | None:
    """Seconds until ``condition()`` held, or None when it did not within ``within_s``."""
    started = time.monotonic()
    while time.monotonic() - started < within_s:
        if condition():
            return time.monotonic() - started
        time.sleep(step_s)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="soak length after all endpoints answer")
    parser.add_argument("--cameras", type=int, default=3)
    parser.add_argument("--input-height", type=int, default=96)
    parser.add_argument("--sample-s", type=float, default=2.0)
    parser.add_argument("--kill-at", type=float, default=40.0, help="kill camera 0 this long into the soak")
    parser.add_argument("--down-s", type=float, default=15.0, help="restart it this long after the kill")
    parser.add_argument("--stall-at", type=float, default=75.0, help="stall camera 1 this long into the soak")
    parser.add_argument("--out", help="results path without suffix (default: benchmarks/results/CLASS/wall_soak)")
    args = parser.parse_args(argv)

    names = [f"cam{index}" for index in range(args.cameras)]
    cameras = [RtspServer(fps=15) for _ in names]
    for camera in cameras:
        camera.start()
    workdir = Path(tempfile.mkdtemp(prefix="wall_soak_"))
    config = workdir / "wall.yaml"
    config.write_text(yaml.safe_dump({
        "source": {"read_timeout_s": READ_TIMEOUT_S, "backoff_initial_s": 0.2, "backoff_max_s": 1.0},
        "sources": [{"name": name, "uri": camera.url} for name, camera in zip(names, cameras)]}))
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("DISPLAY", None)
    log_file = open(workdir / "run.log", "w")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "run_stream.py"), "--config", str(config), "--serve", str(port),
         "--weights", "random", "--input-height", str(args.input_height), "--threads", "1", "--no-display"],
        cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    result: dict = {"cameras": args.cameras, "input_height": args.input_height, "read_timeout_s": READ_TIMEOUT_S,
                    "machine": describe_machine()}
    stuck: dict[str, socket.socket] = {}
    try:
        started = time.monotonic()
        result["all_endpoints_s"] = _time_to_all_endpoints(base, port, set(names), started)
        soak_start = time.monotonic()
        samples, kill, reconnects_stuck = [], {}, 0
        killed_at = restarted_at = stalled_at = None
        stall: dict = {}
        while time.monotonic() - soak_start < args.seconds:
            now = time.monotonic() - soak_start
            snapshot = stats(base)
            clients = snapshot.get("serve", {}).get("clients", {})
            for route, path in (("/poses", "/poses"), ("/stream/", f"/stream/{names[-1]}.mjpg")):
                if snapshot and clients.get(route, 0) < 1:
                    if route in stuck:
                        stuck.pop(route).close()
                        reconnects_stuck += 1
                    stuck[route] = stuck_client(port, path)
            if not snapshot:
                time.sleep(args.sample_s)
                continue
            samples.append({"t_s": round(now, 2), "rss_mb": round(rss_mb(process.pid), 2),
                            "frames": {name: section["frames"] for name, section in snapshot["sources"].items()},
                            "up": {name: section["up"] for name, section in snapshot["sources"].items()},
                            "pose_events_lost": snapshot["serve"]["pose_events_lost"]})
            if killed_at is None and now >= args.kill_at:
                kill = _kill_and_time(base, cameras[0], names)
                killed_at = now
            elif killed_at is not None and restarted_at is None and now >= killed_at + args.down_s:
                cameras[0].restart()
                live_s = wait_until(lambda: metric(base, "posestream_source_up").get(names[0]) == 1, 60)
                kill["live_again_s"] = None if live_s is None else round(live_s, 2)
                kill["reconnects_total"] = metric(base, "posestream_reconnects_total").get(names[0])
                restarted_at = now
            elif stalled_at is None and now >= args.stall_at and args.cameras > 1:
                stall = _stall_and_time(base, cameras[1], names[1], args.down_s)
                stalled_at = now
            time.sleep(args.sample_s)
        result["kill"] = kill
        result["stall"] = stall
        result["stuck_clients_reconnected"] = reconnects_stuck
        result["samples"] = samples
        process.send_signal(signal.SIGINT)
        signalled = time.monotonic()
        process.wait(timeout=60)
        result["sigint_exit_code"] = process.returncode
        result["sigint_exit_s"] = round(time.monotonic() - signalled, 2)
    finally:
        for client in stuck.values():
            client.close()
        if process.poll() is None:
            process.kill()
            process.wait()
        for camera in cameras:
            camera.stop()
        log_file.close()
    result["load_after"] = describe_machine()["load_average"]
    quiet_from_s = max(args.kill_at, args.stall_at) + args.down_s + QUIET_AFTER_S
    result["memory"] = _memory_summary(result["samples"], quiet_from_s)
    out = Path(args.out) if args.out else None
    memory = result["memory"]
    store.write_results(out.name if out else "wall_soak", result, _markdown, out=out.parent if out else None,
                        headline=f"SIGINT exit {result.get('sigint_exit_code')} after {result.get('sigint_exit_s')} "
                                 f"s; RSS {memory.get('rss_start_mb')} -> {memory.get('rss_end_mb')} MB")
    print(_markdown(result))
    return 0


def _time_to_all_endpoints(base: str, port: int, names: set[str], started: float) -> float | None:
    def every_camera_counts() -> bool:
        sources = stats(base).get("sources", {})
        return set(sources) == names and all(section["frames"] > 0 for section in sources.values())

    if wait_until(every_camera_counts, 120, 0.25) is None:
        return None
    up = metric(base, "posestream_source_up")
    page = get(base) or b""
    if set(up) != names or poses_sources(port, names, 30) != names or b"stats.json" not in page:
        return None
    return round(time.monotonic() - started, 2)


def _kill_and_time(base: str, camera, names: list[str]) -> dict:
    """Kill camera 0; how long until it is reported down, and the others' frames meanwhile."""
    before = metric(base, "posestream_frames_total")
    camera.kill()
    down_s = wait_until(lambda: metric(base, "posestream_source_up").get(names[0]) == 0, 60)
    time.sleep(5.0)
    after = metric(base, "posestream_frames_total")
    return {"down_after_s": None if down_s is None else round(down_s, 2),
            "goal_s": READ_TIMEOUT_S + 5,
            "others_frames_gained": {name: after.get(name, 0) - before.get(name, 0) for name in names[1:]}}


def _stall_and_time(base: str, camera, name: str, stalled_s: float) -> dict:
    """Stall a camera (frames stop, connection stays): time until not live, and live again after."""
    camera.stall()
    not_live_s = wait_until(lambda: metric(base, "posestream_source_up").get(name) == 0, 60)
    time.sleep(max(0.0, stalled_s - (not_live_s or 0.0)))
    camera.resume()
    live_s = wait_until(lambda: metric(base, "posestream_source_up").get(name) == 1, 60)
    return {"not_live_after_s": None if not_live_s is None else round(not_live_s, 2),
            "goal_s": READ_TIMEOUT_S + 5, "stalled_s": stalled_s,
            "live_again_s": None if live_s is None else round(live_s, 2)}


def _memory_summary(samples: list[dict], quiet_from_s: float) -> dict:
    """RSS from the warm-up on: start, end, max, slope; and the slope once no camera reconnects
    any more (each reconnect costs a step of a few MB in the capture path, with or without --serve)."""
    steady = [sample for sample in samples if sample["t_s"] >= WARMUP_S]
    if len(steady) < 3:
        return {}
    times = np.array([sample["t_s"] for sample in steady])
    rss = np.array([sample["rss_mb"] for sample in steady])
    slope = float(np.polyfit(times, rss, 1)[0]) * 60.0
    quiet = times >= quiet_from_s
    late_slope = float(np.polyfit(times[quiet], rss[quiet], 1)[0]) * 60.0 if quiet.sum() >= 3 else float("nan")
    return {"rss_start_mb": round(float(rss[:5].mean()), 1), "rss_end_mb": round(float(rss[-5:].mean()), 1),
            "rss_max_mb": round(float(rss.max()), 1), "slope_mb_per_min": round(slope, 3),
            "quiet_slope_mb_per_min": round(late_slope, 3), "quiet_from_s": quiet_from_s,
            "quiet_rss_mb": [round(float(rss[quiet].min()), 1), round(float(rss[quiet].max()), 1)]
            if quiet.any() else None,
            "from_s": WARMUP_S, "samples": len(steady)}


def _markdown(result: dict) -> str:
    kill, memory, stall = result.get("kill", {}), result.get("memory", {}), result.get("stall", {})
    lines = [
        f"# Camera wall soak: {result['cameras']} RTSP cameras, --input-height {result['input_height']}",
        "",
        f"{store.machine_header(result)}  Load average before "
        f"{result['machine'].get('load_average', result['machine'].get('load_before'))}, after "
        f"{result.get('load_after', result['machine'].get('load_after'))}.",
        "",
        "| goal | measured |",
        "|---|---|",
        f"| every endpoint answers for every camera within 90 s | {result.get('all_endpoints_s')} s |",
        f"| killed camera reported down within read_timeout + 5 s = {kill.get('goal_s')} s | "
        f"{kill.get('down_after_s')} s |",
        f"| the others keep counting while it is down (frames gained in 5 s) | {kill.get('others_frames_gained')} |",
        f"| live again after its restart | {kill.get('live_again_s')} s (reconnects_total "
        f"{kill.get('reconnects_total')}) |",
        f"| stalled camera reported not live within read_timeout + 5 s = {stall.get('goal_s')} s | "
        f"{stall.get('not_live_after_s')} s; live again {stall.get('live_again_s')} s after it resumed |",
        f"| memory flat with a stuck /poses and a stuck stream client | RSS {memory.get('rss_start_mb')} → "
        f"{memory.get('rss_end_mb')} MB (max {memory.get('rss_max_mb')}), slope {memory.get('slope_mb_per_min')} "
        f"MB/min from {memory.get('from_s')} s (steps at the reconnects); once no camera reconnects (from "
        f"{memory.get('quiet_from_s')} s): {memory.get('quiet_slope_mb_per_min')} MB/min, RSS within "
        f"{memory.get('quiet_rss_mb')} MB |",
        f"| SIGINT exits 0 | exit code {result.get('sigint_exit_code')} after {result.get('sigint_exit_s')} s |",
        "",
        f"Stuck clients dropped by the server (client timeout) and reconnected: "
        f"{result.get('stuck_clients_reconnected')}; /poses events lost (counted): "
        f"{(result.get('samples') or [{}])[-1].get('pose_events_lost')}.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())

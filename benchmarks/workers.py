"""The processes a benchmark starts: one case in a fresh interpreter, Intel's wrapper in its own.

``run_worker`` runs a case (``bench_worker.py``: our pipeline, or a reference loop) in a fresh
Python, so no thread pool, compiled model or allocator state of one case slows or speeds the next.
``run_peer`` / ``run_peer_images`` run Intel's Open Model Zoo wrapper (``omz_peer.py``) on the
clip or an image folder in the Python environment that has Intel's model API; ``omz_weights`` and
``omz_python`` find the IR and that interpreter.  ``benchmarks.run`` and ``benchmarks.accuracy``
both use them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.bench_media import ROOT, find_shared

OMZ_IR = "omz/human-pose-estimation-0001/FP16-INT8/human-pose-estimation-0001.xml"
OMZ_PYTHONS = (ROOT / ".venv-omz" / "bin" / "python", Path("/tmp/omzenv/bin/python"))
OMZ_PYTHON_ENV = "POSESTREAM_OMZ_PYTHON"
PEER_SCRIPT = Path(__file__).with_name("omz_peer.py")


def omz_weights(given: Path | None = None) -> Path | None:
    """The omz IR: ``given``, else the test media's, else the project's default path; None when
    none of them is a file."""
    import backbones
    from backbones.ir import installed_ir

    for candidate in (given, find_shared() / "weights" / OMZ_IR, installed_ir(backbones.get_spec("omz"))):
        if candidate is not None and Path(candidate).is_file():
            return Path(candidate)
    return None


def omz_python(given: Path | None = None) -> Path | None:
    """A Python with Intel's model API: ``given``, else ``$POSESTREAM_OMZ_PYTHON``, else
    ``.venv-omz/bin/python``, else ``/tmp/omzenv/bin/python``; None when none exists."""
    env = os.environ.get(OMZ_PYTHON_ENV)
    for candidate in (given, Path(env) if env else None, *OMZ_PYTHONS):
        if candidate is not None and Path(candidate).is_file():
            return Path(candidate)
    return None


def _failure(done: subprocess.CompletedProcess) -> str:
    """The last non-empty line a failed process wrote to stderr (or its exit code)."""
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"exit code {done.returncode}"


def run_in_fresh_process(module: str, case: dict, work_dir: Path, timeout_s: float) -> dict:
    """``python -m module case.json result.json`` in a fresh interpreter; the result dict it
    wrote (``error`` set when it failed or ran past ``timeout_s``)."""
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        case_path, out_path = Path(tmp) / "case.json", Path(tmp) / "result.json"
        case_path.write_text(json.dumps(case))
        command = [sys.executable, "-m", module, str(case_path), str(out_path)]
        try:
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout_s:.0f} s"}
        if done.returncode != 0 or not out_path.is_file():
            return {"error": _failure(done)}
        return json.loads(out_path.read_text())


def run_worker(case: dict, work_dir: Path) -> dict:
    """One benchmark case in a fresh interpreter (``bench_worker``)."""
    timeout_s = 180 + 3 * float(case.get("max_seconds") or 60)
    if str(case.get("engine", "")).endswith("int8"):
        timeout_s += 900                 # a first NNCF quantization (cached for later cases)
    return run_in_fresh_process("benchmarks.bench_worker", case, work_dir, timeout_s)


def run_peer(python: Path, model: Path, clip: Path, mode: str, max_frames: int | None,
             work_dir: Path) -> dict:
    """Intel's wrapper on the clip in ``mode`` (sync or async): its result, or ``error``."""
    out = work_dir / f"peer-{mode}.json"
    command = [str(python), str(PEER_SCRIPT), "--model", str(model), "--video", str(clip),
               "--mode", mode, "--out", str(out)]
    if max_frames:
        command += ["--max-frames", str(max_frames)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=work_dir)
    except subprocess.TimeoutExpired:
        return {"mode": mode, "error": "timed out"}
    if done.returncode != 0 or not out.is_file():
        return {"mode": mode, "error": _failure(done)}
    return json.loads(out.read_text())


def run_peer_images(python: Path, model: Path, folder: Path, work_dir: Path) -> dict:
    """Intel's wrapper on every image of ``folder`` (``omz_peer.py --images``)."""
    out = work_dir / "peer-images.json"
    command = [str(python), str(PEER_SCRIPT), "--model", str(model), "--images", str(folder),
               "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0 or not out.is_file():
        return {"error": _failure(done)}
    return json.loads(out.read_text())

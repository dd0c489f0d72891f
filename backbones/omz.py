"""Intel's Open Model Zoo human-pose-estimation-0001 as the ``omz`` backbone: an OpenVINO IR, not
a torch module (this module does not import torch).

A lightweight OpenPose that Intel publishes in three variants (FP32, FP16 and the default
FP16-INT8, quantized already).  It reads raw BGR pixels 0-255 (the IR normalises itself),
[N,3,H,W] with H, W multiples of 8, and writes heatmaps [N,19,H/8,W/8] and PAFs [N,38,H/8,W/8] in
the CMU order this project uses, so the preprocessing, decoder and renderer serve it unchanged.
``backbones.ir`` finds, fetches and checks its files.
"""

from __future__ import annotations

from backbones.preprocessing import PREPROCESS_SPECS
from backbones.registry import BackboneSpec, IrSpec, WeightSource, register_spec

MODEL_NAME = "human-pose-estimation-0001"

# Open Model Zoo's models/intel/human-pose-estimation-0001/model.yml as of its "Publish 3rd set
# of candidate models for 2022.1 Release" (commit 9ebd389297f3a805b4e6146bc2bc1bdb548a2048): the
# newest release that publishes all three variants (2022.3 and 2023.0 dropped FP16-INT8).  Its
# ``checksum`` field is a SHA-384 (omz_tools' download_engine/cache.py); model.yml stopped listing
# sha256 in November 2021.
ORIGIN = ("Open Model Zoo models/intel/human-pose-estimation-0001/model.yml, 2022.1 release "
          "(github.com/openvinotoolkit/open_model_zoo)")
URL_BASE = ("https://storage.openvinotoolkit.org/repositories/open_model_zoo/2022.1/models_bin/3/"
            f"{MODEL_NAME}")
PUBLISHED = (   # (variant/file, size in bytes, SHA-384)
    ("FP32/human-pose-estimation-0001.xml", 185_324,
     "082664d164367b7cdb7af981aae4ef520e75d64332db9bddfb8beaf92c3861ba0fb4a89b68dbf77bb188022e020f5025"),
    ("FP32/human-pose-estimation-0001.bin", 16_394_712,
     "d0edca53eb5c693ca6d3e0aa55fbcfb25e37ccff862e2d0e55fe569e497109cd08ea4011aace517c813ee1597992813f"),
    ("FP16/human-pose-estimation-0001.xml", 248_520,
     "e3e2e4910ccdc4216d1f601b58cabe334fe9ee82c2cbc3e68b90141d546b772f500c34f9448a291465070696a5f0d30a"),
    ("FP16/human-pose-estimation-0001.bin", 8_197_356,
     "2a6e2987d88220a1b852bf22cfce07bc9415623f68972a7663e5fb25c319848f63a70c6ba9a7a0c7b4a06fa6ce16dda3"),
    ("FP16-INT8/human-pose-estimation-0001.xml", 485_094,
     "a510a334889632a4871aba3b2f4544f79b6b1e2d0be970550d4febe40b28c83b7ac3dee71143943e0cf08983e06f89ea"),
    ("FP16-INT8/human-pose-estimation-0001.bin", 4_229_348,
     "0d99c9c76cb2ffac0855b01621c290432e85150dd0f7cbaa808f1abf16c6b282e97744cc502d8222c0d96a1463801b55"),
)

SPEC = register_spec(BackboneSpec(
    name="omz",
    builder=None,
    preprocess=PREPROCESS_SPECS["omz"],
    sources=tuple(WeightSource(file_name, ORIGIN, url=f"{URL_BASE}/{file_name}", size=size,
                               sha384=sha384)
                  for file_name, size, sha384 in PUBLISHED),
    layouts=(),
    ir=IrSpec(model_name=MODEL_NAME, folder="omz", default_variant="FP16-INT8",
              engines=("openvino",), int8_variant="FP16-INT8"),
    description="Intel Open Model Zoo human-pose-estimation-0001 (lightweight OpenPose), "
                "OpenVINO IR, 256 px",
))

"""Intel's Open Model Zoo human-pose-estimation-0001 as the ``omz`` backbone (OpenVINO IR only).

The IR (``--weights .../human-pose-estimation-0001.xml``, next to its ``.bin``) is a lightweight
OpenPose with INT8 weights.  Users get it with Open Model Zoo's downloader
(``omz_downloader --name human-pose-estimation-0001``, under ``intel/…/FP16-INT8/``).  It reads
raw BGR pixels 0-255 (the IR normalises itself), [N,3,H,W] with H, W multiples of 8, and writes
``Mconv7_stage2_L2`` heatmaps [N,19,H/8,W/8] and ``Mconv7_stage2_L1`` PAFs [N,38,H/8,W/8] in the
CMU order this project uses, so our preprocessing, decoder and renderer serve it unchanged.
"""

from __future__ import annotations

from pathlib import Path

from backbones.registry import PreprocessSpec
from posestream_common.errors import ConfigError, WeightsError

OMZ_MODEL_NAME = "human-pose-estimation-0001"
OMZ_WEIGHTS_NAME = f"{OMZ_MODEL_NAME}.xml"
OMZ_DOWNLOAD_HINT = (f"get it with Open Model Zoo's downloader (pip install openvino-dev; "
                     f"omz_downloader --name {OMZ_MODEL_NAME}) and pass "
                     f"--weights intel/{OMZ_MODEL_NAME}/FP16-INT8/{OMZ_WEIGHTS_NAME}")

# Raw BGR 0-255 in, padded with black; the IR's first layers compute (x - 128) / 255 themselves.
OMZ_PREPROCESS = PreprocessSpec(channel_order="BGR", mean=0.0, scale=1.0, pad_value=0.0,
                                stride=8, size_multiple=8, default_height=256)


def omz_default_weights() -> Path:
    """Where the IR is looked for without ``model.weights``: in the weights folder (weights/, or
    ``$POSESTREAM_WEIGHTS_DIR``)."""
    import backbones

    return backbones.weights_dir() / OMZ_WEIGHTS_NAME


def omz_weights_path(weights: str | None) -> Path:
    """The IR's .xml path (its .bin beside it), checked; WeightsError / ConfigError otherwise."""
    if weights == "random":
        raise ConfigError("model.weights 'random': the omz backbone has no random variant; "
                          f"{OMZ_DOWNLOAD_HINT}")
    path = Path(weights).expanduser() if weights is not None else omz_default_weights()
    if path.suffix.lower() != ".xml":
        raise ConfigError(f"model.weights {str(path)!r}: the omz backbone needs the OpenVINO IR "
                          f".xml file; {OMZ_DOWNLOAD_HINT}")
    if not path.is_file():
        raise WeightsError(f"no omz IR at {path}: {OMZ_DOWNLOAD_HINT}")
    if not path.with_suffix(".bin").is_file():
        raise WeightsError(f"{path}: its weights file {path.with_suffix('.bin').name} is missing "
                           "beside it")
    return path

"""COCO keypoint AP of posestream's JSON lines, scored by pycocotools (never a re-implemented OKS).

The pipeline writes JSON lines as it always does (one line per image, with ``"file"``, people in
CMU-18 order with a person ``"score"``); ``detections_from_lines`` maps them to COCO results
(``to_coco17``) and ``keypoint_ap`` hands them to ``COCOeval(..., "keypoints")`` with
``params.imgIds`` = every image asked for, so a person found on an image without people counts
against AP as it does in the official evaluation.

A data set is any COCO-format keypoint annotation file plus a folder holding its images
(``load_dataset``); ``split_ids`` picks all, the even or the odd image ids, so thresholds can be
tuned on one half and reported on both.

CMU-18 <-> COCO-17 (the one place the two skeletons are mapped): posestream writes people in the
CMU-18 order of ``stages.skeleton.KEYPOINTS`` (with a neck); COCO ground truth, pycocotools and
Intel's OpenPose wrapper use the 17 COCO keypoints (no neck).  ``to_coco17`` drops the neck and
reorders; ``from_coco17`` goes back, the neck being the midpoint of the two shoulders where both
are present (as the CMU model was trained).  Arrays are (P,18,3) / (P,17,3): x, y and a score or
visibility, 0,0,0 for a missing keypoint.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from posestream_common.errors import SourceError
from stages.skeleton import KEYPOINTS, NUM_KEYPOINTS, keypoint_index

log = logging.getLogger(__name__)

COCO_KEYPOINTS: tuple[str, ...] = (
    "nose", "l_eye", "r_eye", "l_ear", "r_ear",
    "l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_wrist", "r_wrist",
    "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle",
)
NUM_COCO_KEYPOINTS = len(COCO_KEYPOINTS)          # 17

# COCO keypoint i is CMU keypoint CMU_OF_COCO[i].
CMU_OF_COCO: tuple[int, ...] = tuple(keypoint_index(name) for name in COCO_KEYPOINTS)
NECK = keypoint_index("neck")
_SHOULDERS = (keypoint_index("l_shoulder"), keypoint_index("r_shoulder"))


def to_coco17(people: np.ndarray) -> np.ndarray:
    """(P,18,3) in CMU order -> (P,17,3) in COCO order, the neck dropped (a new array)."""
    people = np.asarray(people, dtype=np.float32).reshape(-1, NUM_KEYPOINTS, 3)
    return people[:, CMU_OF_COCO, :].copy()


def from_coco17(people: np.ndarray) -> np.ndarray:
    """(P,17,3) in COCO order -> (P,18,3) in CMU order; the neck is the shoulders' midpoint
    (its third value their mean) where both shoulders are present (third value > 0), else 0,0,0."""
    people = np.asarray(people, dtype=np.float32).reshape(-1, NUM_COCO_KEYPOINTS, 3)
    cmu = np.zeros((len(people), NUM_KEYPOINTS, 3), dtype=np.float32)
    cmu[:, CMU_OF_COCO, :] = people
    left, right = cmu[:, _SHOULDERS[0]], cmu[:, _SHOULDERS[1]]
    both = (left[:, 2] > 0) & (right[:, 2] > 0)
    cmu[both, NECK] = (left[both] + right[both]) / 2.0
    return cmu


assert sorted(CMU_OF_COCO + (NECK,)) == list(range(len(KEYPOINTS)))

SPLITS = ("all", "even", "odd")
PERSON_CATEGORY = 1
# COCOeval's keypoint summary, in its order (stats[0..9]).
STAT_NAMES = ("AP", "AP50", "AP75", "AP_medium", "AP_large", "AR", "AR50", "AR75", "AR_medium", "AR_large")


@dataclass(frozen=True)
class Dataset:
    """COCO keypoint ground truth and the folder of its images.

    ground_truth: the loaded ``pycocotools.coco.COCO``; image_ids: file name -> image id, for
    every image of the annotation file (all of them are in ``images_dir``).
    """

    images_dir: Path
    annotations: Path
    ground_truth: Any
    image_ids: dict[str, int]

    @property
    def people_with_keypoints(self) -> int:
        return sum(1 for ann in self.ground_truth.dataset["annotations"] if ann.get("num_keypoints", 0) > 0)


def load_dataset(images_dir: str | Path, annotations: str | Path) -> Dataset:
    """The annotation file loaded and checked against the image folder; ``SourceError`` naming
    the folder, file or key at fault (a missing image included)."""
    images_dir, annotations = Path(images_dir), Path(annotations)
    if not images_dir.is_dir():
        raise SourceError(f"image folder not found: {images_dir}")
    if not annotations.is_file():
        raise SourceError(f"annotation file not found: {annotations}")
    try:
        content = json.loads(annotations.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SourceError(f"annotation file {annotations} is not readable JSON: {error}") from None
    missing = [key for key in ("images", "annotations", "categories") if key not in content] \
        if isinstance(content, dict) else ["images", "annotations", "categories"]
    if missing:
        raise SourceError(f"annotation file {annotations} is not COCO format: no {', '.join(missing)}")
    if not any(cat.get("id") == PERSON_CATEGORY and len(cat.get("keypoints", ())) == NUM_COCO_KEYPOINTS
               for cat in content["categories"]):
        raise SourceError(f"annotation file {annotations} has no person category with "
                          f"{NUM_COCO_KEYPOINTS} keypoints (not COCO keypoint ground truth)")
    image_ids = {image["file_name"]: int(image["id"]) for image in content["images"]}
    if not image_ids:
        raise SourceError(f"annotation file {annotations} lists no images")
    absent = sorted(name for name in image_ids if not (images_dir / name).is_file())
    if absent:
        raise SourceError(f"{len(absent)} image(s) of {annotations} not in {images_dir}, "
                          f"e.g. {absent[0]}")
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = COCO()
        ground_truth.dataset = content
        ground_truth.createIndex()
    return Dataset(images_dir, annotations, ground_truth, image_ids)


def split_ids(image_ids: Iterable[int], split: str) -> list[int]:
    """The ids of ``split``: ``all``, ``even`` or ``odd`` image ids, sorted."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    parity = {"even": 0, "odd": 1}.get(split)
    return sorted(i for i in image_ids if parity is None or i % 2 == parity)


def link_images(dataset: Dataset, image_ids: Sequence[int], folder: Path) -> Path:
    """``folder`` filled with links to the images of ``image_ids`` (the pipeline reads a folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = set(image_ids)
    for name, image_id in dataset.image_ids.items():
        if image_id in wanted:
            (folder / name).symlink_to((dataset.images_dir / name).resolve())
    return folder


def read_lines(path: str | Path) -> list[dict]:
    """The records of a JSON-lines file."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def detections_from_lines(records: Iterable[dict], image_ids: dict[str, int]) -> list[dict]:
    """COCO keypoint results from posestream JSON lines: per person its COCO-17 keypoints
    (x, y, confidence; 0,0,0 where missing) and its ``score``.  A line's ``file`` must be one of
    ``image_ids``; a person without ``score`` is a ValueError (the JSON contract has one)."""
    detections = []
    for record in records:
        name = record.get("file")
        if name not in image_ids:
            raise ValueError(f"JSON line of frame {record.get('frame')} has file {name!r}, "
                             "not an image of the annotation file")
        for person in record["people"]:
            if "score" not in person:
                raise ValueError(f"a person in the JSON line of {name} has no \"score\"")
            keypoints = np.asarray(person["pose_keypoints_2d"], dtype=np.float32).reshape(NUM_KEYPOINTS, 3)
            detections.append(coco_detection(to_coco17(keypoints[np.newaxis])[0], image_ids[name],
                                              float(person["score"])))
    return detections


def coco_detection(keypoints_coco: np.ndarray, image_id: int, score: float) -> dict:
    """One COCO result: (17,3) keypoints in COCO order, frame pixels."""
    return {"image_id": int(image_id), "category_id": PERSON_CATEGORY, "score": round(score, 6),
            "keypoints": [round(float(v), 3) for v in np.asarray(keypoints_coco).reshape(-1)]}


def keypoint_ap(ground_truth: Any, detections: list[dict], image_ids: Sequence[int]) -> dict[str, float]:
    """pycocotools' keypoint summary (``STAT_NAMES``) over ``image_ids``; no detection at all
    scores 0 everywhere (pycocotools cannot load an empty result list)."""
    from pycocotools.cocoeval import COCOeval

    wanted = set(image_ids)
    detections = [d for d in detections if d["image_id"] in wanted]
    if not detections:
        return {name: 0.0 for name in STAT_NAMES}
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        results = ground_truth.loadRes(detections)
        evaluation = COCOeval(ground_truth, results, "keypoints")
        evaluation.params.imgIds = sorted(wanted)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    log.debug("pycocotools:\n%s", buffer.getvalue())
    return {name: round(float(value), 4) for name, value in zip(STAT_NAMES, evaluation.stats)}

"""Ground truth for the decoder: random plausible skeletons and their label maps.

The maps are drawn as OpenPose's training labels are made: per part a Gaussian (sigma ~7 px)
evaluated at the stride-grid cell centres, max-merged over people, zero below 0.01; background =
1 - max over parts; per limb the unit vector from part_a to part_b in every cell within one map
cell of the segment, averaged over the people whose limb covers that cell.

People are 40-200 px tall, facing any way, with random arm and leg angles; some keypoints are
unlabelled (occluded extremities, faces seen from behind, the far ear and eye in profile, parts
outside the image), some people overlap others or touch the border.  A person's labelled
keypoints always stay connected through the skeleton's limbs (as in a real label, a part cut off
from the rest would be another "person"), and two people never put the same part within
``min_separation_px``, where even the label's peaks would merge.

Scoring (``score_scene``, ``summarize``): each true person is paired one-to-one with the
predicted person that has the most of its labelled keypoints within ``max_error_px`` (Hungarian
assignment).  A true person is *complete* when every labelled keypoint is found within that
distance; a predicted person is *false* when it is paired with nobody, or fewer than half of its
keypoints lie on its partner.  Keypoint errors are the distances of the found keypoints of paired
people.  Used by the decoder tests and ``benchmarks/decoder.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
from scipy.optimize import linear_sum_assignment

from stages.skeleton import KEYPOINTS, LIMBS, NUM_HEATMAPS, NUM_KEYPOINTS, NUM_PAFS

NET_SIZE = (368, 496)          # net-input (height, width) of the benchmarks and tests
_PART = {name: index for index, name in enumerate(KEYPOINTS)}
_NOMINAL_HEIGHT = 0.93         # head top to ankles of the standing pose below, in pose units
_LABEL_CUTOFF = 4.6052         # exp(-4.6052) = 0.01: OpenPose zeroes the Gaussian beyond this
_NEIGHBOURS = [[] for _ in range(NUM_KEYPOINTS)]
for _limb in LIMBS:
    _NEIGHBOURS[_limb.part_a].append(_limb.part_b)
    _NEIGHBOURS[_limb.part_b].append(_limb.part_a)


@dataclass(frozen=True)
class Scene:
    """One synthetic image's network-layout maps and the people drawn in them.

    heatmaps (19,h,w), pafs (38,h,w) float32; keypoints (P,18,3) x_net, y_net, 1 (labelled) or
    (0,0,0) (unlabelled).
    """

    heatmaps: np.ndarray
    pafs: np.ndarray
    keypoints: np.ndarray


def make_scene(seed: int | np.random.Generator, num_people: int, net_size=NET_SIZE,
               stride: int = 8, sigma_px: float = 7.0, **people_options) -> Scene:
    """A seeded scene of ``num_people`` people (fewer if some cannot be placed) and its maps;
    ``people_options`` go to ``random_people``."""
    rng = np.random.default_rng(seed)
    keypoints = random_people(rng, num_people, net_size, **people_options)
    heatmaps, pafs = label_maps(keypoints, net_size, stride, sigma_px)
    return Scene(heatmaps, pafs, keypoints)


# A crowd: many small people side by side, same parts of different people down to 10 px apart
# (closer than two stride-8 cells, so two peaks can share one 3x3 neighbourhood of the grid).
CROWD = {"num_people": 20, "height_range_px": (30.0, 120.0), "min_separation_px": 10.0,
         "overlap_chance": 0.35}


def make_crowd(seed: int | np.random.Generator, net_size=NET_SIZE) -> Scene:
    """A seeded crowded scene (``CROWD``): up to 20 people 30-120 px tall, close together."""
    return make_scene(seed, net_size=net_size, **CROWD)


def random_people(rng: np.random.Generator, num_people: int, net_size=NET_SIZE,
                  min_separation_px: float = 16.0, overlap_chance: float = 0.35,
                  border_chance: float = 0.15, attempts: int = 60,
                  height_range_px: tuple[float, float] = (40.0, 200.0)) -> np.ndarray:
    """Keypoints (P,18,3) of up to ``num_people`` random people: x_net, y_net, labelled (0/1);
    each person's height (head top to ankles) is drawn from ``height_range_px``."""
    people: list[np.ndarray] = []
    for _ in range(num_people):
        for _attempt in range(attempts):
            height_px = rng.uniform(*height_range_px)
            px_per_unit = height_px / _NOMINAL_HEIGHT
            pose_px = random_pose(rng) * (px_per_unit, px_per_unit, 1.0)
            pose_px[:, :2] += _place_neck(rng, pose_px, height_px, people, net_size,
                                          overlap_chance, border_chance)
            person = _label_visibility(pose_px, net_size)
            if person is not None and _separated(person, people, min_separation_px):
                people.append(person)
                break
    if not people:
        return np.zeros((0, NUM_KEYPOINTS, 3), dtype=np.float32)
    return np.stack(people).astype(np.float32)


def random_pose(rng: np.random.Generator) -> np.ndarray:
    """(18,2) keypoints of one random pose, neck at the origin, y down, ~0.93 units tall."""
    yaw = rng.uniform(-np.pi, np.pi)              # 0: facing the camera
    width, turn = np.cos(yaw), np.sin(yaw)        # left-right spread, sideways turn of the head
    pose = np.zeros((NUM_KEYPOINTS, 2))
    pose[_PART["nose"]] = (0.045 * turn + rng.normal(0, 0.01), -0.095 + rng.normal(0, 0.01))
    for side, sign in (("r", -1.0), ("l", 1.0)):  # the person's right is image left when facing us
        outward = sign * (np.sign(width) if abs(width) > 0.2 else rng.choice([-1.0, 1.0]))
        eye_offset = (sign * 0.03 * width + 0.01 * turn, -0.03)
        pose[_PART[f"{side}_eye"]] = pose[_PART["nose"]] + eye_offset
        pose[_PART[f"{side}_ear"]] = (sign * 0.065 * width - 0.02 * turn, -0.11)
        shoulder = pose[_PART[f"{side}_shoulder"]] = (sign * 0.12 * width, 0.015)
        hip = pose[_PART[f"{side}_hip"]] = (sign * 0.065 * width, 0.33)
        upper_arm = rng.uniform(-0.4, 2.6)        # radians from hanging down, positive = outward
        forearm = upper_arm + rng.uniform(-2.3, 2.3)
        thigh = rng.uniform(-0.25, 0.55)
        shin = thigh + rng.uniform(-0.9, 0.4)
        elbow = pose[_PART[f"{side}_elbow"]] = shoulder + _segment(rng, 0.16, upper_arm, outward)
        pose[_PART[f"{side}_wrist"]] = elbow + _segment(rng, 0.14, forearm, outward)
        knee = pose[_PART[f"{side}_knee"]] = hip + _segment(rng, 0.23, thigh, outward)
        pose[_PART[f"{side}_ankle"]] = knee + _segment(rng, 0.23, shin, outward)
    lean = rng.normal(0.0, 0.12)
    rotation = np.array([[np.cos(lean), -np.sin(lean)], [np.sin(lean), np.cos(lean)]])
    pose = pose @ rotation.T
    return _hide_by_view(rng, pose, width, turn)


def label_maps(keypoints: np.ndarray, net_size=NET_SIZE, stride: int = 8, sigma_px: float = 7.0,
               paf_radius_cells: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Training-label maps of ``keypoints`` (P,18,3): heatmaps (19,h,w), pafs (38,h,w) float32."""
    height_net, width_net = net_size
    if height_net % stride or width_net % stride:
        raise ValueError(f"net size {net_size} is not a multiple of the stride {stride}")
    rows, cols = height_net // stride, width_net // stride
    centre = (stride - 1) / 2.0
    cell_x = (stride * np.arange(cols) + centre)[None, None, :]
    cell_y = (stride * np.arange(rows) + centre)[None, :, None]
    labelled = keypoints[:, :, 2] > 0

    heatmaps = np.zeros((NUM_HEATMAPS, rows, cols), dtype=np.float32)
    for part in range(NUM_KEYPOINTS):
        points = keypoints[labelled[:, part], part, :2]
        if len(points):
            exponent = ((cell_x - points[:, 0, None, None]) ** 2
                        + (cell_y - points[:, 1, None, None]) ** 2) / (2 * sigma_px ** 2)
            heatmaps[part] = np.where(exponent > _LABEL_CUTOFF, 0.0, np.exp(-exponent)).max(axis=0)
    heatmaps[NUM_KEYPOINTS] = np.maximum(1.0 - heatmaps[:NUM_KEYPOINTS].max(axis=0), 0.0)

    pafs = np.zeros((NUM_PAFS, rows, cols), dtype=np.float32)
    grid_x, grid_y = np.arange(cols)[None, None, :], np.arange(rows)[None, :, None]
    for limb in LIMBS:
        both = labelled[:, limb.part_a] & labelled[:, limb.part_b]
        starts = (keypoints[both, limb.part_a, :2] - centre) / stride    # map cells
        vectors = (keypoints[both, limb.part_b, :2] - centre) / stride - starts
        lengths = np.hypot(vectors[:, 0], vectors[:, 1])
        starts, vectors, lengths = starts[lengths > 0], vectors[lengths > 0], lengths[lengths > 0]
        if not len(lengths):
            continue
        units = vectors / lengths[:, None]
        rel_x, rel_y = grid_x - starts[:, 0, None, None], grid_y - starts[:, 1, None, None]
        along = np.clip(rel_x * units[:, 0, None, None] + rel_y * units[:, 1, None, None],
                        0.0, lengths[:, None, None])
        distance = np.hypot(rel_x - along * units[:, 0, None, None],
                            rel_y - along * units[:, 1, None, None])
        covered = distance <= paf_radius_cells                           # (n,rows,cols)
        count = covered.sum(axis=0)
        for channel, component in ((limb.paf_x, units[:, 0]), (limb.paf_y, units[:, 1])):
            total = (covered * component[:, None, None]).sum(axis=0)
            pafs[channel] = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    return heatmaps, pafs


def _segment(rng: np.random.Generator, length: float, angle: float, outward: float) -> np.ndarray:
    """A limb of ``length`` (foreshortened at random) at ``angle`` from hanging straight down."""
    length *= rng.uniform(0.7, 1.0)
    return length * np.array([outward * np.sin(angle), np.cos(angle)])


def _hide_by_view(rng, pose: np.ndarray, width: float, turn: float) -> np.ndarray:
    """Pose (18,3) with a labelled flag: no face from behind, no far eye and ear in profile."""
    labelled = np.ones(NUM_KEYPOINTS, dtype=bool)
    if width < -0.25:
        labelled[[_PART["nose"], _PART["r_eye"], _PART["l_eye"]]] = False
    elif abs(width) < 0.35:
        far = "r" if turn > 0 else "l"
        labelled[[_PART[f"{far}_eye"], _PART[f"{far}_ear"]]] = False
    for _ in range(rng.binomial(4, 0.2)):         # occluded extremities
        leaves = [part for part in np.flatnonzero(labelled)
                  if part != _PART["neck"] and _is_leaf(labelled, part)]
        if leaves:
            labelled[rng.choice(leaves)] = False
    return np.concatenate([pose, labelled[:, None]], axis=1)


def _is_leaf(labelled: np.ndarray, part: int) -> bool:
    """Whether unlabelling ``part`` keeps the other labelled parts connected."""
    rest = labelled.copy()
    rest[part] = False
    return _component(rest, _PART["neck"]).sum() == rest.sum()


def _component(labelled: np.ndarray, start: int) -> np.ndarray:
    """Mask of the labelled parts connected to ``start`` through the skeleton's limbs."""
    reached = np.zeros(NUM_KEYPOINTS, dtype=bool)
    stack = [start] if labelled[start] else []
    while stack:
        part = stack.pop()
        if not reached[part]:
            reached[part] = True
            stack.extend(n for n in _NEIGHBOURS[part] if labelled[n] and not reached[n])
    return reached


def _place_neck(rng, pose_px, height_px, people, net_size, overlap_chance, border_chance):
    """Neck position: beside another person, against a border, or anywhere fully inside."""
    height_net, width_net = net_size
    low, high = pose_px[:, :2].min(axis=0), pose_px[:, :2].max(axis=0)
    draw = rng.random()
    if people and draw < overlap_chance:
        other = people[rng.integers(len(people))]
        anchor = other[_PART["neck"], :2]
        offset = (rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.7) * height_px,
                  rng.uniform(-0.25, 0.25) * height_px)
        return anchor + offset
    if draw < overlap_chance + border_chance:            # the body crosses an edge, neck inside
        neck = rng.uniform((0, 0), (width_net, height_net))
        axis = rng.integers(2)
        edge = (0.0, (width_net, height_net)[axis])[rng.integers(2)]
        neck[axis] = edge + (1 if edge == 0 else -1) * rng.uniform(1.0, 0.3 * height_px)
        return neck
    return rng.uniform(-low, np.maximum((width_net, height_net) - high, -low + 1.0))


def _label_visibility(person: np.ndarray, net_size) -> np.ndarray | None:
    """Unlabel parts outside the image and those cut off from the neck; None if too few remain."""
    height_net, width_net = net_size
    inside = ((person[:, 0] >= 0) & (person[:, 0] <= width_net - 1)
              & (person[:, 1] >= 0) & (person[:, 1] <= height_net - 1))
    labelled = _component((person[:, 2] > 0) & inside, _PART["neck"])
    if labelled.sum() < 3:
        return None
    return np.where(labelled[:, None], np.concatenate([person[:, :2], np.ones((18, 1))], 1), 0.0)


def _separated(person: np.ndarray, people: list[np.ndarray], min_px: float) -> bool:
    """No part of ``person`` within ``min_px`` of the same labelled part of anyone else."""
    for other in people:
        both = (person[:, 2] > 0) & (other[:, 2] > 0)
        if np.any(np.hypot(*(person[both, :2] - other[both, :2]).T) < min_px):
            return False
    return True


def degrade_maps(heatmaps: np.ndarray, pafs: np.ndarray, seed: int | np.random.Generator,
                 blur_cells: float = 0.5, gain: float = 0.8,
                 noise_std: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """Label maps made to look more like a network's output: blurred by a Gaussian of
    ``blur_cells``, parts scaled by ``gain``, white noise of ``noise_std`` added (new arrays)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    sigma = (0.0, blur_cells, blur_cells)
    parts = gaussian_filter(heatmaps[:NUM_KEYPOINTS], sigma) * gain
    parts = np.clip(parts + rng.normal(0.0, noise_std, parts.shape), 0.0, 1.0)
    background = 1.0 - parts.max(axis=0, keepdims=True)
    blurred_pafs = gaussian_filter(pafs, sigma) + rng.normal(0.0, noise_std, pafs.shape)
    return (np.concatenate([parts, background]).astype(np.float32),
            blurred_pafs.astype(np.float32))


# -- scoring decoded people against the truth --------------------------------------------------

@dataclass(frozen=True)
class SceneScore:
    """Counts for one scene; ``errors_px`` holds one distance per found keypoint."""

    people_true: int
    people_complete: int
    people_predicted: int
    false_people: int
    errors_px: np.ndarray


def score_scene(predicted: np.ndarray, truth: np.ndarray, max_error_px: float = 10.0) -> SceneScore:
    """Compare predicted (P,18,3) x, y, score with truth (G,18,3) x, y, labelled (0/1)."""
    labelled = truth[:, :, 2] > 0                                  # (G,18)
    present = np.any(predicted != 0, axis=-1)                      # (P,18)
    distance = np.hypot(truth[:, None, :, 0] - predicted[None, :, :, 0],
                        truth[:, None, :, 1] - predicted[None, :, :, 1])   # (G,P,18)
    found = labelled[:, None, :] & present[None, :, :] & (distance <= max_error_px)
    hits = found.sum(axis=2)                                       # (G,P)

    true_ids, predicted_ids = linear_sum_assignment(-hits) if hits.size else ((), ())
    complete, errors, genuine = 0, [], np.zeros(len(predicted), dtype=bool)
    for true_id, predicted_id in zip(true_ids, predicted_ids):
        count = hits[true_id, predicted_id]
        if count == 0:
            continue
        complete += int(count == labelled[true_id].sum())
        errors.append(distance[true_id, predicted_id][found[true_id, predicted_id]])
        genuine[predicted_id] = 2 * count >= present[predicted_id].sum()
    return SceneScore(
        people_true=len(truth), people_complete=complete, people_predicted=len(predicted),
        false_people=int(len(predicted) - genuine.sum()),
        errors_px=np.concatenate(errors) if errors else np.zeros(0),
    )


def summarize(scores: Iterable[SceneScore]) -> dict[str, float]:
    """Totals and rates over scenes: complete_fraction, mean_error_px, false_fraction, counts."""
    scores = list(scores)
    people_true = sum(s.people_true for s in scores)
    people_predicted = sum(s.people_predicted for s in scores)
    errors = np.concatenate([s.errors_px for s in scores]) if scores else np.zeros(0)
    false_people = sum(s.false_people for s in scores)
    return {
        "scenes": len(scores),
        "people_true": people_true,
        "people_complete": sum(s.people_complete for s in scores),
        "people_predicted": people_predicted,
        "false_people": false_people,
        "complete_fraction": sum(s.people_complete for s in scores) / max(people_true, 1),
        "false_fraction": false_people / max(people_predicted, 1),
        "mean_error_px": float(errors.mean()) if len(errors) else float("nan"),
        "keypoints_found": int(len(errors)),
    }

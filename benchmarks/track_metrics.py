"""How well a tracker did over a clip: ids per real person, coverage, id switches, jitter.

Pure functions over a clip's frames, each frame a ``people`` float array [P, 18, 3] (frame px,
missing keypoint = (0, 0, 0)) and its ``person_ids`` (P ints, -1 = not tracked).  They read the
same thing a user reads, so they work on the pipeline's JSON lines (:func:`frames_from_json_lines`)
as well as on the tracker's output in a test.

- ``ids_of_full_people``: the different ids given to people with at least ``min_keypoints``
  keypoints (the people a viewer would call "a person", not pieces of one).
- ``frames_with_tracked_people``: frames in which at least ``count`` such people carry
  different tracked ids (both dancers of a duet found and tracked).
- ``id_switches``: for synthetic clips whose true identities are known, how often a true
  person's id differs from the one they had when last tracked.
- ``jitter_px``: mean size of the second difference of each tracked keypoint over three
  consecutive frames, |p[t+1] - 2 p[t] + p[t-1]| (0 for steady motion, so it measures shake,
  not movement).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from stages.skeleton import NUM_KEYPOINTS
from stages.track_parts import keypoint_counts

Frame = tuple[np.ndarray, Sequence[int]]     # (people [P,18,3], person_ids [P])


def frames_from_json_lines(path: str | Path) -> list[Frame]:
    """The frames of a ``--json`` file, in file order, as (people [P,18,3], person_ids)."""
    frames = []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            people = np.array([person["pose_keypoints_2d"] for person in record["people"]],
                              dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 3)
            frames.append((people, [int(person["person_id"]) for person in record["people"]]))
    return frames


def ids_of_full_people(frames: Iterable[Frame], min_keypoints: int = 8) -> Counter:
    """Tracked id -> frames in which a person with >= ``min_keypoints`` keypoints carried it."""
    counts: Counter = Counter()
    for people, person_ids in frames:
        for count, person_id in zip(keypoint_counts(people), person_ids):
            if count >= min_keypoints and person_id >= 0:
                counts[person_id] += 1
    return counts


def untracked_full_people(frames: Iterable[Frame], min_keypoints: int = 8) -> int:
    """How many times a person with >= ``min_keypoints`` keypoints was left untracked (id -1)."""
    return sum(int(count >= min_keypoints and person_id < 0)
               for people, person_ids in frames
               for count, person_id in zip(keypoint_counts(people), person_ids))


def frames_with_tracked_people(frames: Iterable[Frame], count: int = 2,
                               min_keypoints: int = 8) -> int:
    """Frames in which at least ``count`` people with >= ``min_keypoints`` keypoints carry
    different tracked ids."""
    found = 0
    for people, person_ids in frames:
        tracked = {person_id for keypoints, person_id in zip(keypoint_counts(people), person_ids)
                   if keypoints >= min_keypoints and person_id >= 0}
        found += len(tracked) >= count
    return found


def id_switches(ids_by_true_person: dict[str, Sequence[int]]) -> int:
    """Times a true person's tracked id differs from their previous tracked id (ignoring -1)."""
    switches = 0
    for person_ids in ids_by_true_person.values():
        tracked = [person_id for person_id in person_ids if person_id >= 0]
        switches += sum(int(before != after) for before, after in zip(tracked, tracked[1:]))
    return switches


def jitter_px(frames: Sequence[Frame], steps: set[tuple[int, int, int]] | None = None
              ) -> tuple[float, set[tuple[int, int, int]]]:
    """Mean |p[t+1] - 2 p[t] + p[t-1]| (px) over tracked keypoints seen in frames t-1, t, t+1
    under one id; returns it and the (t, id, keypoint) triples used.

    Pass ``steps`` from another run of the same clip to measure both over the same keypoints
    (e.g. with and without smoothing, whose ids are the same)."""
    by_id = [{person_id: pose for pose, person_id in zip(people, person_ids) if person_id >= 0}
             for people, person_ids in frames]
    sizes, used = [], set()
    for index in range(1, len(frames) - 1):
        before, now, after = by_id[index - 1], by_id[index], by_id[index + 1]
        for person_id in now.keys() & before.keys() & after.keys():
            visible = (before[person_id][:, 2] > 0) & (now[person_id][:, 2] > 0) & (after[person_id][:, 2] > 0)
            for keypoint in np.flatnonzero(visible):
                step = (index, person_id, int(keypoint))
                if steps is not None and step not in steps:
                    continue
                second = (after[person_id][keypoint, :2] - 2.0 * now[person_id][keypoint, :2]
                          + before[person_id][keypoint, :2])
                sizes.append(float(np.hypot(*second)))
                used.add(step)
    return (float(np.mean(sizes)) if sizes else 0.0), used

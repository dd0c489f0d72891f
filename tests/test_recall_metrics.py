"""benchmarks.recall_metrics on synthetic people: matching, recall, extras, offsets, id lifetimes."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.recall_metrics import (FrameComparison, compare_frame, id_figures, keypoint_counts, match,
                                       person_sizes, summarise)

# A standing person's 18 keypoints (CMU order) in a unit box: x in [0, 0.4], y in [0, 1].
UNIT = np.array([[0.2, 0.05], [0.2, 0.2], [0.1, 0.2], [0.05, 0.4], [0.0, 0.55], [0.3, 0.2], [0.35, 0.4],
                 [0.4, 0.55], [0.12, 0.55], [0.12, 0.78], [0.12, 1.0], [0.28, 0.55], [0.28, 0.78],
                 [0.28, 1.0], [0.17, 0.03], [0.23, 0.03], [0.14, 0.0], [0.26, 0.0]])


def person(x: float, y: float, height: float, keypoints: int = 18, shift: float = 0.0) -> np.ndarray:
    """A person whose box is ``height`` tall at (x, y), the first ``keypoints`` present, every
    keypoint moved right by ``shift`` px."""
    out = np.zeros((18, 3))
    out[:keypoints, :2] = UNIT[:keypoints] * height + (x + shift, y)
    out[:keypoints, 2] = 0.8
    return out


def people(*persons: np.ndarray) -> np.ndarray:
    return np.stack(persons) if persons else np.zeros((0, 18, 3))


def test_size_and_counts():
    crowd = people(person(10, 10, 100), person(0, 0, 50, keypoints=6))
    assert keypoint_counts(crowd).tolist() == [18, 6]
    assert person_sizes(crowd)[0] == pytest.approx(100.0)


def test_recall_is_two_thirds_when_one_of_three_is_missed():
    reference = people(person(0, 0, 100), person(300, 0, 80), person(600, 50, 60))
    plan = people(person(600, 50, 60, shift=1.0), person(0, 0, 100, shift=2.0))   # any order
    frame = compare_frame(reference, plan)
    assert (frame.reference_people, frame.found, frame.plan_people, frame.extra) == (3, 2, 2, 0)
    summary = summarise([frame])
    assert summary["recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert summary["extra_percent"] == 0.0
    assert summary["median_offset_px"] == pytest.approx(1.5)      # 18 keypoints off by 1 px, 18 by 2


def test_median_offset_is_the_shift_of_matched_keypoints():
    reference = people(person(0, 0, 100), person(300, 0, 100))
    plan = people(person(0, 0, 100, shift=3.0), person(300, 0, 100, shift=3.0))
    summary = summarise([compare_frame(reference, plan)])
    assert summary["recall"] == 1.0 and summary["median_offset_px"] == pytest.approx(3.0)


def test_match_threshold_is_relative_to_the_reference_persons_size():
    big, small = person(0, 0, 200), person(500, 0, 40)
    # 30 px is 0.15 of the big one (matches) but 0.75 of the small one (does not).
    assert match(people(big), people(person(0, 0, 200, shift=30))) == [(0, 0)]
    assert match(people(small), people(person(500, 0, 40, shift=30))) == []
    # just inside / outside 0.2 x size
    assert match(people(small), people(person(500, 0, 40, shift=7.9))) == [(0, 0)]
    assert match(people(small), people(person(500, 0, 40, shift=8.1))) == []


def test_hungarian_pairs_one_to_one_by_least_total_distance():
    reference = people(person(0, 0, 100), person(10, 0, 100))
    plan = people(person(6, 0, 100), person(16, 0, 100))
    # greedy would pair the closest (reference 1, plan 0: 4 px), leaving 16 px for the other;
    # the least total is 6 + 6 px
    assert sorted(match(reference, plan)) == [(0, 0), (1, 1)]


def test_extras_duplicates_and_people_the_reference_saw_with_fewer_keypoints():
    reference = people(person(0, 0, 100), person(300, 0, 100, keypoints=6))
    plan = people(person(0, 0, 100, shift=1),            # found
                  person(0, 0, 100, shift=2),            # duplicate of the found one: extra
                  person(300, 0, 100, keypoints=10),     # the reference saw a 6-keypoint person here
                  person(900, 0, 100))                   # nobody there: extra
    frame = compare_frame(reference, plan)
    assert (frame.reference_people, frame.found, frame.plan_people, frame.extra) == (1, 1, 4, 2)
    assert summarise([frame])["extra_percent"] == pytest.approx(200.0)


def test_plan_pieces_neither_count_as_found_nor_as_extra():
    reference = people(person(0, 0, 100))
    plan = people(person(0, 0, 100, keypoints=5), person(700, 0, 100, keypoints=4))
    frame = compare_frame(reference, plan)
    assert (frame.found, frame.plan_people, frame.extra) == (0, 0, 0)


def test_summary_over_frames_and_empty_input():
    frames = [compare_frame(people(person(0, 0, 100)), people(person(0, 0, 100))),
              compare_frame(people(person(0, 0, 100), person(300, 0, 100)), people())]
    summary = summarise(frames)
    assert summary["frames_compared"] == 2 and summary["recall"] == pytest.approx(1 / 3, abs=1e-4)
    assert summary["people_per_frame"] == 0.5 and summary["reference_people_per_frame"] == 1.5
    empty = summarise([FrameComparison(0, 0, 0, 0, ())])
    assert empty["recall"] is None and empty["median_offset_px"] is None


def test_id_figures_share_of_detections_on_lasting_ids():
    times = [i / 10 for i in range(50)]                  # 5 s at 10 fps
    frames, ids = [], []
    for i in range(50):
        crowd, frame_ids = [person(0, 0, 100)], [1]      # id 1: the whole 5 s
        if i < 10:
            crowd.append(person(300, 0, 100))            # id 2: 1 s
            frame_ids.append(2)
        if i == 20:
            crowd.append(person(600, 0, 100))            # a full person left untracked
            frame_ids.append(-1)
        crowd.append(person(900, 0, 100, keypoints=4))   # a piece: not a detection
        frame_ids.append(-1)
        frames.append(people(*crowd))
        ids.append(frame_ids)
    figures = id_figures(times, frames, ids)
    assert figures["detections"] == 61 and figures["ids"] == 2 and figures["untracked"] == 1
    assert figures["lasting_share"] == pytest.approx(50 / 61, abs=1e-4)
    assert figures["window_s"] == pytest.approx(5.0)
    assert figures["ids_per_minute"] == pytest.approx(24.0)


def test_id_figures_on_a_run_shorter_than_the_lifetime_asked():
    times = [i / 10 for i in range(20)]
    figures = id_figures(times, [people(person(0, 0, 100))] * 20, [[1]] * 20, min_seconds=3.0)
    assert figures["lasting_share"] is None and figures["ids_per_minute"] is None and figures["ids"] == 1
    assert id_figures(times, [people(person(0, 0, 100))] * 20, [[1]] * 20, min_seconds=2.0)["lasting_share"] == 1.0

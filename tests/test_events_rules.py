"""Event rules on synthetic poses: the geometry and pose tests, and the per-source state machines
(zone enter/leave on a synthetic walk to the frame, line crossings per direction, person down and
hands up with hysteresis, counts, every start ended at the end of the run)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stream.events import rules as geo
from stream.events.engine import SETTLE_S, TRACK_GONE_S, EventEngine
from stream.events.settings import EventRuleConfig
from tests.helpers_tracking import skeleton

FPS = 10.0
W, H = 640, 480


def rule(**keys) -> EventRuleConfig:
    return EventRuleConfig(**keys)


def lying(ground, length=200.0) -> np.ndarray:
    """A person lying along x (the standing skeleton turned 90°), ankles near ``ground``."""
    pose = skeleton((0.0, 0.0), height_px=length)
    x, y = pose[:, 0].copy(), pose[:, 1].copy()
    pose[:, 0], pose[:, 1] = -y, x                  # head to the right, feet to the left
    pose[:, 0] += ground[0] + 0.44 * length
    pose[:, 1] += ground[1]
    return pose


def standing(ground, height=200.0) -> np.ndarray:
    """A standing person whose ground point (between the ankles) is ``ground``."""
    return skeleton((ground[0], ground[1] - 0.44 * height), height_px=height)


def run(engine: EventEngine, frames, scores=None) -> list:
    """frames: a list of lists of (id, pose); all events, then the run's end."""
    events = []
    for index, people in enumerate(frames):
        poses = np.array([pose for _, pose in people], np.float32).reshape(-1, 18, 3)
        ids = [person_id for person_id, _ in people]
        frame_scores = [0.9] * len(ids) if scores is None else scores
        events += engine.update(index, index / FPS, poses, ids, frame_scores, W, H)
    return events + engine.finish()


# -- pure geometry ------------------------------------------------------------------------------

def test_ground_point_is_between_the_ankles_else_the_hips():
    pose = standing((100, 300))
    assert np.allclose(geo.ground_point(pose), (100, 300))
    pose[[geo.R_ANKLE, geo.L_ANKLE]] = 0
    assert np.allclose(geo.ground_point(pose), (100, 300 - 0.44 * 200))
    pose[[geo.R_HIP, geo.L_HIP]] = 0
    assert geo.ground_point(pose) is None


def test_polygon_fractions_and_pixels_and_inside():
    square = geo.to_pixels([[0.25, 0.5], [0.75, 0.5], [0.75, 1.0], [0.25, 1.0]], W, H)
    assert np.allclose(square, [[160, 240], [480, 240], [480, 480], [160, 480]])
    assert np.allclose(geo.to_pixels([[10, 20], [30, 40]], W, H), [[10, 20], [30, 40]])
    assert geo.inside_polygon((300, 300), square) and not geo.inside_polygon((100, 300), square)
    assert not geo.inside_polygon((300, 200), square)
    concave = np.array([[0, 0], [100, 0], [100, 100], [50, 50], [0, 100]], float)
    assert geo.inside_polygon((50, 20), concave) and not geo.inside_polygon((50, 80), concave)


def test_down_and_hands_up_tests():
    assert not geo.is_down(standing((100, 300)))
    assert geo.torso_angle_deg(standing((100, 300))) == pytest.approx(90.0)
    down = lying((100, 300))
    assert geo.is_down(down) and geo.torso_angle_deg(down) == pytest.approx(0.0, abs=1e-6)
    tilted = standing((100, 300))
    neck = tilted[geo.NECK, :2].copy()
    hip = (tilted[geo.R_HIP, :2] + tilted[geo.L_HIP, :2]) / 2
    length = float(np.hypot(*(neck - hip)))
    for angle, expected in ((geo.DOWN_ANGLE_DEG + 5, False), (geo.DOWN_ANGLE_DEG - 5, True)):
        moved = tilted.copy()
        moved[geo.NECK, :2] = hip + length * np.array([math.cos(math.radians(angle)), -math.sin(math.radians(angle))])
        assert geo.is_down(moved) is expected, angle
    arms = standing((100, 300))
    assert not geo.hands_up(arms)
    arms[[geo.R_WRIST, geo.L_WRIST], 1] = arms[geo.NOSE, 1] - 10
    assert geo.hands_up(arms)
    arms[geo.L_WRIST] = 0
    assert not geo.hands_up(arms), "both wrists are needed"


def test_line_side_margin_segment_and_direction():
    a, b = np.array([320.0, 0.0]), np.array([320.0, 480.0])          # a vertical line
    assert geo.line_side((100, 240), a, b, 5) == -geo.line_side((500, 240), a, b, 5) != 0
    assert geo.line_side((322, 240), a, b, 5) == 0, "inside the margin: no side"
    assert geo.crossing_direction((300, 240), (340, 240), a, b) == "right"
    assert geo.crossing_direction((340, 240), (300, 240), a, b) == "left"
    flat = (np.array([0.0, 200.0]), np.array([640.0, 200.0]))
    assert geo.crossing_direction((100, 150), (100, 250), *flat) == "down"
    assert geo.line_side((100, 250), np.array([0.0, 200.0]), np.array([50.0, 200.0]), 5) == 0, \
        "beyond the segment's end"


# -- state machines -----------------------------------------------------------------------------

def test_zone_enter_and_leave_on_a_walk_exact():
    """A person walks right at 20 px a frame through a zone spanning x 200..400: the start comes
    SETTLE_S after the first frame inside, the end SETTLE_S after the first frame outside."""
    engine = EventEngine([rule(name="stage", kind="zone", polygon=[[200, 0], [400, 0], [400, 480], [200, 480]])])
    xs = [110 + 20 * step for step in range(20)]                     # 110 … 490, never on an edge
    events = run(engine, [[(7, standing((x, 400)))] for x in xs])
    first_in = next(i for i, x in enumerate(xs) if 200 < x < 400)
    first_out = next(i for i, x in enumerate(xs) if x > 400)
    settle = round(SETTLE_S * FPS)
    assert [(e.type, e.frame, e.person_id) for e in events] == [
        ("start", first_in + settle, 7), ("end", first_out + settle, 7)]
    assert events[0].pair == events[1].pair
    assert events[0].geometry == {"polygon": [[200.0, 0.0], [400.0, 0.0], [400.0, 480.0], [200.0, 480.0]]}
    assert engine.counts == {"stage": 1}


def test_zone_loiter_jitter_and_end_of_run():
    zone = rule(name="desk", kind="zone", polygon=[[0.5, 0], [1, 0], [1, 1], [0.5, 1]], loiter_seconds=2)
    # In for 1.5 s (too short), a hop out of one frame, then in until the run ends.
    frames = [[(1, standing((500, 400)))]] * 15 + [[(1, standing((100, 400)))]] + [[(1, standing((500, 400)))]] * 30
    events = run(EventEngine([zone]), frames)
    assert [(e.type, e.frame) for e in events] == [("start", 16 + 20), ("end", 45)], \
        "loiter 2 s counted from re-entering; the open start ends at the last frame"


def test_line_crossings_per_direction_with_jitter_on_the_line():
    engine = EventEngine([rule(name="door", kind="line", points=[[0.5, 0.0], [0.5, 1.0]])])
    path = list(range(100, 560, 40)) + [330, 310, 330, 310] + list(range(560, 80, -40))
    events = run(engine, [[(3, standing((x, 400)))] for x in path])
    assert [(e.type, e.direction, e.person_id) for e in events] == [("instant", "right", 3), ("instant", "left", 3)]
    assert engine.directions == {"door": {"right": 1, "left": 1}}
    assert events[0].geometry == {"points": [[320.0, 0.0], [320.0, 480.0]]}


def test_person_down_one_start_one_end_despite_a_glitch():
    down_rule = rule(name="floor", kind="person_down", seconds=1.0)
    frames = ([[(2, standing((300, 400)))]] * 20 + [[(2, lying((200, 400)))]] * 30
              + [[(2, standing((300, 400)))]] + [[(2, lying((200, 400)))]] * 10     # a one-frame glitch
              + [[(2, standing((300, 400)))]] * 20)
    events = run(EventEngine([down_rule]), frames)
    assert [(e.type, e.frame) for e in events] == [("start", 30), ("end", 61 + round(SETTLE_S * FPS))]


def test_person_down_ends_when_the_track_ends():
    events = run(EventEngine([rule(name="floor", kind="person_down", seconds=0.5)]),
                 [[(4, lying((200, 400)))]] * 10 + [[]] * 20)
    gone_at = 9 + round(TRACK_GONE_S * FPS)
    assert [(e.type, e.frame, e.person_id) for e in events] == [("start", 5, 4), ("end", gone_at, 4)]


def test_hands_up_low_scores_and_untracked_people_do_not_trigger():
    arms = standing((300, 400))
    arms[[geo.R_WRIST, geo.L_WRIST], 1] = arms[geo.NOSE, 1] - 20
    wave = rule(name="wave", kind="hands_up", seconds=0.5)
    assert run(EventEngine([wave]), [[(1, arms)]] * 20, scores=[geo.MIN_SCORE - 0.01]) == []
    assert run(EventEngine([wave]), [[(-1, arms)]] * 20) == []
    events = run(EventEngine([wave]), [[(1, arms)]] * 20)
    assert [(e.type, e.frame) for e in events] == [("start", 5), ("end", 19)]


def test_count_above_in_a_zone():
    zone = rule(name="left", kind="zone", polygon=[[0, 0], [0.5, 0], [0.5, 1], [0, 1]])
    crowd = rule(name="crowd", kind="count", above=1, seconds=0.5, zone="left")
    two_left = [(1, standing((100, 400))), (2, standing((200, 400))), (3, standing((500, 400)))]
    one_left = [(1, standing((100, 400))), (3, standing((500, 400)))]
    events = [e for e in run(EventEngine([zone, crowd]), [two_left] * 10 + [one_left] * 10) if e.rule == "crowd"]
    assert [(e.type, e.frame, e.count, e.person_id) for e in events] == [("start", 5, 2, -1), ("end", 13, 1, -1)]
    assert events[0].geometry["polygon"][1] == [320.0, 0.0]


def test_turned_keypoints_map_back_to_the_frame():
    """A dot found in the frame turned either way maps back to where it is in the frame."""
    import cv2

    from stream.events.turned import ROTATIONS, turn_back

    image = np.zeros((48, 64), np.uint8)
    image[10, 50] = 255                                          # at x 50, y 10
    for rotation in ROTATIONS:
        turned = cv2.rotate(image, rotation)
        ys, xs = np.nonzero(turned)
        people = np.zeros((1, 18, 3), np.float32)
        people[0, 1] = (xs[0], ys[0], 0.9)
        back = turn_back(people, rotation, *image.shape)
        assert back[0, 1].tolist() == pytest.approx([50, 10, 0.9]) and not back[0, 0].any()


def test_turned_looks_start_only_when_people_stay_missing():
    """Two people steady for 2 s; one frame missing one, then a stray third for 0.2 s: no look.
    Then both gone for good: looks (every LOOK_EVERY_S, from MISSING_S on) hand the rule whoever
    a turned look finds lying, with ids from TURNED_IDS."""
    from stages.tracking import Tracker, TrackerParams
    from stream.events.turned import LOOK_EVERY_S, MISSING_S, TURNED_IDS, TurnedLook

    down = lying((200, 400))
    look = TurnedLook(lambda image: None, lambda: Tracker(TrackerParams()))
    look.look = lambda image: np.array([down], np.float32)       # the network's part: tested on video
    image = np.zeros((H, W, 3), np.uint8)
    counts = [2] * 20 + [1] + [2] * 5 + [3, 3] + [2] * 10 + [0] * 20
    results = [look.update("cam0", image, index / FPS, count) for index, count in enumerate(counts)]
    first_look = next(index for index, found in enumerate(results) if found)
    gone_at = counts.index(0)
    assert first_look == gone_at + round(MISSING_S * FPS), "no look for the one-frame miss or the stray"
    looked = [index for index, found in enumerate(results) if found]
    assert looked == list(range(first_look, len(counts), round(LOOK_EVERY_S * FPS)))
    assert all(person_id >= TURNED_IDS and np.allclose(keypoints, down)
               for found in results for person_id, keypoints in found)
    assert look.looks == len(looked)

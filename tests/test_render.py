"""Render: skeletons drawn along their limbs, one colour per limb, ids, and the input left alone."""

from __future__ import annotations

import numpy as np
import pytest

from stages.render import RenderStyle, draw_people, spread_colours
from stages.skeleton import KEYPOINTS, LIMBS, NUM_DRAWN_LIMBS

NECK, R_SHOULDER, R_ELBOW, NOSE = (KEYPOINTS.index(n) for n in ("neck", "r_shoulder", "r_elbow", "nose"))


def standing_person(offset_x: float = 0.0) -> np.ndarray:
    """A plausible upright skeleton in a 320x240 frame, every keypoint present."""
    xy = {
        "nose": (100, 40), "neck": (100, 70), "r_shoulder": (75, 72), "r_elbow": (65, 110),
        "r_wrist": (60, 145), "l_shoulder": (125, 72), "l_elbow": (135, 110), "l_wrist": (140, 145),
        "r_hip": (88, 150), "r_knee": (86, 190), "r_ankle": (85, 230), "l_hip": (112, 150),
        "l_knee": (114, 190), "l_ankle": (115, 230), "r_eye": (95, 35), "l_eye": (105, 35),
        "r_ear": (88, 38), "l_ear": (112, 38),
    }
    return np.array([[xy[name][0] + offset_x, xy[name][1], 0.9] for name in KEYPOINTS], np.float32)


def blank() -> np.ndarray:
    return np.full((240, 320, 3), 20, np.uint8)


def pixel(image, xy) -> tuple[int, int, int]:
    return tuple(int(v) for v in image[int(round(xy[1])), int(round(xy[0]))])


def midpoint(person, a, b):
    return (person[a, :2] + person[b, :2]) / 2


def test_limbs_are_drawn_and_the_input_is_untouched():
    image = blank()
    before = image.copy()
    person = standing_person()
    out = draw_people(image, person[None])
    assert out is not image and out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(image, before)
    for t in (0.3, 0.5, 0.7):                         # along neck → r_shoulder, away from the joints
        xy = person[NECK, :2] * (1 - t) + person[R_SHOULDER, :2] * t
        assert pixel(out, xy) != pixel(before, xy)
    assert pixel(out, (300, 10)) == pixel(before, (300, 10))    # far from anyone: untouched


def test_each_drawn_limb_has_its_own_colour():
    style = RenderStyle(line_width=5, point_radius=0)
    person = standing_person()
    out = draw_people(blank(), person[None], style=style)
    limb_a = next(i for i, limb in enumerate(LIMBS) if {limb.part_a, limb.part_b} == {NECK, R_SHOULDER})
    limb_b = next(i for i, limb in enumerate(LIMBS) if {limb.part_a, limb.part_b} == {R_SHOULDER, R_ELBOW})
    colour_a = pixel(out, midpoint(person, NECK, R_SHOULDER))
    colour_b = pixel(out, midpoint(person, R_SHOULDER, R_ELBOW))
    assert colour_a == style.limb_colours[limb_a] and colour_b == style.limb_colours[limb_b]
    assert len(set(style.limb_colours[:NUM_DRAWN_LIMBS])) == NUM_DRAWN_LIMBS


def test_missing_keypoints_and_their_limbs_are_not_drawn():
    person = standing_person()
    person[R_ELBOW] = 0                                # missing: 0,0,0
    out = draw_people(blank(), person[None], style=RenderStyle(point_radius=0))
    assert pixel(out, midpoint(person, R_SHOULDER, R_ELBOW)) == pixel(blank(), (0, 0))
    assert pixel(out, (0, 0)) == pixel(blank(), (0, 0))          # nothing drawn at the origin
    assert pixel(out, midpoint(person, NECK, R_SHOULDER)) != pixel(blank(), (0, 0))


def test_shoulder_ear_limbs_are_not_drawn():
    person = np.zeros((18, 3), np.float32)
    for part, xy in ((R_SHOULDER, (60, 120)), (KEYPOINTS.index("r_ear"), (200, 120))):
        person[part] = (*xy, 0.9)
    out = draw_people(blank(), person[None], style=RenderStyle(point_radius=0))
    assert np.array_equal(out, blank())               # LIMBS[17] (shoulder-ear) is not drawn


def test_ids_are_drawn_only_when_non_negative_and_asked_for():
    people = np.stack([standing_person(), standing_person(offset_x=150)])
    plain = draw_people(blank(), people, person_ids=(-1, -1))
    with_ids = draw_people(blank(), people, person_ids=(3, -1))
    no_ids_style = draw_people(blank(), people, person_ids=(3, -1), style=RenderStyle(draw_ids=False))
    assert np.array_equal(plain, draw_people(blank(), people))
    assert not np.array_equal(plain, with_ids)
    assert np.array_equal(plain, no_ids_style)
    changed = np.argwhere((plain != with_ids).any(axis=2))
    assert changed[:, 1].max() < 150 + 55               # the label sits by the first person only


def test_no_people_gives_an_equal_copy():
    image = blank()
    out = draw_people(image, np.zeros((0, 18, 3), np.float32))
    assert np.array_equal(out, image) and out is not image


def test_non_finite_and_far_off_coordinates_do_not_break_drawing():
    person = standing_person()
    person[NOSE] = (np.nan, 5, 0.9)
    person[R_ELBOW] = (1e12, -1e12, 0.9)
    out = draw_people(blank(), person[None])
    assert out.shape == (240, 320, 3)


def test_style_from_config_and_colour_checks():
    class RenderCfg:
        show, line_width, point_radius, draw_ids = "skeleton", 7, 2, False

    style = RenderStyle.from_config(RenderCfg())
    assert (style.line_width, style.point_radius, style.draw_ids) == (7, 2, False)
    assert len(spread_colours(5)) == 5
    with pytest.raises(ValueError, match="limb_colours"):
        RenderStyle(limb_colours=((0, 0, 0),))

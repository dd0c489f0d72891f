"""The inference plan's pure parts (stages.plan, stages.plan_pack, stages.plan_merge) on
synthetic people and boxes."""

import numpy as np
import pytest

from stages.plan import (PEOPLE, SCAN, Plan, choose_regions, make_plan, motion_boxes, person_regions,
                         rule_scale, scan_box)
from stages.plan_merge import merge_people, published
from stages.plan_pack import pack, split_people
from stages.preprocess import prepare_canvases


def walker(x, y_top, height, score=0.8):
    """An upright person [18,3]: head at y_top, ankles at y_top + height (frame pixels)."""
    rows = {0: (0, 0.05), 1: (0, 0.18), 2: (-0.1, 0.2), 3: (-0.12, 0.35), 4: (-0.12, 0.48),
            5: (0.1, 0.2), 6: (0.12, 0.35), 7: (0.12, 0.48), 8: (-0.06, 0.52), 9: (-0.07, 0.74),
            10: (-0.07, 0.95), 11: (0.06, 0.52), 12: (0.07, 0.74), 13: (0.07, 0.95),
            14: (-0.02, 0.03), 15: (0.02, 0.03), 16: (-0.04, 0.04), 17: (0.04, 0.04)}
    pose = np.zeros((18, 3), np.float32)
    for part, (dx, dy) in rows.items():
        pose[part] = (x + dx * height, y_top + dy * height, score)
    return pose


def test_rule_scale_never_above_the_frame_and_rejects_nonsense():
    assert rule_scale(60, 130) == 1.0
    assert rule_scale(260, 130) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        rule_scale(0, 130)


@pytest.mark.parametrize("size", [(480, 640), (480, 702), (368, 496)])
def test_small_frames_keep_the_whole_frame_plan_at_the_default_height(size):
    plan = make_plan(size, 60, "mobilenet_thin")
    assert plan.kind == "whole"
    assert round(size[0] * plan.scale) == 368               # today's default input, today's cost
    assert make_plan(size, 60, "mobilenet_thin", mode="whole").scale == 1.0


def test_big_frames_get_crops_cheaper_than_the_whole_frame_at_the_rule_scale():
    crops = make_plan((720, 1280), 60, "mobilenet_thin")
    whole = make_plan((720, 1280), 60, "mobilenet_thin", mode="whole")
    assert crops.kind == "crops" and whole.kind == "whole"
    assert crops.scale == whole.scale == 1.0
    assert crops.overview_scale < crops.scale
    assert crops.pixels < whole.pixels / 2
    assert crops.pixels <= crops.max_pixels
    with pytest.raises(ValueError):
        make_plan((720, 1280), 60, "mobilenet_thin", mode="tiles")


def test_a_machine_fast_enough_for_the_whole_frame_at_the_rule_scale_gets_it():
    whole = make_plan((720, 1280), 60, "omz", mode="whole")
    assert make_plan((720, 1280), 60, "omz", budget_pixels=whole.pixels).kind == "whole"
    assert make_plan((720, 1280), 60, "omz", budget_pixels=whole.pixels - 1).kind == "crops"
    assert make_plan((720, 1280), 60, "omz", mode="crops", budget_pixels=10 ** 9).kind == "crops"


def test_a_machine_too_slow_for_the_full_pass_gets_what_its_budget_pays_for():
    from stages.plan import BUDGET_SHARE, CANVAS, MIN_BUDGET_CANVASES

    canvas = CANVAS[0] * CANVAS[1]
    crops = make_plan((720, 1280), 60, "omz", mode="crops")
    # room for the overview and two canvases: crops on two
    two = make_plan((720, 1280), 60, "omz", default_height=256,
                    budget_pixels=crops.overview_pixels + MIN_BUDGET_CANVASES * canvas)
    assert two.kind == "crops" and two.max_canvases == MIN_BUDGET_CANVASES and two.max_pixels <= \
        crops.overview_pixels + MIN_BUDGET_CANVASES * canvas
    # less: the whole frame as fine as the budget allows, never below auto's height
    budget = crops.overview_pixels + canvas
    whole = make_plan((720, 1280), 60, "omz", default_height=256, budget_pixels=budget)
    assert whole.kind == "whole" and 256 < round(720 * whole.scale) < 720
    assert whole.pixels <= BUDGET_SHARE * budget < whole.pixels * 1.2
    tiny = make_plan((720, 1280), 60, "omz", default_height=256, budget_pixels=1000)
    assert tiny.kind == "whole" and round(720 * tiny.scale) == 256


def test_a_small_frame_the_machine_cannot_afford_at_the_rule_scale_keeps_autos_height():
    # 640x480 with omz (default 256 rows, far below the rule's scale 1.0): crops would cost more
    # than the whole frame, which is too slow on this machine, so auto's height stays
    slow = make_plan((480, 640), 60, "omz", default_height=256, budget_pixels=150_000)
    assert slow.kind == "whole" and round(480 * slow.scale) == 256
    fast = make_plan((480, 640), 60, "omz", default_height=256, budget_pixels=10 ** 6)
    assert fast.kind == "whole" and fast.scale == 1.0
    assert make_plan((480, 640), 60, "omz", default_height=256).scale == 1.0     # nothing measured


def test_a_person_region_holds_the_whole_body_even_when_only_the_top_half_is_seen():
    plan = make_plan((720, 1280), 60, "mobilenet_thin", mode="crops")
    person = walker(400, 100, 100)
    top_half = person.copy()
    top_half[[8, 9, 10, 11, 12, 13]] = 0
    for pose in (person, top_half):
        (box, scale), = person_regions(pose[None], plan)
        assert scale == 1.0
        assert box[0] < 390 and box[2] > 410 and box[1] < 100 and box[3] > 195


def test_big_people_get_a_coarser_scale_and_giants_are_left_to_the_overview():
    plan = make_plan((720, 1280), 60, "mobilenet_thin", mode="crops")
    regions = person_regions(np.stack([walker(300, 50, 80), walker(800, 50, 300),
                                       walker(600, 0, plan.big_px * 1.2)]), plan)
    assert len(regions) == 2
    assert regions[0][1] == 1.0 and regions[1][1] < 1.0
    net_height = (regions[1][0][3] - regions[1][0][1]) * regions[1][1]
    assert net_height <= plan.shelf


def test_packing_merges_neighbours_fits_the_canvases_and_puts_people_first():
    plan = make_plan((720, 1280), 60, "mobilenet_thin", mode="crops")
    people = np.stack([walker(100 + 40 * i, 200, 90) for i in range(3)] + [walker(900, 300, 90)])
    crops = pack(choose_regions(plan, people, [], 0), plan)
    assert len(crops) == 3                                  # the three neighbours share one crop
    for crop in crops:
        assert crop.offset[0] + crop.size[1] <= plan.canvas[1]
        assert crop.size[0] <= plan.shelf
        assert 0 <= crop.box[0] < crop.box[2] <= 1280 and 0 <= crop.box[1] < crop.box[3] <= 720
    crowd = np.stack([walker(60 + 120 * i, 100 + 250 * (i % 3), 90) for i in range(10)])
    people_only = [region for region in choose_regions(plan, crowd, [], 3) if region[2] == PEOPLE]
    with_scan = people_only + [(scan_box(plan, 3), plan.scale, SCAN)]
    crops, crops_and_scan = pack(people_only, plan), pack(with_scan, plan)
    assert max(crop.canvas for crop in crops) < plan.max_canvases
    def held(found):
        centres = [(pose[:, :2].min(0) + pose[:, :2].max(0)) / 2 for pose in crowd]
        return sum(any(c.box[0] <= x <= c.box[2] and c.box[1] <= y <= c.box[3] for c in found)
                   for x, y in centres)
    assert held(crops_and_scan) == held(crops) == len(crowd)   # the scan never displaces people
    assert max(crop.canvas for crop in crops_and_scan) < plan.max_canvases


def test_crops_map_back_to_frame_pixels_and_canvases_hold_the_frame_pixels():
    plan = make_plan((720, 1280), 60, "mobilenet_thin", mode="crops")
    people = np.stack([walker(300, 200, 90), walker(1000, 400, 200)])
    crops = pack(choose_regions(plan, people, [], 0), plan)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8)

    class Spec:
        pad_value, mean, scale, channel_order = 0, (0, 0, 0), (1, 1, 1), "BGR"

    count = 1 + max(crop.canvas for crop in crops)
    canvases = prepare_canvases(image, crops, count, plan.canvas, Spec)
    assert canvases.shape == (count, 3, *plan.canvas)
    for crop in crops:
        x0, y0 = int(crop.box[0]), int(crop.box[1])
        if crop.scale == 1.0:
            assert np.array_equal(canvases[crop.canvas, :, crop.offset[1], crop.offset[0]], image[y0, x0])
        # a point in the crop goes to the canvas and back
        point = np.zeros((1, 18, 3), np.float32)
        point[0, 0] = (crop.offset[0] + crop.size[1] / 2, crop.offset[1] + crop.size[0] / 2, 1)
        back = crop.to_frame(point)[0, 0]
        assert crop.box[0] < back[0] < crop.box[2] and crop.box[1] < back[1] < crop.box[3]
        inside = split_people(point, crops, crop.canvas)
        assert sum(len(found) for _c, found, _s, _cut in inside) == 1


def test_merge_keeps_the_more_complete_of_duplicates_and_distinct_people():
    whole = walker(300, 100, 100)
    piece = whole.copy()
    piece[8:14] = 0
    piece[:, :2] += 1.5
    other = walker(600, 100, 100)
    people, scores, from_overview, _cut = merge_people(piece[None], np.array([0.9]), np.stack([whole, other]),
                                                 np.array([0.5, 0.6]), big_px=500)
    assert not from_overview.any()                         # the overview's piece lost to the whole
    assert len(people) == 2
    assert any(np.array_equal(person, whole) for person in people)      # the complete one stays
    assert any(np.array_equal(person, other) for person in people)
    assert not any(np.array_equal(person, piece) for person in people)
    empty, _, _, _ = merge_people(np.zeros((0, 18, 3)), np.zeros(0), np.zeros((0, 18, 3)), np.zeros(0), 500)
    assert len(empty) == 0


def test_only_the_overviews_big_people_are_published():
    small, big = walker(100, 100, 100), walker(600, 50, 400)
    people, _, from_overview, _cut = merge_people(np.stack([small, big]), np.ones(2), np.zeros((0, 18, 3)),
                                            np.zeros(0), big_px=600)
    shown = published(people, from_overview, 600)
    assert sorted(np.ptp(p[:, 1]) > 300 for p in people[shown]) == [True]
    assert published(people, np.zeros(2, bool), 600).all()      # crop people always are


def test_motion_boxes_find_the_block_that_changed():
    before = np.zeros((64, 96), np.uint8)
    after = before.copy()
    after[16:24, 40:48] = 200
    boxes = motion_boxes(before, after, (640, 960))
    assert len(boxes) == 1
    assert np.allclose(boxes[0], [400, 160, 480, 240])
    assert motion_boxes(None, after, (640, 960)) == []


def test_the_scan_visits_the_whole_frame():
    plan = make_plan((720, 1280), 60, "mobilenet_thin", mode="crops")
    covered = np.zeros((720, 1280), bool)
    for index in range(200):
        box = scan_box(plan, index).astype(int)
        covered[box[1]:box[3], box[0]:box[2]] = True
    assert covered.all()
    assert isinstance(plan, Plan) and SCAN > PEOPLE


def test_people_cut_by_a_crops_top_or_bottom_are_left_to_whoever_holds_them_whole():
    from stages.plan_pack import Crop

    inside = Crop((100.0, 200.0, 300.0, 424.0), 1.0, 0, (0, 0), (224, 200))     # rows 200-424
    at_top = Crop((400.0, 0.0, 600.0, 224.0), 1.0, 0, (208, 0), (224, 200))     # the frame's top
    whole = walker(100, 40, 120)[None]                       # canvas pixels, inside the first crop
    reaching = walker(100, -5, 200)[None]                    # from the crop's top edge downwards
    on_top = walker(300, 1, 150)[None]                       # at the second crop's top = frame top
    people = np.concatenate([whole, reaching, on_top])
    found = {crop.box: len(p) for crop, p, _s, _c in split_people(people, (inside, at_top), 0, None, 720)}
    assert found[inside.box] == 1                            # the cut one is dropped
    assert found[at_top.box] == 1                            # the frame's own edge cuts no one
    kept = {crop.box: len(p) for crop, p, _s, _c in split_people(people, (inside, at_top), 0)}
    assert kept[inside.box] == 2                             # without the frame height: no cut rule


def test_people_cut_by_a_crops_side_are_looked_for_but_not_published():
    from stages.plan_pack import Crop

    middle = Crop((100.0, 200.0, 300.0, 424.0), 1.0, 0, (0, 0), (224, 200))     # inside the frame
    at_left = Crop((0.0, 200.0, 200.0, 424.0), 1.0, 0, (208, 0), (224, 200))    # the frame's left
    whole = walker(100, 40, 120)[None]                       # canvas pixels, inside the first crop
    half = walker(2, 40, 120)[None]                          # sticks out of the first crop's left side
    on_edge = walker(210, 40, 120)[None]                     # at the second crop's left = frame edge
    people = np.concatenate([whole, half, on_edge])
    found = {crop.box: cut.tolist() for crop, _p, _s, cut in split_people(people, (middle, at_left), 0,
                                                                       None, 720, 1280)}
    assert found[middle.box] == [False, True] and found[at_left.box] == [False]
    # the whole version of a cut person wins the merge; a cut one alone is kept but not published
    neighbour = walker(700, 100, 100)
    seen = np.stack([walker(300, 100, 100), walker(301, 100, 100), neighbour])
    people, _, from_overview, cut = merge_people(np.zeros((0, 18, 3)), np.zeros(0), seen, np.ones(3), 500,
                                                 np.array([True, False, True]))
    assert len(people) == 2 and cut.tolist() == [False, True]
    assert people[0][0, 0] == 301                             # the whole one, though listed second
    assert published(people, from_overview, 500, cut).tolist() == [True, False]


def test_people_of_an_earlier_frame_follow_the_camera():
    import cv2

    from stages.plan import shifted
    from stream.runtime.planner import camera_shift

    rng = np.random.default_rng(1)
    before = cv2.GaussianBlur(rng.integers(0, 255, (144, 256)).astype(np.uint8), (9, 9), 3)
    after = np.roll(before, (2, -3), axis=(0, 1))              # the picture moved left and down
    shift = camera_shift(before, after, (720, 1280))
    assert np.allclose(shift, (-3 * 5, 2 * 5), atol=1.0)       # small grey frame is 1/5 of the frame
    person = walker(300, 100, 100)
    person[5] = 0
    moved = shifted(person[None], shift)[0]
    assert np.allclose(moved[0, :2], person[0, :2] + shift, atol=1e-3)
    assert (moved[5] == 0).all()                               # missing stays missing
    assert np.allclose(camera_shift(before, rng.integers(0, 255, (144, 256)).astype(np.uint8),
                                    (720, 1280)), 0.0)            # unrelated: no confident shift

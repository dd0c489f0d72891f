"""Development probe of the crops plan (stages.plan) on the first frames of a clip: the network
run directly, the frame's own resolution whole-frame pass as the reference; recall, extra
people, median keypoint offset and engine pixels/ms per frame for the plan.  Not the official
measurement (that is benchmarks.recall)."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import cv2
import numpy as np

from posestream_common.media import read_video_frames
from stages.plan import choose_regions, make_plan, motion_boxes
from stages.plan_merge import merge_people, published
from stages.plan_pack import canvases_used, pack, split_people
from stages.postprocess import decode_people, to_frame
from stages.preprocess import prepare, prepare_canvases

STATS = []
CUT = True
CANVASES = []
SMALL_OVERVIEW_OUT = True
NEED = []
log = logging.getLogger("plan_probe")


def whole(engine, frame, scale):
    net, used, pad = prepare(frame, engine.preprocess, scale=scale)
    start = time.perf_counter()
    heatmaps, pafs = engine(net[None])
    spent = time.perf_counter() - start
    people, scores = decode_people(heatmaps[0], pafs[0], stride=engine.stride)
    return to_frame(people, used, pad), scores, spent, net.shape[1] * net.shape[2]


def grey(frame, size):
    return cv2.cvtColor(cv2.resize(frame, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)


def run_plan(engine, frames, plan, lag=1, oracle=None, use_motion=True):
    outputs, spent, pixels = [], 0.0, 0
    history, previous_grey, scan = [], None, 0
    from stages.plan_merge import remember
    memory = (np.zeros((0, 18, 3), np.float32), np.zeros(0, int))
    for index, frame in enumerate(frames):
        if index == 0:
            people, scores, took, px = whole(engine, frame, plan.scale)
            outputs.append(people); history.append(people)
            memory = remember(memory[0], memory[1], people, 3)
            spent += took; pixels += px
            continue
        feedback = history[max(0, len(history) - lag)] if oracle is None else oracle[index - 1]
        if oracle is None:
            feedback = memory[0]
        over, over_scores, took, px = whole(engine, frame, plan.overview_scale)
        spent += took; pixels += px
        small = grey(frame, (max(8, round(frame.shape[1] * plan.overview_scale)),
                             max(8, round(frame.shape[0] * plan.overview_scale))))
        motion = motion_boxes(previous_grey, small, frame.shape[:2]) if use_motion else []
        previous_grey = small
        regions = choose_regions(plan, feedback, motion, scan)
        crops = pack(regions, plan)
        from stages.plan_pack import merge_regions, net_size
        NEED.append(sum(np.prod(net_size(b, sc)) for b, sc, pr in merge_regions(regions, plan) if pr == 0))
        STATS.append((len(regions), len(crops), sum(r[2] == 0 for r in regions), crops))
        scan += 1
        count = canvases_used(crops)
        found, found_scores = [np.zeros((0, 18, 3), np.float32)], [np.zeros(0, np.float32)]
        if count:
            batch = prepare_canvases(frame, crops, count, plan.canvas, engine.preprocess)
            for canvas in range(count):
                start = time.perf_counter()
                heatmaps, pafs = engine(batch[canvas:canvas + 1])
                spent += time.perf_counter() - start
                pixels += batch.shape[2] * batch.shape[3]
                people_net, scores_net = decode_people(heatmaps[0], pafs[0], stride=engine.stride)
                for crop, people, people_scores, _cut in split_people(people_net, crops, canvas, scores_net, frame.shape[0] if CUT else None):
                    found.append(people)
                    found_scores.append(people_scores)
        merged, _, from_overview, _cut = merge_people(over, over_scores, np.concatenate(found),
                                                np.concatenate(found_scores), plan.big_px)
        people = merged[published(merged, from_overview, plan.big_px)]
        history.append(merged)
        memory = remember(memory[0], memory[1], merged, 3)
        CANVASES.append(count)
        if SMALL_OVERVIEW_OUT:
            outputs.append(people)
        else:
            crop_people = np.concatenate(found)
            from stages.plan_merge import same_person
            keep = [p for p in people if any(np.array_equal(p, c) for c in crop_people) or np.ptp(p[p[:, 2] > 0, 1]) * 1.15 >= plan.big_px / 2]
            outputs.append(np.array(keep, np.float32).reshape(-1, 18, 3))
    return outputs, spent / len(frames), pixels / len(frames)


def main() -> None:
    from benchmarks.bench_media import find_shared
    from benchmarks.recall_metrics import compare_frame, summarise
    from stream.config import load_config
    from stages.inference import make_engine

    parser = argparse.ArgumentParser()
    parser.add_argument("--clip", default=None, help="a video (default: the test media's video.avi)")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--reference", default=None, help="a .npy of the reference's people per "
                        "frame (object array); default: computed here at the frame's own resolution")
    parser.add_argument("--min-person", type=float, default=60)
    parser.add_argument("--oracle", action="store_true")
    parser.add_argument("--no-motion", action="store_true")
    parser.add_argument("--set", nargs="*", default=[])
    args = parser.parse_args()
    import stages.plan as plan_module
    global SMALL_OVERVIEW_OUT
    for item in args.set:
        if item.startswith("NOCUT"):
            global CUT
            CUT = False
            continue
        if item.startswith("SMALL"):
            SMALL_OVERVIEW_OUT = False
            continue
        key, value = item.split("=")
        setattr(plan_module, key, eval(value))
    engine = make_engine(load_config(None, ["pipeline.mode=sequential"]))
    clip = Path(args.clip) if args.clip else find_shared() / "media" / "video.avi"
    frames = read_video_frames(clip, args.frames)
    if args.reference:
        reference = np.load(args.reference, allow_pickle=True)[:len(frames)]
    else:
        reference = [whole(engine, frame, 1.0)[0] for frame in frames]
    plan = make_plan(frames[0].shape[:2], args.min_person, "mobilenet_thin", "crops")
    outputs, ms, px = run_plan(engine, frames, plan, oracle=reference if args.oracle else None, use_motion=not args.no_motion)
    summary = summarise([compare_frame(np.asarray(ref), np.asarray(out))
                         for ref, out in zip(reference[1:], outputs[1:])])
    summary.update(ms=round(ms * 1000, 1), pixels=int(px), plan=str(plan), set=args.set)
    print(json.dumps(summary, default=float))
    cover = []
    for (nr, nc, npeople, crops), ref in zip(STATS, reference[1:]):
        for r in ref:
            v = r[:, 2] > 0
            if v.sum() < 8: continue
            c = (r[v, :2].min(0) + r[v, :2].max(0)) / 2
            cover.append(any(cr.box[0] <= c[0] <= cr.box[2] and cr.box[1] <= c[1] <= cr.box[3] for cr in crops))
    print("canvases", np.mean(CANVASES), "need px", np.mean(NEED), "regions", np.mean([s[0] for s in STATS]), "people regions", np.mean([s[2] for s in STATS]),
          "crops", np.mean([s[1] for s in STATS]), "ref covered", np.mean(cover))


if __name__ == "__main__":
    main()

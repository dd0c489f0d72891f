"""The command lines of Real-time-human-pose-estimation-by-pytorch, as written (single dash):
their mapping onto config keys, and the picture and video demos run end to end on a real photo
and a real clip, with the backbone's published file fetched from a 127.0.0.1 HTTP server."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import cv2
import pytest

import backbones
from posestream_common.errors import ConfigError
from run_stream import build_parser, flag_values
from tests.helpers_spine import ROOT, cli_env, decode_video
from tests.http_files import FileServer
from tests.published_weights import published_cmu, published_mobilenet


def values(*argv: str) -> dict:
    return flag_values(build_parser().parse_args(list(argv)))


@pytest.mark.parametrize("argv, expected", [
    (["-backbone", "CMU"], {"model.backbone": "cmu"}),
    (["-backbone", "Mobilenet"], {"model.backbone": "mobilenet"}),
    (["-backbone", "mobilenet"], {"model.backbone": "mobilenet"}),
    (["-scale", "0.3"], {"model.scale": 0.3, "model.input_height": None}),
    (["-show"], {"render.show": "skeleton"}),
    (["-show", "-1", "0"], {"render.show": "skeleton"}),          # the seed's default (-1, 0)
    (["-show", "4"], {"render.show": "heatmap:r_wrist"}),         # CMU heatmap index
    (["-show", "18"], {"render.show": "heatmap:background"}),
    (["-show", "l_ankle"], {"render.show": "heatmap:l_ankle"}),
    (["--show", "heatmap:r_wrist"], {"render.show": "heatmap:r_wrist"}),
    (["-thre", "0.2"], {"postprocess.peak_threshold": 0.2}),
    (["-image", "x.jpg"], {"source.uri": "x.jpg", "sources": []}),
    (["-video", "v.mp4"], {"source.uri": "v.mp4", "sources": []}),
])
def test_seed_flags_map_onto_config_keys(argv, expected):
    assert values(*argv) == expected


@pytest.mark.parametrize("argv, named", [
    (["-show", "19"], "part indices are 0-18"),
    (["-show", "nose", "neck"], "one part at a time"),
])
def test_bad_seed_show_is_a_config_error(argv, named):
    with pytest.raises(ConfigError, match=named):
        values(*argv)


def run_seed_command(argv: list[str], cwd, served: dict[str, bytes], backbone: str):
    """Run ``run_stream.py ARGV`` in ``cwd``, the backbone's weights fetched on first use from a
    local server into ``cwd/weights``; the finished process."""
    with FileServer(served) as server:
        (name, data), = served.items()
        url = f"{server.url(name)}#sha256={hashlib.sha256(data).hexdigest()}"
        env = cli_env() | {backbones.WEIGHTS_DIR_ENV: str(cwd / "weights"),
                           f"POSESTREAM_WEIGHTS_URL_{backbone.upper()}": url}
        return subprocess.run([sys.executable, str(ROOT / "run_stream.py"), *argv], cwd=cwd,
                              env=env, capture_output=True, text=True, timeout=300)


def test_seed_picture_command_writes_the_annotated_picture(media, tmp_path):
    photo = media("p3.jpg")
    done = run_seed_command(["-backbone", "Mobilenet", "-image", str(photo), "-scale", "0.5",
                             "-show", "--engine", "torch", "--threads", "1"],
                            tmp_path, {"checkpoint_iter_370000.pth": published_mobilenet(1)},
                            "mobilenet")
    assert done.returncode == 0, done.stderr[-2000:]
    annotated = cv2.imread(str(tmp_path / "output" / "p3.jpg"))
    assert annotated is not None and annotated.shape == cv2.imread(str(photo)).shape
    assert (tmp_path / "weights" / "mobilenet.pth").is_file()


def test_seed_video_command_writes_output_avi(media, tmp_path):
    clip = media("dance2.mp4")
    done = run_seed_command(["-backbone", "CMU", "-video", str(clip), "-scale", "0.1", "-show", "4",
                             "--engine", "torch", "--threads", "1", "--max-frames", "3"],
                            tmp_path, {"body_pose_model.pth": published_cmu(2)}, "cmu")
    assert done.returncode == 0, done.stderr[-2000:]
    frames = decode_video(tmp_path / "output.avi")
    assert len(frames) == 3 and frames[0].shape == (480, 702, 3)


def test_an_output_of_its_own_wins(media, tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "run_stream.py"), "-image",
                           str(media("p1.jpg")), "--weights", "random", "--input-height", "32",
                           "--engine", "torch", "--no-display", "--output", "mine"],
                          cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]

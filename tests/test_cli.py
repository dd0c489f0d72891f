"""run_stream.py as a user runs it: exit codes, one-line errors, signals, flags ↔ config keys."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import pytest

import run_stream
from stream.config import load_config
from tests.helpers_spine import (FAST, ROOT, cli_env, decode_video, make_video, read_json_lines, run_cli,
                                  signal_after_lines)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("cli_media") / "clip.avi", 12)


@pytest.fixture(scope="module")
def wrong_architecture_weights(tmp_path_factory):
    import torch

    import backbones

    path = tmp_path_factory.mktemp("weights") / "mobilenet_random.pth"
    torch.save(backbones.build("mobilenet", "random").state_dict(), path)
    return path


def bad_inputs(tmp_path, clip, wrong_weights):
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("this is not a video\n")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00\x01 not a torch file")
    malformed = tmp_path / "malformed.yaml"
    malformed.write_text("pipeline:\n  queue_size: [4\n")
    fast = [flag for flag in FAST if flag not in ("--weights", "random")]
    return {
        "missing source file": (["--source", str(tmp_path / "nowhere.mp4"), *FAST], "nowhere.mp4"),
        "not a video": (["--video", str(not_video), *FAST], "notes.mp4"),
        "unreadable weights": (["--source", str(clip), *fast, "--weights", str(garbage)], "garbage.pth"),
        "wrong-architecture weights": (["--source", str(clip), *fast, "--weights", str(wrong_weights)],
                                       "mobilenet_random.pth"),
        "unknown config key": (["--source", str(clip), *FAST, "--set", "pipeline.queue_sise=2"],
                               "pipeline.queue_size"),
        "tuning internal as a key": (["--source", str(clip), *FAST, "--set", "postprocess.close_peak_fit_error=1"],
                                     "postprocess.close_peak_fit_error"),
        "malformed YAML": (["--config", str(malformed), "--source", str(clip), *FAST], "malformed.yaml"),
        "invalid value": (["--source", str(clip), *FAST, "--set", "pipeline.queue_size=0"],
                          "pipeline.queue_size"),
        "invalid flag value": (["--source", str(clip), *FAST, "--max-frames", "0"], "run.max_frames"),
        "unknown backbone": (["--source", str(clip), *FAST, "--backbone", "resnet50"], "resnet50"),
    }


CASES = ["missing source file", "not a video", "unreadable weights", "wrong-architecture weights",
         "unknown config key", "tuning internal as a key", "malformed YAML", "invalid value",
         "invalid flag value", "unknown backbone"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(case, tmp_path, clip, wrong_architecture_weights):
    args, named = bad_inputs(tmp_path, clip, wrong_architecture_weights)[case]
    out = tmp_path / "out"
    result = run_cli(*args, "--output", str(out / "o.mp4"), "--json", str(out / "o.jsonl"),
                     "--stats", str(out / "s.json"))
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("posestream: error:")]
    assert len(errors) == 1, result.stderr
    assert named in errors[0]
    assert result.stderr.rstrip().endswith(errors[0])
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_a_failing_stage_exits_nonzero_naming_it(tmp_path, clip):
    script = (
        "import sys, run_stream\n"
        "from stream.runtime.stages import InferenceStage\n"
        "def explode(self, item):\n"
        "    raise RuntimeError('injected failure in frame %d' % item.index)\n"
        "InferenceStage.process = explode\n"
        "sys.exit(run_stream.main(sys.argv[1:]))\n")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", script, "--source", str(clip), *FAST,
                             "--json", str(tmp_path / "o.jsonl")],
                            cwd=ROOT, capture_output=True, text=True, timeout=120, env=cli_env())
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == "posestream: error: stage 'inference' failed: RuntimeError: injected failure in frame 0"
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_within_two_seconds_with_playable_outputs(tmp_path, signum):
    video, lines_path, stats_path = tmp_path / "o.mp4", tmp_path / "o.jsonl", tmp_path / "s.json"
    command = [sys.executable, str(ROOT / "run_stream.py"), "--source", "demo", *FAST,
               "--output", str(video), "--json", str(lines_path), "--stats", str(stats_path)]
    process, elapsed, stderr = signal_after_lines(command, lines_path, signum)
    assert process.returncode == 0, stderr
    assert elapsed < 2.0
    lines = read_json_lines(lines_path)
    assert [line["frame"] for line in lines] == list(range(len(lines)))
    assert len(decode_video(video)) == len(lines)
    assert json.loads(stats_path.read_text())["frames"] == len(lines)


def test_flags_are_shortcuts_for_config_keys():
    args = run_stream.build_parser().parse_args([
        "--video", "a.mp4", "--backbone", "cmu", "--input-height", "200", "--no-display", "--track",
        "--output", "o.mp4", "--json", "o.jsonl", "--stats", "s.json", "--engine", "torch",
        "--max-frames", "5", "--mode", "sequential", "--serve", "8080", "--log-level", "debug"])
    values = run_stream.flag_values(args)
    assert values == {
        "source.uri": "a.mp4", "sources": [], "model.backbone": "cmu", "model.input_height": 200, "model.scale": None,
        "output.display": False, "tracking.enabled": True, "output.video": "o.mp4",
        "output.json": "o.jsonl", "output.stats": "s.json", "inference.engine": "torch",
        "run.max_frames": 5, "pipeline.mode": "sequential", "output.serve": "8080",
        "run.log_level": "DEBUG"}
    several = run_stream.flag_values(run_stream.build_parser().parse_args(
        ["--source", "0", "--image", "x.jpg", "--scale", "0.5"]))
    assert several == {"sources": [{"uri": "0"}, {"uri": "x.jpg"}], "model.scale": 0.5,
                       "model.input_height": None}


def test_one_source_flag_replaces_the_sources_of_the_config_file(tmp_path):
    config_file = tmp_path / "two.yaml"
    config_file.write_text("sources:\n  - {name: left, uri: a.mp4}\n  - {name: right, uri: b.mp4}\n")
    args = run_stream.build_parser().parse_args(["--config", str(config_file), "--source", "c.mp4"])
    config = load_config(config_file, values=run_stream.flag_values(args))
    assert [(name, settings.uri) for name, settings in config.source_configs()] == [("cam0", "c.mp4")]


def test_readme_documents_every_flag():
    readme = (ROOT / "README.md").read_text()
    flags = {option for action in run_stream.build_parser()._actions for option in action.option_strings
             if option.startswith("--") and option != "--help"}
    missing = sorted(flag for flag in flags if not re.search(re.escape(flag) + r"\b", readme))
    assert missing == []


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    commands = [line.strip() for line in setup.splitlines() if line.startswith("    ")]
    assert len(commands) == 2
    install, test = commands
    assert install.startswith("pip install") and "pytest" in test
    ci = (ROOT / ".ci" / "run").read_text()
    assert test in ci
    assert install.split("pip install", 1)[1].strip() in ci


def test_readme_config_names_every_section_and_leaves_the_keys_to_default_yaml():
    """Each key is described once, in configs/default.yaml (tests/test_config.py checks it);
    README's config part names the sections and points there."""
    from stream.config import Config

    config_part = (ROOT / "README.md").read_text().split("## Config", 1)[1].split("\n## ", 1)[0]
    assert "configs/default.yaml" in config_part
    for section in Config.model_fields:
        assert f"`{section}`" in config_part, f"README's config part does not name the {section} section"

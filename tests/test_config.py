"""Config loading: defaults, shipped YAML files, overrides, and one-line errors naming the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from posestream_common.errors import ConfigError
from stream.config import CONFIG_DIR, Config, load_config


def all_keys(model_dump: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in model_dump.items():
        dotted = f"{prefix}{key}"
        keys.add(dotted)
        if isinstance(value, dict):
            keys |= all_keys(value, dotted + ".")
    return keys


def test_default_yaml_holds_exactly_the_models_defaults():
    assert load_config(CONFIG_DIR / "default.yaml") == Config()
    raw = yaml.safe_load((CONFIG_DIR / "default.yaml").read_text())
    assert all_keys(raw) == all_keys(Config().model_dump(by_alias=True))


def test_every_key_in_default_yaml_is_commented():
    for line in (CONFIG_DIR / "default.yaml").read_text().splitlines():
        if re.match(r"^\s*[a-z_]+:\s*\S", line) and not line.strip().startswith("sigmas"):
            assert "#" in line, f"undocumented key line: {line!r}"


@pytest.mark.parametrize("name", ["default", "video", "webcam", "rtsp", "benchmark"])
def test_shipped_configs_load(name):
    config = load_config(CONFIG_DIR / f"{name}.yaml")
    assert isinstance(config, Config)
    assert load_config(name) == config          # a bare name finds configs/NAME.yaml


def test_layers_apply_in_order_file_flags_set(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("pipeline: {queue_size: 2}\nmodel: {backbone: cmu}\nrun: {max_frames: 7}\n")
    config = load_config(path, overrides=["pipeline.queue_size=9", "output.json=out/x.jsonl"],
                         values={"pipeline.queue_size": 5, "model.backbone": "mobilenet"})
    assert config.pipeline.queue_size == 9        # --set beats the flag, the flag beats the file
    assert config.model.backbone == "mobilenet"
    assert config.run.max_frames == 7
    assert config.output.json == "out/x.jsonl"


def test_set_values_are_parsed_as_yaml():
    config = load_config(None, ["tracking.enabled=true", "source.uri=0", "output.video=",
                                "run.max_seconds=2.5", "sources=[{uri: a.mp4}, {uri: b.mp4, name: right}]",
                                "output.video=out/{source}.mp4"])
    assert config.tracking.enabled is True
    assert config.source.uri == "0"
    assert config.run.max_seconds == 2.5
    assert config.source_configs()[1][0] == "right"
    assert config.source_configs()[0][0] == "cam0"


def test_sources_inherit_unset_keys_from_source():
    config = load_config(None, ["source.read_timeout_s=1.5", "source.uri=ignored",
                                "sources=[{uri: a.mp4}, {uri: b.mp4, read_timeout_s: 3}]"])
    (name_a, first), (name_b, second) = config.source_configs()
    assert (name_a, first.uri, first.read_timeout_s) == ("cam0", "a.mp4", 1.5)
    assert (name_b, second.uri, second.read_timeout_s) == ("cam1", "b.mp4", 3.0)


def test_config_is_frozen():
    config = Config()
    with pytest.raises(Exception):
        config.pipeline.queue_size = 3


def error_of(*, text: str | None = None, overrides=(), tmp_path: Path | None = None) -> str:
    path = None
    if text is not None:
        path = tmp_path / "bad.yaml"
        path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, overrides)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_unknown_key_suggests_the_nearest(tmp_path):
    message = error_of(text="pipeline:\n  queue_sise: 3\n", tmp_path=tmp_path)
    assert "pipeline.queue_sise" in message and "did you mean 'pipeline.queue_size'" in message
    assert "bad.yaml" in message
    message = error_of(overrides=["outptu.video=x.mp4"])
    assert "'outptu'" in message and "did you mean 'output'" in message


def test_unknown_decoder_key_in_a_dataclass_backed_section():
    message = error_of(overrides=["postprocess.peak_treshold=0.2"])
    assert "postprocess.peak_treshold" in message and "postprocess.peak_threshold" in message


@pytest.mark.parametrize("override, key", [
    ("pipeline.queue_size=0", "pipeline.queue_size"),
    ("pipeline.queue_size=abc", "pipeline.queue_size"),
    ("pipeline.mode=parallel", "pipeline.mode"),
    ("model.input_height=3", "model.input_height"),
    ("model.device=gpu", "model.device"),
    ("inference.engine=tensorrt", "inference.engine"),
    ("render.show=heatmap:nose_tip", "render.show"),
    ("render.show=paf:nose-l_knee", "render.show"),
    ("source.read_timeout_s=-1", "source.read_timeout_s"),
    ("tracking.oks_threshold=2", "tracking.oks_threshold"),
    ("postprocess.min_parts=0", "postprocess.min_parts"),
])
def test_invalid_values_name_the_key(override, key):
    message = error_of(overrides=[override])
    assert f"'{key}'" in message


def test_show_error_lists_the_valid_names():
    message = error_of(overrides=["render.show=heatmap:nose_tip"])
    assert "r_shoulder" in message and "background" in message


def test_malformed_yaml_names_the_file_and_line(tmp_path):
    message = error_of(text="pipeline:\n  queue_size: [4\nmodel: {}\n", tmp_path=tmp_path)
    assert "bad.yaml" in message and "malformed YAML" in message and "line" in message


def test_top_level_must_be_a_mapping(tmp_path):
    assert "mapping" in error_of(text="- a\n- b\n", tmp_path=tmp_path)


def test_missing_config_file():
    with pytest.raises(ConfigError, match="config file not found: nowhere/x.yaml"):
        load_config("nowhere/x.yaml")


def test_set_without_equals_is_an_error():
    assert "dotted.key=value" in error_of(overrides=["pipeline.queue_size"])


def test_input_height_and_scale_are_exclusive():
    assert "model.scale" in error_of(overrides=["model.input_height=200", "model.scale=0.5"])


def test_several_sources_need_a_placeholder_in_the_video_path():
    message = error_of(overrides=["sources=[{uri: a.mp4}, {uri: b.mp4}]", "output.video=out.mp4"])
    assert "output.video" in message and "{source}" in message


def test_empty_sections_read_as_defaults(tmp_path):
    path = tmp_path / "sparse.yaml"
    path.write_text("pipeline:\n  # nothing set\nmodel:\n")
    assert load_config(path) == Config()

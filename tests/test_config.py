"""Config loading: defaults, shipped YAML files, overrides, and one-line errors naming the key."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from posestream_common.errors import ConfigError
from stages.postprocess import DecoderParams
from stages.smoothing import SmootherParams
from stages.tracking import TrackerParams
from stream.config import CONFIG_DIR, Config, load_config

# The decoder's, tracker's and smoother's fields that are config keys: the ones users turn.  Every
# other field is a tuning internal (set from Python); adding one here is a decision to document it
# in configs/default.yaml.
PUBLIC_PARAMS = {
    "postprocess": (DecoderParams, {"peak_threshold", "min_parts", "min_mean_score"}),
    "tracking": (TrackerParams, {"oks_threshold", "max_age"}),
    "smoothing": (SmootherParams, {"min_cutoff", "beta"}),
}


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
        if re.match(r"^\s*[a-z_]+:\s*\S", line):
            assert "#" in line, f"undocumented key line: {line!r}"


def test_only_the_listed_params_fields_are_config_keys():
    """A params dataclass field that becomes a config key without being listed as public fails."""
    param_types = {params_type for params_type, _ in PUBLIC_PARAMS.values()}
    for section_name, field in Config.model_fields.items():
        section = field.annotation
        params_type = getattr(section, "params_type", None)
        keys = set(getattr(section, "model_fields", {})) - {"enabled"}
        if params_type is None:
            for other in param_types:      # a plain section mirroring a dataclass field by hand
                assert not keys & {f.name for f in dataclasses.fields(other)}, section_name
            continue
        listed_type, public = PUBLIC_PARAMS[section_name]
        assert params_type is listed_type and keys == public, section_name
        defaults = params_type()
        for key in keys:
            assert section.model_fields[key].default == getattr(defaults, key), key
    assert {getattr(f.annotation, "params_type", None) for f in Config.model_fields.values()} - {None} == param_types


def test_docs_and_configs_name_no_tuning_internal_as_a_config_key():
    root = CONFIG_DIR.parent
    texts = {path: path.read_text() for path in [root / "README.md", *sorted((root / "docs").glob("*.md")),
                                                 *sorted(CONFIG_DIR.glob("*.yaml"))]}
    for section, (params_type, public) in PUBLIC_PARAMS.items():
        for name in {f.name for f in dataclasses.fields(params_type)} - public:
            for path, text in texts.items():
                assert f"{section}.{name}" not in text, f"{path.name} names {section}.{name}"


def test_public_params_reach_the_dataclasses_and_the_stage_rest_keeps_defaults():
    from stream.runtime import postprocess_stage

    config = load_config(None, ["postprocess.peak_threshold=0.2", "postprocess.min_parts=5",
                                "tracking.max_age=3", "smoothing.beta=0.1", "smoothing.enabled=true"])
    assert config.postprocess.params() == DecoderParams(peak_threshold=0.2, min_parts=5)
    assert config.tracking.params() == TrackerParams(max_age=3)
    assert config.smoothing.params() == SmootherParams(beta=0.1)
    stage = postprocess_stage(config, 8)
    assert stage.decoder_params == dataclasses.asdict(DecoderParams(peak_threshold=0.2, min_parts=5))
    assert stage.make_tracker().params == TrackerParams(max_age=3)
    assert stage.make_smoother().params == SmootherParams(beta=0.1)


@pytest.mark.parametrize("key, dataclass_field", [
    ("postprocess.close_peak_fit_error", "DecoderParams.close_peak_fit_error"),
    ("postprocess.paf_threshold", "DecoderParams.paf_threshold"),
    ("tracking.fallback_iou", "TrackerParams.fallback_iou"),
    ("smoothing.d_cutoff", "SmootherParams.d_cutoff"),
])
def test_a_tuning_internal_set_in_a_config_is_one_line_naming_it(key, dataclass_field, tmp_path):
    message = error_of(overrides=[f"{key}=1"])
    assert f"'{key}'" in message and "internal tuning value" in message and dataclass_field in message
    section, name = key.split(".")
    message = error_of(text=f"{section}:\n  {name}: 1\n", tmp_path=tmp_path)
    assert f"'{key}'" in message and "bad.yaml" in message and "internal tuning value" in message


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

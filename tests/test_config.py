from pathlib import Path

import pytest
from conftest import error_lines

from engines.errors import ConfigError
from streamer.config import load_config

CONFIGS = Path(__file__).parents[1] / "configs"


@pytest.mark.parametrize("name", ["webcam", "convert", "vcam", "cluster"])
def test_shipped_configs_load(name):
    cfg = load_config(CONFIGS / f"{name}.yaml")
    assert cfg.styles and 0 <= cfg.alpha <= 1


def test_a_ray_section_turns_the_cluster_on_and_ray_alone_means_the_defaults():
    assert load_config(CONFIGS / "convert.yaml").ray is None
    cfg = load_config(CONFIGS / "cluster.yaml")
    assert cfg.ray is not None and cfg.ray.address is None and cfg.ray.segment_seconds == 30
    assert load_config(None, {"ray": {}}).ray.warmup_frames == 32  # what `--ray` alone gives
    with pytest.raises(ConfigError, match="ray.segment_seconds"):
        load_config(None, {"ray": {"segment_seconds": 0}})


def test_vcam_config_turns_the_virtual_camera_on_and_the_window_off():
    cfg = load_config(CONFIGS / "vcam.yaml")
    assert cfg.live.vcam is not None and cfg.live.window is False


def test_command_line_overrides_the_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("alpha: 0.5\nengine:\n  backend: torch\n  batch: 2\n")
    cfg = load_config(p, {"alpha": 0.9, "engine": {"device": "cpu"}})
    assert cfg.alpha == 0.9 and cfg.engine.backend == "torch" and cfg.engine.batch == 2
    assert cfg.engine.device == "cpu"


def test_unknown_key_is_a_one_line_error_naming_it(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("temporal:\n  smoothness: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "unknown key 'temporal.smoothness'" in str(e.value) and "\n" not in str(e.value)


def test_bad_value_names_the_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("alpha: 2\n")
    with pytest.raises(ConfigError, match="'alpha'"):
        load_config(p)


def test_invalid_yaml_and_missing_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("styles: [a, b\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)
    with pytest.raises(ConfigError, match="Cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_top_level_must_be_a_mapping(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(p)


@pytest.mark.parametrize("text, key", [("temporal:\n  smoothness: 3\n", "temporal.smoothness"),
                                       ("video:\n  crf: fast\n", "video.crf")])
def test_every_command_reports_a_bad_config_in_one_line(tmp_path, run_cli, text, key):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    for args in (["convert", tmp_path / "in.mp4", "-o", tmp_path / "out.mp4"], ["live", "--no-window"]):
        code, _, err = run_cli(*args, "-c", config)
        (line,) = error_lines(err)
        assert code == 2 and f"'{key}'" in line and str(config) in line


def test_engine_threads_reach_the_backend(tmp_path):
    """engine.threads (0 = the backend's default) is handed to the backend the config names."""
    pytest.importorskip("onnxruntime")
    from streamer.pipeline import build_engine

    p = tmp_path / "c.yaml"
    p.write_text("engine:\n  model: lite\n  backend: onnxruntime\n  threads: 1\n")
    cfg = load_config(p)
    assert build_engine(cfg.engine).threads == 1
    with pytest.raises(ConfigError, match="engine.threads"):
        load_config(None, {"engine": {"threads": -1}})

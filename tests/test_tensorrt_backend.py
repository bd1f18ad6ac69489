"""The TensorRT backend's logic that runs without TensorRT: cache key, profile, precision plan, errors.

TensorRT itself cannot be installed on the development machine; the test that builds and runs an
engine skips unless TensorRT and an NVIDIA GPU are present.
"""

import json
import re
import subprocess
import sys

import pytest
import torch

from engines.backends import tensorrt_backend as trtb
from engines.backends.tensorrt_profile import (
    DEFAULT_MAX_BATCH,
    DEFAULT_RESOLUTIONS,
    engine_cache_key,
    load_profile_settings,
    make_profile,
    parse_resolution,
    precision_plan,
    profile_fits,
    save_profile_settings,
    trt_major,
)
from engines.errors import BackendUnavailable, ConfigError
from engines.export import feat_hw


def _trt_usable() -> bool:
    try:
        trtb.import_trt()
    except BackendUnavailable:
        return False
    return torch.cuda.is_available()


needs_trt = pytest.mark.skipif(not _trt_usable(), reason="needs TensorRT and an NVIDIA GPU")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLESTREAM_CACHE", str(tmp_path))
    return tmp_path


def test_trt_major():
    assert trt_major("10.3.0.26") == 10 and trt_major("11.0.0") == 11 and trt_major("dev") == 0


def test_parse_resolution_is_width_by_height():
    assert parse_resolution("1280x720") == (720, 1280)
    assert parse_resolution(" 640 X 360 ") == (360, 640)
    for bad in ("720p", "1280x", "4x4", "20000x10"):
        with pytest.raises(ConfigError):
            parse_resolution(bad)


def test_profile_spans_the_configured_resolutions():
    p = make_profile([(480, 854), (128, 128), (1080, 1920)], max_batch=4)
    assert set(p) == {"content", "style_mean", "style_std", "alpha"}
    # min: smallest, rounded down to a multiple of 8; opt: the first, as given; max: largest, rounded up.
    assert p["content"] == ((1, 3, 128, 128), (4, 3, 480, 854), (4, 3, 1080, 1920))
    assert p["style_mean"] == ((1, 512), (4, 512), (4, 512))
    assert p["alpha"] == ((1,), (4,), (4,))
    odd = make_profile([(363, 641), (101, 99)], max_batch=2, opt_batch=1)
    assert odd["content"] == ((1, 3, 96, 96), (1, 3, 363, 641), (2, 3, 368, 648))


def test_every_configured_shape_fits_and_nothing_bigger():
    resolutions = [(360, 640), (101, 99), (720, 1280)]
    p = make_profile(resolutions, max_batch=3)
    for h, w in resolutions:
        for n in (1, 2, 3):
            assert profile_fits(p, "content", (n, 3, h, w))
    assert not profile_fits(p, "content", (4, 3, 360, 640))       # batch over the max
    assert not profile_fits(p, "content", (1, 3, 1080, 1920))     # larger than any configured size
    assert not profile_fits(p, "content", (1, 3, 64, 64))         # smaller than the min
    assert not profile_fits(p, "content", (3, 360, 640))          # wrong rank


def test_decode_profile_follows_the_encoder_poolings():
    p = make_profile([(360, 640), (101, 99)], max_batch=2, part="decode")
    assert set(p) == {"feat", "content_mean", "content_std", "style_mean", "style_std", "alpha"}
    lo, opt, hi = p["feat"]
    assert lo == (1, 512, *feat_hw(96, 96)) and opt == (2, 512, *feat_hw(360, 640)) and hi == (2, 512, 45, 80)
    assert profile_fits(p, "feat", (1, 512, *feat_hw(101, 99)))


@pytest.mark.parametrize("kwargs", [
    {"resolutions": []}, {"resolutions": [(4, 64)]}, {"max_batch": 0}, {"opt_batch": 5}, {"part": "middle"},
])
def test_bad_profile_settings_are_config_errors(kwargs):
    args = {"resolutions": [(360, 640)], "max_batch": 4, **kwargs}
    with pytest.raises(ConfigError):
        make_profile(**args)


def test_cache_key_changes_with_everything_an_engine_depends_on():
    base = {"gpu_name": "NVIDIA H200", "compute_capability": "9.0", "trt_version": "10.13.0.35",
            "precision": "fp16", "profile": make_profile([(360, 640)], 4), "onnx_digest": "a" * 64, "part": "full"}
    changes = {"gpu_name": "NVIDIA H100 80GB HBM3", "compute_capability": "8.9", "trt_version": "11.0.0.1",
               "precision": "fp32", "profile": make_profile([(360, 640)], 2), "onnx_digest": "b" * 64,
               "part": "decode"}
    key = engine_cache_key(**base)
    assert engine_cache_key(**base) == key, "deterministic"
    assert engine_cache_key(**{**base, "compute_capability": (9, 0)}) == key
    keys = {name: engine_cache_key(**{**base, name: value}) for name, value in changes.items()}
    for name, other in keys.items():
        assert other != key, f"the key ignores {name}"
    assert len(set(keys.values())) == len(keys)
    # A profile differing only in resolution (same batch) changes it too.
    assert engine_cache_key(**{**base, "profile": make_profile([(720, 1280)], 4)}) != key
    assert re.fullmatch(r"[a-z0-9.-]+", key) and key.startswith("full-nvidia-h200-sm90-trt10-13-0-35-fp16-")


def test_precision_plan_per_tensorrt_version():
    # (strongly typed network, BuilderFlag.FP16)
    assert precision_plan(11, True, "fp16") == (True, False)    # 11: types from the graph, no flags left
    assert precision_plan(11, False, "fp16") == (False, False)
    assert precision_plan(10, True, "fp16") == (True, False)    # 10: strongly typed, the casts are obeyed
    assert precision_plan(10, True, "fp32") == (True, False)
    assert precision_plan(8, False, "fp16") == (False, True)    # old: weakly typed + the FP16 flag
    assert precision_plan(8, False, "fp32") == (False, False)


def test_build_engine_profile_is_saved_for_later_runs(cache):
    assert load_profile_settings() == (DEFAULT_RESOLUTIONS, DEFAULT_MAX_BATCH)
    path = save_profile_settings([(720, 1280), (360, 640)], 2)
    assert path.parent == cache / "tensorrt"
    assert load_profile_settings() == (((720, 1280), (360, 640)), 2)
    with pytest.raises(ConfigError):
        save_profile_settings([], 2)
    path.write_text(json.dumps({"resolutions": "oops"}))
    assert load_profile_settings() == (DEFAULT_RESOLUTIONS, DEFAULT_MAX_BATCH)  # a bad file is ignored


@pytest.mark.skipif(_trt_usable(), reason="checks the errors on a machine without TensorRT or a GPU")
def test_without_tensorrt_or_gpu_the_engine_is_unavailable(cache):
    from engines.graph import StyleGraph

    with pytest.raises(BackendUnavailable, match="TensorRT"):
        trtb.TensorRTEngine(StyleGraph(torch.nn.Identity(), torch.nn.Identity()))
    with pytest.raises(BackendUnavailable, match="TensorRT"):
        trtb.prebuild_engines(device="cuda")
    with pytest.raises(BackendUnavailable, match="CUDA devices only"):
        trtb.cuda_device("cpu")


@pytest.mark.skipif(_trt_usable(), reason="checks the error on a machine without TensorRT or a GPU")
def test_build_engine_command_fails_in_one_line(cache):
    proc = subprocess.run([sys.executable, "-m", "streamer.app.cli", "build-engine", "-r", "640x360"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "TensorRT" in proc.stderr and "Traceback" not in proc.stderr


@needs_trt
def test_engine_matches_torch(cache):
    from engines.backends.torch_backend import TorchEngine
    from engines.graph import load_graph

    graph = load_graph()
    engine = trtb.TensorRTEngine(graph, resolutions=[(64, 96), (37, 50)], max_batch=2)
    ref_engine = TorchEngine(load_graph(), device="cuda", precision="fp32", cuda_graphs=False)
    style = ref_engine.encode_style(torch.rand(1, 3, 64, 64), size=None)
    x = torch.rand(2, 3, 64, 96, device="cuda")
    out = engine.stylize(x, style, 1.0)
    assert out.shape == x.shape and out.dtype == torch.float16
    assert (out.float() - ref_engine.stylize(x, style, 1.0)).abs().max() < 0.06
    assert any((cache / "tensorrt").glob("full-*.engine"))

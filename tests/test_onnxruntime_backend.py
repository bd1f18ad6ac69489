"""The onnxruntime backend against the torch backend (CPU), its session settings and its providers."""

import os

import numpy as np
import pytest
import torch

from engines.adain import StyleCode
from engines.backends.onnxruntime_backend import (
    OnnxRuntimeEngine,
    cpu_session_options,
    default_providers,
    physical_cores,
)
from engines.backends.torch_backend import TorchEngine
from engines.errors import BackendUnavailable, ConfigError
from engines.graph import load_graph

ort = pytest.importorskip("onnxruntime")

# Max abs difference from the torch backend on outputs in [0, 1] (both fp32; oneDNN and ORT sum in
# different orders): measured ~1.5e-5.
BOUND = 1e-4


@pytest.fixture(scope="module")
def graph():
    # The shipped decoder: a random one clamps most pixels to 0 or 1, which would hide differences.
    return load_graph()


@pytest.fixture(scope="module")
def ort_engine(graph, cache):
    return OnnxRuntimeEngine(graph, device="cpu")


@pytest.fixture(scope="module")
def torch_engine(graph):
    return TorchEngine(graph, device="cpu", precision="fp32")  # the reference


@pytest.fixture(scope="module")
def style(torch_engine):
    gen = torch.Generator().manual_seed(0)
    return torch_engine.encode_style(torch.rand(1, 3, 64, 80, generator=gen), size=None, source="noise")


def _content(n, h, w, seed=1):
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("n,h,w", [(2, 40, 56), (1, 37, 50)])
def test_stylize_matches_torch(ort_engine, torch_engine, style, n, h, w):
    x = _content(n, h, w)
    out = ort_engine.stylize(x, style, 0.7)
    ref = torch_engine.stylize(x, style, 0.7)
    assert out.shape == ref.shape == (n, 3, h, w)
    assert ((ref > 0) & (ref < 1)).float().mean() > 0.5, "mostly clamped output would make this vacuous"
    assert (out - ref).abs().max() < BOUND


def test_encode_and_decode_match_torch(ort_engine, torch_engine, style):
    x = _content(1, 37, 50)
    feat, mean, std = ort_engine.encode(x)
    rfeat, rmean, rstd = torch_engine.encode(x)
    assert feat.shape == rfeat.shape == (1, 512, 5, 7)
    assert mean.dtype == torch.float32 and std.dtype == torch.float32
    for a, b in ((feat, rfeat), (mean, rmean), (std, rstd)):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)
    # Smoothed content statistics go in between the halves.
    out = ort_engine.decode(rfeat, rmean * 0.95, rstd * 1.05, style, 1.0, (37, 50))
    ref = torch_engine.decode(rfeat, rmean * 0.95, rstd * 1.05, style, 1.0, (37, 50))
    assert out.shape == ref.shape == (1, 3, 37, 50)
    assert (out - ref).abs().max() < BOUND
    fused = ort_engine.stylize(x, style, 1.0)
    assert (ort_engine.decode(feat, mean, std, style, 1.0, (37, 50)) - fused).abs().max() < BOUND


def test_encode_style_matches_torch(ort_engine, torch_engine):
    image = _content(1, 48, 64, seed=3)
    a = ort_engine.encode_style(image, size=None)
    b = torch_engine.encode_style(image, size=None)
    assert torch.allclose(a.mean, b.mean, rtol=1e-4, atol=1e-4)
    assert torch.allclose(a.std, b.std, rtol=1e-4, atol=1e-4)


def test_style_and_alpha_are_inputs_not_rebuilds(ort_engine, style):
    x = _content(1, 32, 32)
    session = ort_engine._session("full")
    a = ort_engine.stylize(x, style, 1.0)
    assert not torch.allclose(a, ort_engine.stylize(x, StyleCode(style.mean * 0.5, style.std * 2.0), 1.0))
    assert not torch.allclose(a, ort_engine.stylize(x, style, 0.2))
    assert ort_engine._session("full") is session


def test_frames_round_trip(ort_engine, style):
    frames = [np.full((36, 52, 3), v, np.uint8) for v in (30, 200)]
    out = ort_engine.download(ort_engine.stylize(ort_engine.upload(frames), style, 1.0))
    assert len(out) == 2 and all(f.shape == (36, 52, 3) and f.dtype == np.uint8 for f in out)


def test_describe_names_the_provider(ort_engine):
    assert ort_engine.describe() == "onnxruntime on cpu (float32) [CPUExecutionProvider]"


def test_cpu_session_is_tuned():
    so = cpu_session_options()
    assert so.intra_op_num_threads == physical_cores()
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert so.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert so.enable_mem_pattern and so.enable_cpu_mem_arena
    assert cpu_session_options(3).intra_op_num_threads == 3
    assert 1 <= physical_cores() <= (os.cpu_count() or 1)


def test_providers_for_cpu_and_for_cuda_builds(monkeypatch, tmp_path):
    monkeypatch.setenv("STYLESTREAM_CACHE", str(tmp_path))
    assert default_providers(torch.device("cpu"), "fp32") == ["CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(BackendUnavailable, match="onnxruntime-gpu"):
        default_providers(torch.device("cuda"), "fp16")
    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    providers = default_providers(torch.device("cuda:1"), "fp16")
    names = [p[0] if isinstance(p, tuple) else p for p in providers]
    assert names == ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    trt_options, cuda_options = providers[0][1], providers[1][1]
    assert trt_options["trt_fp16_enable"] and trt_options["device_id"] == 1 and cuda_options["device_id"] == 1
    assert not default_providers(torch.device("cuda"), "fp32")[0][1]["trt_fp16_enable"]


def test_bad_settings_are_clear_errors(graph):
    with pytest.raises(ConfigError, match="precision|fp32 or fp16"):
        OnnxRuntimeEngine(graph, device="cpu", precision="bf16")
    with pytest.raises(ConfigError, match="device"):
        OnnxRuntimeEngine(graph, device="gpu0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a GPU")
def test_cuda_without_gpu_is_backend_unavailable(graph):
    with pytest.raises(BackendUnavailable, match="--device cpu"):
        OnnxRuntimeEngine(graph, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available() or "CUDAExecutionProvider" not in ort.get_available_providers(),
                    reason="needs an NVIDIA GPU and the onnxruntime-gpu build")
def test_cuda_provider_matches_torch(graph, torch_engine, style, cache):
    engine = OnnxRuntimeEngine(graph, device="cuda", precision="fp32",
                               providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    x = _content(2, 40, 56)
    out = engine.stylize(x.cuda(), style, 0.7)
    assert out.device.type == "cuda"
    assert (out.float().cpu() - torch_engine.stylize(x, style, 0.7)).abs().max() < 1e-3

"""Issue 14's CPU side: the torch engine variants against the fp32 reference, the profile table, the bench's
variants side by side, and the end-to-end convert breakdown (stage timing) on a real generated clip."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from engines.backends.torch_backend import TorchEngine
from engines.backends.torch_fold import fold_padding, fold_sequential
from engines.bench import BenchSettings, parse_variants, run_bench
from engines.decoder import random_decoder
from engines.errors import BackendUnavailable, ConfigError
from engines.graph import StyleGraph
from engines.vgg import load_encoder


@pytest.fixture(scope="module")
def graph():
    return StyleGraph(load_encoder(), random_decoder(0)).eval()


@pytest.fixture(scope="module")
def style(graph):
    return TorchEngine(graph, device="cpu", precision="fp32").encode_style(
        torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(1)), size=None, source="noise")


@pytest.fixture(scope="module")
def reference(graph, style):
    x = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    return x, TorchEngine(graph, device="cpu", precision="fp32").stylize(x, style, 0.8).float()


def test_folded_padding_has_no_pad_layers_and_the_same_weights(graph):
    folded = fold_padding(graph)
    assert not any(isinstance(m, nn.ReflectionPad2d) for m in folded.modules())
    assert any(isinstance(m, nn.ReflectionPad2d) for m in graph.modules())  # the original is untouched
    convs = [m for m in folded.decoder if isinstance(m, nn.Conv2d)]
    assert all(c.padding_mode == "reflect" and c.padding == (1, 1) for c in convs)
    assert sum(p.numel() for p in folded.parameters()) == sum(p.numel() for p in graph.parameters())
    seq = nn.Sequential(nn.ReflectionPad2d(2), nn.Conv2d(3, 4, 5), nn.ReLU())
    x = torch.rand(1, 3, 9, 11)
    torch.testing.assert_close(fold_sequential(seq)(x), seq(x))


@pytest.mark.parametrize("options", [{"fold_padding": True}, {"channels_last": False}, {"compile": "eager"},
                                     {"fold_padding": True, "channels_last": False}])
def test_fp32_variants_match_the_reference(graph, style, reference, options):
    x, ref = reference
    out = TorchEngine(graph, device="cpu", precision="fp32", **options).stylize(x, style, 0.8).float()
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("options", [{}, {"fold_padding": True}])
def test_bf16_variants_stay_within_the_half_precision_tolerance(graph, style, reference, options):
    """The tolerance the CUDA fp16 engine is held to (tests/test_torch_backend.py): mean |diff| < 0.02."""
    x, ref = reference
    out = TorchEngine(graph, device="cpu", precision="bf16", **options).stylize(x, style, 0.8).float()
    assert (out - ref).abs().mean() < 0.02


def test_unknown_compile_mode_and_variant_are_clear_errors(graph):
    with pytest.raises(BackendUnavailable, match="compile mode"):
        TorchEngine(graph, device="cpu", compile="turbo")
    with pytest.raises(ConfigError, match="Unknown variant"):
        parse_variants("default,turbo", "cpu")
    assert parse_variants("auto", "cpu") == ["default"]
    assert parse_variants("auto", "cuda") == ["default", "compiled"]


def test_bench_times_variants_side_by_side():
    s = BenchSettings(backends=["torch"], device="cpu", precision="fp32", resolutions=[(32, 48)], models=["full"],
                      variants=["default", "fold-padding", "nchw"], warmup=0, iters=1)
    rows = run_bench(s)["results"]
    assert [r["variant"] for r in rows] == ["default", "fold-padding", "nchw"]
    assert all(r["stylize_ms_median"] > 0 for r in rows)


def test_profile_table_groups_the_kernels(tmp_path):
    from benchmarks import profile_gpu

    assert profile_gpu.main(["--models", "full", "--size", "48x32", "--device", "cpu", "--precision", "fp32",
                             "--iters", "1", "--warmup", "0", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "profile-cpu-48x32-default.json").read_text())
    (p,) = result["profiles"]
    groups = {g["group"]: g for g in p["groups"]}
    for name in ("convolution", "reflection padding", "nearest upsampling", "relu / clamp"):
        assert groups[name]["ms"] > 0, name
    assert sum(g["share"] for g in p["groups"]) == pytest.approx(1.0, abs=0.01)
    assert "| reflection padding |" in (tmp_path / "profile-cpu-48x32-default.md").read_text()


def test_stage_times_add_up_per_thread():
    from streamer.timing import StageTimes

    t = StageTimes()
    for stage, s in (("decode", 0.010), ("upload", 0.002), ("network", 0.030), ("encode", 0.008)):
        t.add(stage, s)
    summary = t.summary(frames=2)
    assert summary["ms_per_frame"] == {"decode": 5.0, "upload": 1.0, "network": 15.0, "encode": 4.0}
    assert summary["thread_ms_per_frame"] == {"reader": 5.0, "main": 16.0, "sinks": 4.0}


@pytest.mark.slow
def test_convert_hook_reports_presets_and_every_stage(graph, tmp_path):
    """A generated clip with audio through the real convert path (PyAV in and out, smoothing on)."""
    from streamer.convert_timing import convert_timing_hook

    engine = TorchEngine(graph, device="cpu", precision="fp32")
    hook = convert_timing_hook("64x48", 0.5, tmp_path, presets=("ultrafast", "medium"))
    extra = hook(engine, "torch")
    assert [r["preset"] for r in extra["convert_presets"]] == ["ultrafast", "medium"]
    assert extra["convert"]["frames"] == 12 and extra["convert"]["fps"] > 0
    stages = extra["convert_stages"]["stages"]["ms_per_frame"]
    assert list(stages) == ["decode", "upload", "network", "smoothing", "download", "blend", "encode"]
    assert all(v > 0 for v in stages.values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU (scripts/gpu_session.sh speed)")
@pytest.mark.parametrize("options", [{}, {"fold_padding": True}, {"channels_last": False}, {"compile": "default"},
                                     {"compile": "default", "fold_padding": True}])
def test_cuda_fp16_variants_match_fp32(graph, style, reference, options):
    """On the device: every variant in fp16 (CUDA graphs on) within today's fp16 tolerance of the fp32 CPU output."""
    x, ref = reference
    import copy

    engine = TorchEngine(copy.deepcopy(graph), device="cuda", precision="fp16", **options)
    out = engine.stylize(x.cuda(), style, 0.8).float().cpu()
    assert (out - ref).abs().mean() < 0.02


def test_bench_cli_rejects_an_unknown_variant_in_one_line():
    import subprocess
    import sys
    from pathlib import Path

    proc = subprocess.run([sys.executable, "-m", "streamer.app.cli", "bench", "--variants", "default,turbo",
                           "--device", "cpu", "--no-convert"], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "Unknown variant 'turbo'" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1

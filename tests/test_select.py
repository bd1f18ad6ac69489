"""Backend selection: what `auto` picks, and the errors for unknown or absent backends."""

import copy
import json
import logging

import numpy as np
import pytest
import torch

from engines.backends import calibrate, select
from engines.backends.select import available_backends, create_engine, pick_backend, why_unavailable
from engines.decoder import random_decoder
from engines.errors import BackendUnavailable, ConfigError
from engines.graph import StyleGraph
from engines.machine import cpu_has_native_bf16
from engines.vgg import VGGEncoder

pytest.importorskip("onnxruntime")


def test_present_backends():
    present = available_backends()
    assert present[:3] == ["torch", "onnxruntime", "openvino"]
    assert ("tensorrt" in present) == (why_unavailable("tensorrt") is None)


def test_auto_on_cpu_without_calibration_picks_onnxruntime_and_says_so(caplog, monkeypatch):
    monkeypatch.setattr(calibrate, "cpu_has_native_bf16", lambda: False)
    with caplog.at_level(logging.INFO, logger="engines.backends.select"):
        assert pick_backend("auto", device="cpu") == "onnxruntime"
    assert "backend auto -> onnxruntime on cpu (present" in caplog.text


def test_auto_on_a_cpu_with_native_bf16_without_calibration_picks_openvino(caplog, monkeypatch):
    monkeypatch.setattr(calibrate, "cpu_has_native_bf16", lambda: True)
    with caplog.at_level(logging.INFO, logger="engines.backends.select"):
        assert pick_backend("auto", device="cpu") == "openvino"
    assert "backend auto -> openvino on cpu" in caplog.text


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no bf16 in hardware")
def test_auto_precision_on_this_bf16_cpu_is_bf16_and_close_to_fp32():
    graph = StyleGraph(VGGEncoder(), random_decoder(0)).eval()
    auto = create_engine("auto", device="cpu", graph=copy.deepcopy(graph))  # engines cast their graph in place
    assert auto.name == "openvino" and auto.precision == "bf16"
    fp32 = create_engine("torch", device="cpu", precision="fp32", graph=graph)
    x = torch.rand(1, 3, 64, 96)
    style = fp32.encode_style(torch.rand(1, 3, 64, 64), None, "noise")
    a, b = auto.stylize(x, style, 1.0).float(), fp32.stylize(x, style, 1.0)
    assert auto.download(auto.stylize(x, style, 1.0))[0].dtype == np.uint8
    assert (a - b).abs().mean() < 0.02  # bf16 keeps 8 bits of mantissa; the AdaIN statistics stay fp32


def test_auto_falls_back_to_torch(monkeypatch):
    assert pick_backend("auto", device="cpu", precision="bf16") in ("openvino", "torch")  # the bf16 runtimes
    monkeypatch.setattr(select, "why_unavailable", lambda b: None if b in ("torch", "onnxruntime") else "absent")
    assert pick_backend("auto", device="cpu", precision="bf16") == "torch"
    monkeypatch.setattr(select, "why_unavailable", lambda b: None if b == "torch" else "absent")
    assert pick_backend("auto", device="cpu") == "torch"


def test_auto_on_cuda_prefers_tensorrt(monkeypatch):
    monkeypatch.setattr(select, "why_unavailable", lambda b: None)
    assert pick_backend("auto", device="cuda") == "tensorrt"
    monkeypatch.setattr(select, "why_unavailable", lambda b: "absent" if b == "tensorrt" else None)
    assert pick_backend("auto", device="cuda") == "torch"  # onnxruntime-gpu is never the automatic choice


def test_unknown_backend_or_device_is_a_config_error():
    with pytest.raises(ConfigError, match="Unknown backend 'tensorflow'.*auto, torch, onnxruntime, openvino, tensorrt"):
        pick_backend("tensorflow")
    with pytest.raises(ConfigError, match="Unknown device"):
        pick_backend("auto", device="gpu0")


@pytest.mark.skipif(why_unavailable("tensorrt") is None, reason="TensorRT is usable here")
def test_tensorrt_unavailable_says_why_and_what_to_do():
    with pytest.raises(BackendUnavailable) as info:
        pick_backend("tensorrt")
    message = str(info.value)
    assert "'tensorrt' is not available" in message
    assert "NVIDIA GPU" in message or "pip install" in message
    assert "--backend" in message


def test_create_engine_auto_builds_onnxruntime_and_drops_foreign_options(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLESTREAM_CACHE", str(tmp_path))
    monkeypatch.setattr(calibrate, "cpu_has_native_bf16", lambda: False)
    graph = StyleGraph(VGGEncoder(), random_decoder(0)).eval()  # random weights: only the plumbing is tested
    engine = create_engine("auto", device="cpu", graph=graph, cuda_graphs=True, threads=1)
    assert engine.name == "onnxruntime" and engine.device == torch.device("cpu") and engine.threads == 1
    engine = create_engine("torch", device="cpu", graph=graph, cuda_graphs=False)
    assert engine.name == "torch"


def test_registry_declares_exactly_the_options_each_engine_takes():
    import inspect

    from engines.backends.registry import REGISTRY

    for name, entry in REGISTRY.items():
        params = set(inspect.signature(entry.engine_class().__init__).parameters)
        assert entry.options == params - {"self", "graph", "device", "precision"}, name


def test_a_onednn_cap_below_bf16_means_no_native_bf16(monkeypatch):
    from engines.machine import cpu_class, cpu_flags

    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not cpu_has_native_bf16()  # torch would emulate bf16 under the cap: never choose it
    assert "ONEDNN_MAX_CPU_ISA=AVX2" in cpu_class()
    assert set(cpu_flags()) <= set(cpu_class().split())


def test_auto_on_a_cpu_measures_once_and_keeps_the_fastest(tmp_path, monkeypatch, caplog):
    from engines.lite.network import LiteGraph

    monkeypatch.setenv("STYLESTREAM_CACHE", str(tmp_path))
    monkeypatch.setenv("STYLESTREAM_CALIBRATE", "on")
    graph = LiteGraph().eval()
    # a copy per run, as each run loads its network afresh: the torch engine converts its graph in place
    with caplog.at_level(logging.INFO):
        engine = create_engine("auto", device="cpu", graph=copy.deepcopy(graph), frame_pixels=96 * 64, threads=1)
    (saved,) = (tmp_path / "calibration").glob("lite-*.json")
    result = json.loads(saved.read_text())
    assert set(result["ms"]) == {"torch", "onnxruntime", "openvino"} and all(v > 0 for v in result["ms"].values())
    assert engine.name == result["best"] == min(result["ms"], key=result["ms"].get)
    assert "calibrating the CPU backends" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):
        again = create_engine("auto", device="cpu", graph=copy.deepcopy(graph), frame_pixels=96 * 64, threads=1)
    assert again.name == engine.name and "calibrating" not in caplog.text  # read, not measured again
    assert calibrate.size_class(640 * 360) == (360, 640)


def test_a_stream_on_a_cpu_engine_other_than_torch_leaves_torch_one_thread_and_style_codes_all(monkeypatch):
    """torch only moves frames beside onnxruntime/OpenVINO: one thread (no OpenMP wait on a busy core);
    a style code, computed once, still gets every core."""
    import engines.vgg
    from engines.machine import cpu_cores
    from streamer.config import EngineConfig
    from streamer.pipeline import build_engine

    engine = build_engine(EngineConfig(model="lite", backend="onnxruntime", device="cpu"))
    assert torch.get_num_threads() == 1
    seen, real = [], engines.vgg.style_statistics

    def counting(image):
        seen.append(torch.get_num_threads())
        return real(image)

    monkeypatch.setattr(engines.vgg, "style_statistics", counting)
    code = engine.encode_style(torch.rand(1, 3, 64, 64), size=None)
    assert seen == [cpu_cores()] and torch.isfinite(code.mean).all()
    assert torch.get_num_threads() == 1

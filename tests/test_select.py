"""Backend selection: what `auto` picks, and the errors for unknown or absent backends."""

import logging

import pytest
import torch

from engines.backends import select
from engines.backends.select import available_backends, create_engine, pick_backend, why_unavailable
from engines.decoder import random_decoder
from engines.errors import BackendUnavailable, ConfigError
from engines.graph import StyleGraph
from engines.vgg import VGGEncoder

pytest.importorskip("onnxruntime")


def test_present_backends():
    present = available_backends()
    assert present[:2] == ["torch", "onnxruntime"]
    assert ("tensorrt" in present) == (why_unavailable("tensorrt") is None)


def test_auto_on_cpu_picks_onnxruntime_and_says_so(caplog):
    with caplog.at_level(logging.INFO, logger="engines.backends.select"):
        assert pick_backend("auto", device="cpu") == "onnxruntime"
    assert "backend auto -> onnxruntime on cpu" in caplog.text


def test_auto_falls_back_to_torch(monkeypatch):
    assert pick_backend("auto", device="cpu", precision="bf16") == "torch"  # bf16 runs on torch only
    monkeypatch.setattr(select, "why_unavailable", lambda b: None if b == "torch" else "absent")
    assert pick_backend("auto", device="cpu") == "torch"


def test_auto_on_cuda_prefers_tensorrt(monkeypatch):
    monkeypatch.setattr(select, "why_unavailable", lambda b: None)
    assert pick_backend("auto", device="cuda") == "tensorrt"
    monkeypatch.setattr(select, "why_unavailable", lambda b: "absent" if b == "tensorrt" else None)
    assert pick_backend("auto", device="cuda") == "torch"  # onnxruntime-gpu is never the automatic choice


def test_unknown_backend_or_device_is_a_config_error():
    with pytest.raises(ConfigError, match="Unknown backend 'tensorflow'.*auto, torch, onnxruntime, tensorrt"):
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
    graph = StyleGraph(VGGEncoder(), random_decoder(0)).eval()  # random weights: only the plumbing is tested
    engine = create_engine("auto", device="cpu", graph=graph, cuda_graphs=True, threads=1)
    assert engine.name == "onnxruntime" and engine.device == torch.device("cpu") and engine.threads == 1
    engine = create_engine("torch", device="cpu", graph=graph, cuda_graphs=False)
    assert engine.name == "torch"

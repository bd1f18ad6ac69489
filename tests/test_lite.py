"""The lite network: shapes, cost, the style code as its style input, and training it (tiny, on the CPU)."""

from __future__ import annotations

import json

import pytest
import torch

from engines.graph import load_graph
from engines.lite.network import LiteGraph, count_macs


def _inputs(n=1, h=45, w=70, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, h, w, generator=gen), torch.rand(n, 512, generator=gen),
            torch.rand(n, 512, generator=gen) + 0.2, torch.ones(n))


def test_output_matches_input_size_for_odd_sizes_and_stays_in_range():
    g = LiteGraph().eval()
    for h, w in [(45, 70), (17, 33), (64, 64)]:
        with torch.no_grad():
            out = g(*_inputs(2, h, w))
        assert out.shape == (2, 3, h, w)
        assert float(out.min()) >= 0 and float(out.max()) <= 1


def test_at_least_15x_fewer_macs_than_the_full_graph():
    full = count_macs(load_graph(), 90, 160)
    lite = count_macs(LiteGraph(), 90, 160)
    assert full / lite >= 15


def test_style_code_changes_the_output_and_alpha_zero_ignores_it():
    torch.manual_seed(0)
    g = LiteGraph().eval()
    content, m, s, a = _inputs()
    other_m, other_s = m.flip(1), s.flip(1) * 2
    with torch.no_grad():
        assert not torch.allclose(g(content, m, s, a), g(content, other_m, other_s, a))
        zero = torch.zeros(1)
        torch.testing.assert_close(g(content, m, s, zero), g(content, other_m, other_s, zero))


def test_encode_decode_equals_forward():
    g = LiteGraph().eval()
    content, m, s, a = _inputs()
    with torch.no_grad():
        feat, fm, fs = g.encode(content)
        assert fm.shape == (1, g.shape.features) and feat.shape[1] == g.shape.features
        torch.testing.assert_close(g.decode(feat, fm, fs, m, s, a, tuple(content.shape[-2:])), g(content, m, s, a))


@pytest.mark.slow
def test_train_lite_exports_weights_with_manifest_and_resumes_exactly(tmp_path):
    from engines.train import train
    from engines.train.checkpoint import load_checkpoint
    from tests.test_train import _opts, _write_images

    data = tmp_path / "train"
    _write_images(data / "content", 4, seed=1)
    _write_images(data / "style", 3, seed=2)
    once = _opts(data, tmp_path / "once", model="lite", steps=4)
    summary = train(once)
    assert summary["step"] == 4
    manifest = json.loads((tmp_path / "once" / "lite.json").read_text())
    assert manifest["format"] == "stylestream-lite" and manifest["steps"] == 4
    assert manifest["final_losses"]["last_window"]["distill"] > 0  # distilled from the shipped full decoder
    # two chunks of 2 steps = one run of 4 steps, bit for bit
    train(_opts(data, tmp_path / "chunks", model="lite", steps=2))
    train(_opts(data, tmp_path / "chunks", model="lite", steps=4, resume=True))
    a, b = LiteGraph(), LiteGraph()
    load_checkpoint(tmp_path / "once" / "checkpoint.safetensors", a, None, None)
    load_checkpoint(tmp_path / "chunks" / "checkpoint.safetensors", b, None, None)
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), k

"""The lite network: shapes, cost, the style code as its style input, and training it (tiny, on the CPU)."""

from __future__ import annotations

import json

import pytest
import torch

from engines.adain import CODE_CHANNELS
from engines.graph import load_graph
from engines.lite.network import LiteGraph, count_macs


def _inputs(n=1, h=45, w=70, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, h, w, generator=gen), torch.rand(n, CODE_CHANNELS, generator=gen),
            torch.rand(n, CODE_CHANNELS, generator=gen) + 0.2, torch.ones(n))


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


def _random_lite(seed: int = 0) -> LiteGraph:
    """A lite network with random weights, its FiLM head included (a fresh one starts with FiLM off)."""
    torch.manual_seed(seed)
    g = LiteGraph().eval()
    torch.nn.init.normal_(g.head.film.weight, std=0.01)
    return g


def test_lite_runs_in_onnxruntime_like_torch(cache):
    from engines.adain import StyleCode
    from engines.backends.select import create_engine

    graph = _random_lite()
    content, m, s, _ = _inputs(2, 37, 52)
    style = StyleCode(m[0], s[0], "random")
    ref = create_engine("torch", device="cpu", precision="fp32", graph=graph)
    ort = create_engine("onnxruntime", device="cpu", precision="fp32", graph=graph)
    assert ref.model == ort.model == "lite"
    expected = ref.stylize(content, style, 0.7)
    torch.testing.assert_close(ort.stylize(content, style, 0.7), expected, atol=2e-3, rtol=0)
    feat, mean, std = ort.encode(content)
    assert feat.shape[1] == mean.shape[1] == graph.feat_channels
    torch.testing.assert_close(ort.decode(feat, mean, std, style, 0.7, (37, 52)), expected, atol=2e-3, rtol=0)


def test_lite_engine_encodes_styles_with_vgg():
    """A style code from the lite engine is the same VGG code the full engine makes (presets mix)."""
    from engines.backends.select import create_engine

    image = torch.rand(1, 3, 80, 96, generator=torch.Generator().manual_seed(3))
    lite = create_engine("torch", device="cpu", precision="fp32", graph=_random_lite())
    full = create_engine("torch", device="cpu", precision="fp32", graph=load_graph())
    a, b = lite.encode_style(image, size=64), full.encode_style(image, size=64)
    assert a.mean.shape == (CODE_CHANNELS,)
    torch.testing.assert_close(a.mean, b.mean, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(a.std, b.std, atol=1e-4, rtol=1e-4)


def test_mask_path_works_with_the_lite_graph():
    from engines.adain import StyleCode
    from engines.backends.select import create_engine
    from engines.still import stylize_still

    engine = create_engine("torch", device="cpu", precision="fp32", graph=_random_lite())
    content, m, s, _ = _inputs(1, 48, 64)
    mask = torch.zeros(1, 1, 48, 64)
    mask[..., :, 32:] = 1
    inside, outside = StyleCode(m[0], s[0]), StyleCode(s[0], m[0])
    out = stylize_still(engine, content, inside, 1.0, mask=mask, style_outside=outside)
    assert out.shape == (1, 3, 48, 64) and bool(out.isfinite().all())
    # far from the mask's edge each half is what that style alone paints
    alone_in, alone_out = stylize_still(engine, content, inside, 1.0), stylize_still(engine, content, outside, 1.0)
    assert (out[..., 40:] - alone_in[..., 40:]).abs().mean() < (out[..., 40:] - alone_out[..., 40:]).abs().mean()
    assert (out[..., :24] - alone_out[..., :24]).abs().mean() < (out[..., :24] - alone_in[..., :24]).abs().mean()


def test_film_conditions_every_decoder_layer_and_stays_within_budget():
    from engines.adain import CODE_CHANNELS as C
    from engines.lite.network import LiteShape

    g = _random_lite()
    films = g.head.split(g.condition(torch.rand(1, C), torch.rand(1, C) + 0.1, torch.ones(1)), torch.ones(1))
    assert [f[0].shape[1] for f in films] == list(LiteShape().film_channels)
    assert len(films) == 1 + g.shape.blocks + g.shape.halvings + 1  # in, blocks, upsampling convs, RGB
    assert count_macs(g, 360, 640) <= 4e9  # the budget per 640x360 frame


def test_an_old_relu4_1_code_is_refused_by_the_lite_network_with_one_clear_error():
    from engines.adain import StyleCode
    from engines.errors import InputError

    old = StyleCode(torch.rand(512), torch.rand(512) + 0.1, "old")
    assert old.batch(1, "cpu", 512)[0].shape == (1, 512)  # the full model reads it as before
    with pytest.raises(InputError, match="relu4_1 alone"):
        old.batch(1, "cpu", CODE_CHANNELS)


def test_auto_model_rule():
    from engines.models import pick_model

    assert pick_model("auto", "live", "cpu") == "lite"
    assert pick_model("auto", "convert", "cpu") == "full"
    assert pick_model("auto", "image", "cuda") == "full"
    assert pick_model("auto", "live", "cuda", 1280 * 720) == "full"
    assert pick_model("auto", "live", "cuda", 3840 * 2160) == "lite"
    assert pick_model("lite", "convert", "cpu") == "lite"


def test_missing_or_corrupt_lite_weights_are_one_clear_error(tmp_path):
    from engines.errors import WeightsError
    from engines.lite.weights import load_lite

    with pytest.raises(WeightsError, match="not found"):
        load_lite(tmp_path / "nope.safetensors")
    bad = tmp_path / "lite.safetensors"
    bad.write_text("not a safetensors file")
    with pytest.raises(WeightsError, match="Cannot read lite weights"):
        load_lite(bad)
    from safetensors.torch import save_file

    state = {k: v.clone() for k, v in LiteGraph().state_dict().items()}
    name = next(iter(state))
    state[name][0] = float("nan")
    save_file(state, str(bad))
    with pytest.raises(WeightsError, match="NaN"):
        load_lite(bad)
    (tmp_path / "lite.json").write_text(json.dumps({"sha256": "0" * 64}))
    with pytest.raises(WeightsError, match="sha256"):
        load_lite(bad)

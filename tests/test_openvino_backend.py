"""The OpenVINO backend against the torch backend (CPU): both networks, whole and split, fp32 and bf16."""

import copy

import pytest
import torch

from engines.backends.openvino_backend import OpenVinoEngine
from engines.backends.torch_backend import TorchEngine
from engines.errors import ConfigError
from engines.graph import load_graph
from engines.machine import cpu_has_native_bf16

pytest.importorskip("openvino")

BOUND = 1e-4  # fp32 against torch fp32 on outputs in [0, 1] (different summation orders)


@pytest.fixture(scope="module", params=["full", "lite"])
def graphs(request, cache):
    graph = load_graph(None, model=request.param)  # shipped weights: a random decoder clamps most pixels
    return OpenVinoEngine(copy.deepcopy(graph), precision="fp32"), TorchEngine(graph, device="cpu", precision="fp32")


def _style(engine):
    gen = torch.Generator().manual_seed(0)
    return engine.encode_style(torch.rand(1, 3, 64, 80, generator=gen), size=None, source="noise")


@pytest.mark.parametrize("n,h,w", [(1, 40, 56), (2, 37, 50)])
def test_stylize_matches_torch(graphs, n, h, w):
    ov_engine, ref_engine = graphs
    style = _style(ref_engine)
    x = torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(1))
    out, ref = ov_engine.stylize(x, style, 0.7), ref_engine.stylize(x, style, 0.7)
    assert out.shape == ref.shape == (n, 3, h, w)
    assert ((ref > 0) & (ref < 1)).float().mean() > 0.5, "mostly clamped output would make this vacuous"
    assert (out - ref).abs().max() < BOUND


def test_split_halves_match_the_whole(graphs):
    ov_engine, _ = graphs
    style = _style(ov_engine)
    x = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(2))
    feat, mean, std = ov_engine.encode(x)
    halves = ov_engine.decode(feat, mean, std, style, 1.0, (48, 64))
    assert (halves - ov_engine.stylize(x, style, 1.0)).abs().max() < BOUND


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no bf16 in hardware")
def test_bf16_is_the_default_where_native_and_stays_close():
    graph = load_graph(None, model="lite")
    auto = OpenVinoEngine(copy.deepcopy(graph))
    assert auto.precision == "bf16"
    ref = TorchEngine(graph, device="cpu", precision="fp32")
    style = _style(ref)
    x = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(3))
    assert (auto.stylize(x, style, 1.0) - ref.stylize(x, style, 1.0)).abs().mean() < 0.02


def test_precision_it_cannot_run_is_a_config_error():
    with pytest.raises(ConfigError, match="fp32 or bf16"):
        OpenVinoEngine(load_graph(None, model="lite"), precision="fp16")

import numpy as np
import pytest
import torch

from engines.adain import StyleCode
from engines.backends.torch_backend import TorchEngine
from engines.decoder import random_decoder
from engines.errors import BackendUnavailable
from engines.graph import StyleGraph
from engines.vgg import load_encoder

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")


@pytest.fixture(scope="module")
def graph():
    return StyleGraph(load_encoder(), random_decoder(0))


@pytest.fixture(scope="module")
def engine(graph):
    return TorchEngine(graph, device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def style(engine):
    torch.manual_seed(0)
    return engine.encode_style(torch.rand(1, 3, 64, 64), size=None, source="noise")


def test_stylize_keeps_size_for_odd_shapes(engine, style):
    x = torch.rand(2, 3, 37, 50)
    y = engine.stylize(x, style, 1.0)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1


def test_split_encode_decode_equals_fused(engine, style):
    x = torch.rand(1, 3, 48, 64)
    feat, mean, std = engine.encode(x)
    assert mean.dtype == torch.float32 and mean.shape == (1, 512)
    assert torch.allclose(engine.decode(feat, mean, std, style, 0.8, (48, 64)), engine.stylize(x, style, 0.8),
                          atol=1e-5)


def test_batch_equals_frame_by_frame(engine, style):
    x = torch.rand(3, 3, 32, 40)
    batched = engine.stylize(x, style, 1.0)
    single = torch.cat([engine.stylize(x[i:i + 1], style, 1.0) for i in range(3)])
    assert torch.allclose(batched, single, atol=1e-4)


def test_alpha_and_style_are_inputs_not_rebuilds(engine, style):
    x = torch.rand(1, 3, 32, 32)
    other = StyleCode(style.mean * 0.5, style.std * 2.0)
    a = engine.stylize(x, style, 1.0)
    assert not torch.allclose(a, engine.stylize(x, other, 1.0))
    assert not torch.allclose(a, engine.stylize(x, style, 0.2))


def test_upload_download_round_trip_and_colour_order(engine):
    frame = np.zeros((4, 6, 3), np.uint8)
    frame[..., 0] = 200  # blue in BGR
    x = engine.upload([frame, frame])
    assert x.shape == (2, 3, 4, 6)
    assert torch.allclose(x[0, 2], torch.full((4, 6), 200 / 255))  # RGB: blue is channel 2
    assert x[0, 0].abs().max() == 0
    back = engine.download(x)
    assert len(back) == 2 and np.array_equal(back[0], frame)


def test_bf16_upload_download_keeps_every_level(engine):
    """bf16 keeps 8 significant bits: enough for every uint8 level to come back exactly."""
    bf16 = TorchEngine(StyleGraph(load_encoder(), random_decoder(0)), device="cpu", precision="bf16")
    frame = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
    x = bf16.upload([frame])
    assert x.dtype == torch.bfloat16 and np.array_equal(bf16.download(x)[0], frame)


def test_style_code_from_an_image(engine):
    img = torch.rand(1, 3, 80, 120)
    code = engine.encode_style(img, size=64, source="x")
    assert code.mean.shape == (960,) and code.std.min() > 0 and code.mean.device.type == "cpu"


def test_cuda_asked_without_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(BackendUnavailable, match="CUDA"):
        TorchEngine(StyleGraph(load_encoder(), random_decoder(0)), device="cuda")


@cuda
def test_cuda_fp16_matches_fp32_cpu(graph, style):
    cpu = TorchEngine(graph, device="cpu")
    gpu = TorchEngine(StyleGraph(load_encoder(), random_decoder(0)), device="cuda", precision="fp16",
                      cuda_graphs=False)
    x = torch.rand(2, 3, 64, 96)
    ref = cpu.stylize(x, style, 1.0)
    out = gpu.stylize(x.cuda(), style, 1.0).float().cpu()
    assert (out - ref).abs().mean() < 0.02


@cuda
def test_cuda_graph_replay_matches_eager(style):
    g = StyleGraph(load_encoder(), random_decoder(0))
    eager = TorchEngine(g, device="cuda", cuda_graphs=False)
    graphed = TorchEngine(StyleGraph(load_encoder(), random_decoder(0)), device="cuda", cuda_graphs=True)
    for seed in range(3):  # replays with new inputs, same shape
        torch.manual_seed(seed)
        x = torch.rand(2, 3, 64, 64, device="cuda")
        assert torch.allclose(graphed.stylize(x, style, 0.7).float(), eager.stylize(x, style, 0.7).float(),
                              atol=2e-3)


def test_cpu_download_rounds_and_clips_as_the_device_path():
    """The CPU download (OpenCV per plane) gives exactly the torch formula the GPU path uses."""
    from engines.backends.base import chw_to_bgr_uint8

    x = torch.rand(3, 37, 53, generator=torch.Generator().manual_seed(0)) * 1.4 - 0.2  # out of range too
    want = x.clamp(0, 1).mul(255).round().to(torch.uint8).flip(0).permute(1, 2, 0).numpy()
    got = chw_to_bgr_uint8(x.numpy())
    assert got.shape == (37, 53, 3) and got.dtype == np.uint8 and got.flags.c_contiguous
    assert np.array_equal(got, want)

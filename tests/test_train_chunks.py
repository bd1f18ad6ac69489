"""Issue 13's training pieces on the CPU: checkpoint parts, exact chunked resume through them, the compound
temporal regulariser, the step options (lr scaling, compile plumbing)."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from engines.decoder import read_manifest
from engines.errors import ConfigError, WeightsError
from engines.train import train
from engines.train.losses import AdaINLoss, with_temporal
from engines.train.options import TrainOptions, learning_rate
from engines.train.parts import index_path, merge_checkpoint, split_checkpoint
from engines.train.regularise import Motion, MotionRange, compound_loss
from engines.vgg import load_encoder
from tests.test_train import _opts, dataset  # noqa: F401  (the module's fixture)


def test_split_and_merge_are_exact_and_check_hashes(tmp_path):
    src = tmp_path / "c.safetensors"
    src.write_bytes(torch.randint(0, 256, (10_000,), dtype=torch.uint8).numpy().tobytes())
    files = split_checkpoint(src, tmp_path / "parts", part_bytes=4096)
    assert [p.name for p in files] == [f"c.safetensors.part0{i}" for i in range(3)] + ["c.safetensors.parts.json"]
    assert all(p.stat().st_size <= 4096 for p in files[:-1])
    merged = merge_checkpoint(index_path(tmp_path / "parts" / "c.safetensors"), tmp_path / "back" / "c.safetensors")
    assert merged.read_bytes() == src.read_bytes()
    part = files[1]
    part.write_bytes(b"x" + part.read_bytes()[1:])
    with pytest.raises(WeightsError, match="corrupt"):
        merge_checkpoint(files[-1], tmp_path / "bad.safetensors")
    assert not (tmp_path / "bad.safetensors").exists()  # nothing half-made left behind
    part.unlink()
    with pytest.raises(WeightsError, match="missing"):
        merge_checkpoint(files[-1], tmp_path / "bad.safetensors")


def test_chunks_through_split_and_merge_equal_one_run_bit_for_bit(dataset, tmp_path):  # noqa: F811
    """2 steps, split the checkpoint into small parts, merge them into a fresh folder, 2 more steps
    == 4 steps in one go: weights, Adam moments and generator state, bit for bit (regulariser on)."""
    kw = dict(temporal_weight=1.0)
    train(_opts(dataset, tmp_path / "straight", **kw))
    train(_opts(dataset, tmp_path / "first", steps=2, **kw))
    index = split_checkpoint(tmp_path / "first" / "checkpoint.safetensors", tmp_path / "parts",
                             part_bytes=4 * 2**20)[-1]
    assert len(list((tmp_path / "parts").glob("*.part*"))) >= 10  # a 42 MB checkpoint in 4 MiB parts
    merge_checkpoint(index, tmp_path / "second" / "checkpoint.safetensors")
    train(_opts(dataset, tmp_path / "second", steps=4, resume=True, **kw))
    a = load_file(str(tmp_path / "straight" / "checkpoint.safetensors"))
    b = load_file(str(tmp_path / "second" / "checkpoint.safetensors"))
    assert a.keys() == b.keys() and any(k.startswith("adam.") for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    log = (tmp_path / "straight" / "log.jsonl").read_text()
    assert '"temporal"' in log
    m = read_manifest(tmp_path / "straight" / "decoder.safetensors")
    assert m["temporal_regulariser"]["weight"] == 1.0 and m["optimizer"]["lr_scaling"] == "none"


class _Pointwise(nn.Module):
    """A 1x1 conv: commutes with any warp, so the regulariser sees only the noise."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return self.conv(x)


class _Anchored(_Pointwise):
    """The same plus a fixed pattern tied to the image grid: not equivariant."""

    def forward(self, x):
        h, w = x.shape[-2:]
        pattern = torch.sin(torch.arange(w, dtype=x.dtype) * 1.3)[None, None, None, :].expand(1, 1, h, w)
        return self.conv(x) + pattern


def _motion(x: torch.Tensor, noise: float) -> Motion:
    return Motion.sample(x, torch.Generator().manual_seed(3), MotionRange(noise_std=noise))


def test_regulariser_is_zero_for_an_equivariant_net_and_positive_otherwise():
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    motion = _motion(x, noise=0.0)
    assert motion.valid(x).mean() > 0.7  # a small motion: most pixels stay inside
    eq, anchored = _Pointwise(), _Anchored()
    anchored.load_state_dict(eq.state_dict())
    r_eq = compound_loss(eq, x, eq(x), motion)
    r_anchored = compound_loss(anchored, x, anchored(x), motion)
    assert float(r_eq.detach()) < 1e-10 and float(r_anchored.detach()) > 1e-3
    with_noise = _motion(x, noise=0.05)
    assert float(compound_loss(eq, x, eq(x), with_noise).detach()) > 1e-5  # noise alone moves the output


def test_regulariser_gradients_reach_the_decoder():
    from engines.decoder import random_decoder

    torch.manual_seed(0)
    loss_fn, decoder = AdaINLoss(load_encoder()), random_decoder(0).train()
    content, style = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    motion = _motion(content, noise=0.01)
    losses = with_temporal(loss_fn, decoder, content, style, motion, weight=5.0)
    assert losses.temporal is not None and float(losses.temporal) > 0
    plain = with_temporal(loss_fn, decoder, content, style, None, weight=5.0)
    assert plain.temporal is None
    torch.testing.assert_close(losses.total.detach(), plain.total.detach() + 5.0 * losses.temporal)
    losses.total.backward()
    first_conv = next(m for m in decoder.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0


def test_lr_scaling_with_the_batch():
    o = TrainOptions("", "", batch_size=32, lr=1e-4, lr_decay=0.0)
    assert learning_rate(o, 0) == pytest.approx(1e-4)
    o.lr_scaling = "sqrt"
    assert learning_rate(o, 0) == pytest.approx(2e-4)
    o.lr_scaling = "linear"
    assert learning_rate(o, 0) == pytest.approx(4e-4)
    o.lr_scaling = "cubic"
    with pytest.raises(ConfigError, match="lr scaling"):
        learning_rate(o, 0)


def test_compiled_step_plumbing_matches_eager(dataset, tmp_path):  # noqa: F811
    """--compile eager runs the loss step through TorchDynamo (no code generation on a CPU): same weights."""
    train(_opts(dataset, tmp_path / "plain", steps=2))
    train(_opts(dataset, tmp_path / "compiled", steps=2, compile="eager"))
    a = load_file(str(tmp_path / "plain" / "checkpoint.safetensors"))
    b = load_file(str(tmp_path / "compiled" / "checkpoint.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    with pytest.raises(ConfigError, match="compile mode"):
        train(_opts(dataset, tmp_path / "bad", compile="fastest"))
    shutil.rmtree(tmp_path / "bad", ignore_errors=True)


def test_lite_trains_with_the_regulariser(dataset, tmp_path):  # noqa: F811
    summary = train(_opts(dataset, tmp_path, model="lite", steps=2, temporal_weight=1.0, distill_weight=0.0))
    assert summary["step"] == 2 and (tmp_path / "lite.safetensors").is_file()
    assert "temporal" in summary["last"] and summary["last"]["temporal"] > 0


def test_cli_takes_the_new_options():
    from types import SimpleNamespace

    from typer.main import get_command

    from streamer.app.cli import app

    train_cli = get_command(app).commands["train"]
    a = SimpleNamespace(**train_cli.make_context("train", [
        "--content", "c", "--style", "s", "--temporal-weight", "2", "--compile", "max-autotune", "--lr-scaling",
        "sqrt", "--batch-size", "32"]).params)
    assert (a.temporal_weight, a.compile, a.lr_scaling, a.batch_size) == (2.0, "max-autotune", "sqrt", 32)

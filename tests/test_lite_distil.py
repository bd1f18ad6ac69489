"""Distilling the full model into the lite network from a cache: built once, resumable, on the CPU."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from engines.train import train
from tests.test_train import _opts, _write_images

TINY = {"crop": 32, "style_size": 64, "content_sides": (32, 48), "pairs_per_shard": 6}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("distil") / "train"
    _write_images(root / "content", 3, seed=1)
    _write_images(root / "style", 2, seed=2)
    return root


def _distil_opts(data, out, **kw):
    return _opts(data, out, model="lite", phase="distil", cache_shards=2, cache_recipe=TINY, batch_size=2,
                 checkpoint_every=100, **kw)


def test_distil_builds_the_cache_trains_and_exports(data, tmp_path):
    from safetensors.torch import load_file

    summary = train(_distil_opts(data, tmp_path / "run", steps=3))
    cache = tmp_path / "run" / "cache"
    codes = load_file(str(cache / "codes.safetensors"))
    assert codes["mean"].shape == (2 * 2, 960)  # 2 styles x 2 variants, the four-layer code
    pairs = load_file(str(cache / "pairs-0001.safetensors"))
    assert pairs["teacher"].shape == (6, 3, 32, 32) and pairs["teacher"].dtype == torch.uint8
    assert pairs["teacher"].float().std() > 1  # the full model painted something
    assert summary["step"] == 3
    manifest = json.loads((tmp_path / "run" / "lite.json").read_text())
    assert manifest["phase"] == "distil" and manifest["version"] == 2 and manifest["cache"]["pairs"] == 12
    assert manifest["final_losses"]["mean_last_windows"]["pixel"] > 0


@pytest.mark.slow
def test_the_cache_built_on_two_processes_equals_the_one_built_in_process(data, tmp_path):
    """`python -m engines.lite.cache --workers 2` splits styles and shards between spawned processes; the
    merged codes and the pairs are the in-process build's (the teacher's output to its bf16 rounding)."""
    from safetensors.torch import load_file

    from engines.lite.cache import CacheRecipe, build_cache

    recipe = CacheRecipe(**TINY)
    for workers in (1, 2):
        build_cache(data / "content", data / "style", tmp_path / f"w{workers}" / "cache", 3, recipe=recipe,
                    workers=workers)
    one, two = tmp_path / "w1" / "cache", tmp_path / "w2" / "cache"
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir()) == [
        "codes.safetensors", "pairs-0000.safetensors", "pairs-0001.safetensors", "pairs-0002.safetensors"]
    for name in ("codes.safetensors", "pairs-0002.safetensors"):
        a, b = load_file(str(one / name)), load_file(str(two / name))
        for key in a:
            if key == "teacher":
                assert (a[key].int() - b[key].int()).abs().max() <= 2
            else:
                assert torch.allclose(a[key], b[key], atol=1e-5), (name, key)


def test_distil_resumes_exactly(data, tmp_path):
    from engines.lite.network import LiteGraph
    from engines.train.checkpoint import load_checkpoint

    cache = str(tmp_path / "cache")
    train(_distil_opts(data, tmp_path / "once", steps=4, cache_dir=cache))
    train(_distil_opts(data, tmp_path / "chunks", steps=2, cache_dir=cache))
    train(_distil_opts(data, tmp_path / "chunks", steps=4, cache_dir=cache, resume=True))
    a, b = LiteGraph(), LiteGraph()
    load_checkpoint(tmp_path / "once" / "checkpoint.safetensors", a, None, None)
    load_checkpoint(tmp_path / "chunks" / "checkpoint.safetensors", b, None, None)
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), k


def test_a_run_from_a_distilled_export_goes_on_counting(data, tmp_path):
    cache = str(tmp_path / "cache")
    train(_distil_opts(data, tmp_path / "first", steps=3, cache_dir=cache))
    export = str(tmp_path / "first" / "lite.safetensors")
    summary = train(_distil_opts(data, tmp_path / "next", steps=5, cache_dir=cache, init_decoder=export))
    assert summary["step"] == 5
    assert len((tmp_path / "next" / "log.jsonl").read_text().splitlines()) == 2  # steps 4 and 5 only
    other = {**TINY, "full_alpha": 0.5}  # another recipe: its steps are not these
    summary = train(_opts(data, tmp_path / "other", model="lite", phase="distil", cache_shards=2, cache_recipe=other,
                          batch_size=2, checkpoint_every=100, steps=2, init_decoder=export))
    assert summary["step"] == 2


def test_finetune_adds_the_vgg_losses_against_the_cached_code(data, tmp_path):
    cache = str(tmp_path / "cache")
    opts = _distil_opts(data, tmp_path / "run", steps=2, cache_dir=cache)
    train(dataclasses.replace(opts, phase="finetune"))
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in rows] == ["finetune", "finetune"]
    assert any(r["content"] > 0 and r["style"] > 0 for r in rows)  # TINY draws most pairs at alpha 1
    manifest = json.loads((tmp_path / "run" / "lite.json").read_text())
    assert manifest["pull"] == {"distill_weight": opts.distill_weight, "low_alpha_pull": opts.low_alpha_pull}
    assert manifest["phase"] == "finetune" and "style" in manifest["final_losses"]["mean_last_windows"]


def test_finetune_with_the_temporal_term_logs_and_records_it(data, tmp_path):
    opts = _distil_opts(data, tmp_path / "run", steps=2, cache_dir=str(tmp_path / "cache"))
    train(dataclasses.replace(opts, phase="finetune", temporal_weight=50.0))
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(r["temporal"] > 0 for r in rows)  # an untrained network does not follow the motion
    manifest = json.loads((tmp_path / "run" / "lite.json").read_text())
    assert manifest["temporal_weight"] == 50.0 and manifest["low_alpha_features"] is False
    assert manifest["final_losses"]["mean_last_windows"]["temporal"] > 0


def test_finetune_with_low_alpha_features_logs_the_term(data, tmp_path):
    opts = _distil_opts(data, tmp_path / "run", steps=2, cache_dir=str(tmp_path / "cache"))
    train(dataclasses.replace(opts, phase="finetune", low_alpha_features=True))
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all("low_alpha" in r for r in rows)
    assert json.loads((tmp_path / "run" / "lite.json").read_text())["low_alpha_features"] is True


def test_the_full_model_has_no_distil_phase(data, tmp_path):
    from engines.errors import ConfigError

    with pytest.raises(ConfigError, match="no 'distil' phase"):
        train(_opts(data, tmp_path, phase="distil"))


def test_finetune_judges_only_the_pairs_at_alpha_1_with_vgg(tmp_path):
    """Content and style losses count the pairs at alpha 1 alone, weighed by their share of the batch;
    a batch without one costs nothing."""
    from engines.adain import CODE_LAYERS
    from engines.lite.distil import CodeVGGLoss
    from engines.train.options import TrainOptions

    loss = CodeVGGLoss(TrainOptions(content_dir="", style_dir=""))
    gen = torch.Generator().manual_seed(0)
    content = torch.rand(3, 3, 48, 48, generator=gen)
    mean = torch.rand(3, sum(CODE_LAYERS), generator=gen)
    std = torch.rand(3, sum(CODE_LAYERS), generator=gen) + 0.1
    with torch.no_grad():
        none = loss(content, content, content, mean, std, torch.tensor([0.5, 0.25, 0.9]))
        total, content_first, style_first, _ = loss(content, content, content, mean, std,
                                                    torch.tensor([1.0, 0.5, 0.0]))
        alone, content_alone, style_alone, _ = loss(content[:1], content[:1], content[:1], mean[:1], std[:1],
                                                    torch.ones(1))
    assert all(t == 0 for t in none)
    assert content_first > 0 and style_first > 0
    assert torch.isclose(content_first, content_alone, rtol=1e-4) and torch.isclose(style_first, style_alone, rtol=1e-4)
    assert torch.isclose(total, alone / 3, rtol=1e-4)


def test_low_alpha_features_judge_the_pairs_below_1_against_the_teacher():
    """With low_alpha_features, a pair below alpha 1 costs nothing when its output is the teacher's and
    more when it is a blurred copy of it (the texture the statistics keep); pairs at 1 are as before."""
    import cv2
    import numpy as np

    from engines.adain import CODE_LAYERS
    from engines.lite.distil import CodeVGGLoss
    from engines.train.options import TrainOptions

    loss = CodeVGGLoss(TrainOptions(content_dir="", style_dir="", low_alpha_features=True))
    gen = torch.Generator().manual_seed(2)
    teacher = torch.rand(2, 3, 48, 48, generator=gen)
    blurred = torch.from_numpy(np.stack([cv2.GaussianBlur(t.permute(1, 2, 0).numpy(), (0, 0), 2.0)
                                         for t in teacher])).permute(0, 3, 1, 2).contiguous()
    mean = torch.rand(2, sum(CODE_LAYERS), generator=gen)
    std = torch.rand(2, sum(CODE_LAYERS), generator=gen) + 0.1
    alpha = torch.tensor([0.5, 0.5])
    with torch.no_grad():
        same = loss(teacher, teacher, teacher, mean, std, alpha)
        blur = loss(blurred, teacher, teacher, mean, std, alpha)
    assert same[0] < 1e-6 and same[3] < 1e-6
    assert blur[0] > 0.01 and torch.isclose(blur[0], blur[3] * 1.0)  # all pairs below 1: the share is 1
    assert blur[1] == 0 and blur[2] == 0  # no pair at alpha 1


def test_the_pull_weighs_pairs_below_alpha_1_harder():
    from engines.lite.distil import distil_losses, pull_weights

    gen = torch.Generator().manual_seed(1)
    out, teacher = torch.rand(2, 3, 16, 16, generator=gen), torch.rand(2, 3, 16, 16, generator=gen)
    weight = pull_weights(torch.tensor([1.0, 0.5]), 10.0, 3.0)
    assert weight.tolist() == [10.0, 30.0]
    total, pixel, edge = distil_losses(out, teacher, 1.0, weight)
    first, _, _ = distil_losses(out[:1], teacher[:1], 1.0)
    second, _, _ = distil_losses(out[1:], teacher[1:], 1.0)
    assert torch.isclose(total, (10 * first + 30 * second) / 2, rtol=1e-5)
    assert torch.isclose(pixel, (out - teacher).abs().mean(), rtol=1e-5)

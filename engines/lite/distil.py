"""Training the lite network from the cache (engines.lite.cache), on a CPU, in two phases.

distil: each step costs the student alone: its output for a cached (content crop, style code, alpha)
is pulled towards the full model's output by an L1 term on the pixels and one on their horizontal and
vertical differences. This learns the layout and the palette fast, but where the teacher's texture is
too fine for the student to copy exactly an L1 pull gives its blurred average (measured: a style
loss several times the first lite network's).

finetune: the same pull, at a lower weight, plus the VGG content and style losses of the full
model's training, judged against the cached code itself (relu1_1..relu4_1 at inference's scale): the
strokes come back. The VGG losses judge only the pairs at alpha 1: the full model was trained at full
strength, and below it its output is a decode of blended features, not the minimum of a content loss at
the blend (judging the content of every pair at its alpha made low strength a washed-out mix; see
docs/models.md). Below alpha 1 the teacher's output is the target, pulled `low_alpha_pull` times harder.
With `temporal_weight`, the compound temporal term (engines.train.regularise) asks the output of a
slightly moved input to be the moved output, on every pair: the texture stops swimming between frames,
so the flow blending averages less of it away. With `low_alpha_features` the pairs below alpha 1 are
also judged in VGG's terms against the teacher's output (`teacher_feature_loss`).

Resumable like the VGG training loop: `time_limit` ends a run with a checkpoint; `resume` goes on.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from pathlib import Path

import torch
from torch import nn

from engines.adain import mean_std
from engines.machine import cpu_has_native_bf16
from engines.train.checkpoint import export_weights, load_checkpoint, save_checkpoint
from engines.train.options import TrainOptions, learning_rate
from engines.train.regularise import Motion, compound_loss

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.safetensors"


def distil_losses(out: torch.Tensor, teacher: torch.Tensor, edge_weight: float,
                  weight: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
    """-> total, pixel L1, edge L1 (fp32; pixel and edge are batch means). `weight` (N): each pair's
    share of the total (None: all 1)."""
    out = out.float()

    def per_pair(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a - b).abs().flatten(1).mean(1)

    pixel = per_pair(out, teacher)
    edge = per_pair(out.diff(dim=-1), teacher.diff(dim=-1)) + per_pair(out.diff(dim=-2), teacher.diff(dim=-2))
    total = pixel + edge_weight * edge
    if weight is not None:
        total = total * weight
    return total.mean(), pixel.mean(), edge.mean()


def pull_weights(alpha: torch.Tensor, pull: float, low_alpha_pull: float) -> torch.Tensor:
    """The pull's weight per pair: `pull`, times `low_alpha_pull` below alpha 1, where the teacher's output
    is the only target (the VGG losses judge the pairs at alpha 1 alone)."""
    return torch.where(alpha < 1, pull * low_alpha_pull, pull)


class CodeVGGLoss(nn.Module):
    """The full model's content and style losses (engines.train.losses.AdaINLoss.output_losses) with the
    style's statistics taken from a cached code instead of a style image."""

    def __init__(self, opts: TrainOptions):
        super().__init__()
        from engines.train.losses import AdaINLoss
        from engines.vgg import load_encoder

        self.base = AdaINLoss(load_encoder(opts.encoder), opts.content_weight, opts.style_weight)
        self.low_alpha_features = opts.low_alpha_features

    def forward(self, out, content, teacher, mean, std, alpha) -> tuple[torch.Tensor, ...]:
        """-> (weighted total, content loss, style loss, low-alpha loss). Content and style loss judge the
        pairs at alpha 1; with `low_alpha_features` the pairs below it are judged against the teacher's
        output in VGG's terms (`teacher_feature_loss`). Each part is weighed by its pairs' share of the
        batch; a part without pairs costs nothing."""
        from engines.adain import CODE_LAYERS, adain

        zero = out.new_zeros((), dtype=torch.float32)
        total, content_loss, style_loss, low_loss = zero, zero, zero, zero
        full = alpha == 1
        if full.any():
            o, c, m, s = out[full], content[full], mean[full], std[full]
            stats = list(zip(m.float().split(CODE_LAYERS, 1), s.float().split(CODE_LAYERS, 1), strict=True))
            with torch.no_grad():
                t = adain(self.base.encoder(c), *stats[-1])
            weighted, content_loss, style_loss = self.base.output_losses(o, t, stats)
            total = total + weighted * full.float().mean()
        low = ~full
        if self.low_alpha_features and low.any():
            low_loss = teacher_feature_loss(self.base, out[low], teacher[low])
            total = total + low_loss * low.float().mean()
        return total, content_loss, style_loss, low_loss


def teacher_feature_loss(base, out: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """The full model's losses with the teacher's output as the target: its relu4_1 features for the
    content, its per-channel means and stds at relu1_1..relu4_1 for the style (weighted as in `base`).
    Below alpha 1 the teacher's output is the reference, and matching its statistics keeps its texture,
    where an L1 pull towards it gives a blurred average."""
    with torch.no_grad():
        target = base.encoder.features(teacher)
    stats = [mean_std(f.float()) for f in target]
    return base.output_losses(out, target[-1].float(), stats)[0]


def _render(net: nn.Module, mean: torch.Tensor, std: torch.Tensor, alpha: torch.Tensor,
            content: torch.Tensor) -> torch.Tensor:
    return net(content, mean, std, alpha)


def crop_pair(content: torch.Tensor, teacher: torch.Tensor, size: int, gen: torch.Generator):
    """The same random size x size window of both (a step costs less on smaller crops)."""
    h, w = content.shape[-2:]
    if size >= min(h, w):
        return content, teacher
    top = int(torch.randint(0, h - size + 1, (), generator=gen))
    left = int(torch.randint(0, w - size + 1, (), generator=gen))
    window = (..., slice(top, top + size), slice(left, left + size))
    return content[window], teacher[window]


def distil(opts: TrainOptions, net: nn.Module, cache_dir: Path, describe: dict, edge_weight: float = 1.0,
           export_name: str = "lite.safetensors", start_step: int = 0) -> dict:
    """Train `net` on the cached pairs in `cache_dir`; write checkpoint, log.jsonl and the export under out_dir.

    `start_step` goes on counting from an earlier distil run's export (its learning rate and its
    manifest's steps add up across sessions, though Adam's moments start afresh)."""
    from engines.lite.cache import PairCache

    out = Path(opts.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    amp = opts.amp and cpu_has_native_bf16()
    cache = PairCache(cache_dir)
    vgg = CodeVGGLoss(opts) if opts.phase == "finetune" else None
    pull = opts.distill_weight if vgg is not None else 1.0  # distil: the pull is the whole loss
    net.train()
    optimizer = torch.optim.Adam(net.parameters(), lr=opts.lr)
    gen = torch.Generator().manual_seed(opts.seed)
    step, history = start_step, []
    if opts.resume:
        step, info = load_checkpoint(out / CHECKPOINT, net, optimizer, gen)
        history = info.get("history", [])
        log.info("Resumed from %s at step %d", out / CHECKPOINT, step)

    def checkpoint() -> None:
        save_checkpoint(out / CHECKPOINT, net, optimizer, gen, step, {"history": history[-400:]})

    started = window = time.monotonic()
    window_step, sums, stopped_early = step, torch.zeros(7), False
    while step < opts.steps:
        if opts.time_limit is not None and time.monotonic() - started > opts.time_limit:
            stopped_early = True
            break
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(opts, step)
        content, teacher, mean, std, alpha = cache.batch(opts.batch_size, gen)
        content, teacher = crop_pair(content, teacher, opts.crop, gen)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            y = net(content, mean, std, alpha)
            weight = pull_weights(alpha, pull, opts.low_alpha_pull) if vgg is not None else None
            total, pixel, edge = distil_losses(y, teacher, edge_weight, weight)
            content_l = style_l = temporal = low_l = total.new_zeros(())
            if vgg is not None:
                weighted, content_l, style_l, low_l = vgg(y, content, teacher, mean, std, alpha)
                total = total + weighted
            if opts.temporal_weight > 0:  # a moved input must give the moved output (engines.train.regularise)
                render = functools.partial(_render, net, mean, std, alpha)
                temporal = compound_loss(render, content, y, Motion.sample(content, gen))
                total = total + opts.temporal_weight * temporal
        terms = (total, pixel, edge, content_l, style_l, temporal, low_l)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        step += 1
        sums += torch.stack([t.detach().float() for t in terms])
        if step % opts.log_every == 0 or step == opts.steps:
            total, pixel, edge, content_l, style_l, temporal, low_l = (sums / (step - window_step)).tolist()
            if not math.isfinite(total):
                raise FloatingPointError(f"loss became {total} at step {step}; lower --lr")
            now = time.monotonic()
            rec = {"step": step, "phase": opts.phase, "loss": round(total, 5), "pixel": round(pixel, 5),
                   "edge": round(edge, 5), **({"content": round(content_l, 5), "style": round(style_l, 5)}
                                             if vgg is not None else {}),
                   **({"temporal": round(temporal, 6)} if opts.temporal_weight > 0 else {}),
                   **({"low_alpha": round(low_l, 5)} if vgg is not None and opts.low_alpha_features else {}),
                   "lr": learning_rate(opts, step),
                   "steps_per_s": round((step - window_step) / max(now - window, 1e-9), 3)}
            history.append(rec)
            with open(out / "log.jsonl", "a") as f:
                f.write(json.dumps(rec) + "\n")
            log.info("step %d: loss %.4f (pixel %.4f, edge %.4f, content %.3f, style %.3f), %.2f steps/s", step, total,
                     pixel, edge, content_l, style_l,
                     rec["steps_per_s"])
            sums.zero_()
            window, window_step = now, step
        if step % opts.checkpoint_every == 0:
            checkpoint()
            cache.refresh()
    checkpoint()
    tail = history[-20:]
    manifest = {**describe, "provisional": opts.provisional, "steps": step, "batch_size": opts.batch_size,
                "images_seen": step * opts.batch_size,
                "final_losses": {"mean_last_windows": {k: round(sum(h[k] for h in tail) / len(tail), 5)
                                                       for k in ("loss", "pixel", "edge", "content", "style",
                                                                 "temporal", "low_alpha")
                                                       if k in tail[-1]} if tail else {},
                                 "window_steps": opts.log_every * len(tail)},
                "optimizer": {"name": "Adam", "lr": opts.lr, "lr_decay": opts.lr_decay},
                **({"pull": {"distill_weight": opts.distill_weight, "low_alpha_pull": opts.low_alpha_pull}}
                   if vgg is not None else {}),
                "temporal_weight": opts.temporal_weight, "low_alpha_features": opts.low_alpha_features,
                "precision": "bf16 autocast" if amp else "fp32", "device": "cpu", "torch": torch.__version__,
                "cache": {"pairs": len(cache), "styles": cache.styles, "codes": len(cache.code_mean)},
                **opts.extra_manifest}
    export_weights(net, out / export_name, manifest)
    elapsed = time.monotonic() - started
    log.info("Step %d of %d; exported %s", step, opts.steps, out / export_name)
    return {"step": step, "finished": step >= opts.steps, "stopped_by_time_limit": stopped_early,
            "seconds_this_run": round(elapsed, 1), "last": history[-1] if history else None}


def run_distil(opts: TrainOptions) -> dict:
    """`stylestream train --model lite --phase distil`: build what is missing of the cache, then distil.

    A fresh run starts from `init_decoder` where given (a v1 lite file starts v2 with FiLM off), else
    from the seed; `resume` continues from the run folder's checkpoint."""
    from dataclasses import asdict

    from engines.lite.cache import CacheRecipe, build_cache
    from engines.models import network

    net_info = network(opts.model)
    recipe = CacheRecipe(**{"seed": opts.seed, **opts.cache_recipe})
    cache = Path(opts.cache_dir or Path(opts.out_dir) / "cache")
    if opts.threads:
        torch.set_num_threads(opts.threads)
    build_cache(opts.content_dir, opts.style_dir, cache, opts.cache_shards, opts.exclude_list, recipe, opts.teacher)
    net = net_info.build(opts.seed)
    start_step = 0
    if opts.init_decoder and not opts.resume:
        from engines.decoder import read_manifest
        from engines.lite.weights import starting_state

        net.load_state_dict(starting_state(opts.init_decoder, net.shape))
        start_step = distilled_steps(read_manifest(Path(opts.init_decoder)), asdict(recipe))
        log.info("Starting from %s (step %d)", opts.init_decoder, start_step)
    describe = {**net_info.describe(opts), "phase": opts.phase, "init": opts.init_decoder,
                "cache_recipe": asdict(recipe), "exclude_list": opts.exclude_list}
    return distil(opts, net, cache, describe, export_name=net_info.weights_file, start_step=start_step)


def distilled_steps(manifest: dict, recipe: dict) -> int:
    """The steps an init file already took in this phase on this recipe (0 for anything else), so that
    a session that starts from the committed weights goes on counting."""
    if manifest.get("phase") not in ("distil", "finetune") or manifest.get("cache_recipe") != json.loads(
            json.dumps(recipe)):
        return 0
    return int(manifest.get("steps", 0))

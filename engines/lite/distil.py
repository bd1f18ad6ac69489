"""Distilling the full model into the lite network from the cache (engines.lite.cache), on a CPU.

Each step costs the student alone: its output for a cached (content crop, style code, alpha) is
pulled towards the full model's output by an L1 term on the pixels and one on their horizontal and
vertical differences (the strokes and edges, which a pixel L1 alone blurs). Resumable like the VGG
training loop: `time_limit` ends a run with a checkpoint; run again with `resume` to go on.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from engines.machine import cpu_has_native_bf16
from engines.train.checkpoint import export_weights, load_checkpoint, save_checkpoint
from engines.train.options import TrainOptions, learning_rate

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.safetensors"


def distil_losses(out: torch.Tensor, teacher: torch.Tensor, edge_weight: float) -> tuple[torch.Tensor, ...]:
    """-> total, pixel L1, edge L1 (fp32)."""
    out = out.float()
    pixel = F.l1_loss(out, teacher)
    edge = (F.l1_loss(out.diff(dim=-1), teacher.diff(dim=-1)) + F.l1_loss(out.diff(dim=-2), teacher.diff(dim=-2)))
    return pixel + edge_weight * edge, pixel, edge


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
    window_step, sums, stopped_early = step, torch.zeros(3), False
    while step < opts.steps:
        if opts.time_limit is not None and time.monotonic() - started > opts.time_limit:
            stopped_early = True
            break
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(opts, step)
        content, teacher, mean, std, alpha = cache.batch(opts.batch_size, gen)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            terms = distil_losses(net(content, mean, std, alpha), teacher, edge_weight)
        optimizer.zero_grad(set_to_none=True)
        terms[0].backward()
        optimizer.step()
        step += 1
        sums += torch.stack([t.detach().float() for t in terms])
        if step % opts.log_every == 0 or step == opts.steps:
            total, pixel, edge = (sums / (step - window_step)).tolist()
            if not math.isfinite(total):
                raise FloatingPointError(f"loss became {total} at step {step}; lower --lr")
            now = time.monotonic()
            rec = {"step": step, "phase": "distil", "loss": round(total, 5), "pixel": round(pixel, 5),
                   "edge": round(edge, 5), "lr": learning_rate(opts, step),
                   "steps_per_s": round((step - window_step) / max(now - window, 1e-9), 3)}
            history.append(rec)
            with open(out / "log.jsonl", "a") as f:
                f.write(json.dumps(rec) + "\n")
            log.info("step %d: loss %.4f (pixel %.4f, edge %.4f), %.2f steps/s", step, total, pixel, edge,
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
                                                       for k in ("loss", "pixel", "edge")} if tail else {},
                                 "window_steps": opts.log_every * len(tail)},
                "optimizer": {"name": "Adam", "lr": opts.lr, "lr_decay": opts.lr_decay},
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

    from engines.lite.cache import CODES, CacheRecipe, build_codes, build_pairs, merge_codes
    from engines.models import network

    net_info = network(opts.model)
    recipe = CacheRecipe(**{"seed": opts.seed, **opts.cache_recipe})
    cache = Path(opts.cache_dir or Path(opts.out_dir) / "cache")
    cache.mkdir(parents=True, exist_ok=True)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    if not (cache / CODES).is_file():
        build_codes(opts.style_dir, cache, opts.exclude_list, recipe)
        merge_codes(cache, 1)
    build_pairs(opts.content_dir, cache, opts.cache_shards, opts.exclude_list, recipe, opts.teacher)
    net = net_info.build(opts.seed)
    start_step = 0
    if opts.init_decoder and not opts.resume:
        from engines.decoder import read_manifest
        from engines.lite.weights import starting_state

        net.load_state_dict(starting_state(opts.init_decoder, net.shape))
        start_step = distilled_steps(read_manifest(Path(opts.init_decoder)), asdict(recipe))
        log.info("Starting from %s (step %d)", opts.init_decoder, start_step)
    describe = {**net_info.describe(opts), "phase": "distil", "init": opts.init_decoder,
                "cache_recipe": asdict(recipe), "exclude_list": opts.exclude_list}
    return distil(opts, net, cache, describe, export_name=net_info.weights_file, start_step=start_step)


def distilled_steps(manifest: dict, recipe: dict) -> int:
    """The steps an init file already took in this phase on this recipe (0 for anything else), so that
    a session that starts from the committed weights goes on counting."""
    if manifest.get("phase") != "distil" or manifest.get("cache_recipe") != json.loads(json.dumps(recipe)):
        return 0
    return int(manifest.get("steps", 0))

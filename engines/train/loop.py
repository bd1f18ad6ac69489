"""The VGG-loss training loop for every network in engines.models (the full model's AdaIN decoder,
Huang & Belongie 2017, section 6; the whole lite network), resumable in chunks.

Adam at lr 1e-4 with the reference implementation's decay lr / (1 + 5e-5 * step), batch 8, random
256 crops. On CUDA the whole data set lives on the GPU and crops are cut there; the loss runs in bf16
autocast (statistics stay fp32) with channels_last. `time_limit` ends a run cleanly, with a
checkpoint, so a long training fits machines lent for a few minutes at a time: run again with
`resume=True` and it continues from the same step, weights, Adam moments and data order.
"""

from __future__ import annotations

import json
import logging
import math
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.utils import make_grid

from engines.devices import resolve_device
from engines.errors import ConfigError
from engines.machine import cpu_has_native_bf16
from engines.models import network
from engines.progress import progress_bar
from engines.train.checkpoint import export_weights, load_checkpoint, save_checkpoint
from engines.train.data import default_sample_files, load_samples, load_train_data
from engines.train.losses import AdaINLoss, with_temporal
from engines.train.manifest import manifest
from engines.train.options import COMPILE_MODES, TrainOptions, base_lr, learning_rate
from engines.train.regularise import Motion
from engines.vgg import load_encoder

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.safetensors"
__all__ = ["TrainOptions", "train", "learning_rate"]


def loss_step(opts: TrainOptions, loss_fn: nn.Module, net: nn.Module):
    """(content, style, motion theta, motion noise) -> the five loss terms (total first), compiled if asked.

    Only tensors go in and out, so a compiled step is traced once per shape and never recompiles.
    """
    def step_losses(content, style, theta, noise):
        motion = Motion(theta, noise) if theta is not None else None
        ls = with_temporal(loss_fn, net, content, style, motion, opts.temporal_weight)
        zero = ls.style.new_zeros(())
        return (ls.total, ls.content, ls.style, ls.distill if ls.distill is not None else zero,
                ls.temporal if ls.temporal is not None else zero)

    if opts.compile not in COMPILE_MODES:
        raise ConfigError(f"Unknown compile mode {opts.compile!r}: use one of {', '.join(COMPILE_MODES[1:])}")
    if not opts.compile:
        return step_losses
    if opts.compile == "eager":
        return torch.compile(step_losses, backend="eager")
    return torch.compile(step_losses, mode=opts.compile)


def sample_grid(net: nn.Module, loss, content: torch.Tensor, style: torch.Tensor) -> np.ndarray:
    """A PNG-ready grid (uint8 RGB): top row the styles, left column the photos, the rest stylized."""
    n, m = content.shape[0], style.shape[0]
    size = content.shape[-1]
    was_training = net.training
    net.eval()
    cells = [torch.ones_like(style[0])] + list(style.float())
    with torch.no_grad():
        for i in range(n):
            out = loss.render(net, content[i:i + 1].expand(m, -1, -1, -1), style).float().clamp(0, 1)
            cells += [content[i].float()] + list(out[..., :size, :size])
    net.train(was_training)
    grid = make_grid(torch.stack(cells).cpu(), nrow=m + 1, padding=0)
    return grid.mul(255).round().byte().permute(1, 2, 0).numpy()


def _write_png(rgb: np.ndarray, path: Path) -> None:
    import cv2

    cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))


@contextmanager
def _progress(opts: TrainOptions, start: int):
    """`show(step, text)`: the one progress bar (engines.progress) with the losses, or nothing (no TTY)."""
    if not opts.progress:
        yield lambda step, text="": None
        return
    with progress_bar("{task.fields[losses]}", elapsed=True) as bar:
        task = bar.add_task("training", total=opts.steps, completed=start, losses="")
        yield lambda step, text="": bar.update(task, completed=step, **({"losses": text} if text else {}))


def train(opts: TrainOptions) -> dict:
    """Train (or continue training) a decoder. Returns a summary; writes everything under out_dir."""
    if opts.phase not in network(opts.model).phases:
        phases = ", ".join(network(opts.model).phases)
        raise ConfigError(f"The {opts.model} model has no {opts.phase!r} phase: use {phases}")
    if opts.phase in ("distil", "finetune"):
        from engines.lite.distil import run_distil

        return run_distil(opts)
    device = resolve_device(opts.device)
    out = Path(opts.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(opts.seed)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    amp_dtype = torch.bfloat16 if (opts.amp and (cuda or cpu_has_native_bf16())) else None

    data = load_train_data(opts.content_dir, opts.style_dir, opts.load_size, device, opts.exclude_list,
                           opts.workers)
    c_files, s_files = default_sample_files(data.content_files, data.style_files, data.exclude,
                                            sample_dir=opts.sample_dir)
    samples = (load_samples(c_files, opts.crop).to(device), load_samples(s_files, opts.crop).to(device))

    encoder = load_encoder(opts.encoder).to(device)
    decoder = build_trainable(opts).to(device).train()
    if cuda:
        encoder = encoder.to(memory_format=torch.channels_last)
        decoder = decoder.to(memory_format=torch.channels_last)
    loss_fn = network(opts.model).loss(opts, AdaINLoss(encoder, opts.content_weight, opts.style_weight,
                                                       channels_last=cuda), device)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=base_lr(opts), **({"fused": True} if cuda else {}))
    gen = torch.Generator().manual_seed(opts.seed)

    step_losses = loss_step(opts, loss_fn, decoder)
    step, history = 0, []
    if opts.init_decoder and not opts.resume:
        from engines.decoder import read_manifest

        net = network(opts.model)
        decoder.load_state_dict(net.trained_part(net.load(opts.init_decoder)).state_dict())
        step = int(read_manifest(Path(opts.init_decoder)).get("steps", 0))
        log.info("Starting from %s (step %d; Adam starts afresh)", opts.init_decoder, step)
    if opts.resume:
        step, info = load_checkpoint(out / CHECKPOINT, decoder, optimizer, gen)
        history = info.get("history", [])
        log.info("Resumed from %s at step %d", out / CHECKPOINT, step)

    def checkpoint() -> None:
        save_checkpoint(out / CHECKPOINT, decoder, optimizer, gen, step,
                        {"history": history[-200:], "options": _jsonable(opts)})

    def samples_png() -> None:
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            grid = sample_grid(decoder, loss_fn, *samples)
        _write_png(grid, out / f"samples-{step:07d}.png")

    log_path = out / "log.jsonl"
    started = time.monotonic()
    window_start, window_step = started, step
    sums = torch.zeros(5, device=device)
    stopped_early = False
    with _progress(opts, step) as show_progress:
        while step < opts.steps:
            if opts.time_limit is not None and time.monotonic() - started > opts.time_limit:
                stopped_early = True
                break
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(opts, step)
            content, style = data.next_batch(opts.batch_size, opts.crop, gen)
            motion = Motion.sample(content, gen) if opts.temporal_weight > 0 else None
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                terms = step_losses(content, style, *((motion.theta, motion.noise) if motion else (None, None)))
            optimizer.zero_grad(set_to_none=True)
            terms[0].backward()
            optimizer.step()
            step += 1
            sums += torch.stack([terms[0].detach().float(), *terms[1:]])

            if step % opts.log_every == 0 or step == opts.steps:
                n = step - window_step
                total, content_l, style_l, distill_l, temporal_l = (sums / max(n, 1)).tolist()  # one sync
                if not all(math.isfinite(v) for v in (total, content_l, style_l)):
                    raise FloatingPointError(f"loss became {total} at step {step}; lower --lr")
                now = time.monotonic()
                rec = {"step": step, "loss": round(total, 4), "content": round(content_l, 4),
                       "style": round(style_l, 4),
                       **({"distill": round(distill_l, 4)} if "distill" in network(opts.model).loss_terms else {}),
                       **({"temporal": round(temporal_l, 5)} if opts.temporal_weight > 0 else {}),
                       "lr": learning_rate(opts, step),
                       "steps_per_s": round(n / max(now - window_start, 1e-9), 2)}
                history.append(rec)
                with open(log_path, "a") as f:
                    f.write(json.dumps(rec) + "\n")
                sums.zero_()
                window_start, window_step = now, step
                show_progress(step, f"loss {total:.3f} content {content_l:.3f} style {style_l:.3f} "
                                    f"{rec['steps_per_s']:.1f} it/s")
            if step % opts.checkpoint_every == 0:
                checkpoint()
            if step % opts.sample_every == 0:
                samples_png()
    checkpoint()
    samples_png()
    elapsed = time.monotonic() - started
    summary = {"step": step, "finished": step >= opts.steps, "stopped_by_time_limit": stopped_early,
               "seconds_this_run": round(elapsed, 1), "last": history[-1] if history else None}
    export = out / network(opts.model).weights_file
    export_weights(decoder, export, manifest(opts, data.describe(), step, history, device, amp_dtype is not None))
    log.info("Step %d of %d; exported %s", step, opts.steps, export)
    return summary


def build_trainable(opts: TrainOptions) -> nn.Module:
    """The network a run trains, freshly initialised from the seed."""
    return network(opts.model).build(opts.seed)


def _jsonable(opts: TrainOptions) -> dict:
    return json.loads(json.dumps(asdict(opts), default=str))

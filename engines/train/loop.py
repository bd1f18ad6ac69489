"""The training loop for both networks (`model="full"`: the AdaIN decoder, Huang & Belongie 2017,
section 6; `model="lite"`: the whole lite network, engines.lite), resumable in chunks.

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
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.utils import make_grid

from engines.decoder import random_decoder
from engines.devices import resolve_device
from engines.errors import ConfigError
from engines.machine import cpu_has_native_bf16
from engines.progress import progress_bar
from engines.train.checkpoint import export_weights, load_checkpoint, save_checkpoint
from engines.train.data import default_sample_files, load_samples, load_train_data
from engines.train.losses import AdaINLoss
from engines.vgg import load_encoder

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.safetensors"
EXPORT = "decoder.safetensors"
LITE_EXPORT = "lite.safetensors"


@dataclass
class TrainOptions:
    content_dir: str
    style_dir: str
    out_dir: str = "runs/decoder"
    steps: int = 160_000
    batch_size: int = 8
    crop: int = 256
    load_size: int = 384            # shorter side the images are kept at; crops are cut from these
    lr: float = 1e-4
    lr_decay: float = 5e-5
    content_weight: float = 1.0
    style_weight: float = 10.0
    checkpoint_every: int = 2000
    sample_every: int = 2000
    log_every: int = 50
    seed: int = 0
    device: str = "auto"
    amp: bool = True                # bf16 autocast on CUDA
    resume: bool = False
    time_limit: float | None = None  # seconds; then checkpoint and stop (chunked training)
    exclude_list: str | None = None
    encoder: str | None = None      # a vgg_normalised file instead of the built-in normalised encoder
    init_decoder: str | None = None  # start from these weights (fresh Adam), counting on from their steps
    provisional: bool = False       # marks the exported manifest (e.g. a short CPU run)
    progress: bool = True
    workers: int = 4
    extra_manifest: dict = field(default_factory=dict)
    model: str = "full"             # "full": the AdaIN decoder; "lite": the lite network (engines.lite)
    distill_weight: float = 10.0    # lite: weight of the L1 pull towards the full model's output
    teacher: str | None = None      # lite: the full decoder to distil from (None: the shipped one)
    sample_dir: str | None = None   # images for the sample grids (content/ and style/); else dev/ beside the data
    threads: int | None = None      # CPU threads for torch (None: its default). 1 is fastest on a busy
                                    # machine: two threads spin at every barrier when a core is taken


def learning_rate(opts: TrainOptions, step: int) -> float:
    return opts.lr / (1.0 + opts.lr_decay * step)


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
    loss_fn = AdaINLoss(encoder, opts.content_weight, opts.style_weight, channels_last=cuda)
    if opts.model == "lite":
        loss_fn = lite_loss(opts, loss_fn, device)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=opts.lr, **({"fused": True} if cuda else {}))
    gen = torch.Generator().manual_seed(opts.seed)

    step, history = 0, []
    if opts.init_decoder and not opts.resume:
        from engines.decoder import load_decoder, read_manifest

        if opts.model != "full":
            raise ConfigError("--init-decoder continues a full-model decoder; use --resume for the lite model")

        decoder.load_state_dict(load_decoder(opts.init_decoder).state_dict())
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
    sums = torch.zeros(4, device=device)
    stopped_early = False
    with _progress(opts, step) as show_progress:
        while step < opts.steps:
            if opts.time_limit is not None and time.monotonic() - started > opts.time_limit:
                stopped_early = True
                break
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(opts, step)
            content, style = data.next_batch(opts.batch_size, opts.crop, gen)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                losses = loss_fn(decoder, content, style)
            optimizer.zero_grad(set_to_none=True)
            losses.total.backward()
            optimizer.step()
            step += 1
            sums += torch.stack([losses.total.detach().float(), losses.content, losses.style,
                                 losses.distill if losses.distill is not None else losses.style.new_zeros(())])

            if step % opts.log_every == 0 or step == opts.steps:
                n = step - window_step
                total, content_l, style_l, distill_l = (sums / max(n, 1)).tolist()  # one GPU sync per window
                if not all(math.isfinite(v) for v in (total, content_l, style_l)):
                    raise FloatingPointError(f"loss became {total} at step {step}; lower --lr")
                now = time.monotonic()
                rec = {"step": step, "loss": round(total, 4), "content": round(content_l, 4),
                       "style": round(style_l, 4), **({"distill": round(distill_l, 4)} if opts.model == "lite" else {}),
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
    export = out / (LITE_EXPORT if opts.model == "lite" else EXPORT)
    export_weights(decoder, export, manifest(opts, data.describe(), step, history, device, amp_dtype is not None))
    log.info("Step %d of %d; exported %s", step, opts.steps, export)
    return summary


def build_trainable(opts: TrainOptions) -> nn.Module:
    """The network a run trains, freshly initialised from the seed."""
    if opts.model == "full":
        return random_decoder(opts.seed)
    if opts.model == "lite":
        from engines.lite.network import LiteGraph

        torch.manual_seed(opts.seed)
        return LiteGraph()
    raise ConfigError(f"Unknown model {opts.model!r} to train: use full or lite")


def lite_loss(opts: TrainOptions, base: AdaINLoss, device: torch.device):
    """The lite network's loss, distilling from the shipped (or given) full decoder."""
    from engines.decoder import load_decoder
    from engines.lite.loss import LiteLoss

    teacher = load_decoder(opts.teacher).to(device) if opts.distill_weight > 0 else None
    return LiteLoss(base, teacher, opts.distill_weight)


def manifest(opts: TrainOptions, data: dict, step: int, history: list[dict], device: torch.device,
             amp: bool = False) -> dict:
    last = history[-1] if history else {}
    # Mean of the last few windows: one window of 50 steps is noisy.
    tail = history[-20:]
    keys = ("loss", "content", "style") + (("distill",) if opts.model == "lite" else ())
    mean = {k: round(sum(h[k] for h in tail) / len(tail), 4) for k in keys} if tail else {}
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    if opts.model == "lite":
        from engines.lite.network import LiteShape

        model = {"format": "stylestream-lite", "shape": LiteShape().as_dict(),
                 "architecture": "lite encoder + style head + AdaIN + lite decoder (engines.lite.network)",
                 "distill_weight": opts.distill_weight,
                 "teacher": opts.teacher or "engines/weights/decoder.safetensors"}
    else:
        model = {"format": "stylestream-decoder",
                 "architecture": "AdaIN decoder (Huang & Belongie 2017), nn.Sequential layout of the PyTorch port"}
    return {
        **model,
        "provisional": opts.provisional,
        "steps": step,
        "batch_size": opts.batch_size,
        "crop": opts.crop,
        "images_seen": step * opts.batch_size,
        "final_losses": {"last_window": {k: last.get(k) for k in keys},
                         "mean_last_windows": mean, "window_steps": opts.log_every * len(tail)},
        "loss_weights": {"content": opts.content_weight, "style": opts.style_weight},
        "optimizer": {"name": "Adam", "lr": opts.lr, "lr_decay": opts.lr_decay},
        "data": data,
        "device": device_name,
        "precision": "bf16 autocast" if amp else "fp32",
        "trained": datetime.now(UTC).date().isoformat(),
        "torch": torch.__version__,
        **opts.extra_manifest,
    }


def _jsonable(opts: TrainOptions) -> dict:
    return json.loads(json.dumps(asdict(opts), default=str))

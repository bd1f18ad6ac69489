"""What a trained network's JSON manifest says: architecture, steps, data, losses, regulariser, optimiser."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime

import torch

from engines.models import network
from engines.train.options import TrainOptions, base_lr
from engines.train.regularise import MotionRange


def manifest(opts: TrainOptions, data: dict, step: int, history: list[dict], device: torch.device,
             amp: bool = False) -> dict:
    last = history[-1] if history else {}
    # Mean of the last few windows: one window of 50 steps is noisy.
    tail = history[-20:]
    net = network(opts.model)
    keys = ("loss", "content", "style") + net.loss_terms
    mean = {k: round(sum(h[k] for h in tail) / len(tail), 4) for k in keys} if tail else {}
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    model = net.describe(opts)
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
        "optimizer": {"name": "Adam", "lr": base_lr(opts), "lr_decay": opts.lr_decay, "lr_scaling": opts.lr_scaling},
        "temporal_regulariser": ({"weight": opts.temporal_weight, "method": "compound (Wang et al. 2020)",
                                  "motion": asdict(MotionRange())} if opts.temporal_weight > 0 else None),
        "compile": opts.compile or None,
        "data": data,
        "device": device_name,
        "precision": "bf16 autocast" if amp else "fp32",
        "trained": datetime.now(UTC).date().isoformat(),
        "torch": torch.__version__,
        **opts.extra_manifest,
    }

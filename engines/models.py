"""The networks by name (the model registry), and which one `--model auto` runs.

Each network is one `Network` entry: how to load its shipped weights, how to build a fresh one to
train, its training loss and defaults, and what its weights manifest says about it. Adding a network
means a new package (its graph, weights and loss) and one entry here; nothing else names networks.

The rule for `--model auto` (measured numbers in docs/models.md):
- `image` and `convert`: the full model, which gives the best quality; they are not real time.
- `live` (and `serve`) on a CPU: the lite model, which runs in real time where the full one cannot.
- `live` on an NVIDIA GPU: the full model up to 1920x1080, the lite model above that (4K).
The choice is logged with how to override it. Where the lite weights cannot be loaded, `auto` falls
back to the full model with a warning; an explicit `--model lite` is an error instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from engines.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from engines.train.losses import AdaINLoss
    from engines.train.options import TrainOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Network:
    name: str
    summary: str
    load: Callable[[str | None], nn.Module]  # weights file (None: the shipped one) -> graph in eval mode
    build: Callable[[int], nn.Module]        # seed -> the freshly initialised module a training run optimises
    loss: Callable[[TrainOptions, AdaINLoss, torch.device], nn.Module]  # the training loss around the VGG one
    describe: Callable[[TrainOptions], dict]  # the weights manifest's part about the network
    weights_file: str                         # the exported file's name (in a run folder and engines/weights)
    trained_part: Callable[[nn.Module], nn.Module] = lambda graph: graph  # what of a loaded graph trains
    loss_terms: tuple[str, ...] = ()          # terms logged beside loss, content and style
    phases: tuple[str, ...] = ("vgg",)        # training phases (engines.train.loop.train; "distil": engines.lite)
    train_defaults: dict = field(default_factory=dict)  # TrainOptions fields that differ for this network


# --- full: VGG-19 + the AdaIN decoder -------------------------------------------------------------------

def _load_full(weights: str | None) -> nn.Module:
    from engines.decoder import load_decoder
    from engines.graph import StyleGraph
    from engines.vgg import load_encoder

    return StyleGraph(load_encoder(), load_decoder(weights)).eval()


def _build_full(seed: int) -> nn.Module:
    from engines.decoder import random_decoder

    return random_decoder(seed)  # the encoder is frozen VGG: only the decoder trains


def _describe_full(opts: TrainOptions) -> dict:
    return {"format": "stylestream-decoder",
            "architecture": "AdaIN decoder (Huang & Belongie 2017), nn.Sequential layout of the PyTorch port"}


# --- lite: engines.lite ---------------------------------------------------------------------------------

def _load_lite(weights: str | None) -> nn.Module:
    from engines.lite.weights import load_lite

    return load_lite(weights)


def _build_lite(seed: int) -> nn.Module:
    import torch

    from engines.lite.network import LiteGraph

    torch.manual_seed(seed)
    return LiteGraph()


def _lite_loss(opts: TrainOptions, base: AdaINLoss, device: torch.device) -> nn.Module:
    from engines.decoder import load_decoder
    from engines.lite.loss import LiteLoss

    teacher = load_decoder(opts.teacher).to(device) if opts.distill_weight > 0 else None
    return LiteLoss(base, teacher, opts.distill_weight)


def _describe_lite(opts: TrainOptions) -> dict:
    from engines.lite.network import LiteShape

    return {"format": "stylestream-lite", "version": 2, "shape": LiteShape().as_dict(),
            "architecture": "lite encoder + style head (AdaIN target and FiLM for every decoder layer, from "
                            "the relu1_1..relu4_1 code) + AdaIN + FiLM-conditioned lite decoder (engines.lite.network)",
            "distill_weight": opts.distill_weight, "teacher": opts.teacher or "engines/weights/decoder.safetensors"}


def _plain_loss(opts: TrainOptions, base: AdaINLoss, device: torch.device) -> nn.Module:
    return base


NETWORKS: dict[str, Network] = {
    "full": Network("full", "VGG-19 + the AdaIN decoder: the best quality", _load_full, _build_full, _plain_loss,
                    _describe_full, "decoder.safetensors", trained_part=lambda graph: graph.decoder),
    "lite": Network("lite", "a small network without VGG on the per-frame path: real time on a CPU", _load_lite,
                    _build_lite, _lite_loss, _describe_lite, "lite.safetensors",
                    loss_terms=("distill",), phases=("vgg", "distil", "finetune"),
                    train_defaults={"lr": 5e-4, "crop": 192}),
}
MODELS = tuple(NETWORKS)
CHOICES = ("auto",) + MODELS
REALTIME_JOBS = ("live", "serve")
FULL_LIVE_MAX_PIXELS_GPU = 1920 * 1080
REALTIME_ON_CPU = "lite"  # the network `auto` runs live on a CPU and above FULL_LIVE_MAX_PIXELS_GPU
BEST_QUALITY = "full"     # what `auto` runs otherwise, and falls back to when REALTIME_ON_CPU cannot load


def network(name: str) -> Network:
    if name not in NETWORKS:
        raise ConfigError(f"Unknown model {name!r}: use {', '.join(MODELS)}")
    return NETWORKS[name]


def check_model(model: str) -> str:
    if model not in CHOICES:
        raise ConfigError(f"Unknown model {model!r}: use {', '.join(CHOICES)}")
    return model


def pick_model(model: str, job: str, device_type: str, frame_pixels: int | None = None) -> str:
    """`model` as given, or for "auto" the network that suits `job` on `device_type` (logged)."""
    if check_model(model) != "auto":
        return model
    if job not in REALTIME_JOBS:
        chosen, why = BEST_QUALITY, f"best quality for {job}"
    elif device_type == "cpu":
        chosen, why = REALTIME_ON_CPU, "real time on a CPU (the full model is far from it there)"
    elif frame_pixels is not None and frame_pixels > FULL_LIVE_MAX_PIXELS_GPU:
        chosen, why = REALTIME_ON_CPU, "real time above 1920x1080 on a GPU"
    else:
        chosen, why = BEST_QUALITY, "real time on this GPU up to 1920x1080"
    others = [m for m in MODELS if m != chosen]
    log.info("model auto -> %s (%s); override with --model %s", chosen, why, " or ".join(others))
    return chosen


def default_weights(name: str) -> Path:
    from engines.decoder import WEIGHTS_DIR

    return WEIGHTS_DIR / network(name).weights_file

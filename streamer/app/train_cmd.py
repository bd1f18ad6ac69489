"""`stylestream train`: its options (one per TrainOptions field, defaults from there) and the run.

Training itself (engines.train) needs only torch, numpy, OpenCV and safetensors; this command adds typer
and rich, which a GPU box running `python -m streamer.app.cli train` has for `bench` anyway.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Annotated

import typer

from engines.models import MODELS
from engines.train.options import BASE_BATCH, COMPILE_MODES, TrainOptions

D = TrainOptions("", "")  # the defaults
LR_SCALINGS = ("none", "linear", "sqrt")
PHASES = ("vgg", "distil", "finetune")


def _choice(option: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        shown = ", ".join(repr(c) for c in choices)
        raise typer.BadParameter(f"{option} is one of {shown}, got {value!r}")
    return value


def train(
    content: Annotated[str, typer.Option(help="folder of content photos")],
    style: Annotated[str, typer.Option(help="folder of style images (paintings)")],
    out: Annotated[str, typer.Option(help="run folder: checkpoint, samples, log, exported weights")] = D.out_dir,
    steps: Annotated[int, typer.Option(help="total steps (a resumed run counts on)")] = D.steps,
    batch_size: Annotated[int, typer.Option()] = D.batch_size,
    crop: Annotated[int, typer.Option(help="training crop size")] = D.crop,
    load_size: Annotated[int, typer.Option(help="shorter side images are kept at")] = D.load_size,
    lr: Annotated[float, typer.Option()] = D.lr,
    lr_decay: Annotated[float, typer.Option(help="lr / (1 + decay * step)")] = D.lr_decay,
    content_weight: Annotated[float, typer.Option()] = D.content_weight,
    style_weight: Annotated[float, typer.Option()] = D.style_weight,
    checkpoint_every: Annotated[int, typer.Option()] = D.checkpoint_every,
    sample_every: Annotated[int, typer.Option(help="write a sample grid PNG")] = D.sample_every,
    log_every: Annotated[int, typer.Option()] = D.log_every,
    seed: Annotated[int, typer.Option()] = D.seed,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = D.device,
    no_amp: Annotated[bool, typer.Option(
        "--no-amp", help="fp32 instead of bf16 autocast (used on CUDA and on CPUs with bf16 in hardware)")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="continue from OUT/checkpoint.safetensors")] = False,
    time_limit: Annotated[float | None, typer.Option(
        help="seconds; then checkpoint and stop (resume later)")] = None,
    exclude_list: Annotated[str | None, typer.Option(help="file names to leave out (one per line)")] = None,
    encoder: Annotated[str | None, typer.Option(help="vgg_normalised weights instead of the built-in encoder")] = None,
    init_decoder: Annotated[str | None, typer.Option(
        help="start from these decoder weights (Adam afresh; steps count on from their manifest)")] = None,
    provisional: Annotated[bool, typer.Option("--provisional", help="mark the exported weights provisional")] = False,
    model: Annotated[str, typer.Option(
        help="full: the AdaIN decoder; lite: the small real-time network (engines.lite)")] = D.model,
    distill_weight: Annotated[float, typer.Option(
        help="lite: weight of the L1 pull towards the full model's output (0: VGG losses alone)")] = D.distill_weight,
    low_alpha_pull: Annotated[float, typer.Option(
        help="lite finetune: the pull's factor on pairs below alpha 1, which no VGG loss judges")] = D.low_alpha_pull,
    low_alpha_features: Annotated[bool, typer.Option(
        "--low-alpha-features", help="lite finetune: judge pairs below alpha 1 by the VGG content and statistics "
        "of the full model's output")] = D.low_alpha_features,
    samples: Annotated[str | None, typer.Option(
        help="folder with content/ and style/ images for the sample grids (default: dev/ beside the data)")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch (default: all cores)")] = None,
    teacher: Annotated[str | None, typer.Option(
        help="lite: full decoder to distil from (default: the shipped one)")] = None,
    temporal_weight: Annotated[float, typer.Option(
        help="weight of the compound temporal regulariser (Wang et al. 2020; 0: off)")] = D.temporal_weight,
    compile: Annotated[str, typer.Option(
        metavar="MODE", help="torch.compile the loss step: " + ", ".join(m for m in COMPILE_MODES if m)
        + " ('': off)")] = D.compile,
    lr_scaling: Annotated[str, typer.Option(
        help=f"none, linear or sqrt: scale --lr for batches other than {BASE_BATCH}: x batch/{BASE_BATCH} or its "
             "square root")] = D.lr_scaling,
    data_note: Annotated[str | None, typer.Option(
        help="a line for the manifest about the data (e.g. what was left out before it got here)")] = None,
    phase: Annotated[str, typer.Option(
        help="vgg: VGG content and style losses; distil (lite): learn the full model's outputs from a "
             "cache")] = D.phase,
    cache: Annotated[str | None, typer.Option(
        help="distil: teacher cache folder on local disk (default OUT/cache)")] = None,
    cache_shards: Annotated[int, typer.Option(help="distil: shards of 256 cached pairs")] = D.cache_shards,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="no progress bar")] = False,
    workers: Annotated[int, typer.Option(help="image decoding threads")] = D.workers,
):
    """Train the AdaIN decoder, or the lite network (--model lite)."""
    from engines.train import train as run_training

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    opts = TrainOptions(
        content_dir=content, style_dir=style, out_dir=out, steps=steps, batch_size=batch_size, crop=crop,
        load_size=load_size, lr=lr, lr_decay=lr_decay, content_weight=content_weight, style_weight=style_weight,
        checkpoint_every=checkpoint_every, sample_every=sample_every, log_every=log_every, seed=seed, device=device,
        amp=not no_amp, resume=resume, time_limit=time_limit, exclude_list=exclude_list, encoder=encoder,
        init_decoder=init_decoder, provisional=provisional, model=_choice("--model", model, MODELS),
        distill_weight=distill_weight, low_alpha_pull=low_alpha_pull,
        low_alpha_features=low_alpha_features, teacher=teacher,
        extra_manifest={"data_note": data_note} if data_note else {},
        threads=threads, temporal_weight=temporal_weight, compile=_choice("--compile", compile, COMPILE_MODES),
        lr_scaling=_choice("--lr-scaling", lr_scaling, LR_SCALINGS), sample_dir=samples,
        phase=_choice("--phase", phase, PHASES), cache_dir=cache, cache_shards=cache_shards,
        progress=not no_progress and sys.stderr.isatty(), workers=workers)
    try:
        summary = run_training(opts)
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint is kept (continue with --resume)", file=sys.stderr)
        raise typer.Exit(130) from None
    print(json.dumps(summary))

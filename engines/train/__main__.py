"""`python -m engines.train` (also `stylestream train`): train the AdaIN decoder.

Argparse rather than typer so it runs on a bare GPU machine with only torch, numpy, OpenCV,
safetensors and rich.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from engines.errors import StylestreamError
from engines.train.loop import TrainOptions, train
from engines.train.options import BASE_BATCH, COMPILE_MODES


def parser() -> argparse.ArgumentParser:
    d = TrainOptions("", "")
    p = argparse.ArgumentParser(prog="stylestream train", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--content", required=True, help="folder of content photos")
    p.add_argument("--style", required=True, help="folder of style images (paintings)")
    p.add_argument("--out", default=d.out_dir, help="run folder: checkpoint, samples, log, exported weights")
    p.add_argument("--steps", type=int, default=d.steps, help="total steps (a resumed run counts on)")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--crop", type=int, default=d.crop, help="training crop size")
    p.add_argument("--load-size", type=int, default=d.load_size, help="shorter side images are kept at")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--lr-decay", type=float, default=d.lr_decay, help="lr / (1 + decay * step)")
    p.add_argument("--content-weight", type=float, default=d.content_weight)
    p.add_argument("--style-weight", type=float, default=d.style_weight)
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    p.add_argument("--sample-every", type=int, default=d.sample_every, help="write a sample grid PNG")
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device, help="auto | cpu | cuda")
    p.add_argument("--no-amp", action="store_true",
                   help="fp32 instead of bf16 autocast (used on CUDA and on CPUs with bf16 in hardware)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.safetensors")
    p.add_argument("--time-limit", type=float, default=None,
                   help="seconds; then checkpoint and stop (resume later)")
    p.add_argument("--exclude-list", default=None, help="file names to leave out (one per line)")
    p.add_argument("--encoder", default=None, help="vgg_normalised weights instead of the built-in encoder")
    p.add_argument("--init-decoder", default=None,
                   help="start from these decoder weights (Adam afresh; steps count on from their manifest)")
    p.add_argument("--provisional", action="store_true", help="mark the exported weights provisional")
    p.add_argument("--model", default=d.model, choices=("full", "lite"),
                   help="full: the AdaIN decoder; lite: the small real-time network (engines.lite)")
    p.add_argument("--distill-weight", type=float, default=d.distill_weight,
                   help="lite: weight of the L1 pull towards the full model's output (0: VGG losses alone)")
    p.add_argument("--samples", default=None,
                   help="folder with content/ and style/ images for the sample grids (default: dev/ beside the data)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: all cores)")
    p.add_argument("--teacher", default=None, help="lite: full decoder to distil from (default: the shipped one)")
    p.add_argument("--temporal-weight", type=float, default=d.temporal_weight,
                   help="weight of the compound temporal regulariser (Wang et al. 2020; 0: off)")
    p.add_argument("--compile", default=d.compile, choices=COMPILE_MODES, metavar="MODE",
                   help="torch.compile the loss step: " + ", ".join(m for m in COMPILE_MODES if m) + " ('': off)")
    p.add_argument("--lr-scaling", default=d.lr_scaling, choices=("none", "linear", "sqrt"),
                   help=f"scale --lr for batches other than {BASE_BATCH}: x batch/{BASE_BATCH} or its square root")
    p.add_argument("--data-note", default=None,
                   help="a line for the manifest about the data (e.g. what was left out before it got here)")
    p.add_argument("--phase", default=d.phase, choices=("vgg", "distil", "finetune"),
                   help="vgg: VGG content and style losses; distil (lite): learn the full model's outputs from a cache")
    p.add_argument("--cache", default=None, help="distil: teacher cache folder on local disk (default OUT/cache)")
    p.add_argument("--cache-shards", type=int, default=d.cache_shards, help="distil: shards of 256 cached pairs")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--workers", type=int, default=d.workers, help="image decoding threads")
    return p


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    opts = TrainOptions(
        content_dir=a.content, style_dir=a.style, out_dir=a.out, steps=a.steps, batch_size=a.batch_size,
        crop=a.crop, load_size=a.load_size, lr=a.lr, lr_decay=a.lr_decay, content_weight=a.content_weight,
        style_weight=a.style_weight, checkpoint_every=a.checkpoint_every, sample_every=a.sample_every,
        log_every=a.log_every, seed=a.seed, device=a.device, amp=not a.no_amp, resume=a.resume,
        time_limit=a.time_limit, exclude_list=a.exclude_list, encoder=a.encoder, init_decoder=a.init_decoder,
        provisional=a.provisional, model=a.model, distill_weight=a.distill_weight, teacher=a.teacher,
        extra_manifest={"data_note": a.data_note} if a.data_note else {},
        threads=a.threads, temporal_weight=a.temporal_weight, compile=a.compile, lr_scaling=a.lr_scaling,
        sample_dir=a.samples, phase=a.phase, cache_dir=a.cache, cache_shards=a.cache_shards,
        progress=not a.no_progress and sys.stderr.isatty(), workers=a.workers)
    try:
        summary = train(opts)
    except StylestreamError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint is kept (continue with --resume)", file=sys.stderr)
        return 130
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())

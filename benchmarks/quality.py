"""Decoder quality on ../shared/data/dev: 8 content x 8 style images at alpha 0.25, 0.5 and 1.

Prints per-pair content and style loss (the paper's definitions, on the normalised VGG) and their
means, writes a contact sheet PNG per alpha (rows: content images, columns: styles; the first row
shows the styles, the first column the photos) and a JSON with the machine beside the numbers.

    python benchmarks/quality.py [--data ../shared/data/dev] [--size 256] [--decoder PATH] [--device auto]

Look at the sheets yourself: content recognisable at alpha=1, the painting's textures, no
checkerboard, no colour blotches, no dead borders.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engines.adain import adain, blend_alpha, mean_std  # noqa: E402
from engines.backends.base import STYLE_SIZE  # noqa: E402
from engines.decoder import DEFAULT_DECODER, load_decoder, read_manifest  # noqa: E402
from engines.graph import StyleGraph  # noqa: E402
from engines.images import list_images, load_image_tensor, to_uint8  # noqa: E402
from engines.machine import machine_info  # noqa: E402
from engines.vgg import load_encoder  # noqa: E402

ALPHAS = (0.25, 0.5, 1.0)


def style_loss(out_feats, style_feats) -> float:
    total = 0.0
    for o, s in zip(out_feats, style_feats, strict=True):
        om, os_ = mean_std(o)
        sm, ss = mean_std(s)
        total += torch.mean((om - sm) ** 2).item() + torch.mean((os_ - ss) ** 2).item()
    return total


def _cell(img: torch.Tensor, size: int) -> np.ndarray:
    rgb = to_uint8(img)
    h, w = rgb.shape[:2]
    k = size / max(h, w)
    rgb = cv2.resize(rgb, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
    cell = np.full((size, size, 3), 255, np.uint8)
    y, x = (size - rgb.shape[0]) // 2, (size - rgb.shape[1]) // 2
    cell[y:y + rgb.shape[0], x:x + rgb.shape[1]] = rgb
    return cell


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "../shared/data/dev")
    ap.add_argument("--size", type=int, default=256, help="shorter side of the content images")
    ap.add_argument("--decoder", type=Path, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--cell", type=int, default=160, help="contact sheet cell size (px)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = ap.parse_args()
    if not (args.data / "content").is_dir():
        sys.exit(f"no dev data at {args.data} (../shared/data/dev); nothing to measure")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    encoder = load_encoder().to(device)
    decoder_path = args.decoder or DEFAULT_DECODER
    graph = StyleGraph(encoder, load_decoder(decoder_path)).to(device).eval()
    contents = list_images(args.data / "content")
    styles = list_images(args.data / "style")
    args.out.mkdir(parents=True, exist_ok=True)

    rows = []
    sheets = {a: [[None] * (len(styles) + 1) for _ in range(len(contents) + 1)] for a in ALPHAS}
    t0 = time.time()
    with torch.inference_mode():
        style_imgs = [load_image_tensor(s, STYLE_SIZE).to(device) for s in styles]
        style_feats = [encoder.features(s) for s in style_imgs]
        for a in ALPHAS:
            sheets[a][0][0] = np.full((args.cell, args.cell, 3), 255, np.uint8)
            for j, s in enumerate(style_imgs):
                sheets[a][0][j + 1] = _cell(s, args.cell)
        for i, cpath in enumerate(contents):
            c = load_image_tensor(cpath, args.size).to(device)
            feat = encoder(c)
            for a in ALPHAS:
                sheets[a][i + 1][0] = _cell(c, args.cell)
            for j, spath in enumerate(styles):
                smean, sstd = mean_std(style_feats[j][-1])
                target_full = adain(feat, smean, sstd)
                for a in ALPHAS:
                    target = blend_alpha(feat, target_full, a)
                    out = graph.decode_features(target, tuple(c.shape[-2:]))
                    of = encoder.features(out)
                    rows.append({"content": cpath.name, "style": spath.name, "alpha": a,
                                 "content_loss": torch.mean((of[-1] - target) ** 2).item(),
                                 "style_loss": style_loss(of, style_feats[j])})
                    sheets[a][i + 1][j + 1] = _cell(out, args.cell)
            print(f"{i + 1}/{len(contents)} content images ({time.time() - t0:.0f} s)", file=sys.stderr)

    stamp = datetime.now().strftime("%Y%m%d-%H%M")
    sheet_paths = []
    for a in ALPHAS:
        grid = np.vstack([np.hstack(r) for r in sheets[a]])
        p = args.out / f"quality-alpha{a:g}-{stamp}.png"
        cv2.imwrite(str(p), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
        sheet_paths.append(str(p))

    print(f"{'content':28} {'style':34} {'alpha':>5} {'content':>9} {'style':>9}")
    for r in rows:
        print(f"{r['content'][:28]:28} {r['style'][:34]:34} {r['alpha']:5.2f} "
              f"{r['content_loss']:9.4f} {r['style_loss']:9.4f}")
    summary = {}
    for a in ALPHAS:
        sel = [r for r in rows if r["alpha"] == a]
        summary[str(a)] = {"content_loss": float(np.mean([r["content_loss"] for r in sel])),
                           "style_loss": float(np.mean([r["style_loss"] for r in sel]))}
        print(f"mean at alpha={a:g}: content loss {summary[str(a)]['content_loss']:.4f}, "
              f"style loss {summary[str(a)]['style_loss']:.4f}")
    manifest = read_manifest(Path(decoder_path))
    result = {"machine": machine_info(), "decoder": str(decoder_path),
              "decoder_manifest": {k: manifest.get(k) for k in ("steps", "provisional", "sha256", "device")},
              "size": args.size, "seconds": round(time.time() - t0, 1), "summary": summary,
              "pairs": rows, "sheets": sheet_paths}
    out_json = args.out / f"quality-{stamp}.json"
    out_json.write_text(json.dumps(result, indent=1))
    print(f"sheets: {', '.join(sheet_paths)}\njson: {out_json}")


if __name__ == "__main__":
    main()

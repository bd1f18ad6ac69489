"""The upscale a lowered working size needs, three ways side by side: bilinear, the shipped guided detail
upscale (streamer.upscale), and the classic guided-filter upsampling (q = A * I + B, He & Sun 2015).

For each dev photo x dev style the lite network runs at the output size (the reference) and at lower
working sizes; each upscale of the lower output is compared with the reference: PSNR, and the Laplacian
energy as a share of the reference's (how much of its stroke detail is left), plus its time per frame.

    python -m benchmarks.upscale_quality [--data ../shared/data/dev] [--styles 4] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

from engines.machine import keep_freed_buffers, machine_info
from streamer.upscale import box_mean, guided_upscale

ROOT = Path(__file__).resolve().parents[1]
OUT_SIZE = (640, 360)
WORK_SIZES = [(544, 306), (384, 216), (256, 144)]


def classic_guided(stylized: np.ndarray, frame: np.ndarray, radius: int = 2, eps: float = 1e-3) -> np.ndarray:
    """He & Sun's fast guided upsampling with the grey input as the guide, per colour channel."""
    big = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255
    h, w = stylized.shape[:2]
    grey = cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA)
    p = stylized.astype(np.float32) / 255
    mean_i = box_mean(grey, radius)[..., None]
    cov = box_mean(grey[..., None] * p, radius) - mean_i * box_mean(p, radius)
    var = box_mean(grey * grey, radius)[..., None] - mean_i * mean_i
    a = cov / (var + eps)
    b = box_mean(p, radius) - a * mean_i
    size = frame.shape[1::-1]
    a, b = (cv2.resize(box_mean(x, radius), size, interpolation=cv2.INTER_LINEAR) for x in (a, b))
    return np.clip((a * big[..., None] + b) * 255 + 0.5, 0, 255).astype(np.uint8)


def bilinear(stylized: np.ndarray, frame: np.ndarray) -> np.ndarray:
    return cv2.resize(stylized, frame.shape[1::-1], interpolation=cv2.INTER_LINEAR)


METHODS = {"bilinear": bilinear, "guided detail (shipped)": guided_upscale, "guided filter A*I+B": classic_guided}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255 ** 2 / np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2)))


def detail(a: np.ndarray) -> float:
    grey = cv2.cvtColor(a, cv2.COLOR_BGR2GRAY).astype(np.float32)
    return float(np.mean(np.abs(cv2.Laplacian(grey, cv2.CV_32F))))


def ms_per_call(fn, *args, n: int = 50) -> float:
    for _ in range(3):
        fn(*args)
    t0 = time.perf_counter()
    for _ in range(n):
        fn(*args)
    return (time.perf_counter() - t0) / n * 1000


def main() -> None:
    from engines.backends import create_engine
    from engines.presets import resolve_style
    from streamer.stylize import StylizeStep

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "../shared/data/dev")
    ap.add_argument("--styles", type=int, default=4, help="how many dev styles (the first N)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = ap.parse_args()
    photos = sorted((args.data / "content").glob("*.jpg"))
    styles = sorted((args.data / "style").glob("*.jpg"))[:args.styles]
    if not photos or not styles:
        raise SystemExit(f"no dev photos or styles under {args.data}; nothing to measure")
    keep_freed_buffers()
    engine = create_engine("auto", device="cpu", model="lite", job="live", frame_pixels=OUT_SIZE[0] * OUT_SIZE[1])
    scores: dict[tuple, list] = {}
    timing: dict[tuple, float] = {}
    for style_path in styles:
        code = resolve_style(str(style_path), engine.encode_style, 512, 50_000_000)
        for photo in photos:
            frame = cv2.resize(cv2.imread(str(photo)), OUT_SIZE, interpolation=cv2.INTER_AREA)
            step = StylizeStep(engine, out_size=OUT_SIZE)
            reference = step([frame], code, 1.0)[0]
            for work in WORK_SIZES:
                step.out_size = work
                low = step([frame], code, 1.0)[0]
                for name, fn in METHODS.items():
                    out = fn(low, frame)
                    scores.setdefault((work, name), []).append((psnr(out, reference), detail(out) / detail(reference)))
                    if (work, name) not in timing:
                        timing[(work, name)] = ms_per_call(fn, low, frame)
    rows = []
    for (work, name), v in scores.items():
        a = np.array(v)
        rows.append({"from": f"{work[0]}x{work[1]}", "method": name, "psnr_db": round(float(a[:, 0].mean()), 2),
                     "detail_share": round(float(a[:, 1].mean()), 3), "ms": round(timing[(work, name)], 2)})
        print(f"{rows[-1]['from']:8} {name:24} PSNR {rows[-1]['psnr_db']:.2f} dB  detail {rows[-1]['detail_share']:.2f}"
              f"  {rows[-1]['ms']:.2f} ms")
    info = machine_info()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"upscale-quality-cpu-{datetime.now().strftime('%Y-%m-%d')}.json"
    path.write_text(json.dumps({"machine": info, "engine": engine.describe_model(), "out_size": OUT_SIZE,
                                "pairs": len(photos) * len(styles), "results": rows}, indent=1))
    print(f"json: {path}")


if __name__ == "__main__":
    main()

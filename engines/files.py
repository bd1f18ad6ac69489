"""Which files are images: one list for the image command, image-folder sources and the training data.

No imaging library is imported here, so training on a bare GPU box does not need PIL.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


def files_in(folder: Path, suffixes: Collection[str]) -> list[Path]:
    """The files directly in `folder` whose suffix (any case) is one of `suffixes`, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)


def image_files(folder: Path) -> list[Path]:
    return files_in(folder, IMAGE_SUFFIXES)

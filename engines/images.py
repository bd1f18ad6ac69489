"""Still-image I/O: safe reading (size checked before decoding), resizing, atomic writing."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from engines.errors import InputError, OutputError
from engines.files import atomic_output, image_files

DEFAULT_MAX_PIXELS = 50_000_000  # about 8k x 6k; raise with --max-pixels


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"Not a folder: {folder}")
    return image_files(folder)


def load_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """H x W x 3 uint8 RGB, EXIF orientation applied. Checks the size before decoding."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Image not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > max_pixels:
                    raise InputError(f"{path} is {w}x{h} ({w * h / 1e6:.0f} MP), over the limit of "
                                     f"{max_pixels / 1e6:.0f} MP; raise it with --max-pixels")
                im = ImageOps.exif_transpose(im).convert("RGB")
                return np.asarray(im).copy()
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombWarning,
            Image.DecompressionBombError) as e:
        raise InputError(f"Cannot read image {path}: {e.__class__.__name__}: {e}") from None


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 RGB -> 1 x 3 x H x W float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).unsqueeze(0).float().div_(255).contiguous()


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """1 x 3 x H x W (or 3 x H x W) float in [0, 1] -> H x W x 3 uint8 RGB."""
    if img.ndim == 4:
        img = img[0]
    return img.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()


def resize_shorter(img: torch.Tensor, size: int | None) -> torch.Tensor:
    """Resize N x C x H x W so the shorter side is `size` (None or 0: unchanged)."""
    if not size:
        return img
    h, w = img.shape[-2:]
    k = size / min(h, w)
    if abs(k - 1) < 1e-6:
        return img
    hw = (max(1, round(h * k)), max(1, round(w * k)))
    return F.interpolate(img, size=hw, mode="bilinear", align_corners=False, antialias=k < 1).clamp_(0, 1)


def load_image_tensor(path: str | Path, size: int | None = None,
                      max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    return resize_shorter(to_tensor(load_image(path, max_pixels)), size)


def save_image(img: torch.Tensor | np.ndarray, path: str | Path, quality: int = 95) -> Path:
    """Write atomically: a temporary file in the same folder, renamed into place when complete."""
    path = Path(path)
    rgb = to_uint8(img) if isinstance(img, torch.Tensor) else img
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise OutputError(f"Unknown image format for {path}; use .jpg, .png or .webp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"Cannot write to {path.parent}: {e.strerror}") from None
    try:
        with atomic_output(path) as tmp:
            Image.fromarray(rgb).save(tmp, format=fmt, **({"quality": quality} if fmt in ("JPEG", "WEBP") else {}))
    except OSError as e:
        raise OutputError(f"Cannot write {path}: {e.strerror or e}") from None
    return path

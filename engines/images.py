"""Still-image I/O: safe reading (size and shape checked before decoding), resizing, atomic writing.

One pixel limit (`max_pixels`, --max-pixels) guards both what is decoded and what the network processes;
PIL's own decompression-bomb limit is replaced by it, not added to it.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from engines.errors import InputError, OutputError
from engines.files import atomic_output, image_files

_PIL_LIMIT_LOCK = threading.Lock()

DEFAULT_MAX_PIXELS = 50_000_000  # about 8k x 6k; raise with --max-pixels
# The network's smallest input side: relu4_1 is 1/8 of it and the decoder's reflection padding needs two
# pixels there (16 works for the full model; 32 leaves room for the lite one). Smaller inputs are scaled up.
MIN_SIDE = 32
# Longer side / shorter side. Beyond this a scaled shorter side makes the longer one explode (a 60000x2
# strip at 512 px is 15 million pixels wide); nothing real is that thin.
MAX_ASPECT = 32


def pixels_text(n: float) -> str:
    """A pixel count people can read: "12.3 MP", "0.12 MP", "400 pixels"."""
    if n >= 10_000_000:
        return f"{n / 1e6:.0f} MP"
    if n >= 10_000:
        return f"{n / 1e6:.2g} MP"
    return f"{int(n)} pixels"


def check_shape(width: int, height: int, max_pixels: int, what: str) -> None:
    """InputError for an image (or video) too large or too thin for the network; `what` names it."""
    if width * height > max_pixels:
        raise InputError(f"{what} is {width}x{height} ({pixels_text(width * height)}), over the limit of "
                         f"{pixels_text(max_pixels)}; raise it with --max-pixels")
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise InputError(f"{what} is {width}x{height}, more than {MAX_ASPECT} times longer than it is wide; "
                         f"crop it to a less extreme shape")


def work_size(height: int, width: int, size: int | None, max_pixels: int, what: str) -> tuple[int, int]:
    """(h, w) the network works at: shorter side `size` (0/None: as it is), at least MIN_SIDE, and within
    `max_pixels` (the pixels actually processed, not only those decoded)."""
    k = size / min(height, width) if size else 1.0
    k = max(k, MIN_SIDE / min(height, width))
    hw = (max(1, round(height * k)), max(1, round(width * k)))
    if hw[0] * hw[1] > max_pixels:
        raise InputError(f"{what} would be processed at {hw[1]}x{hw[0]} ({pixels_text(hw[0] * hw[1])}), over "
                         f"the limit of {pixels_text(max_pixels)}; lower --size or raise --max-pixels")
    return hw


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
            # our limit replaces PIL's: it is checked here, on the header, before anything is decoded
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with _pil_limit(), Image.open(path) as im:
                w, h = im.size
                check_shape(w, h, max_pixels, str(path))
                im = ImageOps.exif_transpose(im).convert("RGB")
                return np.asarray(im).copy()
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombWarning,
            Image.DecompressionBombError) as e:
        raise InputError(f"Cannot read image {path}: {e.__class__.__name__}: {e}") from None


@contextmanager
def _pil_limit() -> Iterator[None]:
    """PIL's own bomb check off while one image opens: check_shape applies `max_pixels` to its header
    instead (PIL's fixed 89.5 MP limit would refuse images that --max-pixels allows)."""
    with _PIL_LIMIT_LOCK:
        before = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = before


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


def fit_for_network(img: torch.Tensor, size: int | None, max_pixels: int, what: str) -> torch.Tensor:
    """N x C x H x W at work_size: shorter side `size` (0: native), never under MIN_SIDE, within max_pixels."""
    hw = work_size(*img.shape[-2:], size, max_pixels, what)
    if tuple(img.shape[-2:]) == hw:
        return img
    k = hw[0] / img.shape[-2]
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

"""Training images: read once into memory, crop and augment on the training device.

The data set is small (hundreds of images), so every image is decoded once, resized so its shorter side
is `load_size`, and kept as uint8 (on the GPU when training there). Each batch is cut from it with a
random scale, a random square crop and a horizontal flip; content also gets a colour jitter. The image
operations are torchvision's (`transforms.v2.functional`); their parameters are drawn from one
`torch.Generator` on the CPU (torchvision's random transforms would draw from the global generator),
so a run is reproducible and resumable, bit for bit, from that generator's state. No DataLoader and no
worker processes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

from engines.errors import InputError
from engines.files import IMAGE_SUFFIXES, image_files

log = logging.getLogger(__name__)


# --- reading ---------------------------------------------------------------------------------------------

def read_rgb(path: Path) -> np.ndarray:
    """H x W x 3 uint8 RGB. PIL (through engines.images: EXIF, size check) if present, else OpenCV."""
    try:
        from engines.images import load_image
    except ImportError:  # a bare GPU machine may have OpenCV but no PIL
        load_image = None
    if load_image is not None:
        return load_image(path)
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError(f"Cannot read image {path}: not an image OpenCV can decode")
    return np.ascontiguousarray(bgr[..., ::-1])


def center_square(img: torch.Tensor, size: int) -> torch.Tensor:
    """3 x H x W uint8 -> 1 x 3 x size x size float in [0, 1]: shorter side to `size`, centre crop."""
    img = TF.center_crop(TF.resize(img, size, antialias=True), [size, size])
    return img[None].float().div_(255)


# --- choosing files --------------------------------------------------------------------------------------

def read_exclude_list(path: str | Path | None) -> set[str]:
    """File names to leave out. One path per line (e.g. `train/style/ts_0001_x.jpg`); matched by name."""
    if path is None:
        return set()
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Exclude list not found: {path}. Pass an existing file to --exclude-list or omit it.")
    names = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.add(Path(line).name)
    return names


@dataclass
class FileList:
    folder: Path
    files: list[Path]
    excluded: list[str] = field(default_factory=list)


def list_training_images(folder: str | Path, exclude: set[str], what: str = "images") -> FileList:
    """Image files directly in `folder` (sorted), minus the excluded names. Raises InputError if none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{what.capitalize()} folder not found: {folder}. Pass an existing folder.")
    files = image_files(folder)
    if not files:
        raise InputError(f"No {what} in {folder} (looked for {', '.join(sorted(IMAGE_SUFFIXES))}). "
                         "Point to a folder that holds the training images.")
    kept = [p for p in files if p.name not in exclude]
    excluded = [p.name for p in files if p.name in exclude]
    if not kept:
        raise InputError(f"All {len(files)} {what} in {folder} are in the exclude list; nothing left to train on.")
    return FileList(folder, kept, excluded)


def default_sample_files(content: FileList, style: FileList, exclude: set[str], n: int = 4,
                         sample_dir: str | Path | None = None) -> tuple[list[Path], list[Path]]:
    """The fixed images for the sample grids: the first `n` of `sample_dir` (with content/ and style/ in it),
    else of a `dev/` folder beside the training data (data/train/content -> data/dev), else the first `n`
    training images."""
    candidates = [Path(sample_dir)] if sample_dir else []
    candidates.append(content.folder.resolve().parent.parent / "dev")
    for dev in candidates:
        try:
            c = list_training_images(dev / "content", exclude)
            s = list_training_images(dev / "style", exclude)
        except InputError:
            continue
        return c.files[:n], s.files[:n]
    return content.files[:n], style.files[:n]


def load_images(files: Sequence[Path], load_size: int, workers: int = 2) -> list[torch.Tensor]:
    """Decode and resize every file (threads: decoding releases the GIL). -> 3 x H x W uint8 tensors."""

    def one(path: Path) -> torch.Tensor:
        rgb = torch.from_numpy(np.ascontiguousarray(read_rgb(path))).permute(2, 0, 1)
        return TF.resize(rgb, load_size, antialias=True).contiguous()

    with ThreadPoolExecutor(max(1, workers)) as pool:
        return list(pool.map(one, files))


# --- augmentation ----------------------------------------------------------------------------------------

def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def color_jitter(x: torch.Tensor, gen: torch.Generator, brightness: float = 0.25, contrast: float = 0.25,
                 saturation: float = 0.3, hue: float = 0.04) -> torch.Tensor:
    """Per-image random brightness, contrast, saturation and hue (hue in turns) on N x 3 x H x W in [0, 1]:
    torchvision's colour ops, one image at a time, with factors drawn from `gen`."""
    n = x.shape[0]
    factors = torch.stack([_uniform(n, 1 - brightness, 1 + brightness, gen),
                           _uniform(n, 1 - contrast, 1 + contrast, gen),
                           _uniform(n, 1 - saturation, 1 + saturation, gen),
                           _uniform(n, -hue, hue, gen)], dim=1).tolist()
    out = []
    for img, (b, c, s, h) in zip(x, factors, strict=True):
        img = TF.adjust_brightness(img, b)
        img = TF.adjust_contrast(img, c)
        img = TF.adjust_saturation(img, s)
        out.append(TF.adjust_hue(img, h))
    return torch.stack(out).clamp_(0, 1)


class ImagePool:
    """uint8 images on one device; `batch()` cuts random augmented square crops from them."""

    def __init__(self, images: list[torch.Tensor], device: torch.device | str = "cpu"):
        self.images = [im.to(device) for im in images]
        self.device = torch.device(device)

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, n: int, crop: int, gen: torch.Generator, scale: tuple[float, float] = (0.8, 1.25),
              flip: bool = True) -> torch.Tensor:
        """N x 3 x crop x crop float in [0, 1]. Random image, scale (log-uniform), position, flip.

        Scaling the image by s and cutting `crop` pixels equals cutting crop/s pixels and resizing them
        to `crop`, which is much cheaper on a large image.
        """
        idx = torch.randint(len(self.images), (n,), generator=gen).tolist()
        log_s = _uniform(n, math.log(scale[0]), math.log(scale[1]), gen)
        pos = torch.rand(n, 2, generator=gen)
        flips = (torch.rand(n, generator=gen) < 0.5).tolist() if flip else [False] * n
        out = []
        for i, k in enumerate(idx):
            img = self.images[k]
            h, w = img.shape[-2:]
            side = min(h, w, max(8, round(crop / math.exp(float(log_s[i])))))
            y = int(float(pos[i, 0]) * (h - side + 1)) if h > side else 0
            x = int(float(pos[i, 1]) * (w - side + 1)) if w > side else 0
            win = TF.resized_crop(img.float(), y, x, side, side, [crop, crop], antialias=side > crop)
            if flips[i]:
                win = TF.horizontal_flip(win)
            out.append(win[None])
        return torch.cat(out).div_(255).clamp_(0, 1)


@dataclass
class TrainData:
    """Content and style pools plus what a manifest should say about them."""

    content: ImagePool
    style: ImagePool
    content_files: FileList
    style_files: FileList
    exclude_list: str | None = None
    exclude: set[str] = field(default_factory=set)  # the names read from exclude_list

    def describe(self) -> dict:
        return {
            "content_dir": str(self.content_files.folder),
            "style_dir": str(self.style_files.folder),
            "content_images": len(self.content_files.files),
            "style_images": len(self.style_files.files),
            "excluded": len(self.content_files.excluded) + len(self.style_files.excluded),
            "excluded_content": len(self.content_files.excluded),
            "excluded_style": len(self.style_files.excluded),
            "exclude_list": self.exclude_list,
        }

    def next_batch(self, n: int, crop: int, gen: torch.Generator, jitter: bool = True
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        content = self.content.batch(n, crop, gen)
        if jitter:
            content = color_jitter(content, gen)
        return content, self.style.batch(n, crop, gen)


def load_train_data(content_dir: str | Path, style_dir: str | Path, load_size: int, device: torch.device,
                    exclude_list: str | Path | None = None, workers: int = 2) -> TrainData:
    exclude = read_exclude_list(exclude_list)
    content = list_training_images(content_dir, exclude, "content images")
    style = list_training_images(style_dir, exclude, "style images")
    log.info("Loading %d content and %d style images (shorter side %d px; %d excluded by %s)",
             len(content.files), len(style.files), load_size, len(content.excluded) + len(style.excluded),
             exclude_list or "no exclude list")
    pools = [ImagePool(load_images(f.files, load_size, workers), device) for f in (content, style)]
    return TrainData(pools[0], pools[1], content, style, str(exclude_list) if exclude_list else None, exclude)


def load_samples(files: Iterable[Path], size: int) -> torch.Tensor:
    """N x 3 x size x size float: the fixed images of the sample grid."""
    return torch.cat([center_square(torch.from_numpy(read_rgb(p)).permute(2, 0, 1), size) for p in files])

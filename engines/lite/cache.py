"""The lite network's distillation cache: style codes at inference's scale and the full model's outputs.

Most of a CPU training step would go to the teacher (the full model: VGG-19 to relu4_1 and its
decoder), so its outputs are computed once and kept on local disk, never committed:

    codes.safetensors     mean, std (K x 960): each training style, whole and as augmented variants
                          (crop, flip, hue), read at STYLE_SIZE as `stylestream` reads a style
    pairs-NNNN.safetensors  content crops, the full model's output for (crop, code, alpha), code
                          index and alpha, uint8 images

Both are built in shards and skip what exists, so an interrupted build goes on where it stopped, and
several processes can build disjoint shards at once (`worker`/`workers`). `build_cache` runs the whole
build on N processes of one thread each; on every core of a fresh machine, before a training run:

    python -m engines.lite.cache --content ../shared/data/train/content --style ../shared/data/train/style \
        --out RUN/cache --shards 64 --workers 2 --exclude-list ../shared/data/noncommercial.txt
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision.transforms.v2.functional as TF
from safetensors.torch import load_file, save_file

from engines.backends.base import STYLE_SIZE
from engines.images import resize_shorter
from engines.machine import cpu_has_native_bf16
from engines.train.data import list_training_images, load_images, read_exclude_list

log = logging.getLogger(__name__)

CODES = "codes.safetensors"


@dataclass(frozen=True)
class CacheRecipe:
    """How the cache is drawn; recorded in the trained network's manifest."""

    style_variants: int = 2      # per style: the whole image, then random crops/flips/hue shifts (about
                                 # 2 s a code on one core: VGG at STYLE_SIZE)
    crop_area: tuple[float, float] = (0.3, 1.0)
    hue_shift: float = 0.08      # turns; applied to half of the augmented variants
    crop: int = 192              # content crop side
    style_size: int = STYLE_SIZE  # shorter side a style is read at (inference's)
    content_sides: tuple[int, int] = (192, 384)  # the photo's shorter side before cropping
    pairs_per_shard: int = 256
    full_alpha: float = 0.7      # share of pairs at alpha 1; the rest draw alpha from alpha_range
    alpha_range: tuple[float, float] = (0.25, 1.0)
    seed: int = 0


def _style_variant(img: torch.Tensor, k: int, r: CacheRecipe, gen: torch.Generator) -> torch.Tensor:
    """Variant k of a 3 x H x W uint8 style: 0 is the image itself; others crop, flip and shift hue."""
    x = img[None].float() / 255
    if k > 0:
        h, w = x.shape[-2:]
        area = r.crop_area[0] + (r.crop_area[1] - r.crop_area[0]) * torch.rand((), generator=gen).item()
        ch, cw = max(64, int(h * area ** 0.5)), max(64, int(w * area ** 0.5))
        top = int(torch.randint(0, h - ch + 1, (), generator=gen)) if h > ch else 0
        left = int(torch.randint(0, w - cw + 1, (), generator=gen)) if w > cw else 0
        x = x[..., top:top + ch, left:left + cw]
        if torch.rand((), generator=gen).item() < 0.5:
            x = x.flip(-1)
        if torch.rand((), generator=gen).item() < 0.5:
            x = TF.adjust_hue(x, (2 * torch.rand((), generator=gen).item() - 1) * r.hue_shift)
    return resize_shorter(x, r.style_size)


def build_codes(style_dir: str | Path, out: Path, exclude_list: str | None = None, recipe: CacheRecipe = CacheRecipe(),
                worker: int = 0, workers: int = 1) -> None:
    """Style codes for every (style, variant); this worker does every `workers`-th style."""
    from engines.vgg import style_statistics

    files = list_training_images(style_dir, read_exclude_list(exclude_list), "style images").files
    part = out / f"codes-part{worker}.safetensors"
    if part.is_file() or (out / CODES).is_file():
        return
    out.mkdir(parents=True, exist_ok=True)  # before the minutes of work that end in its save
    mine = list(range(worker, len(files), workers))
    means, stds, index = [], [], []
    for n, i in enumerate(mine):
        img = load_images([files[i]], recipe.style_size, workers=1)[0]
        gen = torch.Generator().manual_seed(recipe.seed * 100_003 + i)
        for k in range(recipe.style_variants):
            m, s = style_statistics(_style_variant(img, k, recipe, gen))
            means.append(m[0])
            stds.append(s[0])
            index.append(i)
        if n % 20 == 0:
            log.info("codes: worker %d, %d of %d styles", worker, n + 1, len(mine))
    tmp = part.with_suffix(".tmp")
    save_file({"mean": torch.stack(means), "std": torch.stack(stds), "style": torch.tensor(index)}, str(tmp))
    tmp.rename(part)


def merge_codes(out: Path, workers: int) -> Path:
    """One codes file from the workers' parts (sorted by style, so the result is the same for any split)."""
    path = out / CODES
    if path.is_file():
        return path
    parts = [load_file(str(out / f"codes-part{w}.safetensors")) for w in range(workers)]
    style = torch.cat([p["style"] for p in parts])
    order = torch.argsort(style, stable=True)
    merged = {k: torch.cat([p[k] for p in parts])[order].contiguous() for k in ("mean", "std", "style")}
    save_file(merged, str(path.with_suffix(".tmp")))
    path.with_suffix(".tmp").rename(path)
    for w in range(workers):
        (out / f"codes-part{w}.safetensors").unlink()
    return path


def _content_crops(images: list[torch.Tensor], n: int, r: CacheRecipe, gen: torch.Generator) -> torch.Tensor:
    crops = []
    for _ in range(n):
        img = images[int(torch.randint(len(images), (), generator=gen))]
        side = int(torch.randint(r.content_sides[0], r.content_sides[1] + 1, (), generator=gen))
        x = TF.resize(img, max(side, r.crop), antialias=True)
        h, w = x.shape[-2:]
        top = int(torch.randint(0, h - r.crop + 1, (), generator=gen))
        left = int(torch.randint(0, w - r.crop + 1, (), generator=gen))
        x = x[:, top:top + r.crop, left:left + r.crop]
        crops.append(x.flip(-1) if torch.rand((), generator=gen).item() < 0.5 else x)
    return torch.stack(crops)


def build_pairs(content_dir: str | Path, out: Path, shards: int, exclude_list: str | None = None,
                recipe: CacheRecipe = CacheRecipe(), teacher: str | None = None, worker: int = 0,
                workers: int = 1, batch: int = 8) -> None:
    """Shards `worker`, `worker + workers`, ... of (content crop, code, alpha, teacher output)."""
    from engines.graph import load_graph

    codes = load_file(str(out / CODES))
    files = list_training_images(content_dir, read_exclude_list(exclude_list), "content images").files
    images = load_images(files, recipe.content_sides[1], workers=1)
    graph = load_graph(teacher)
    amp = cpu_has_native_bf16()
    for shard in range(worker, shards, workers):
        path = out / f"pairs-{shard:04d}.safetensors"
        if path.is_file():
            continue
        gen = torch.Generator().manual_seed(recipe.seed * 1_000_003 + shard)
        n = recipe.pairs_per_shard
        content = _content_crops(images, n, recipe, gen)
        code = torch.randint(len(codes["style"]), (n,), generator=gen)
        lo, hi = recipe.alpha_range
        alpha = torch.where(torch.rand(n, generator=gen) < recipe.full_alpha, torch.ones(n),
                            lo + (hi - lo) * torch.rand(n, generator=gen))
        outputs = []
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            for i in range(0, n, batch):
                sl = slice(i, i + batch)
                mean, std = codes["mean"][code[sl]], codes["std"][code[sl]]
                tail = graph.style_channels
                y = graph(content[sl].float() / 255, mean[:, -tail:], std[:, -tail:], alpha[sl])
                outputs.append(y.float().clamp(0, 1).mul(255).round().byte())
        tmp = path.with_suffix(".tmp")
        save_file({"content": content.contiguous(), "teacher": torch.cat(outputs).contiguous(),
                   "code": code, "alpha": alpha}, str(tmp))
        tmp.rename(path)
        log.info("pairs: shard %d of %d", shard + 1, shards)


def _build_part(step: str, worker: int, workers: int, args: tuple) -> None:
    """One worker process's share of a build step, on one thread (and its own core where there is one)."""
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if hasattr(os, "sched_setaffinity") and workers > 1 and worker < os.cpu_count():
        os.sched_setaffinity(0, {worker})
    if step == "codes":
        build_codes(*args, worker=worker, workers=workers)
    else:
        build_pairs(*args, worker=worker, workers=workers)


def build_cache(content_dir: str | Path, style_dir: str | Path, out: Path, shards: int,
                exclude_list: str | None = None, recipe: CacheRecipe = CacheRecipe(), teacher: str | None = None,
                workers: int = 1) -> None:
    """The codes, then `shards` shards of pairs, split over `workers` processes (1: in this process)."""
    codes_args = (style_dir, out, exclude_list, recipe)
    pairs_args = (content_dir, out, shards, exclude_list, recipe, teacher)
    if workers == 1:
        if not (out / CODES).is_file():
            build_codes(*codes_args)
            merge_codes(out, 1)
        build_pairs(*pairs_args)
        return
    # spawned, not forked: a forked torch whose thread pool has started can hang
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        def on_every_worker(step: str, args: tuple) -> None:
            for done in [pool.submit(_build_part, step, w, workers, args) for w in range(workers)]:
                done.result()

        if not (out / CODES).is_file():
            on_every_worker("codes", codes_args)
            merge_codes(out, workers)
        on_every_worker("pairs", pairs_args)


class PairCache:
    """The cached pairs in memory, and random batches from them (flipped at random: the teacher's
    output of a flipped crop is close to the flipped output)."""

    def __init__(self, out: Path):
        codes = load_file(str(out / CODES))
        self.out = out
        self.code_mean, self.code_std = codes["mean"], codes["std"]
        self.styles = int(codes["style"].unique().numel())
        self.shards: list[Path] = []
        self.refresh()
        if not self.shards:
            from engines.errors import InputError

            raise InputError(f"No cached pairs in {out}; build them first")

    def refresh(self) -> int:
        """Take in shards written since (the cache may still be growing beside a run) -> pairs held."""
        new = [p for p in sorted(self.out.glob("pairs-*.safetensors")) if p not in self.shards]
        if new:
            parts = [load_file(str(p)) for p in new]
            old = ([self.content], [self.teacher], [self.code], [self.alpha]) if self.shards else ([], [], [], [])
            self.content = torch.cat(old[0] + [p["content"] for p in parts])
            self.teacher = torch.cat(old[1] + [p["teacher"] for p in parts])
            self.code = torch.cat(old[2] + [p["code"] for p in parts])
            self.alpha = torch.cat(old[3] + [p["alpha"] for p in parts])
            self.shards += new
        return len(self.shards) and len(self.code)

    def __len__(self) -> int:
        return len(self.code)

    def batch(self, n: int, gen: torch.Generator):
        """-> content, teacher output (N x 3 x H x W float [0, 1]), style mean, std (N x 960), alpha (N)."""
        idx = torch.randint(len(self), (n,), generator=gen)
        content, teacher = self.content[idx].float() / 255, self.teacher[idx].float() / 255
        flip = torch.rand(n, generator=gen) < 0.5
        content[flip], teacher[flip] = content[flip].flip(-1), teacher[flip].flip(-1)
        code = self.code[idx]
        return content, teacher, self.code_mean[code], self.code_std[code], self.alpha[idx]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Build the lite network's distillation cache on several cores.")
    ap.add_argument("--content", required=True)
    ap.add_argument("--style", required=True)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--shards", type=int, default=64)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--exclude-list")
    ap.add_argument("--teacher", help="the full model's decoder (default: the shipped one)")
    ap.add_argument("--seed", type=int, default=0, help="as `stylestream train --seed`")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    build_cache(args.content, args.style, args.out, args.shards, args.exclude_list, CacheRecipe(seed=args.seed),
                args.teacher, args.workers)


if __name__ == "__main__":
    main()

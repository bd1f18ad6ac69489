"""`stylestream image`: still images in, stylized images out (AdaIN, or Gatys as the quality reference)."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import torch

from engines.adain import StyleCode, blend_styles
from engines.backends.torch_backend import TorchEngine
from engines.devices import resolve_device
from engines.errors import ConfigError, InputError, OutputError, StylestreamError
from engines.files import IMAGE_SUFFIXES, OutputLock
from engines.images import (
    MIN_SIDE,
    check_shape,
    fit_for_network,
    load_image,
    load_image_tensor,
    resize_shorter,
    save_image,
    to_tensor,
    work_size,
)
from engines.presets import resolve_style
from engines.progress import progress_bar
from engines.still import stylize_still
from streamer.paths import pair_outputs


@dataclass
class ImageJob:
    inputs: list[Path]
    output: Path
    styles: list[str]
    style_weights: list[float] | None = None
    alpha: float = 1.0
    preserve_color: bool = False
    mask: Path | None = None
    size: int = 512
    style_size: int = 512
    max_pixels: int = 50_000_000
    method: str = "adain"
    steps: int = 300
    optimizer: str = "lbfgs"
    device: str = "auto"
    decoder: Path | None = None
    model: str = "auto"             # auto: the full model (best quality for stills)
    overwrite: bool = False         # replace existing outputs (else refused, like convert)


def plan_outputs(inputs: list[Path], output: Path) -> list[tuple[Path, Path]]:
    """(input file, output file) pairs: one image to an image file name, or any number to a folder
    (each keeps its format when it is one we write, else becomes a PNG)."""
    def out_name(f: Path) -> str:
        return f"{f.stem}{f.suffix if f.suffix.lower() in IMAGE_SUFFIXES else '.png'}"

    return pair_outputs(inputs, output, IMAGE_SUFFIXES, "image", lambda out: out.suffix.lower() in IMAGE_SUFFIXES,
                        out_name)


def refuse_existing(dst: Path, overwrite: bool) -> None:
    if dst.exists() and not overwrite:
        raise OutputError(f"{dst} already exists; pass --overwrite to replace it or choose another name")


def check_images(job: ImageJob, pairs: list[tuple[Path, Path]]) -> None:
    """Every input readable and workable, every output free: before the network loads or anything is written."""
    from PIL import Image

    for src, dst in pairs:
        refuse_existing(dst, job.overwrite)
        if dst.is_dir():
            raise OutputError(f"{dst} is a folder; give a file name like {dst / 'out.png'}")
        w, h = load_image(src, job.max_pixels).shape[1::-1]  # decodes: a truncated file fails here
        check_shape(w, h, job.max_pixels, str(src))
        work_size(h, w, job.size, job.max_pixels, str(src))
    if job.output.suffix.lower() in IMAGE_SUFFIXES and job.output.suffix.lower() not in Image.registered_extensions():
        raise OutputError(f"Unknown image format for {job.output}; use .jpg, .png or .webp")


def run_image_job(job: ImageJob) -> list[Path]:
    """Stylize every input. All or nothing: if one fails, the outputs this job already wrote are removed."""
    if 0 < job.size < MIN_SIDE:
        raise ConfigError(f"--size {job.size} is below the network's minimum of {MIN_SIDE} px; use 0 (native) "
                          f"or at least {MIN_SIDE}")
    if job.max_pixels <= 0:
        raise ConfigError(f"--max-pixels must be positive, got {job.max_pixels}")
    pairs = plan_outputs(job.inputs, job.output)
    check_images(job, pairs)
    written: list[Path] = []
    with ExitStack() as claims:  # released however the job ends (Ctrl-C too), after the cleanup below
        try:
            claim_outputs(job, pairs, claims)
            return _run(job, pairs, written)
        except (StylestreamError, OSError) as e:
            for path in written:
                path.unlink(missing_ok=True)
            if isinstance(e, StylestreamError):
                if written:
                    e.args = (f"{e} (the {len(written)} outputs written before it were removed)",)
                raise
            raise OutputError(f"{e.__class__.__name__}: {e}") from None


def claim_outputs(job: ImageJob, pairs: list[tuple[Path, Path]], claims: ExitStack) -> None:
    """Hold every output's lock (convert's, engines.files.OutputLock) until the job ends, so two runs never
    write one file: the second is refused by name, before its network loads.

    With --overwrite too the second run is refused, not made to wait: waiting would silently replace the
    first run's result a moment after it was written, and a run that stalls for another is a surprise, while
    a refusal names the clash and leaves the choice to the user (convert does the same)."""
    for _, dst in pairs:
        lock = OutputLock(dst)
        lock.claim()
        claims.callback(lock.release)
        refuse_existing(dst, job.overwrite)  # again, held: a run that finished since check_images wrote it


def _run(job: ImageJob, pairs: list[tuple[Path, Path]], written: list[Path]) -> list[Path]:
    if job.mask is not None and job.style_weights:
        raise InputError("--mask puts the first style inside and the second outside; drop --style-weights")
    if job.mask is not None and len(job.styles) > 2:
        raise InputError("--mask takes one style (inside) or two (inside, outside)")

    if job.method == "gatys":
        return _run_gatys(job, pairs, written)
    engine = TorchEngine(_graph(job), device=job.device)
    codes = [resolve_style(s, engine.encode_style, job.style_size, job.max_pixels) for s in job.styles]
    style, outside = _combine(codes, job)
    with progress_bar() as bar:
        task = bar.add_task("stylizing", total=len(pairs))
        for src, dst in pairs:
            image = to_tensor(load_image(src, job.max_pixels))
            want = resize_shorter(image, job.size).shape[-2:]
            content = fit_for_network(image, job.size, job.max_pixels, str(src))  # tiny images: scaled up
            mask = _load_mask(job.mask, content.shape[-2:], job.max_pixels) if job.mask else None
            out = stylize_still(engine, content, style, job.alpha, job.preserve_color, mask, outside)
            if out.shape[-2:] != want:  # back to the asked size
                out = torch.nn.functional.interpolate(out, size=tuple(want), mode="area")
            written.append(save_image(out, dst))
            bar.advance(task)
    return written


def _graph(job: ImageJob):
    from engines.graph import load_graph
    from engines.models import pick_model

    return load_graph(str(job.decoder) if job.decoder else None, model=pick_model(job.model, "image", "cpu"))


def _combine(codes: list[StyleCode], job: ImageJob) -> tuple[StyleCode, StyleCode | None]:
    if job.mask is not None:
        return codes[0], codes[1] if len(codes) > 1 else None
    return blend_styles(codes, job.style_weights), None


def _load_mask(path: Path, hw: tuple[int, int], max_pixels: int) -> torch.Tensor:
    m = to_tensor(load_image(path, max_pixels)).mean(1, keepdim=True)
    return torch.nn.functional.interpolate(m, size=tuple(hw), mode="bilinear", align_corners=False)


def _run_gatys(job: ImageJob, pairs: list[tuple[Path, Path]], written: list[Path]) -> list[Path]:
    from engines.gatys import gatys_transfer
    from engines.vgg import load_encoder

    if len(job.styles) != 1 or job.mask is not None:
        raise InputError("--method gatys takes exactly one style image and no mask")
    style_path = Path(job.styles[0])
    if not style_path.is_file():
        raise InputError(f"--method gatys needs a style image file (presets are codes, not images): {style_path}")
    device = resolve_device(job.device)
    encoder = load_encoder().to(device)
    style = load_image_tensor(style_path, job.style_size, job.max_pixels).to(device)
    with progress_bar() as bar:
        for src, dst in pairs:
            content = fit_for_network(to_tensor(load_image(src, job.max_pixels)), job.size, job.max_pixels,
                                      str(src)).to(device)
            task = bar.add_task(f"{src.name} (gatys, {job.optimizer})", total=job.steps)
            out = gatys_transfer(encoder, content, style, steps=job.steps, optimizer=job.optimizer,
                                 progress=lambda i, _loss, t=task: bar.update(t, completed=i))
            if job.preserve_color:
                from engines.adain import preserve_color

                out = preserve_color(out, content)
            written.append(save_image(out, dst))
    return written

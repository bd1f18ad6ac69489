"""Built-in styles: StyleCodes (relu4_1 mean/std, a few KB each) of public-domain paintings.

The codes are computed by `scripts/make_presets.py` from images in ../shared/data; the images
themselves are never shipped. Any image path (or a saved .safetensors StyleCode) works as a style too.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from engines.adain import CODE_LAYERS, StyleCode
from engines.errors import InputError, OutputError

log = logging.getLogger(__name__)
CODE_CACHE_VERSION = 1  # bump when the code a style image gives changes (layers, encoder, resizing)

PRESET_DIR = Path(__file__).parent / "presets"


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.safetensors"))


def load_preset(name: str) -> StyleCode:
    path = PRESET_DIR / f"{name}.safetensors"
    if not path.is_file():
        raise InputError(f"No style preset named {name!r}; presets: {', '.join(preset_names())} "
                         "(or give an image file)")
    return StyleCode.load(path)


def resolve_style(spec: str, encode_image, size: int | None = None, max_pixels: int | None = None) -> StyleCode:
    """A preset name, a saved StyleCode (.safetensors) or an image file -> StyleCode.

    `encode_image(tensor, size, source)` is the engine's `encode_style`.
    """
    from engines.images import DEFAULT_MAX_PIXELS, load_image_tensor, work_size

    path = Path(spec).expanduser()
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise InputError(f"Style code not found: {path}")
        return StyleCode.load(path)
    if path.is_file():
        cached = cached_code_path(path, size, max_pixels)
        if cached is not None and cached.is_file():
            try:
                code = StyleCode.load(cached)
                log.debug("style code of %s from the cache (%s)", path, cached)
                return StyleCode(code.mean, code.std, path.stem, code.meta)
            except InputError:  # a damaged cache entry: computed again below
                pass
        image = load_image_tensor(path, max_pixels=max_pixels or DEFAULT_MAX_PIXELS)
        work_size(*image.shape[-2:], size, max_pixels or DEFAULT_MAX_PIXELS, f"Style image {path}")
        code = encode_image(image, size, path.stem)
        if cached is not None:
            save_cached_code(code, cached)
        return code
    if (PRESET_DIR / f"{spec}.safetensors").is_file():
        return load_preset(spec)
    if path.suffix or "/" in spec:
        raise InputError(f"Style image not found: {path}")
    return load_preset(spec)  # raises with the list of presets


def cached_code_path(image: Path, size: int | None, max_pixels: int | None) -> Path | None:
    """Where the code of this image file at this size is cached: keyed by the file's bytes, the size and
    pixel limit (a run with a lower limit still refuses the image), the code's layout and the VGG encoder
    (the shipped one, or $STYLESTREAM_VGG), so an edited image or another encoder never reuses a code.
    None where no cache folder can be had."""
    from engines.export import cache_dir

    encoder = os.environ.get("STYLESTREAM_VGG") or "shipped"
    digest = hashlib.sha256()
    digest.update(image.read_bytes())
    digest.update(f"|{size}|{max_pixels}|{CODE_LAYERS}|{encoder}|v{CODE_CACHE_VERSION}".encode())
    try:
        return cache_dir("style-codes") / f"{digest.hexdigest()[:40]}.safetensors"
    except OutputError:
        return None


def save_cached_code(code: StyleCode, path: Path) -> None:
    """Best effort: a cache that cannot be written only costs the next run the encoding."""
    from engines.files import atomic_output

    try:
        with atomic_output(path) as tmp:
            code.save(tmp)
    except OSError as e:
        log.debug("style code not cached (%s): %s", path, e)

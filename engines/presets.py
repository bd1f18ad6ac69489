"""Built-in styles: StyleCodes (relu4_1 mean/std, a few KB each) of public-domain paintings.

The codes are computed by `scripts/make_presets.py` from images in ../shared/data; the images
themselves are never shipped. Any image path (or a saved .safetensors StyleCode) works as a style too.
"""

from __future__ import annotations

from pathlib import Path

from engines.adain import StyleCode
from engines.errors import InputError

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
        image = load_image_tensor(path, max_pixels=max_pixels or DEFAULT_MAX_PIXELS)
        work_size(*image.shape[-2:], size, max_pixels or DEFAULT_MAX_PIXELS, f"Style image {path}")
        return encode_image(image, size, path.stem)
    if (PRESET_DIR / f"{spec}.safetensors").is_file():
        return load_preset(spec)
    if path.suffix or "/" in spec:
        raise InputError(f"Style image not found: {path}")
    return load_preset(spec)  # raises with the list of presets

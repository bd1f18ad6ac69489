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

"""Compute the built-in style presets (engines/presets/*.safetensors) from public-domain paintings.

Reads the paintings from ../shared/data/train/style (listed in its README as public domain);
ships only the StyleCode each gives (relu1_1..relu4_1 means and stds), never the image.

    python scripts/make_presets.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from engines.adain import StyleCode
from engines.backends.base import STYLE_SIZE
from engines.images import load_image_tensor
from engines.presets import PRESET_DIR
from engines.vgg import style_statistics

# name: (file in train/style, work)
PRESETS = {
    "starry-night": ("ts_0178_starry_night_google.jpg", "Vincent van Gogh, The Starry Night, 1889"),
    "night-cafe": ("ts_0161_vg_la_cafe.jpg", "Vincent van Gogh, The Night Cafe, 1888"),
    "wheat-field": ("ts_0164_vg_wheat_field.jpg", "Vincent van Gogh, Wheat Field with Cypresses, 1889"),
    "the-scream": ("ts_0282_the_scream.jpg", "Edvard Munch, The Scream, 1893"),
    "great-wave": ("ts_0179_wave.jpg", "Katsushika Hokusai, The Great Wave off Kanagawa, c. 1831"),
    "composition-vii": ("ts_0166_composition_vii.jpg", "Wassily Kandinsky, Composition VII, 1913"),
    "grande-jatte": ("ts_0176_seurat_grand_jatte.jpg", "Georges Seurat, A Sunday on La Grande Jatte, 1884"),
    "water-lilies": ("ts_0283_water-lilies-1919-2.jpg", "Claude Monet, Water Lilies, 1919"),
    "mona-lisa": ("ts_0016_monalisa.jpg", "Leonardo da Vinci, Mona Lisa, c. 1503"),
    "udnie": ("ts_0167_udnie.jpg", "Francis Picabia, Udnie, 1913"),
    "mondrian": ("ts_0298_mondrian.jpg", "Piet Mondrian (d. 1944)"),
    "renoir": ("ts_0124_Renoir.jpg", "Pierre-Auguste Renoir (d. 1919)"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=Path(__file__).parents[1] / "../shared/data")
    args = ap.parse_args()
    PRESET_DIR.mkdir(exist_ok=True)
    for name, (file, work) in PRESETS.items():
        image = load_image_tensor(args.data / "train" / "style" / file, size=STYLE_SIZE)
        mean, std = style_statistics(image)
        StyleCode(mean[0], std[0], name, {"work": work, "file": file, "style_size": str(STYLE_SIZE)}).save(
            PRESET_DIR / f"{name}.safetensors")
        print(f"{name}: {work}")


if __name__ == "__main__":
    main()

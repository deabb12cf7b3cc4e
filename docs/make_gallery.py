"""Rebuild the README gallery: runs the `stylize` command on a few pairs, then pastes
content | style | result strips into docs/images/gallery_*.jpg.

    .venv/bin/python docs/make_gallery.py [--size 512]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / ".." / "shared" / "images"
PAIRS = {
    "eiffel_starry_night": ("content/building_eiffel_tower.jpg", "style/van_gogh_starry_night.jpg"),
    "forest_great_wave": ("content/forest_stream.jpg", "style/hokusai_great_wave.jpg"),
    "canal_kandinsky": ("content/street_canal_colorful_houses.jpg", "style/kandinsky_composition_vii.jpg"),
    "golden_gate_turner": ("content/coast_golden_gate_fog.jpg", "style/turner_shipwreck_of_the_minotaur.jpg"),
    "astronaut_water_lilies": ("content/portrait_astronaut.png", "style/monet_water_lilies_1919.jpg"),
}


def strip(paths: list[Path], height: int = 300) -> Image.Image:
    tiles = []
    for path in paths:
        im = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
        tiles.append(im.resize((round(im.width * height / im.height), height), Image.Resampling.LANCZOS))
    out = Image.new("RGB", (sum(t.width for t in tiles) + 8 * (len(tiles) - 1), height), "white")
    x = 0
    for tile in tiles:
        out.paste(tile, (x, 0))
        x += tile.width + 8
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--only", nargs="*", help="names of the pairs to redo")
    args = parser.parse_args()
    stylize = [sys.executable, "-m", "stylize"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, (content, style) in PAIRS.items():
            if args.only and name not in args.only:
                continue
            out = Path(tmp) / f"{name}.png"
            subprocess.run([*stylize, str(IMAGES / content), str(IMAGES / style), "-o", str(out),
                            "--size", str(args.size), "--log", str(ROOT / "docs" / "images" / f"gallery_{name}.csv")],
                           check=True)
            strip([IMAGES / content, IMAGES / style, out]).save(ROOT / "docs" / "images" / f"gallery_{name}.jpg",
                                                                 quality=85)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Make the pictures of docs/controls.md: docs/images/control_*.jpg.

    STYLIZE_OFFLINE=1 .venv/bin/python docs/make_control_images.py [NAME ...]

Every picture is made by stylize itself (the real offline VGG-16, ~256 px) from the images in
``<repo>/../shared/images``. The runs are cached in $TMPDIR/stylize-control-runs/, so a
second call only redraws the strips. Give strip names (color, blend, scale, strength, structure,
presets, mask) to make only those.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import stylize
from stylize.backbone import Backbone, load_backbone
from stylize.imageio import load_image, resize_to_long_side

REPO = Path(__file__).resolve().parents[1]
IMAGES = (REPO / ".." / "shared" / "images").resolve()
OUT = REPO / "docs" / "images"
RUNS = Path(tempfile.gettempdir()) / "stylize-control-runs"
SIZE = 256
STRIP_WIDTH = 768
COMMON = {"size": SIZE, "scales": "128,256", "steps": 60, "seed": 0}

EIFFEL = "content/building_eiffel_tower.jpg"
HOUSES = "content/street_canal_colorful_houses.jpg"
BOAT = "content/sea_boat_sunset.jpg"
GOLDEN_GATE = "content/coast_golden_gate_fog.jpg"
STARRY = "style/van_gogh_starry_night.jpg"
WAVE = "style/hokusai_great_wave.jpg"
SCREAM = "style/munch_the_scream.jpg"


def boat_mask() -> Image.Image:
    """Sea black (first style), sky white (second style); the horizon is at 52 % of the height."""
    content = load_image(IMAGES / BOAT, max_side=SIZE)
    width, height = resize_to_long_side(content, SIZE).size
    arr = np.zeros((height, width, 3), np.uint8)
    arr[: round(0.52 * height)] = 255
    return Image.fromarray(arr)


class Runner:
    def __init__(self) -> None:
        self._backbone: Backbone | None = None

    def backbone(self) -> Backbone:
        if self._backbone is None:
            self._backbone = load_backbone("vgg16", layers=["relu4_2", "relu5_1"])
        return self._backbone

    def run(self, name: str, content: str, styles: Sequence[str], **options: object) -> Image.Image:
        path = RUNS / f"{name}.png"
        if path.is_file():
            return Image.open(path).convert("RGB")
        RUNS.mkdir(parents=True, exist_ok=True)
        print(f"running {name} ...", flush=True)
        result = stylize.transfer(IMAGES / content, [IMAGES / s for s in styles], backbone=self.backbone(),
                                  **{**COMMON, **options})
        result.image.save(path)
        print(f"  {result.image.size}, {len(result.history)} steps, {result.seconds:.0f} s", flush=True)
        return result.image


def picture(path: str | Path | Image.Image) -> Image.Image:
    if isinstance(path, Image.Image):
        return path
    return resize_to_long_side(load_image(IMAGES / path, max_side=SIZE), SIZE)


def strip(tiles: Sequence[tuple[Image.Image, str]], name: str) -> Path:
    """Tiles side by side, scaled to one height so the strip is STRIP_WIDTH wide, labels below."""
    gap, label_h = 4, 18
    ratios = [t.width / t.height for t, _ in tiles]
    height = round((STRIP_WIDTH - gap * (len(tiles) - 1)) / sum(ratios))
    canvas = Image.new("RGB", (STRIP_WIDTH, height + label_h), "white")
    draw = ImageDraw.Draw(canvas)
    try:
        font = ImageFont.load_default(size=12)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    x = 0
    for (tile, label), ratio in zip(tiles, ratios, strict=True):
        width = round(height * ratio)
        canvas.paste(tile.resize((width, height), Image.Resampling.LANCZOS), (x, 0))
        draw.rectangle((x, 0, x + width - 1, height - 1), outline=(200, 200, 200))
        text_w = draw.textlength(label, font=font)
        draw.text((x + max(0, (width - text_w) / 2), height + 3), label, fill=(30, 30, 30), font=font)
        x += width + gap
    out = OUT / f"control_{name}.jpg"
    canvas.save(out, quality=85, optimize=True)
    print(f"wrote {out} ({out.stat().st_size // 1024} KB)")
    return out


def main(names: Sequence[str]) -> int:
    r = Runner()
    makers = {
        "color": lambda: strip([
            (picture(HOUSES), "photo"), (picture(STARRY), "style"),
            (r.run("color_none", HOUSES, [STARRY]), "plain"),
            (r.run("color_luminance", HOUSES, [STARRY], preserve_color="luminance"), "--preserve-color luminance"),
            (r.run("color_histogram", HOUSES, [STARRY], preserve_color="histogram"), "--preserve-color histogram"),
        ], "color"),
        "blend": lambda: strip([
            (r.run("eiffel_plain", EIFFEL, [STARRY]), "starry night only"),
            (r.run("blend_half", EIFFEL, [STARRY, WAVE], style_blend=(0.5, 0.5)), "--style-blend 0.5,0.5"),
            (r.run("blend_wave", EIFFEL, [WAVE]), "great wave only"),
        ], "blend"),
        "scale": lambda: strip([
            (r.run("scale_0.5", EIFFEL, [STARRY], style_scale=0.5), "--style-scale 0.5"),
            (r.run("eiffel_plain", EIFFEL, [STARRY]), "1 (default)"),
            (r.run("scale_2", EIFFEL, [STARRY], style_scale=2.0), "--style-scale 2"),
        ], "scale"),
        "strength": lambda: strip([
            (r.run("strength_2.5", EIFFEL, [STARRY], strength=2.5), "--strength 2.5"),
            (r.run("eiffel_plain", EIFFEL, [STARRY]), "5 (default)"),
            (r.run("strength_7.5", EIFFEL, [STARRY], strength=7.5), "--strength 7.5"),
        ], "strength"),
        "structure": lambda: strip([
            (picture(GOLDEN_GATE), "photo"),
            (r.run("structure_0_gg", GOLDEN_GATE, [STARRY], structure_weight=0.0), "--structure-weight 0"),
            (r.run("structure_4_gg", GOLDEN_GATE, [STARRY], structure_weight=4.0), "4 (default)"),
            (r.run("structure_0_boat", BOAT, [STARRY], structure_weight=0.0), "--structure-weight 0"),
            (r.run("structure_4_boat", BOAT, [STARRY], structure_weight=4.0), "4 (default)"),
        ], "structure"),
        "presets": lambda: strip([
            (r.run("preset_fine", EIFFEL, [STARRY], preset="fine"), "--preset fine"),
            (r.run("eiffel_plain", EIFFEL, [STARRY]), "balanced (default)"),
            (r.run("preset_bold", EIFFEL, [STARRY], preset="bold"), "--preset bold"),
        ], "presets"),
        "mask": lambda: strip([
            (picture(BOAT), "photo"), (_saved_mask(), "mask"),
            (picture(WAVE), "style 1 (black)"), (picture(STARRY), "style 2 (white)"),
            (r.run("mask_boat", BOAT, [WAVE, STARRY], mask=str(_saved_mask_path())), "--mask"),
        ], "mask"),
    }
    unknown = [n for n in names if n not in makers]
    if unknown:
        print(f"unknown strip {unknown[0]!r}; choose from {', '.join(makers)}", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    for name in names or makers:
        makers[name]()
    return 0


def _saved_mask_path() -> Path:
    path = OUT / "control_mask_regions.png"
    if not path.is_file():
        boat_mask().save(path)
    return path


def _saved_mask() -> Image.Image:
    return Image.open(_saved_mask_path()).convert("RGB")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

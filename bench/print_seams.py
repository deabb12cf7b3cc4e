"""Seam ratio of a finished tiled print, and a 1:1 crop where four of its last scale's tiles meet.

    python bench/print_seams.py /tmp/stylize-bench/bench_4096.jpg            # its --log beside it
    python bench/print_seams.py OUT.jpg --log OUT.json --crop docs/images/crop.jpg
    python bench/print_seams.py NEW.jpg --beside OLD_CROP.jpg --crop side_by_side.jpg

The log (``stylize --log``, which ``bench/bench_memory.py`` writes as ``bench_N.json``) gives the
last scale's tile layout (``settings["tiling"]``); :func:`stylize.tiles.seam_ratio` measures the
output on that layout's border lines (about 1 without seams; <= 1.2 counts as seamless). ``--crop``
writes an 800 x 500 crop at 1:1 centred where four tiles meet. ``--beside OLD``: find where the
crop ``OLD`` (e.g. the same print made with other settings) lies in this output, by normalized
cross-correlation of the blurred luminance (OpenCV), and write the two crops side by side.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from stylize.imageio import image_to_tensor  # noqa: E402
from stylize.tiles import TileLayout, seam_ratio  # noqa: E402

CROP = (800, 500)


def last_layout(log: Path) -> TileLayout:
    rows = json.loads(log.read_text())["settings"]["tiling"]
    row = rows[-1]
    if not row.get("tiles"):
        raise SystemExit(f"{log}: the last scale was not tiled")
    return TileLayout(int(row["height"]), int(row["width"]), int(row["tile"]), int(row["overlap"]))


def four_tile_corner(layout: TileLayout) -> tuple[int, int]:
    """The centre of the overlap where the first tile row and column meet their neighbours."""
    (_, y_end), (y_next, _) = layout.rows[0], layout.rows[1]
    (_, x_end), (x_next, _) = layout.cols[0], layout.cols[1]
    return (x_next + x_end) // 2, (y_next + y_end) // 2


def locate(image: Image.Image, crop: Image.Image) -> tuple[int, int]:
    """Top-left corner in ``image`` where ``crop`` matches best (same scale, luminance, blurred)."""
    import cv2

    def prep(im: Image.Image) -> np.ndarray:
        return cv2.GaussianBlur(np.asarray(im.convert("L"), np.float32), (0, 0), 4)

    scores = cv2.matchTemplate(prep(image), prep(crop), cv2.TM_CCOEFF_NORMED)
    _, best, _, (x, y) = cv2.minMaxLoc(scores)
    print(f"the crop matches at x={x}, y={y} (normalized correlation {best:.2f})")
    return x, y


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path)
    parser.add_argument("--log", type=Path, help="its --log JSON (default: beside it, .json)")
    parser.add_argument("--crop", type=Path, help="write a 1:1 crop where four tiles meet")
    parser.add_argument("--beside", type=Path, help="an older crop of the same print: found and set beside")
    args = parser.parse_args()
    log = args.log or args.output.with_suffix(".json")
    image = Image.open(args.output).convert("RGB")
    layout = last_layout(log)
    ratio = seam_ratio(image_to_tensor(image), layout)
    print(f"{args.output}: {image.width}x{image.height}, {len(layout)} tiles of {layout.tile} px "
          f"(overlap {layout.overlap}); seam ratio {ratio:.2f}")
    if not args.crop:
        return 0
    if args.beside:
        old = Image.open(args.beside).convert("RGB")
        x, y = locate(image, old)
        new = image.crop((x, y, x + old.width, y + old.height))
        sheet = Image.new("RGB", (old.width * 2 + 8, old.height + 24), "white")
        sheet.paste(old, (0, 24))
        sheet.paste(new, (old.width + 8, 24))
        draw = ImageDraw.Draw(sheet)
        draw.text((4, 4), "before: --steps 10 --tile-steps 3", fill="black")
        draw.text((old.width + 12, 4), "now: every default", fill="black")
        sheet.save(args.crop, quality=90)
    else:
        cx, cy = four_tile_corner(layout)
        x, y = max(0, cx - CROP[0] // 2), max(0, cy - CROP[1] // 2)
        image.crop((x, y, x + CROP[0], y + CROP[1])).save(args.crop, quality=90)
    print(f"wrote {args.crop}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

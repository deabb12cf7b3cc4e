"""Seams and losses of tiled refinement against an untiled run, from the same starting image.

    python bench/bench_seams.py                 # the real offline VGG-16, 384 x 256, 8 steps
    python bench/bench_seams.py --tiny --steps 30 --tile 128

A photo (forest_stream.jpg at 384 px) is stylized (Starry Night) at half size, upsampled, and
then refined once on the whole image and once per tiling variant: tiles started from the stale
upsampled image or from the running canvas, with or without context around each tile. The table
gives the seam ratio (:func:`stylize.tiles.seam_ratio`; the untiled row measures the same lines)
and the whole image's content and style losses against the global targets.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from stylize.backbone import load_backbone, tiny_backbone
from stylize.imageio import image_to_tensor, load_image, resize_to_long_side
from stylize.loss import content_targets, style_targets
from stylize.objective import Objective
from stylize.optimize import optimize
from stylize.plan import style_long_side
from stylize.tiles import TileLayout, optimize_tiled, seam_ratio

IMAGES = Path(__file__).resolve().parents[1] / ".." / "shared" / "images"
STYLE_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="the tiny random test network instead of VGG-16")
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--tile", type=int, default=192)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8, help="steps of the untiled run and of each tile")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    layers = [*STYLE_LAYERS, "relu4_2"]
    backbone = tiny_backbone("vgg19", layers=layers) if args.tiny else load_backbone("vgg16", layers=layers)
    photo = load_image(IMAGES / "content" / "forest_stream.jpg", max_side=args.size)
    painting = load_image(IMAGES / "style" / "van_gogh_starry_night.jpg")

    def objective_at(long_side: int) -> tuple[torch.Tensor, Objective]:
        resized = resize_to_long_side(photo, long_side)
        content = image_to_tensor(resized)
        style = image_to_tensor(resize_to_long_side(painting, style_long_side(painting.size, resized.size)))
        return content, Objective.from_targets(backbone, content_targets(backbone, content, ["relu4_2"]),
                                  style_targets(backbone, [style], STYLE_LAYERS), content_weight=1.0, style_weight=10.0)

    small, small_objective = objective_at(args.size // 2)
    coarse = optimize(small.clone(), small_objective, steps=2 * args.steps, tol=0).image
    content, objective = objective_at(args.size)
    start = F.interpolate(coarse, size=content.shape[-2:], mode="bicubic", align_corners=False)
    layout = TileLayout(content.shape[-2], content.shape[-1], args.tile, args.overlap)

    def losses(image: torch.Tensor) -> dict[str, float]:
        with torch.no_grad():
            return objective(image.clamp(0, 1))[1]

    box = layout.boxes[0]
    print(f"{'tiny random network' if args.tiny else backbone.description}; {content.shape[-1]}x{content.shape[-2]}"
          f" px; {len(layout)} tiles of {box.width}x{box.height} px, overlap >= {args.overlap}; {args.steps} steps"
          " per tile / image")
    print("| run | seam ratio | content loss | style loss | seconds |")
    print("|---|---|---|---|---|")
    first = losses(start)
    print(f"| start: global pass at {args.size // 2} px, upsampled | – | {first['content']:.3f} | "
          f"{first['style']:.3f} | – |")
    t = time.perf_counter()
    whole = optimize(start.clone(), objective, steps=args.steps, tol=0).image
    row = losses(whole)
    print(f"| untiled (seam ratio on the same lines) | {seam_ratio(whole, layout):.2f} | {row['content']:.3f} | "
          f"{row['style']:.3f} | {time.perf_counter() - t:.0f} |", flush=True)
    for sequential in (False, True):
        for margin in (0, 32):
            t = time.perf_counter()
            tiled = optimize_tiled(start.clone(), objective, layout=layout, margin=margin, steps=args.steps, tol=0,
                                   sequential=sequential).image
            row = losses(tiled)
            name = f"tiles {'over the running canvas' if sequential else 'each from the stale start'}, " + (
                f"{margin} px context" if margin else "no context")
            print(f"| {name} | {seam_ratio(tiled, layout):.2f} | {row['content']:.3f} | {row['style']:.3f} | "
                  f"{time.perf_counter() - t:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

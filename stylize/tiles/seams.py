"""How visible tile borders are: the seam metric of the tiling tests and benchmarks."""

from __future__ import annotations

import torch

from stylize.features import ALIGN
from stylize.tiles.layout import TileLayout


def seam_ratio(image: torch.Tensor, layout: TileLayout) -> float:
    """How visible the tile borders of ``image`` (1, 3, H, W) are: the mean |gradient| across the
    lines where a tile starts or ends, over the mean |gradient| across the other lines of the same
    phase of the 16-px grid (the borders all lie on that grid, and VGG's strided pooling gives
    stylized images a grid-periodic texture, so lines of other phases are not comparable).
    About 1 without seams; a visible seam pushes it well above."""
    image = image.detach().clamp(0, 1)
    ys, xs = layout.borders()
    border, other = [], []
    for dim, lines in ((3, xs), (2, ys)):
        if not lines:
            continue
        grad = image.diff(dim=dim).abs().mean(dim=[d for d in range(4) if d != dim])
        position = torch.arange(1, grad.numel() + 1)  # line i lies between pixels i - 1 and i
        is_border = torch.zeros(grad.numel(), dtype=torch.bool)
        is_border[[line - 1 for line in lines]] = True
        border.append(grad[is_border])
        other.append(grad[~is_border & (position % ALIGN == 0)])
    if not border:
        raise ValueError("the layout has a single tile: no borders")
    return (torch.cat(border).mean() / torch.cat(other).mean()).item()


__all__ = ["seam_ratio"]

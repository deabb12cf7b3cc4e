"""Tone guidance: the photo's dark, middle and light parts each take the painting's matching part.

A style loss on the whole image lets the optimizer paint any part of the photo with whatever part
of the painting is cheapest there: a forest's dark rocks with the painting's sea and its foam.
Gatys et al. 2017 ("Controlling Perceptual Factors in Neural Style Transfer") guide the style with
region masks on both images; here the masks come from the images' own tones, so no one paints
them. Each image's luminance (lightly blurred, so that regions, not single pixels, are ranked)
is turned into its rank, 0 for the darkest pixel and 1 for the lightest, and the ranks are split
into ``bands`` equal shares with soft borders (:data:`BORDER`). Band ``k`` of the photo is matched
to band ``k`` of the painting: the darkest third of the photo gets the texture of the painting's
darkest third, whatever the two palettes are. The maps of one image sum to one at every pixel.
The style term that uses them is :meth:`stylize.loss.regional.RegionalStyle.from_tones`.
"""

from __future__ import annotations

import torch

from stylize.regions import _gaussian_blur

BLUR = 0.01  # sigma of the blur before ranking, as a fraction of the image's long side
BORDER = 0.1  # width of the soft border between two bands, in rank (0..1)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """(1, 3, H, W) RGB in [0, 1] -> (1, 1, H, W) luminance (Rec. 601 weights)."""
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    return (image * weights).sum(dim=1, keepdim=True)


def tone_ranks(image: torch.Tensor, blur: float = BLUR) -> torch.Tensor:
    """(1, 3, H, W) image -> (1, 1, H, W) rank of each pixel's blurred luminance, from 0 to 1."""
    height, width = image.shape[-2:]
    lum = _gaussian_blur(luminance(image.float()), blur * max(height, width))
    flat = lum.reshape(-1)
    order = torch.argsort(flat, stable=True)
    ranks = torch.empty_like(flat)
    ranks[order] = torch.linspace(0.0, 1.0, flat.numel(), dtype=flat.dtype, device=flat.device)
    return ranks.view(1, 1, height, width)


def tone_maps(image: torch.Tensor, bands: int, *, border: float = BORDER, blur: float = BLUR) -> torch.Tensor:
    """(1, 3, H, W) image -> (bands, 1, H, W) soft band maps, dark to light, summing to one per pixel.

    Band ``k`` holds the ranks from ``k / bands`` to ``(k + 1) / bands``; across each inner border
    the weight moves linearly from one band to the next over ``border`` of rank.
    """
    if bands < 1:
        raise ValueError("tone guidance needs at least one band")
    ranks = tone_ranks(image, blur)
    if bands == 1:
        return torch.ones_like(ranks)
    width = max(border, 1e-6)
    steps = [((ranks - k / bands) / width + 0.5).clamp(0.0, 1.0) for k in range(1, bands)]  # 1 above border k
    above = [torch.ones_like(ranks), *steps, torch.zeros_like(ranks)]
    return torch.cat([above[k] - above[k + 1] for k in range(bands)], dim=0)


__all__ = ["BLUR", "BORDER", "luminance", "tone_maps", "tone_ranks"]

"""Spatial control (Gatys, Ecker, Bethge, Hertzmann & Shechtman 2017, "Controlling Perceptual
Factors in Neural Style Transfer"): one style per region of a colour mask.

The mask is an image painted with one flat colour per style. Its colours are put in order from
dark to light (by luminance, ties broken by R, G, B), and the i-th style image paints the region
of the i-th colour: with a black-and-white mask, the first style goes where the mask is black
and the second where it is white. Every pixel belongs to the region of its nearest palette
colour, so anti-aliased edges and JPEG noise do no harm; a colour counts as a region when it
covers at least :data:`MIN_REGION_SHARE` of the mask.

For each scale the one-hot region maps are resized to the image (area-averaged), softened at
the borders by a small Gaussian blur (:data:`FEATHER`, a fraction of the long side) and, per
layer, area-averaged down to that layer's feature resolution. The style loss of a layer is

    sum_r  a_r * ‖G_r(F) - A_r‖² / ‖A_r‖²

where ``G_r`` is the Gram matrix of the output's features weighted by region ``r``'s mask,
``A_r`` the Gram target of style ``r`` computed on its whole image, and ``a_r`` the region's
share of the image (the weights sum to one). This module reads masks and makes the maps; the
term itself is :class:`stylize.loss.regional.RegionalStyle`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

from stylize.errors import InputError
from stylize.imageio import DEFAULT_MAX_PIXELS, load_image

MIN_REGION_SHARE = 0.01  # a colour is a region when it covers at least this share of the mask
FLAT_TOLERANCE = 24  # a pixel is in a flat area when its 4 neighbours differ by at most this (0..255)
MERGE_DISTANCE = 40.0  # palette colours closer than this (0..255 RGB distance) are one region
FEATHER = 0.01  # Gaussian blur sigma at region borders, as a fraction of the image's long side
MAX_MASK_SIDE = 2048  # larger masks are first reduced (nearest neighbour) to this long side
_BIN = 16  # colour histogram bin width (0..255) when finding the palette


def mask_palette(rgb: np.ndarray) -> list[tuple[int, int, int]]:
    """The region colours of an (H, W, 3) uint8 mask, ordered dark to light.

    Only pixels inside flat areas count (all four neighbours within :data:`FLAT_TOLERANCE`), so
    anti-aliased edges between two regions are no region of their own. Their colours are binned
    coarsely, bins covering at least :data:`MIN_REGION_SHARE` of the mask are kept (their mean
    colour), and kept colours closer than :data:`MERGE_DISTANCE` merge.
    """
    pixels = rgb.astype(np.int64)
    padded = np.pad(pixels, ((1, 1), (1, 1), (0, 0)), mode="edge")
    spread = np.zeros(pixels.shape[:2], np.int64)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        neighbour = padded[dy : dy + pixels.shape[0], dx : dx + pixels.shape[1]]
        spread = np.maximum(spread, np.abs(neighbour - pixels).max(axis=2))
    total = spread.size
    flat = pixels[spread <= FLAT_TOLERANCE].reshape(-1, 3)
    bins = flat // _BIN
    keys = (bins[:, 0] * 256 + bins[:, 1]) * 256 + bins[:, 2]
    uniq, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    colours: list[tuple[np.ndarray, int]] = []
    for index in np.argsort(-counts):
        if counts[index] < MIN_REGION_SHARE * total:
            break
        mean = flat[inverse.reshape(-1) == index].mean(axis=0)
        for k, (other, n) in enumerate(colours):
            if np.linalg.norm(other - mean) < MERGE_DISTANCE:
                colours[k] = ((other * n + mean * counts[index]) / (n + counts[index]), n + int(counts[index]))
                break
        else:
            colours.append((mean, int(counts[index])))
    palette = [tuple(int(round(v)) for v in c) for c, _ in colours]
    return sorted(palette, key=lambda c: (0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2], c))  # type: ignore[return-value]


def _colour_name(c: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*c)


def load_mask(
    path: str | Path | PIL.Image.Image,
    num_styles: int,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> torch.Tensor:
    """Read a colour mask -> one-hot region maps (num_styles, H, W), float32, in palette order.

    Raises InputError naming the file when it cannot be read or its number of colours is not
    ``num_styles``.
    """
    image = load_image(path, what="mask", max_pixels=max_pixels)
    if max(image.size) > MAX_MASK_SIDE:  # nearest keeps the flat colours; the maps are averaged later
        scale = MAX_MASK_SIDE / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             PIL.Image.Resampling.NEAREST)
    rgb = np.asarray(image, dtype=np.uint8)
    palette = mask_palette(rgb)
    name = path if not isinstance(path, PIL.Image.Image) else None
    if len(palette) != num_styles:
        found = ", ".join(_colour_name(c) for c in palette) or "none"
        raise InputError(
            name, f"the mask has {len(palette)} colour region(s) ({found}) but {num_styles} style image(s) were "
                  f"given; paint one flat colour per style (regions are matched to styles from dark to light)"
        )
    centres = np.asarray(palette, dtype=np.float32)
    flat = rgb.reshape(-1, 3).astype(np.float32)
    distance = (centres**2).sum(axis=1)[None, :] - 2.0 * flat @ centres.T  # + |x|², the same for every centre
    nearest = np.argmin(distance, axis=1)
    onehot = np.eye(num_styles, dtype=np.float32)[nearest].T.reshape(num_styles, *rgb.shape[:2])
    return torch.from_numpy(onehot)


def _gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, 1, H, W) maps with replicate padding."""
    if sigma <= 0.3:
        return maps
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=maps.dtype, device=maps.device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    out = F.pad(maps, (radius, radius, 0, 0), mode="replicate")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1))
    out = F.pad(out, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(out, kernel.view(1, 1, -1, 1))


def region_maps(onehot: torch.Tensor, size: tuple[int, int], feather: float = FEATHER) -> torch.Tensor:
    """One-hot maps (R, H, W) -> soft maps (R, 1, height, width) for an image of ``size`` = (w, h).

    Area-averaged resize, then a Gaussian blur with sigma = ``feather`` x the long side. The
    maps still sum to one at every pixel.
    """
    width, height = size
    maps = onehot.unsqueeze(1).float()
    if maps.shape[-2:] != (height, width):
        shrink = height <= maps.shape[-2] and width <= maps.shape[-1]
        maps = F.interpolate(maps, size=(height, width), mode="area") if shrink else \
            F.interpolate(maps, size=(height, width), mode="bilinear", align_corners=False)
    return _gaussian_blur(maps, feather * max(width, height))


__all__ = ["FEATHER", "MIN_REGION_SHARE", "load_mask", "mask_palette", "region_maps"]

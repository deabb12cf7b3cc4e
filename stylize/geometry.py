"""Pixel rectangles shared by tiling, chunked feature extraction and cropped objective terms."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Box:
    """A rectangle of pixels ``[y0, y1) x [x0, x1)``."""

    y0: int
    x0: int
    y1: int
    x1: int

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def area(self) -> int:
        return self.height * self.width

    def grow(self, margin: int, height: int, width: int) -> Box:
        """This box with ``margin`` pixels more on every side, clipped to a ``height`` x ``width`` image."""
        return Box(max(0, self.y0 - margin), max(0, self.x0 - margin),
                   min(height, self.y1 + margin), min(width, self.x1 + margin))

    def crop(self, t: torch.Tensor) -> torch.Tensor:
        return t[..., self.y0:self.y1, self.x0:self.x1]

    def crop_features(self, t: torch.Tensor, stride: int) -> torch.Tensor:
        """The feature positions of this box (origin a multiple of ``stride``) in feature map ``t``."""
        return t[..., self.y0 // stride:self.y1 // stride, self.x0 // stride:self.x1 // stride]


__all__ = ["Box"]

"""The temporal loss of Ruder, Dosovitskiy & Brox (GCPR 2016) as an objective term.

``(1/D) Σ c(x) (image(x) - target(x))²`` where ``target`` is the previous stylized frame warped
into this one by optical flow, ``c`` the consistency mask (1 where the flow is reliable, 0 at
occlusions and motion boundaries) and ``D`` the number of values (pixels x channels): a frame
with little reliable area is held less. :func:`temporal_term` returns the factory the engine
calls once per scale (``factory(scale)``, ``scale.size`` = (width, height), ``scale.device``);
the term has ``crop(box)`` for tiled scales. Used by :mod:`stylize.video`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from stylize.geometry import Box
from stylize.loss.term import Features, Term


class TemporalLoss(Term):
    """Masked mean squared difference to a target image (the warped previous output)."""

    layers: tuple[str, ...] = ()  # pixels only: no feature layer is needed

    def __init__(self, target: torch.Tensor, mask: torch.Tensor, weight: float, name: str = "temporal") -> None:
        if target.dim() != 4 or target.shape[:2] != (1, 3):
            raise ValueError(f"target must be (1, 3, H, W), got {tuple(target.shape)}")
        if mask.shape != (1, 1, *target.shape[2:]):
            raise ValueError(f"mask must be (1, 1, {target.shape[2]}, {target.shape[3]}), got {tuple(mask.shape)}")
        self.target = target.detach()
        self.mask = mask.detach()
        self.weight = float(weight)
        self.name = name

    def __call__(self, features: Features, image: torch.Tensor) -> torch.Tensor:
        return (self.mask * (image - self.target).pow(2)).mean()

    def crop(self, box: Box) -> TemporalLoss:
        """The term on the tile ``box`` (pixels of this scale)."""
        return TemporalLoss(box.crop(self.target), box.crop(self.mask), self.weight, self.name)


def temporal_term(target: torch.Tensor, mask: torch.Tensor, weight: float,
                  name: str = "temporal") -> Callable[[Any], TemporalLoss]:
    """A term factory: ``target`` (1, 3, H, W) in [0, 1] and ``mask`` (1, 1, H, W) at full size,
    resized to each scale the engine runs (bilinear; the mask becomes a soft weight there).
    ``scale`` is a :class:`stylize.objective.ScaleContext` (``size`` and ``device`` are read)."""

    def factory(scale: Any) -> TemporalLoss:
        width, height = scale.size
        device = scale.device
        t, m = target, mask
        if tuple(t.shape[2:]) != (height, width):
            t = F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
            m = F.interpolate(m, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
        return TemporalLoss(t.to(device), m.to(device), weight, name)

    return factory


__all__ = ["TemporalLoss", "temporal_term"]

"""Terms on the pixels themselves: total variation and the range penalty."""

from __future__ import annotations

import torch

from stylize.loss import functional
from stylize.loss.term import Features, Term

RANGE_WEIGHT = 100.0  # keeps unconstrained pixels close to [0, 1]; see functional.range_penalty


class TotalVariation(Term):
    """Smoothness: mean squared difference of neighbouring pixels (``--tv-weight``)."""

    name = "tv"

    def __init__(self, weight: float) -> None:
        self.weight = weight

    def __call__(self, features: Features, image: torch.Tensor) -> torch.Tensor:
        return functional.tv_loss(image)


class RangePenalty(Term):
    """Pixels outside [0, 1] cost; the optimizer never clamps (see :mod:`stylize.optimize`). Not logged."""

    name = "range"
    logged = False

    def __init__(self, weight: float = RANGE_WEIGHT) -> None:
        self.weight = weight

    def __call__(self, features: Features, image: torch.Tensor) -> torch.Tensor:
        return functional.range_penalty(image)


__all__ = ["RANGE_WEIGHT", "RangePenalty", "TotalVariation"]

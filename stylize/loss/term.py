"""What every objective term is: a named, weighted loss on the network's features and the image.

A term is built once per scale with its targets (computed once, without autograd), then called
at every optimizer step with the features of the current image. The objective
(:class:`stylize.objective.Objective`) is the weighted sum of its terms and logs each by name. For
high-resolution tiling, :meth:`Term.crop` gives the term of one tile: terms with spatial targets
crop them, global ones (style statistics) return themselves.

Adding a loss means one new subclass (or any object with the same attributes and methods).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from stylize.geometry import Box

Features = Mapping[str, torch.Tensor]


class Term:
    """One part of the objective: ``weight * term(features, image)``.

    Attributes: ``name`` (the key of its value in the step's losses), ``weight``, ``layers`` (the
    feature layers it reads; may be empty) and ``logged`` (whether its value is recorded).
    """

    name: str = "term"
    weight: float = 1.0
    layers: tuple[str, ...] = ()
    logged: bool = True

    def __call__(self, features: Features, image: torch.Tensor) -> torch.Tensor:
        """The unweighted loss: a scalar tensor. ``image`` is (1, 3, H, W), unclamped."""
        return self.evaluate(features, image)[0]

    def evaluate(self, features: Features, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss and its named parts (logged as ``<name>_<part>``, e.g. ``style_relu1_1``)."""
        return self(features, image), {}

    def crop(self, box: Box) -> Term:
        """The term of the tile ``box`` (pixels of this scale): the same term when it has no spatial targets."""
        return self


__all__ = ["Features", "Term"]

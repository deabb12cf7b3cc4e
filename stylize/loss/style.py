"""Style terms: one class per kind of style statistic, all normalized alike.

``gram`` (Gatys et al. 2016): the Gram matrix of each style layer, ``‖G - A‖² / ‖A‖²``. Every kind
computes its targets once per scale from the style image(s) (several are blended with weights)
and is weighted per layer, the layer weights normalized to sum to one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch

from stylize.backbone import Backbone
from stylize.features import CHUNK_PIXELS, chunked_grams
from stylize.loss import functional
from stylize.loss.term import Features, Term


@torch.no_grad()
def style_targets(
    backbone: Backbone,
    styles: Sequence[torch.Tensor],
    layers: Sequence[str],
    blend: Sequence[float] | None = None,
) -> dict[str, torch.Tensor]:
    """Gram targets of one or several style images, blended with ``blend`` (default equal)."""
    grams = []
    for style in styles:
        if style.shape[-2] * style.shape[-1] > CHUNK_PIXELS:  # large: summed chunk by chunk
            grams.append(chunked_grams(backbone, style, layers))
            continue
        feats = backbone(style, layers)
        grams.append({k: functional.gram_matrix(v).detach() for k, v in feats.items()})
    weights = list(blend) if blend is not None else [1.0] * len(grams)
    return functional.blend_grams(grams, weights)


class StyleLoss(Term):
    """The base of the style terms: per-layer targets, per-layer losses, their weighted mean.

    A kind defines :meth:`targets_of` (the blended targets of the style images) and
    :meth:`layer_loss` (one layer's loss against its target, about 1 for an all-zero output).
    """

    name = "style"
    kind: ClassVar[str] = ""

    def __init__(self, targets: Mapping[str, Any], *, weight: float = 1.0,
                 layer_weights: Mapping[str, float] | None = None) -> None:
        self.targets = dict(targets)
        self.layers = tuple(self.targets)
        self.weight = weight
        self.layer_weights = dict(layer_weights or {k: 1.0 for k in self.targets})

    @classmethod
    def targets_of(cls, backbone: Backbone, styles: Sequence[torch.Tensor], layers: Sequence[str],
                   blend: Sequence[float] | None = None) -> dict[str, Any]:
        raise NotImplementedError

    def layer_loss(self, features: torch.Tensor, target: Any) -> torch.Tensor:
        raise NotImplementedError

    @classmethod
    def from_images(cls, backbone: Backbone, styles: Sequence[torch.Tensor], layers: Sequence[str], *,
                    blend: Sequence[float] | None = None, weight: float = 1.0,
                    layer_weights: Mapping[str, float] | None = None) -> StyleLoss:
        return cls(cls.targets_of(backbone, styles, layers, blend), weight=weight, layer_weights=layer_weights)

    def evaluate(self, features: Features, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        per_layer = {layer: self.layer_loss(features[layer], target) for layer, target in self.targets.items()}
        return functional.weighted_style_loss(per_layer, self.layer_weights), per_layer


class GramLoss(StyleLoss):
    """Gatys et al.: ``‖G(F) - A‖² / ‖A‖²`` with Gram matrices averaged over positions."""

    kind = "gram"

    @classmethod
    def targets_of(cls, backbone: Backbone, styles: Sequence[torch.Tensor], layers: Sequence[str],
                   blend: Sequence[float] | None = None) -> dict[str, torch.Tensor]:
        return style_targets(backbone, styles, layers, blend)

    def layer_loss(self, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return functional.relative_squared_error(functional.gram_matrix(features), target)


#: --style-loss name -> its term
STYLE_LOSSES: Mapping[str, type[StyleLoss]] = {cls.kind: cls for cls in (GramLoss,)}


__all__ = ["STYLE_LOSSES", "GramLoss", "StyleLoss", "style_targets"]

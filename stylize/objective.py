"""The objective of one scale: the weighted sum of its terms (:mod:`stylize.loss`).

``objective(image) -> (total, parts)``: one forward pass of the network for every layer any term
reads, then ``Σ weightᵢ · termᵢ(features, image)``; ``parts`` holds each logged term's
unweighted value under its name (``content``, ``style``, ``style_<layer>``, ``tv`` ...) as floats.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from stylize.backbone import Backbone
from stylize.features import layer_strides
from stylize.geometry import Box
from stylize.loss import (
    STYLE_LOSSES,
    ContentLoss,
    GramLoss,
    RangePenalty,
    RegionalStyle,
    StructureLoss,
    Term,
    TotalVariation,
    content_targets,
)
from stylize.options import Options


class FeatureNetwork(Protocol):
    def __call__(self, image: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]: ...


@dataclass(frozen=True)
class ScaleContext:
    """What a term factory (``transfer(..., extra_terms=[factory])``) learns about the scale it is made for."""

    index: int  # from 0
    size: tuple[int, int]  # (width, height)
    device: torch.device
    backbone: Backbone


#: ``factory(scale) -> Term``: an extra objective term made once per scale (e.g. video's temporal term)
TermFactory = Callable[[ScaleContext], Term]


def _evaluate(term: Any, features: Mapping[str, torch.Tensor], image: torch.Tensor
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    evaluate = getattr(term, "evaluate", None)
    return evaluate(features, image) if evaluate is not None else (term(features, image), {})


class Objective:
    """The weighted sum of ``terms`` on the features that ``backbone`` computes."""

    def __init__(self, backbone: FeatureNetwork | Backbone, terms: Sequence[Term]) -> None:
        self.backbone = backbone
        self.terms = list(terms)
        self.layers = list(dict.fromkeys(layer for term in self.terms for layer in term.layers))

    @classmethod
    def from_targets(cls, backbone: Backbone, content_targets: Mapping[str, torch.Tensor],
                     style_targets: Mapping[str, torch.Tensor], *, content_weight: float, style_weight: float,
                     tv_weight: float = 0.0, style_layer_weights: Mapping[str, float] | None = None) -> Objective:
        """The paper's objective from ready targets: content, Gram style, range penalty and (if > 0) TV."""
        terms: list[Term] = [
            ContentLoss(content_targets, layer_strides(backbone), weight=content_weight),
            GramLoss(style_targets, weight=style_weight, layer_weights=style_layer_weights),
            RangePenalty(),
        ]
        if tv_weight > 0:
            terms.append(TotalVariation(tv_weight))
        return cls(backbone, terms)

    def term(self, name: str) -> Term:
        """The first term called ``name``."""
        return next(t for t in self.terms if t.name == name)

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        features = self.backbone(image, self.layers)
        total: torch.Tensor | None = None
        parts: dict[str, float] = {}
        for term in self.terms:
            value, sub = _evaluate(term, features, image)
            weighted = term.weight * value
            total = weighted if total is None else total + weighted
            if getattr(term, "logged", True):
                parts[term.name] = float(value.detach())
                parts.update({f"{term.name}_{k}": float(v.detach()) for k, v in sub.items()})
        assert total is not None, "an objective needs at least one term"
        return total, parts

    def crop(self, box: Box, backbone: FeatureNetwork) -> Objective:
        """The objective of one tile: each term cropped to ``box``, features from ``backbone``
        (which sees the tile in its context, see :mod:`stylize.tiles.refine`)."""
        return Objective(backbone, [term.crop(box) for term in self.terms])


def build_objective(backbone: Backbone, opts: Options, content: torch.Tensor, styles: Sequence[torch.Tensor], *,
                    masks: torch.Tensor | None = None, extra: Sequence[Term] = (),
                    content_per_tile: bool = False, tiled: bool = False) -> Objective:
    """The objective of one scale from the options: targets computed once from ``content`` and
    ``styles`` (tensors at this scale's sizes), one style per region when ``masks`` (one-hot,
    :func:`stylize.regions.load_mask`) are given, then any ``extra`` terms. Style layers of weight 0
    are left out (not computed: the balanced preset's block 5 stops the network at relu4_x). The
    structure term (the photo's self-similarity, :mod:`stylize.loss.structure`) is added when
    ``structure_weight`` is above zero, on whole-image scales only (``tiled``: a scale refined in
    tiles, whose layout the scales before it have settled).
    ``content_per_tile`` (tiled scales, :attr:`stylize.plan.ScalePlan.content_per_tile`): the content
    targets are computed for each tile when the objective is cropped to it, not for the whole image."""
    layer_weights = dict(zip(opts.style_layers, opts.style_layer_weights or [1.0] * len(opts.style_layers),
                             strict=True))
    structure = () if tiled else opts.active_structure_layers  # its layers; none when off or tiled
    photo: dict[str, torch.Tensor] = {}  # the photo's feature maps, one pass shared by content and structure
    if content_per_tile:
        terms: list[Term] = [ContentLoss.per_tile(backbone, content, opts.content_layers, weight=opts.content_weight)]
    else:
        layers = [*opts.content_layers, *structure]
        photo = content_targets(backbone, content, layers)
        terms = [ContentLoss({k: v for k, v in photo.items() if k in opts.content_layers}, layer_strides(backbone),
                             weight=opts.content_weight)]
    if masks is None:
        terms.append(STYLE_LOSSES[opts.style_loss].from_images(
            backbone, styles, opts.weighted_style_layers, blend=opts.style_blend, weight=opts.style_weight,
            layer_weights=layer_weights))
    else:
        size = (content.shape[-1], content.shape[-2])
        terms.append(RegionalStyle.from_masks(backbone, masks, styles, opts.weighted_style_layers, size,
                                              weight=opts.style_weight, layer_weights=layer_weights))
    if structure:
        if not photo:  # content targets per tile (never on a whole-image scale today): a pass of its own
            photo = content_targets(backbone, content, opts.structure_layers)
        terms.append(StructureLoss.from_features(photo, opts.structure_layers, weight=opts.structure_weight))
    del photo  # the structure layers' maps are let go once their self-similarity is taken
    terms.append(RangePenalty())
    if opts.tv_weight > 0:
        terms.append(TotalVariation(opts.tv_weight))
    return Objective(backbone, [*terms, *extra])


__all__ = ["FeatureNetwork", "Objective", "ScaleContext", "TermFactory", "build_objective"]

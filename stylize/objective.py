"""The weighted objective of one scale: targets computed once, then loss(image) per step."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from stylize import losses, tiles
from stylize.backbone import Backbone

RANGE_WEIGHT = 100.0  # keeps unconstrained pixels close to [0, 1]; see losses.range_penalty


@torch.no_grad()
def content_targets(backbone: Backbone, content: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Feature maps of the content image at ``layers`` (no autograd graph kept).

    Images above :data:`stylize.tiles.CHUNK_PIXELS` are computed in chunks (bounded memory)."""
    if content.shape[-2] * content.shape[-1] > tiles.CHUNK_PIXELS:
        return tiles.chunked_feature_maps(backbone, content, layers)
    return {k: v.detach() for k, v in backbone(content, layers).items()}


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
        if style.shape[-2] * style.shape[-1] > tiles.CHUNK_PIXELS:  # large: summed chunk by chunk
            grams.append(tiles.chunked_grams(backbone, style, layers))
            continue
        feats = backbone(style, layers)
        grams.append({k: losses.gram_matrix(v).detach() for k, v in feats.items()})
    weights = list(blend) if blend is not None else [1.0] * len(grams)
    return losses.blend_grams(grams, weights)


class Objective:
    """``objective(image) -> (total, parts)`` with ``parts`` as floats for logging.

    ``parts`` has ``content``, ``style`` (weighted mean over layers, before ``style_weight``),
    ``style_<layer>`` for each style layer and, when used, ``tv``.
    """

    def __init__(
        self,
        backbone: Backbone,
        content_targets: Mapping[str, torch.Tensor],
        style_targets: Mapping[str, torch.Tensor],
        *,
        content_weight: float,
        style_weight: float,
        tv_weight: float = 0.0,
        style_layer_weights: Mapping[str, float] | None = None,
        style_masks: Mapping[str, torch.Tensor] | None = None,
        style_regions: Callable[[Mapping[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
    ) -> None:
        self.backbone = backbone
        self.content_targets = dict(content_targets)
        self.style_targets = dict(style_targets)
        self.layers = list(dict.fromkeys([*self.content_targets, *self.style_targets]))
        self.content_weight = content_weight
        self.style_weight = style_weight
        self.tv_weight = tv_weight
        self.style_layer_weights = dict(style_layer_weights or {k: 1.0 for k in self.style_targets})
        self.style_masks = style_masks
        # Spatial control: features -> per-layer style losses of each mask region against its own
        # style (stylize.regions.RegionalStyle); then style_targets only name the style layers.
        self.style_regions = style_regions

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        feats = self.backbone(image, self.layers)
        content = losses.content_loss(feats, self.content_targets)
        if self.style_regions is not None:
            per_layer = self.style_regions(feats)
        else:
            per_layer = losses.style_losses(feats, self.style_targets, self.style_masks)
        style = losses.weighted_style_loss(per_layer, self.style_layer_weights)
        total = self.content_weight * content + self.style_weight * style
        total = total + RANGE_WEIGHT * losses.range_penalty(image)
        parts = {"content": float(content.detach()), "style": float(style.detach())}
        parts.update({f"style_{k}": float(v.detach()) for k, v in per_layer.items()})
        if self.tv_weight > 0:
            tv = losses.tv_loss(image)
            total = total + self.tv_weight * tv
            parts["tv"] = float(tv.detach())
        return total, parts

"""Spatial control (Gatys et al. 2017): region ``r`` of the output is matched to style ``r``'s Grams.

The masks are read and turned into soft region maps by :mod:`stylize.regions`; this term holds the
maps at the image's resolution and each style's own Gram targets. The loss of a layer is
``Σ_r a_r ‖G_r(F) - A_r‖² / ‖A_r‖²`` with ``G_r`` the Gram matrix weighted by region ``r``'s mask
and ``a_r`` the region's share of the image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from stylize.backbone import Backbone
from stylize.geometry import Box
from stylize.loss import functional
from stylize.loss.style import style_targets
from stylize.loss.term import Features, Term
from stylize.regions import region_maps


class RegionalStyle(Term):
    """Per-region style losses, weighted per layer like :class:`stylize.loss.style.GramLoss`.

    ``maps``: (R, 1, H, W) soft region maps at the image's resolution; ``targets``: one dict of
    Gram targets per region (each style's own Grams on its whole image); ``areas``: the regions'
    shares of the whole image (default: from ``maps``; a tile keeps the whole image's). Masks for
    each layer's feature resolution are made on first use (area-averaged) and kept.
    """

    name = "style"

    def __init__(self, maps: torch.Tensor, targets: Sequence[Mapping[str, torch.Tensor]], *, weight: float = 1.0,
                 layer_weights: Mapping[str, float] | None = None, areas: Sequence[float] | None = None) -> None:
        if maps.shape[0] != len(targets):
            raise ValueError(f"{maps.shape[0]} region maps for {len(targets)} style targets")
        self.maps = maps
        self.targets = [dict(t) for t in targets]
        self.layers = tuple(self.targets[0])
        self.weight = weight
        self.layer_weights = dict(layer_weights or {k: 1.0 for k in self.layers})
        if areas is None:
            areas = [float(a) for a in maps.mean(dim=(1, 2, 3)) / maps.mean(dim=(1, 2, 3)).sum()]
        self.areas = list(areas)
        self._layer_masks: dict[tuple[int, int], torch.Tensor] = {}

    @classmethod
    def from_masks(cls, backbone: Backbone, onehot: torch.Tensor, styles: Sequence[torch.Tensor],
                   layers: Sequence[str], size: tuple[int, int], *, weight: float = 1.0,
                   layer_weights: Mapping[str, float] | None = None) -> RegionalStyle:
        """The term of one scale: region ``r`` of an image of ``size`` = (w, h) gets the Gram
        targets of ``styles[r]`` (each computed on its whole style image)."""
        targets = [style_targets(backbone, [style], layers) for style in styles]
        return cls(region_maps(onehot, size).to(styles[0].device), targets, weight=weight,
                   layer_weights=layer_weights)

    def layer_masks(self, height: int, width: int) -> torch.Tensor:
        """(R, 1, height, width) masks at a feature resolution (area-averaged)."""
        key = (height, width)
        if key not in self._layer_masks:
            self._layer_masks[key] = F.adaptive_avg_pool2d(self.maps, key)
        return self._layer_masks[key]

    def per_layer(self, features: Features) -> dict[str, torch.Tensor]:
        """Per-layer style loss: the area-weighted sum of each region's relative Gram error."""
        out: dict[str, torch.Tensor] = {}
        for layer in self.layers:
            feats = features[layer]
            masks = self.layer_masks(*feats.shape[-2:]).to(feats.device, feats.dtype)
            total = feats.new_zeros(())
            for r, target in enumerate(self.targets):
                if self.areas[r] <= 0:
                    continue
                gram = functional.gram_matrix(feats, masks[r : r + 1])
                total = total + self.areas[r] * functional.relative_squared_error(gram, target[layer])
            out[layer] = total
        return out

    def evaluate(self, features: Features, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        per_layer = self.per_layer(features)
        return functional.weighted_style_loss(per_layer, self.layer_weights), per_layer

    def crop(self, box: Box) -> RegionalStyle:
        """The tile's term: the region maps cropped; targets and area weights stay the whole image's."""
        return RegionalStyle(box.crop(self.maps), self.targets, weight=self.weight,
                             layer_weights=self.layer_weights, areas=self.areas)


__all__ = ["RegionalStyle"]

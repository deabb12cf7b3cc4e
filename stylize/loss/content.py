"""The content term: the photo's feature maps at the content layers (Gatys et al. 2016, eq. 1),
normalized by their magnitude (see :mod:`stylize.loss.functional`).

On a tiled scale whose whole-image feature maps do not fit the memory budget (``relu2_2`` alone,
128 channels at stride 2, is 32 floats per pixel: 6.4 GB at 8192 x 6144), :meth:`ContentLoss.per_tile`
keeps only the content image and computes each tile's targets when the term is cropped to it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from stylize.backbone import Backbone
from stylize.features import ALIGN, CHUNK_MARGIN, CHUNK_PIXELS, box_features, chunked_feature_maps, layer_strides
from stylize.geometry import Box
from stylize.imageio import to_float
from stylize.loss import functional
from stylize.loss.term import Features, Term


@torch.no_grad()
def content_targets(backbone: Backbone, content: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Feature maps of the content image at ``layers`` (no autograd graph kept).

    Images above :data:`stylize.features.CHUNK_PIXELS` are computed in chunks (bounded memory)."""
    if content.shape[-2] * content.shape[-1] > CHUNK_PIXELS:
        return chunked_feature_maps(backbone, content, layers)
    return {k: v.detach() for k, v in backbone(content, layers).items()}


class ContentLoss(Term):
    """Mean over the content layers of ``‖F - P‖² / ‖P‖²``."""

    name = "content"

    def __init__(self, targets: Mapping[str, torch.Tensor], strides: Mapping[str, int], *, weight: float = 1.0) -> None:
        self.targets = dict(targets)
        self.strides = dict(strides)  # pixels per feature position of each layer (for crop)
        self.layers = tuple(self.targets)
        self.weight = weight

    @classmethod
    def from_image(cls, backbone: Backbone, content: torch.Tensor, layers: Sequence[str], *,
                   weight: float = 1.0) -> ContentLoss:
        return cls(content_targets(backbone, content, layers), layer_strides(backbone), weight=weight)

    def __call__(self, features: Features, image: torch.Tensor) -> torch.Tensor:
        return functional.content_loss(features, self.targets)

    @classmethod
    def per_tile(cls, backbone: Backbone, content: torch.Tensor, layers: Sequence[str], *,
                 weight: float = 1.0) -> TiledContentLoss:
        """The content term of a tiled scale with its targets computed per tile (:class:`TiledContentLoss`)."""
        return TiledContentLoss(backbone, content, layers, weight=weight)

    def crop(self, box: Box) -> ContentLoss:
        cropped = {k: box.crop_features(v, self.strides[k]) for k, v in self.targets.items()}
        return ContentLoss(cropped, self.strides, weight=self.weight)


class TiledContentLoss(Term):
    """The content term with targets computed on demand: it holds the content image of the scale
    (3 floats per pixel, or 3 bytes when it is given as an 8-bit tensor, as :func:`stylize.transfer`
    does: 0.4 GB less at 8192 px) instead of its feature maps, and :meth:`crop` gives the
    :class:`ContentLoss` of a tile, its targets computed from the tile with ``margin`` px of
    context (:func:`stylize.features.box_features`, as the chunked whole-image targets are): the
    same as the whole-image targets' crop up to the network's receptive field beyond the margin."""

    name = "content"

    def __init__(self, backbone: Backbone, content: torch.Tensor, layers: Sequence[str], *, weight: float = 1.0,
                 margin: int = CHUNK_MARGIN) -> None:
        if margin % ALIGN:
            raise ValueError(f"margin must be a multiple of {ALIGN}")
        self.backbone = backbone
        self.content = content
        self.layers = tuple(sorted(dict.fromkeys(layers), key=backbone.layer_names.index))  # as the network yields them
        self.strides = layer_strides(backbone)
        self.weight = weight
        self.margin = margin

    def __call__(self, features: Features, image: torch.Tensor) -> torch.Tensor:
        """On the whole image (tiled refinement never asks): the whole-image targets, computed at every call."""
        return functional.content_loss(features, content_targets(self.backbone, to_float(self.content), self.layers))

    def crop(self, box: Box) -> ContentLoss:
        feats = box_features(self.backbone, self.content, box, self.layers, margin=self.margin, strides=self.strides)
        targets = {k: v.contiguous() for k, v in feats.items()}  # a copy of the box only: the margin is let go
        return ContentLoss(targets, self.strides, weight=self.weight)


__all__ = ["ContentLoss", "TiledContentLoss", "content_targets"]

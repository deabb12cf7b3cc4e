"""The content term: the photo's feature maps at the content layers (Gatys et al. 2016, eq. 1),
normalized by their magnitude (see :mod:`stylize.loss.functional`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from stylize.backbone import Backbone
from stylize.features import CHUNK_PIXELS, chunked_feature_maps, layer_strides
from stylize.geometry import Box
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

    def crop(self, box: Box) -> ContentLoss:
        cropped = {k: box.crop_features(v, self.strides[k]) for k, v in self.targets.items()}
        return ContentLoss(cropped, self.strides, weight=self.weight)


__all__ = ["ContentLoss", "content_targets"]

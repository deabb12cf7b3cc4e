"""The structure term: the photo's self-similarity (Kolkin, Salavon & Shakhnarovich, CVPR 2019, "Style
Transfer by Relaxed Optimal Transport and Self-Similarity").

For the positions of a regular grid on a layer's feature map, ``D(F)ᵢⱼ`` is the cosine distance of
the feature vectors at positions i and j, each column divided by its mean. The term is the mean of
``|D(F) - D(P)|`` over every pair, P being the photo's features. It keeps *which parts of the photo
look alike and which differ*, not what they look like: the painting's texture and palette may
repaint every region, but a uniform region of the photo (fog, a sky, a wall) stays uniform, so the
painting's objects (Van Gogh's stars, Monet's lily pads) are not placed into it, where a Gram
matrix alone would put them wherever they cost least.

The grid keeps about :data:`STRUCTURE_POSITIONS` positions whatever the image size, so the term
costs about the same at every scale: a million pairs, a few percent of one 512 px evaluation but a
larger share at 128 px (16 of 120 ms before its gradient was written out, :class:`_SelfSimilarityL1`).
Its photo targets share one forward pass with the content term's
(:func:`stylize.objective.build_objective`). Cosine distances do not depend on the features'
magnitude, and the column means make the term independent of how far apart the photo's regions
are overall: 0 at the photo's own structure, about 1 for an output whose regions are all alike.

On tiled scales the term is left out (:meth:`StructureLoss.crop` gives an inactive term): the
layout is settled by the whole-image scales before them, and tiles refine texture from there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from stylize.backbone import Backbone
from stylize.geometry import Box
from stylize.loss.content import content_targets
from stylize.loss.term import Features, Term

#: about how many feature positions the structure term compares (all pairs of them)
STRUCTURE_POSITIONS = 1024


def grid_stride(height: int, width: int, positions: int = STRUCTURE_POSITIONS) -> int:
    """The stride of a grid that keeps about ``positions`` of a ``height`` x ``width`` feature map."""
    return max(1, round(math.sqrt(height * width / positions)))


def self_similarity(features: torch.Tensor, stride: int) -> torch.Tensor:
    """(1, C, H, W) features -> (N, N) cosine distances of the grid's positions, each column divided by its mean."""
    unit = F.normalize(_grid(features, stride), dim=0)
    distance = 1 - unit.T @ unit
    return distance / distance.mean(dim=0, keepdim=True).clamp_min(1e-6)


def _grid(features: torch.Tensor, stride: int) -> torch.Tensor:
    """(1, C, H, W) features -> (C, N) feature vectors of the grid's positions."""
    return features[0, :, ::stride, ::stride].reshape(features.shape[1], -1)


class _SelfSimilarityL1(torch.autograd.Function):
    """``mean |self_similarity(grid) - target|`` for a (C, N) ``grid``, with its gradient written out.

    The same value as the plain formula and its gradient up to rounding (tested), in fewer passes
    over the N x N matrix: autograd's version of the formula runs about two dozen operations over
    the million pairs per evaluation (its divisions alone were a fifth of the term's time).
    Gradient, with Q = D / m (m: column means of D = 1 - UᵀU) and S = sign(Q - T) / N²:
    dL/dD = (S - colmean(S ⊙ Q)) / m, then dL/dU = -U (dD + dDᵀ), then through U = grid / ‖grid‖.
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, grid: torch.Tensor,  # type: ignore[override]
                target: torch.Tensor) -> torch.Tensor:
        norm = grid.norm(dim=0, keepdim=True).clamp_min(1e-12)  # as F.normalize
        unit = grid / norm
        ratio = (unit.T @ unit).neg_().add_(1)  # D, rounded as self_similarity rounds it
        raw_mean = ratio.mean(dim=0, keepdim=True)
        mean = raw_mean.clamp_min(1e-6)
        ratio.div_(mean)  # Q
        diff = ratio - target
        loss = diff.abs().mean()
        ctx.save_for_backward(unit, norm, raw_mean, mean, ratio, diff.sign_())
        return loss

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor  # type: ignore[override]
                 ) -> tuple[torch.Tensor, None]:
        unit, norm, raw_mean, mean, ratio, sign = ctx.saved_tensors  # type: ignore[attr-defined]
        s = sign * (grad / sign.numel())  # dL/dQ
        through_mean = (s * ratio).mean(dim=0, keepdim=True) * (raw_mean > 1e-6)  # m's share, none where clamped
        d_distance = s.sub_(through_mean).div_(mean)
        d_unit = unit @ (d_distance + d_distance.T)
        d_unit.neg_()
        along = (unit * d_unit).sum(dim=0, keepdim=True) * (norm > 1e-12)  # a clamped norm is a constant
        return (d_unit - unit * along) / norm, None


def self_similarity_l1(features: torch.Tensor, stride: int, target: torch.Tensor) -> torch.Tensor:
    """``mean |self_similarity(features, stride) - target|``, differentiable in ``features``."""
    return _SelfSimilarityL1.apply(_grid(features, stride), target)  # type: ignore[no-any-return]


class StructureLoss(Term):
    """Mean over ``layers`` of ``mean |D(F) - D(P)|`` (``--structure-weight``, ``--structure-layers``)."""

    name = "structure"

    def __init__(self, targets: Mapping[str, torch.Tensor], strides: Mapping[str, int], *, weight: float = 1.0) -> None:
        self.targets = dict(targets)
        self.strides = dict(strides)  # each layer's grid stride, in feature positions
        self.layers = tuple(self.targets)
        self.weight = weight

    @classmethod
    def from_image(cls, backbone: Backbone, content: torch.Tensor, layers: Sequence[str], *, weight: float = 1.0,
                   positions: int = STRUCTURE_POSITIONS) -> StructureLoss:
        """The photo's self-similarity at ``layers`` (feature maps computed once, then let go)."""
        return cls.from_features(content_targets(backbone, content, layers), layers, weight=weight,
                                 positions=positions)

    @classmethod
    def from_features(cls, features: Mapping[str, torch.Tensor], layers: Sequence[str], *, weight: float = 1.0,
                      positions: int = STRUCTURE_POSITIONS) -> StructureLoss:
        """The photo's self-similarity at ``layers`` from its ready feature maps (``features`` may hold
        more layers: :func:`stylize.objective.build_objective` shares one pass with the content term)."""
        targets, strides = {}, {}
        for layer in dict.fromkeys(layers):
            feats = features[layer]
            strides[layer] = grid_stride(feats.shape[-2], feats.shape[-1], positions)
            targets[layer] = self_similarity(feats, strides[layer])
        return cls(targets, strides, weight=weight)

    def __call__(self, features: Features, image: torch.Tensor) -> torch.Tensor:
        losses = [self_similarity_l1(features[k], self.strides[k], t) for k, t in self.targets.items()]
        return torch.stack(losses).mean()

    def crop(self, box: Box) -> Term:
        """Tiles keep the layout of the scale they start from: the term is inactive on them."""
        return _Inactive()


class _Inactive(Term):
    """No loss and no layers: what the structure term is on a tile."""

    name = "structure"
    logged = False
    weight = 0.0

    def __call__(self, features: Features, image: torch.Tensor) -> torch.Tensor:
        return image.new_zeros(())


__all__ = ["STRUCTURE_POSITIONS", "StructureLoss", "grid_stride", "self_similarity", "self_similarity_l1"]

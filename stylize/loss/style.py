"""Style terms: one class per kind of style statistic, all normalized alike.

* ``gram`` (Gatys et al. 2016): the Gram matrix of each style layer, ``‖G - A‖² / ‖A‖²``.
* ``wasserstein``: the Wasserstein-2 distance between Gaussians with the features' mean and
  covariance (as in crowsonkb/style-transfer-pytorch), ``‖μ - μₛ‖² + tr(Σ + Σₛ - 2 (Σₛ^½ Σ Σₛ^½)^½)``,
  divided by the target's second moment ``‖μₛ‖² + tr Σₛ``.
* ``sliced``: the sliced Wasserstein distance (Heitz et al., CVPR 2021): the features projected on
  fixed random directions (seeded per layer, so runs are reproducible), sorted, and compared with
  the style's sorted projections (its quantiles), divided by their mean square. It matches whole
  distributions, not only their second moments.

Every kind is 1.0 for an all-zero output and 0 at the target, so one ``--style-weight`` (and one
``--strength``) means the same for each; every kind computes its targets once per scale from the
style image(s) (several are blended with weights) and is weighted per layer, the layer weights
normalized to sum to one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from stylize.backbone import Backbone
from stylize.features import CHUNK_PIXELS, chunked_features, chunked_grams
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


def _normalized_blend(blend: Sequence[float] | None, count: int) -> list[float]:
    weights = list(blend) if blend is not None else [1.0] * count
    if len(weights) != count:
        raise ValueError("one blend weight per style image is needed")
    total = float(sum(weights))
    if total <= 0 or any(w < 0 for w in weights):
        raise ValueError("blend weights must be non-negative and not all zero")
    return [w / total for w in weights]


@torch.no_grad()
def _feature_chunks(backbone: Backbone, image: torch.Tensor, layers: Sequence[str]
                    ) -> Iterator[dict[str, torch.Tensor]]:
    """The features of ``image`` at ``layers``: in one piece, or chunk by chunk above CHUNK_PIXELS."""
    if image.shape[-2] * image.shape[-1] > CHUNK_PIXELS:
        for _box, feats in chunked_features(backbone, image, layers):
            yield feats
        return
    yield backbone(image, layers)


def _flat(features: torch.Tensor) -> torch.Tensor:
    """(1, C, H, W) -> (C, H W)."""
    return features.reshape(features.shape[1], -1)


class WassersteinLoss(StyleLoss):
    """Wasserstein-2 between Gaussians of the features (mean and covariance), relative to the target's
    second moment. Targets: per layer ``(mean, covariance, sqrt of covariance, second moment)``."""

    kind = "wasserstein"

    @classmethod
    def targets_of(cls, backbone: Backbone, styles: Sequence[torch.Tensor], layers: Sequence[str],
                   blend: Sequence[float] | None = None) -> dict[str, tuple[torch.Tensor, ...]]:
        weights = _normalized_blend(blend, len(styles))
        first: dict[str, torch.Tensor] = {}
        second: dict[str, torch.Tensor] = {}
        for style, weight in zip(styles, weights, strict=True):  # moments of the blend: a mixture
            sums: dict[str, torch.Tensor] = {}
            outer: dict[str, torch.Tensor] = {}
            count: dict[str, int] = {}
            for feats in _feature_chunks(backbone, style, layers):
                for k, v in feats.items():
                    flat = _flat(v).double()
                    sums[k] = sums.get(k, 0) + flat.sum(dim=1)
                    outer[k] = outer.get(k, 0) + flat @ flat.T
                    count[k] = count.get(k, 0) + flat.shape[1]
            for k in sums:
                first[k] = first.get(k, 0) + weight * sums[k] / count[k]
                second[k] = second.get(k, 0) + weight * outer[k] / count[k]
        targets = {}
        for k in first:
            mean = first[k]
            cov = second[k] - torch.outer(mean, mean)
            vals, vecs = torch.linalg.eigh(cov)
            root = (vecs * vals.clamp_min(0).sqrt()) @ vecs.T
            scale = (mean.square().sum() + torch.diagonal(cov).sum()).clamp_min(1e-12)
            targets[k] = (mean, cov, root, scale)
        return targets

    def layer_loss(self, features: torch.Tensor, target: tuple[torch.Tensor, ...]) -> torch.Tensor:
        mean_t, cov_t, root_t, scale = target
        flat = _flat(features).double()
        mean = flat.mean(dim=1)
        cov = flat @ flat.T / flat.shape[1] - torch.outer(mean, mean)
        eps = 1e-8 * torch.diagonal(cov_t).mean() + 1e-12  # keeps sqrt of zero eigenvalues differentiable
        cov = cov + eps * torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
        product = root_t @ cov @ root_t
        cross = torch.linalg.eigvalsh(product).clamp_min(eps**2).sqrt().sum()
        distance = (mean - mean_t).square().sum() + torch.diagonal(cov_t).sum() + torch.diagonal(cov).sum() - 2 * cross
        return (distance / scale).to(features.dtype)


#: how many feature positions per layer a sliced target keeps (a random subset beyond this)
MAX_QUANTILES = 1 << 18


def projections(channels: int, layer_index: int, seed: int = 0) -> torch.Tensor:
    """``channels`` orthonormal random directions (rows) for a layer, the same for every run."""
    gen = torch.Generator().manual_seed(seed * 1000 + layer_index)
    q, _ = torch.linalg.qr(torch.randn(channels, channels, generator=gen, dtype=torch.float64))
    return q.T.float()


def _quantiles(sorted_values: torch.Tensor, count: int) -> torch.Tensor:
    """(K, N) values sorted along N -> (K, count) by linear interpolation of the quantiles."""
    if sorted_values.shape[1] == count:
        return sorted_values
    return F.interpolate(sorted_values[None], size=count, mode="linear", align_corners=True)[0]


class SlicedWassersteinLoss(StyleLoss):
    """Sliced Wasserstein-2 on fixed random projections (Heitz et al. 2021), relative to the
    target projections' mean square. Targets: per layer ``(directions, sorted projections, scale)``."""

    kind = "sliced"

    @classmethod
    def targets_of(cls, backbone: Backbone, styles: Sequence[torch.Tensor], layers: Sequence[str],
                   blend: Sequence[float] | None = None) -> dict[str, tuple[torch.Tensor, ...]]:
        weights = _normalized_blend(blend, len(styles))
        gen = torch.Generator().manual_seed(0)
        samples: dict[str, list[torch.Tensor]] = {}
        directions: dict[str, torch.Tensor] = {}
        for style, weight in zip(styles, weights, strict=True):
            per_style: dict[str, list[torch.Tensor]] = {}
            for feats in _feature_chunks(backbone, style, layers):
                for k, v in feats.items():
                    flat = _flat(v)
                    if k not in directions:
                        directions[k] = projections(flat.shape[0], backbone.layer_names.index(k)).to(flat.device)
                    per_style.setdefault(k, []).append(directions[k] @ flat)
            for k, parts in per_style.items():
                values = torch.cat(parts, dim=1)
                keep = max(1, round(min(values.shape[1], MAX_QUANTILES) * weight))  # a mixture: shares by weight
                if keep < values.shape[1]:
                    values = values[:, torch.randperm(values.shape[1], generator=gen)[:keep].to(values.device)]
                samples.setdefault(k, []).append(values)
        targets = {}
        for k, parts in samples.items():
            values = torch.cat(parts, dim=1).sort(dim=1).values
            targets[k] = (directions[k], values, values.square().mean().clamp_min(1e-12))
        return targets

    def layer_loss(self, features: torch.Tensor, target: tuple[torch.Tensor, ...]) -> torch.Tensor:
        directions, sorted_target, scale = target
        projected = (directions @ _flat(features)).sort(dim=1).values
        return (projected - _quantiles(sorted_target, projected.shape[1])).square().mean() / scale


#: --style-loss name -> its term
STYLE_LOSSES: Mapping[str, type[StyleLoss]] = {
    cls.kind: cls for cls in (GramLoss, WassersteinLoss, SlicedWassersteinLoss)
}


__all__ = [
    "MAX_QUANTILES", "STYLE_LOSSES", "GramLoss", "SlicedWassersteinLoss", "StyleLoss", "WassersteinLoss",
    "projections", "style_targets",
]

"""The loss functions of Gatys et al. on tensors: Gram matrices, relative errors, total variation.

The objective's terms (:mod:`stylize.loss`) are built from these.

Normalization. Raw VGG feature magnitudes differ by orders of magnitude between weight
conventions (Caffe's 0-255 inputs against torchvision's standardized ones), between VGG-16
and VGG-19, between layers and between image sizes. So that one set of default weights means
the same everywhere:

* a Gram matrix is averaged over positions (``F Fᵀ / (H W)``), so it does not grow with size;
* each layer's loss is the squared error divided by the squared norm of its *target*
  (``‖G - A‖² / ‖A‖²`` for style, ``‖F - P‖² / ‖P‖²`` for content). Scaling all features by
  any factor leaves every loss unchanged, and every layer starts at a comparable magnitude.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

EPS = 1e-12


class _SymmetricGram(torch.autograd.Function):
    """``F Fᵀ`` for (N, C, P) ``F``, whose backward is one product, ``(g + gᵀ) F``, where autograd's
    for ``F @ F.transpose`` takes two of (N, C, C) x (N, C, P) and adds them. In a torch.profiler
    run of one 512 px step the Gram products were 12.6% of it (4 forward, 8 backward), so this
    should save about a third of that; the saving itself was not timed apart."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, flat: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(flat)
        return flat @ flat.transpose(1, 2)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        (flat,) = ctx.saved_tensors  # type: ignore[attr-defined]
        return (grad + grad.transpose(1, 2)) @ flat


def gram_matrix(features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Gram matrix of (N, C, H, W) features averaged over positions -> (N, C, C).

    With ``mask`` (N or 1, 1, H, W, values in [0, 1]) positions are weighted by the mask and the
    average is taken over the mask's total weight (the masked Gram of Gatys et al. 2017).
    """
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    if mask is None:
        return _SymmetricGram.apply(flat) / (h * w)
    m = mask.reshape(mask.shape[0], 1, h * w).to(flat.dtype)
    return (flat * m) @ flat.transpose(1, 2) / m.sum(dim=2, keepdim=True).clamp_min(EPS)


def relative_squared_error(value: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """‖value - target‖² / ‖target‖²: scale-free, 1.0 for an all-zero ``value``."""
    return (value - target).pow(2).sum() / target.pow(2).sum().clamp_min(EPS)


def content_loss(features: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Mean over content layers of the relative squared feature error."""
    losses = [relative_squared_error(features[k], t) for k, t in targets.items()]
    return torch.stack(losses).mean()


def weighted_style_loss(per_layer: Mapping[str, torch.Tensor], weights: Mapping[str, float]) -> torch.Tensor:
    """Weighted sum of per-layer style losses, the weights normalized to sum to one."""
    total = sum(weights[k] for k in per_layer)
    return sum(per_layer[k] * (weights[k] / total) for k in per_layer)  # type: ignore[return-value]


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Total variation: mean squared difference of neighbouring pixels (image in [0, 1])."""
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return dx.pow(2).mean() + dy.pow(2).mean()


def range_penalty(image: torch.Tensor) -> torch.Tensor:
    """Smooth penalty on pixels outside [0, 1].

    The optimizer works on unconstrained pixels (clamping inside an L-BFGS closure corrupts its
    curvature history and makes the loss spike); this term keeps them near the valid range, and
    the output is clamped once at the end.
    """
    return ((image - 1).clamp_min(0).pow(2) + (-image).clamp_min(0).pow(2)).mean()


def blend_grams(grams: Sequence[Mapping[str, torch.Tensor]], weights: Sequence[float]) -> dict[str, torch.Tensor]:
    """Blend several styles' Gram targets with weights (normalized to sum to one)."""
    if len(grams) != len(weights):
        raise ValueError("one blend weight per style image is needed")
    total = float(sum(weights))
    if total <= 0 or any(w < 0 for w in weights):
        raise ValueError("blend weights must be non-negative and not all zero")
    return {k: sum(g[k] * (w / total) for g, w in zip(grams, weights, strict=True)) for k in grams[0]}

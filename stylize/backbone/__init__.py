"""The feature network: VGG architecture + weights + input convention, as one module."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch
from torch import nn

from stylize.backbone.preprocess import CONVENTIONS, Normalize
from stylize.backbone.vgg import ARCHITECTURES, VGGFeatures, layer_names, random_state_dict

TINY_WIDTHS: tuple[int, ...] = (8, 16, 24, 32, 32)

__all__ = [
    "ARCHITECTURES", "CONVENTIONS", "Backbone", "deepest_layer", "load_backbone", "shape_backbone", "tiny_backbone",
]


def deepest_layer(arch: str, layers: Iterable[str]) -> str:
    """The deepest of ``layers`` in ``arch`` (where the network can be cut)."""
    names = layer_names(arch)
    layers = list(layers)
    unknown = [name for name in layers if name not in names]
    if unknown:
        raise ValueError(f"unknown layer {unknown[0]!r} for {arch}; layers are named like conv4_2, relu4_1, pool4")
    return max(layers, key=names.index)


class Backbone(nn.Module):
    """RGB [0, 1] images in, named VGG activations out.

    Attributes ``arch``, ``convention`` and ``description`` (where the weights came from) are
    reported in a run's settings.
    """

    def __init__(self, features: VGGFeatures, convention: str, description: str = "") -> None:
        super().__init__()
        self.normalize = Normalize(convention)
        self.features = features
        self.convention = convention
        self.description = description
        self.requires_grad_(False)
        self.eval()

    @property
    def arch(self) -> str:
        return self.features.arch

    @property
    def layer_names(self) -> list[str]:
        return self.features.names

    def forward(self, rgb: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        return self.features(self.normalize(rgb), layers)


def load_backbone(
    model: str = "vgg19",
    *,
    layers: Iterable[str],
    weights: str | Path | None = None,
    convention: str = "auto",
    pooling: str = "max",
    allow_download: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> Backbone:
    """Build a VGG cut after the deepest of ``layers`` and load real weights into it.

    Weights are found as described in :func:`stylize.backbone.weights.resolve_weights`; the
    architecture actually loaded may be VGG-16 when only the offline VGG-16 is available (a
    warning says so).
    """
    from stylize.backbone.weights import resolve_weights

    if model not in ARCHITECTURES:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(ARCHITECTURES)}")
    state, info = resolve_weights(
        model, weights_file=weights, convention=convention, allow_download=allow_download, progress=progress
    )
    layers = list(layers)
    if info.arch != model:  # VGG-16 weights stand in for VGG-19: cut at the layers VGG-16 has too; the
        layers = [name for name in layers if name in layer_names(info.arch)]  # caller reports the others
    last = deepest_layer(info.arch, layers) if layers else None
    features = VGGFeatures(info.arch, last_layer=last, pooling=pooling)
    features.load_conv_weights(state)
    where = f" from {info.path}" if info.path else ""
    return Backbone(features, info.convention, f"{info.arch} ({info.convention} weights, {info.source}{where})")


def shape_backbone(arch: str = "vgg19", layers: Iterable[str] | None = None) -> Backbone:
    """A weightless ``arch`` cut after the deepest of ``layers``, on PyTorch's meta device: its layer
    names and widths for planning (:func:`stylize.plan.planned_work`), no memory, no weights."""
    last = deepest_layer(arch, layers) if layers is not None else None
    with torch.device("meta"):
        features = VGGFeatures(arch, last_layer=last)
    return Backbone(features, "torchvision", f"{arch} (shapes only)")


def tiny_backbone(
    arch: str = "vgg19",
    *,
    convention: str = "torchvision",
    seed: int = 0,
    widths: Sequence[int] = TINY_WIDTHS,
    pooling: str = "max",
    layers: Iterable[str] | None = None,
) -> Backbone:
    """A VGG-shaped network with few channels and seeded random weights (tests, quick demos)."""
    last = deepest_layer(arch, layers) if layers is not None else None
    features = VGGFeatures(arch, last_layer=last, pooling=pooling, widths=widths)
    features.load_conv_weights(random_state_dict(arch, widths, seed))
    return Backbone(features, convention, f"tiny random {arch} (seed {seed})")

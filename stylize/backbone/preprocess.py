"""The two input conventions of published VGG weights.

Images inside stylize are always RGB tensors in [0, 1], shape (N, 3, H, W). A
:class:`Normalize` module turns them into what a given set of weights was trained on:

* ``torchvision``: RGB in [0, 1], minus the ImageNet mean, divided by the ImageNet std.
* ``caffe`` (also the Keras release): BGR in [0, 255] minus the ImageNet mean pixel.
"""

from __future__ import annotations

import torch
from torch import nn

CONVENTIONS: tuple[str, ...] = ("torchvision", "caffe")

TORCHVISION_MEAN = (0.485, 0.456, 0.406)  # RGB, [0, 1]
TORCHVISION_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # BGR, [0, 255]


def _check(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown weight convention {convention!r}; choose {' or '.join(CONVENTIONS)}")


class Normalize(nn.Module):
    """RGB [0, 1] -> the network's input convention (differentiable)."""

    def __init__(self, convention: str) -> None:
        super().__init__()
        _check(convention)
        self.convention = convention
        if convention == "torchvision":
            mean, scale, order = TORCHVISION_MEAN, tuple(1.0 / s for s in TORCHVISION_STD), [0, 1, 2]
        else:
            mean = tuple(m / 255.0 for m in reversed(CAFFE_MEAN_BGR))  # RGB order, [0, 1]
            scale, order = (255.0, 255.0, 255.0), [2, 1, 0]
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(scale).view(1, 3, 1, 1), persistent=False)
        self.order = order

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        x = (rgb - self.mean) * self.scale
        return x[:, self.order] if self.order != [0, 1, 2] else x


def normalize(rgb: torch.Tensor, convention: str) -> torch.Tensor:
    """Functional form of :class:`Normalize`."""
    return Normalize(convention).to(rgb.device, rgb.dtype)(rgb)


def denormalize(x: torch.Tensor, convention: str) -> torch.Tensor:
    """Inverse of :func:`normalize`: network input -> RGB [0, 1]."""
    module = Normalize(convention).to(x.device, x.dtype)
    if module.order != [0, 1, 2]:
        x = x[:, module.order]
    return x / module.scale + module.mean

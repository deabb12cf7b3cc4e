"""Stand-in for the six ``torchvision.transforms`` that neural-style 0.5.7 uses (image I/O only).

Not torchvision (see the package docstring). Each class follows torchvision's behaviour for the
inputs neural-style gives it:

* ``Resize(size)``: on a PIL image, ``size`` an ``(h, w)`` tuple resizes to exactly that, an int
  resizes the shorter side to it keeping the aspect ratio; bilinear, as torchvision's default
  (which calls PIL's ``resize`` with ``BILINEAR`` for PIL inputs).
* ``ToTensor()``: PIL RGB -> float tensor (C, H, W) in [0, 1].
* ``Normalize(mean, std)``: ``(x - mean) / std`` per channel of a (C, H, W) tensor.
* ``Lambda(fn)``, ``Compose(list)``.
* ``ToPILImage()``: float (C, H, W) in [0, 1] -> ``x.mul(255).byte()`` -> PIL RGB (truncating, as
  torchvision does).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image


class Compose:
    def __init__(self, transforms: Sequence[Callable[[Any], Any]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: Any) -> Any:
        for t in self.transforms:
            x = t(x)
        return x


class Lambda:
    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def __call__(self, x: Any) -> Any:
        return self.fn(x)


class Resize:
    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = size

    def __call__(self, img: Image.Image) -> Image.Image:
        if isinstance(self.size, int):
            w, h = img.size
            short, long = (w, h) if w <= h else (h, w)
            new_short, new_long = self.size, int(self.size * long / short)
            size = (new_short, new_long) if w <= h else (new_long, new_short)
        else:
            size = (int(self.size[1]), int(self.size[0]))  # torchvision takes (h, w); PIL wants (w, h)
        return img.resize(size, Image.BILINEAR)


class ToTensor:
    def __call__(self, img: Image.Image) -> torch.Tensor:
        a = np.asarray(img.convert("RGB"), dtype=np.uint8)
        return torch.from_numpy(a.copy()).permute(2, 0, 1).float().div(255)


class Normalize:
    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x)) / self.std.to(x)


class ToPILImage:
    def __call__(self, x: torch.Tensor) -> Image.Image:
        a = x.detach().cpu().mul(255).byte().permute(1, 2, 0).numpy()
        return Image.fromarray(a, "RGB")

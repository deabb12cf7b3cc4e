"""VGG-16 and VGG-19 feature extractors with the layer names of the paper.

The convolutional part is built as ``features``, an ``nn.Sequential`` with the same indices
as torchvision's VGG, so torchvision state dicts (``features.0.weight`` ...) load as they are.
Each module also has a paper name (``conv1_1``, ``relu1_1``, ``pool1`` ...), and the network
is cut right after the deepest layer that a run uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

# Number of 3x3 convolutions in each of the five blocks.
BLOCKS: dict[str, tuple[int, ...]] = {
    "vgg16": (2, 2, 3, 3, 3),
    "vgg19": (2, 2, 4, 4, 4),
}
# Output channels of each block in the real networks.
WIDTHS: tuple[int, ...] = (64, 128, 256, 512, 512)
ARCHITECTURES: tuple[str, ...] = tuple(BLOCKS)


def layer_names(arch: str) -> list[str]:
    """Paper names of every module of ``features``, in order (index i is ``features.i``)."""
    if arch not in BLOCKS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(BLOCKS)}")
    names: list[str] = []
    for block, convs in enumerate(BLOCKS[arch], start=1):
        for conv in range(1, convs + 1):
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
        names.append(f"pool{block}")
    return names


def conv_names(arch: str) -> list[str]:
    """Paper names of the convolutions only (``conv1_1`` ...), in order."""
    return [n for n in layer_names(arch) if n.startswith("conv")]


def conv_state_keys(arch: str) -> dict[str, str]:
    """Map each convolution's paper name to its state-dict prefix (``conv1_1`` -> ``features.0``)."""
    return {n: f"features.{i}" for i, n in enumerate(layer_names(arch)) if n.startswith("conv")}


class VGGFeatures(nn.Module):
    """The convolutional part of VGG, cut after ``last_layer``.

    ``forward(x, layers)`` returns a dict of the requested layers' activations. ``x`` is the
    already-normalized input (see :mod:`stylize.backbone.preprocess`).
    """

    def __init__(
        self,
        arch: str = "vgg19",
        *,
        last_layer: str | None = None,
        pooling: str = "max",
        widths: Sequence[int] = WIDTHS,
    ) -> None:
        super().__init__()
        names = layer_names(arch)
        if last_layer is not None and last_layer not in names:
            raise ValueError(f"unknown layer {last_layer!r} for {arch}")
        if pooling not in ("max", "average"):
            raise ValueError(f"unknown pooling {pooling!r}; choose max or average")
        self.arch = arch
        self.pooling = pooling
        self.widths = tuple(widths)
        modules: list[nn.Module] = []
        channels = 3
        for name in names:
            block = int(name[4]) - 1  # "conv1_1", "relu1_1", "pool1"
            if name.startswith("conv"):
                out = self.widths[block]
                modules.append(nn.Conv2d(channels, out, kernel_size=3, padding=1))
                channels = out
            elif name.startswith("relu"):
                modules.append(nn.ReLU(inplace=False))
            else:
                pool = nn.MaxPool2d if pooling == "max" else nn.AvgPool2d
                modules.append(pool(kernel_size=2, stride=2))
            if name == last_layer:
                break
        self.names = names[: len(modules)]
        self.features = nn.Sequential(*modules)
        self.requires_grad_(False)
        self.eval()

    @property
    def last_layer(self) -> str:
        return self.names[-1]

    def forward(self, x: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        wanted = set(layers)
        unknown = wanted - set(self.names)
        if unknown:
            raise ValueError(f"layers not in this network: {', '.join(sorted(unknown))}")
        out: dict[str, torch.Tensor] = {}
        for name, module in zip(self.names, self.features, strict=True):
            x = module(x)
            if name in wanted:
                out[name] = x
                if len(out) == len(wanted):
                    break
        return out

    def load_conv_weights(self, state: dict[str, torch.Tensor]) -> None:
        """Load ``features.N.weight/bias`` entries for the convolutions this cut network has.

        Extra keys (deeper layers, the classifier) are ignored; missing or mis-shaped ones raise
        ``ValueError`` naming the layer.
        """
        keys = conv_state_keys(self.arch)
        for name in self.names:
            if not name.startswith("conv"):
                continue
            prefix = keys[name]
            conv = self.features[int(prefix.split(".")[1])]
            for part in ("weight", "bias"):
                key = f"{prefix}.{part}"
                if key not in state:
                    raise ValueError(f"missing {key} ({name})")
                value = state[key]
                target = getattr(conv, part)
                if tuple(value.shape) != tuple(target.shape):
                    raise ValueError(
                        f"{key} ({name}) has shape {tuple(value.shape)}, expected {tuple(target.shape)}"
                    )
                with torch.no_grad():
                    target.copy_(value.to(target.dtype))


def random_state_dict(arch: str, widths: Sequence[int] = WIDTHS, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded He-initialized weights in the torchvision key layout (tests and tiny demos)."""
    gen = torch.Generator().manual_seed(seed)
    net = VGGFeatures(arch, widths=widths)
    state: dict[str, torch.Tensor] = {}
    for _name, prefix in conv_state_keys(arch).items():
        conv = net.features[int(prefix.split(".")[1])]
        fan_in = conv.in_channels * 9
        state[f"{prefix}.weight"] = torch.randn(conv.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5
        state[f"{prefix}.bias"] = torch.randn(conv.bias.shape, generator=gen) * 0.01
    return state

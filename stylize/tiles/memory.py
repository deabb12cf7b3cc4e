"""The memory model: what one optimizer step costs, the default budget, the largest tile that fits.

Memory of a whole-image optimizer step grows with the pixel count (VGG activations kept for the
backward pass, about 3.6 KB per pixel for VGG-16 up to relu5_1, plus the L-BFGS history). Above a
memory budget a scale is refined in overlapping tiles instead (:mod:`stylize.plan` decides which);
see ``docs/highres.md``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable

import torch

from stylize.backbone import Backbone
from stylize.features import ALIGN, layer_strides, layer_widths

MIN_TILE = 256  # smallest tile the automatic sizing picks
GIB = 1 << 30

# --- calibrated with bench/bench_memory.py --probe (VGG-16 to relu5_1, CPU, float32, with
# stylize.runtime's allocator settings): peak RSS 0.58, 1.17, 2.11, 3.72 and 5.70 GiB at 256², 512²,
# 768², 1024² and 1280² px, a slope of about 3.6 KB per pixel. The model is set ~8% above.
#: bytes per activation float kept for the backward pass, with autograd's transient buffers and
#: the allocator's slack (4 bytes per float x 1.6)
ACTIVATION_FACTOR = 4.0 * 1.6
#: process baseline: Python, PyTorch runtime, VGG-16 weights to relu5_1 (fitted intercept 0.2-0.35 GB)
FIXED_BYTES = 400 << 20


def activation_floats_per_pixel(backbone: Backbone) -> float:
    """Floats per input pixel that one forward pass of the (cut) network produces: Σ channels /
    stride² over its modules, with the input (VGG-16 to relu5_1: 565, VGG-19: 613)."""
    total, stride, last = 3.0, 1, 3  # the input itself
    for name, module in zip(backbone.layer_names, backbone.features.features, strict=True):
        if name.startswith("pool"):
            stride *= 2
            channels = last
        else:
            channels = getattr(module, "out_channels", None) or last  # relu keeps the conv's width
        last = channels
        total += channels / stride**2
    return total


def step_bytes(backbone: Backbone, pixels: int, *, history: int = 50) -> int:
    """Estimated peak memory of optimizing a ``pixels``-pixel image (or tile with its context):

    ``FIXED_BYTES + pixels * (ACTIVATION_FACTOR * activation_floats_per_pixel + 12 * (2 * history + 6))``

    — activations kept for the backward pass (and autograd's transient buffers) plus the L-BFGS
    history (two RGB float vectors per remembered step) and a few working copies of the image.
    VGG-16 to relu5_1: 3.7 GB per megapixel plus the L-BFGS history (1.2 GB per megapixel at the
    default 50 steps of history), about 8% above the measured peak RSS. See docs/highres.md.
    """
    per_pixel = ACTIVATION_FACTOR * activation_floats_per_pixel(backbone) + 12 * (2 * history + 6)
    return int(FIXED_BYTES + pixels * per_pixel)


def content_floats_per_pixel(backbone: Backbone, content_layers: Iterable[str]) -> float:
    """Floats per image pixel of the content feature targets: Σ channels / stride² over the content
    layers (VGG relu4_2: 8; relu2_2, the default: 32; both: 40)."""
    strides = layer_strides(backbone)
    widths = layer_widths(backbone)
    return sum(widths[k] / strides[k] ** 2 for k in dict.fromkeys(content_layers) if k in widths)


def buffer_bytes_per_pixel(backbone: Backbone, content_layers: Iterable[str], num_styles: int, *,
                           content_per_tile: bool = False) -> float:
    """Whole-image buffers of a tiled scale per output pixel (float32 unless said): the content and
    style image(s) of the scale, the canvas (the upsampled start, refined in place), the blend
    weight sum, the content feature targets (none when ``content_per_tile``: each tile computes its
    own, see :func:`tile_extra_bytes_per_pixel`), and 8 bytes of 8-bit image copies.

    Counted high on purpose at the largest sizes: with targets per tile the content image is kept in
    8 bits (3 bytes, not 12), and style images are bounded at 4 MP (:data:`stylize.plan.MAX_STYLE_PIXELS`),
    not the output's area. At 8192 px that is ~0.8 GiB of the model left unused, which the tile
    steps' in-run overhead takes up: a tile step inside a run costs 0.5-0.9 GiB more than the same
    step alone (allocator state; BENCHMARKS.md, "High resolution")."""
    content = 0.0 if content_per_tile else content_floats_per_pixel(backbone, content_layers)
    return 4.0 * (3 * (2 + num_styles) + 1 + content) + 8


def tile_extra_bytes_per_pixel(backbone: Backbone, content_layers: Iterable[str], *, content_per_tile: bool) -> float:
    """What a tile holds beside its optimizer step (:func:`step_bytes`), per pixel of the tile with its
    context: its own content targets when they are computed per tile, else nothing (the tile's
    targets are a view of the whole-image ones, counted in :func:`buffer_bytes_per_pixel`)."""
    return 4.0 * content_floats_per_pixel(backbone, content_layers) if content_per_tile else 0.0


def physical_memory() -> int | None:
    """Bytes of RAM of this machine, or None when the OS does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def default_memory_budget(device: torch.device) -> int:
    """The budget when ``--max-memory`` is not given: 80% of the free memory of a CUDA GPU,
    else a quarter of the machine's RAM (8 GiB when unknown)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(0.8 * free)
    ram = physical_memory()
    return ram // 4 if ram else 8 * GIB


#: tiled scales are planned within this share of the budget: the model counts the tile's step and
#: the whole-image buffers, and a tiled 4096 px run with every default still peaked 6% above it
#: (6.25 GiB measured against 5.89 GiB planned; BENCHMARKS.md, "High resolution"): the tiled loop's
#: own copies (the blend, the canvas update) and the allocator's slack between tiles are not in it
TILED_BUDGET_SHARE = 0.92


def auto_tile(backbone: Backbone, budget: float, margin: int, *, history: int, extra_per_pixel: float = 0.0) -> int:
    """The largest tile side (a multiple of 16) whose optimizer step, with ``margin`` px of context
    and ``extra_per_pixel`` bytes more per pixel of it, fits in ``budget`` bytes; 0 when not even a
    :data:`MIN_TILE` tile does."""
    per_pixel = step_bytes(backbone, 1, history=history) - FIXED_BYTES + extra_per_pixel
    pixels = max(0.0, budget - FIXED_BYTES) / per_pixel
    tile = ALIGN * math.floor((math.sqrt(pixels) - 2 * margin) / ALIGN)
    return tile if tile >= MIN_TILE else 0


def least_tiled_budget(backbone: Backbone, buffers: float, margin: int, *, history: int,
                       extra_per_pixel: float = 0.0) -> int:
    """Bytes a tiled scale needs at least: its whole-image ``buffers`` and one :data:`MIN_TILE` tile
    (with ``extra_per_pixel`` bytes more per pixel of it)."""
    pixels = (MIN_TILE + 2 * margin) ** 2
    return int(buffers + step_bytes(backbone, pixels, history=history) + extra_per_pixel * pixels)


__all__ = [
    "ACTIVATION_FACTOR", "FIXED_BYTES", "GIB", "MIN_TILE", "TILED_BUDGET_SHARE", "activation_floats_per_pixel",
    "auto_tile", "buffer_bytes_per_pixel", "content_floats_per_pixel", "default_memory_budget", "least_tiled_budget",
    "physical_memory", "step_bytes", "tile_extra_bytes_per_pixel",
]

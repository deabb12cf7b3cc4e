"""Feature maps of large images in bounded memory, and the geometry of the network's feature grid.

Target features of images above :data:`CHUNK_PIXELS` (content feature maps, style statistics) are
computed chunk by chunk, each chunk with :data:`CHUNK_MARGIN` pixels of context, so that one chunk's
activations are alive at a time (at 8192 px a whole-image forward pass needs tens of gigabytes).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

from stylize.backbone import Backbone
from stylize.geometry import Box
from stylize.imageio import to_float

ALIGN = 16  # VGG's deepest pooling stride used (pool4 -> relu5_x): chunk and tile origins are multiples of this
CHUNK_PIXELS = 1 << 21  # images above this many pixels get their targets in chunks (chunked_features)
CHUNK_MARGIN = 96  # context around each chunk when computing target features


def partition(length: int, chunk: int) -> list[tuple[int, int]]:
    """Non-overlapping spans of ``chunk`` px covering ``0..length``; a remainder shorter than half a
    chunk joins the last span (so no span is too thin for the network's poolings)."""
    spans = [(s, min(length, s + chunk)) for s in range(0, length, chunk)]
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] < chunk // 2:
        spans[-2:] = [(spans[-2][0], length)]
    return spans


def layer_strides(backbone: Backbone) -> dict[str, int]:
    """Pixels per feature position of every layer of the (cut) network: 1, 2, 4, 8, 16."""
    strides, stride = {}, 1
    for name in backbone.layer_names:
        if name.startswith("pool"):
            stride *= 2
        strides[name] = stride
    return strides


def chunked_features(
    backbone: Backbone, image: torch.Tensor, layers: Iterable[str], *, chunk: int = 1024, margin: int = CHUNK_MARGIN,
) -> Iterator[tuple[Box, dict[str, torch.Tensor]]]:
    """Features of ``image`` computed chunk by chunk: ``(box, {layer: features of box})``.

    Each chunk is computed with ``margin`` pixels of context around it and then cropped, so the
    chunks tile the whole image's feature maps exactly and differ from a whole-image forward
    pass only through the network's receptive field beyond the margin (relative error ~1e-3).
    """
    layers = list(layers)
    if chunk % ALIGN or margin % ALIGN:
        raise ValueError(f"chunk and margin must be multiples of {ALIGN}")
    strides = layer_strides(backbone)
    height, width = image.shape[-2:]
    for y0, y1 in partition(height, chunk):
        for x0, x1 in partition(width, chunk):
            box = Box(y0, x0, y1, x1)
            crops = box_features(backbone, image, box, layers, margin=margin, strides=strides)
            yield box, crops  # the caller drops ``crops`` before asking for the next chunk: one chunk alive at a time
            del crops


def box_features(backbone: Backbone, image: torch.Tensor, box: Box, layers: Iterable[str], *,
                 margin: int = CHUNK_MARGIN, strides: dict[str, int] | None = None) -> dict[str, torch.Tensor]:
    """Features of the pixels of ``box`` (origin a multiple of :data:`ALIGN`) of ``image``: one
    forward pass, without autograd, over the box with ``margin`` px of context around it (clipped
    to the image), cropped to the box's feature positions. One chunk of :func:`chunked_features`;
    also the per-tile content targets (:class:`stylize.loss.content.TiledContentLoss`). An 8-bit
    ``image`` is converted box by box (:func:`stylize.imageio.to_float`)."""
    strides = strides if strides is not None else layer_strides(backbone)
    height, width = image.shape[-2:]
    window = box.grow(margin, height, width)
    with torch.no_grad():  # not a decorator on chunked_features: torch's generator wrapper would keep a chunk alive
        feats = backbone(to_float(window.crop(image)), layers)
    inner = Box(box.y0 - window.y0, box.x0 - window.x0, box.y1 - window.y0, box.x1 - window.x0)
    return {k: inner.crop_features(v, strides[k]) for k, v in feats.items()}


@torch.no_grad()
def chunked_feature_maps(backbone: Backbone, image: torch.Tensor, layers: Iterable[str], **kw: int
                         ) -> dict[str, torch.Tensor]:
    """Whole feature maps of a large image, assembled from :func:`chunked_features`."""
    layers = list(layers)
    strides = layer_strides(backbone)
    height, width = image.shape[-2:]
    out: dict[str, torch.Tensor] = {}
    for box, feats in chunked_features(backbone, image, layers, **kw):
        for k, v in feats.items():
            if k not in out:
                s = strides[k]
                out[k] = v.new_zeros((v.shape[0], v.shape[1], height // s, width // s))
            box.crop_features(out[k], strides[k]).copy_(v)
        del feats, v  # before the next chunk's forward pass
    return out


@torch.no_grad()
def chunked_grams(backbone: Backbone, image: torch.Tensor, layers: Iterable[str], **kw: int) -> dict[str, torch.Tensor]:
    """Gram matrices (as :func:`stylize.losses.gram_matrix`) of a large image, summed chunk by chunk."""
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    for _box, feats in chunked_features(backbone, image, layers, **kw):
        for k, v in feats.items():
            n, c, h, w = v.shape
            flat = v.reshape(n, c, h * w)
            sums[k] = sums.get(k, 0) + flat @ flat.transpose(1, 2)
            counts[k] = counts.get(k, 0) + h * w
        del feats, v, flat  # before the next chunk's forward pass
    return {k: sums[k] / max(1, counts[k]) for k in sums}


def layer_widths(backbone: Backbone) -> dict[str, int]:
    """Channels of every layer of the (cut) network."""
    widths, last = {}, 3
    for name, module in zip(backbone.layer_names, backbone.features.features, strict=True):
        last = getattr(module, "out_channels", None) or last
        widths[name] = last
    return widths


__all__ = [
    "ALIGN", "CHUNK_MARGIN", "CHUNK_PIXELS", "box_features", "chunked_feature_maps", "chunked_features",
    "chunked_grams", "layer_strides", "layer_widths", "partition",
]

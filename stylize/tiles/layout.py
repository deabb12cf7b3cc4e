"""Tile layout and feathered blending.

* **Layout** (:class:`TileLayout`): tiles of at most ``tile`` x ``tile`` pixels whose origins are
  multiples of 16, the stride of VGG's fourth pooling layer, so a tile's feature maps line up
  exactly with the whole image's at every layer up to relu5_x. Neighbouring tiles overlap by at
  least ``overlap`` pixels (about that much: the tile sides shrink to fit); the last tile of a row
  or column reaches the image edge (and may be up to 15 px longer).
* **Feathered blending** (:meth:`TileLayout.weights`): a sin² ramp over each overlap, weights
  normalized to sum to one at every pixel. The final image is ``Σ wᵢ · tileᵢ``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch

from stylize.features import ALIGN
from stylize.geometry import Box

DEFAULT_OVERLAP = 128


def axis_spans(length: int, tile: int, overlap: int, align: int = ALIGN) -> list[tuple[int, int]]:
    """Spans ``[start, end)`` of overlapping tiles covering ``0..length`` along one axis.

    As few spans as tiles of at most ``tile`` pixels allow; their common length is then shrunk to
    the smallest multiple of ``align`` that still gives overlaps of at least ``overlap`` (so the
    overlaps stay near ``overlap`` instead of growing when the image is just over a tile).
    Starts are multiples of ``align``; the last span ends at ``length`` (up to ``align - 1`` px
    longer than the others). One span when ``length <= tile``.
    """
    if tile % align or overlap % align or tile < overlap + 2 * align:
        raise ValueError(f"tile ({tile}) and overlap ({overlap}) must be multiples of {align}, "
                         f"with tile >= overlap + {2 * align}")
    if length <= tile:
        return [(0, length)]
    count = 1 + math.ceil((length - tile) / (tile - overlap))
    while True:
        size = min(tile, align * math.ceil((length + (count - 1) * overlap) / count / align))
        travel = length - size
        # evenly spread starts, rounded down to the grid; one more span if rounding cut an overlap
        starts = [align * math.floor(i * travel / (count - 1) / align) for i in range(count)]
        if size > overlap and all(b - a <= size - overlap for a, b in zip(starts, starts[1:], strict=False)):
            break
        count += 1
    spans = [(s, s + size) for s in starts[:-1]]
    spans.append((starts[-1], length))
    return spans


def _ramp(n: int, rising: bool) -> torch.Tensor:
    """sin² ramp over ``n`` pixels (0 -> 1 when rising), sampled at pixel centres."""
    t = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    r = torch.sin(t * (math.pi / 2)) ** 2
    return r if rising else r.flip(0)


def axis_weights(spans: Sequence[tuple[int, int]], length: int) -> list[torch.Tensor]:
    """Blend weights of each span along one axis: 1 inside, a sin² ramp over each overlap with a
    neighbour, no fade at the image border; normalized so the weights sum to one at every pixel."""
    raw = []
    for i, (start, end) in enumerate(spans):
        w = torch.ones(end - start, dtype=torch.float64)
        if i > 0:
            left = spans[i - 1][1] - start  # overlap with the previous span
            w[:left] *= _ramp(left, rising=True)
        if i + 1 < len(spans):
            right = end - spans[i + 1][0]
            w[end - start - right:] *= _ramp(right, rising=False)
        raw.append(w)
    total = torch.zeros(length, dtype=torch.float64)
    for (start, end), w in zip(spans, raw, strict=True):
        total[start:end] += w
    return [(w / total[start:end]).float() for (start, end), w in zip(spans, raw, strict=True)]


@dataclass(frozen=True)
class TileLayout:
    """Overlapping tiles covering a ``height`` x ``width`` image, in raster order."""

    height: int
    width: int
    tile: int
    overlap: int
    rows: tuple[tuple[int, int], ...] = field(init=False)
    cols: tuple[tuple[int, int], ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", tuple(axis_spans(self.height, self.tile, self.overlap)))
        object.__setattr__(self, "cols", tuple(axis_spans(self.width, self.tile, self.overlap)))

    @property
    def boxes(self) -> list[Box]:
        return [Box(y0, x0, y1, x1) for y0, y1 in self.rows for x0, x1 in self.cols]

    def __len__(self) -> int:
        return len(self.rows) * len(self.cols)

    def weights(self) -> list[torch.Tensor]:
        """One (H_tile, W_tile) weight map per box (same order); they sum to one over the image."""
        return list(self.iter_weights())

    def iter_weights(self) -> Iterator[torch.Tensor]:
        """:meth:`weights` one at a time (at 8192 px all of them together are 4-6 bytes per pixel)."""
        wy = axis_weights(self.rows, self.height)
        wx = axis_weights(self.cols, self.width)
        for a in wy:
            for b in wx:
                yield a[:, None] * b[None, :]

    def borders(self) -> tuple[list[int], list[int]]:
        """Rows and columns where some tile starts or ends inside the image (candidate seams):
        a seam at ``x`` lies between pixel ``x - 1`` and pixel ``x``."""
        ys = sorted({v for span in self.rows for v in span} - {0, self.height})
        xs = sorted({v for span in self.cols for v in span} - {0, self.width})
        return ys, xs


__all__ = ["DEFAULT_OVERLAP", "TileLayout", "axis_spans", "axis_weights"]

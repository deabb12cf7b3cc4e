"""High-resolution output in bounded memory: overlapping tiles refined against global targets.

Memory of a whole-image optimizer step grows with the pixel count (VGG activations kept for the
backward pass, about 3.6 KB per pixel for VGG-16 up to relu5_1, plus the L-BFGS history). Above a
memory budget a scale is refined in overlapping tiles instead:

* **Layout** (:class:`TileLayout`): tiles of at most ``tile`` x ``tile`` pixels whose origins are
  multiples of 16, the stride of VGG's fourth pooling layer, so a tile's feature maps line up
  exactly with the whole image's at every layer up to relu5_x. Neighbouring tiles overlap by at
  least ``overlap`` pixels (about that much: the tile sides shrink to fit); the last tile of a row
  or column reaches the image edge (and may be up to 15 px longer).
* **Global targets**: every tile is optimized against the Gram targets of the *whole* style image
  at this scale and against its crop of the *whole* content image's feature maps (both computed
  in chunks by :func:`chunked_features`), so all tiles share one style and one content.
* **Context**: the network sees the tile plus a margin of the surrounding canvas (frozen), and the
  losses use only the tile's own feature positions, so a tile's edges are not computed against
  zero padding.
* **Sequential refinement over the running canvas**: each tile starts from the current blend of
  the tiles done so far (not from the stale upsampled image): the canvas is kept as the
  normalized partial blend ``Σ_{j<=k} wⱼ·tileⱼ / Σ_{j<=k} wⱼ`` (the upsampled image where no tile
  has been yet), so a tile's overlap with the next one holds its full result, not a fade to the
  stale image.
* **Feathered blending** (:meth:`TileLayout.weights`): a sin² ramp over each overlap, weights
  normalized to sum to one at every pixel. The final image is ``Σ wᵢ · tileᵢ``.

The memory model (:func:`step_bytes`) and the automatic schedule (:func:`plan_schedule`) decide
which scales run on the whole image and which are tiled; see ``docs/highres.md``.
"""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
import functools
import math
import os
import platform
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from stylize.backbone import Backbone
from stylize.optimize import OptimizeResult, StepRecord, optimize
from stylize.options import scale_steps

if TYPE_CHECKING:
    from stylize.objective import Objective

ALIGN = 16  # VGG's deepest pooling stride used (pool4 -> relu5_x): tile origins are multiples of this
MIN_TILE = 256  # smallest tile the automatic sizing picks
MIN_GLOBAL_SIDE = 32  # smallest long side of the whole-image pass added in front of a tiled schedule
DEFAULT_OVERLAP = 128
DEFAULT_MARGIN = 32  # context around a tile while it is optimized (frozen canvas pixels)
CHUNK_PIXELS = 1 << 21  # images above this many pixels get their targets in chunks (chunked_features)
CHUNK_MARGIN = 96  # context around each chunk when computing target features
GIB = 1 << 30

# --- memory model, calibrated with bench/bench_memory.py --probe (VGG-16 to relu5_1, CPU, float32,
# with stylize.runtime's allocator settings): peak RSS 0.58, 1.17, 2.11, 3.72 and 5.70 GiB at
# 256², 512², 768², 1024² and 1280² px, a slope of about 3.6 KB per pixel. The model is set ~8% above.
#: bytes per activation float kept for the backward pass, with autograd's transient buffers and
#: the allocator's slack (4 bytes per float x 1.6)
ACTIVATION_FACTOR = 4.0 * 1.6
#: process baseline: Python, PyTorch runtime, VGG-16 weights to relu5_1 (fitted intercept 0.2-0.35 GB)
FIXED_BYTES = 400 << 20


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class Box:
    """A rectangle of pixels ``[y0, y1) x [x0, x1)``."""

    y0: int
    x0: int
    y1: int
    x1: int

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def area(self) -> int:
        return self.height * self.width

    def grow(self, margin: int, height: int, width: int) -> Box:
        """This box with ``margin`` pixels more on every side, clipped to a ``height`` x ``width`` image."""
        return Box(max(0, self.y0 - margin), max(0, self.x0 - margin),
                   min(height, self.y1 + margin), min(width, self.x1 + margin))

    def crop(self, t: torch.Tensor) -> torch.Tensor:
        return t[..., self.y0:self.y1, self.x0:self.x1]


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


def partition(length: int, chunk: int) -> list[tuple[int, int]]:
    """Non-overlapping spans of ``chunk`` px covering ``0..length``; a remainder shorter than half a
    chunk joins the last span (so no span is too thin for the network's poolings)."""
    spans = [(s, min(length, s + chunk)) for s in range(0, length, chunk)]
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] < chunk // 2:
        spans[-2:] = [(spans[-2][0], length)]
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


def seam_ratio(image: torch.Tensor, layout: TileLayout) -> float:
    """How visible the tile borders of ``image`` (1, 3, H, W) are: the mean |gradient| across the
    lines where a tile starts or ends, over the mean |gradient| across the other lines of the same
    phase of the 16-px grid (the borders all lie on that grid, and VGG's strided pooling gives
    stylized images a grid-periodic texture, so lines of other phases are not comparable).
    About 1 without seams; a visible seam pushes it well above."""
    image = image.detach().clamp(0, 1)
    ys, xs = layout.borders()
    border, other = [], []
    for dim, lines in ((3, xs), (2, ys)):
        if not lines:
            continue
        grad = image.diff(dim=dim).abs().mean(dim=[d for d in range(4) if d != dim])
        position = torch.arange(1, grad.numel() + 1)  # line i lies between pixels i - 1 and i
        is_border = torch.zeros(grad.numel(), dtype=torch.bool)
        is_border[[line - 1 for line in lines]] = True
        border.append(grad[is_border])
        other.append(grad[~is_border & (position % ALIGN == 0)])
    if not border:
        raise ValueError("the layout has a single tile: no borders")
    return (torch.cat(border).mean() / torch.cat(other).mean()).item()


# --------------------------------------------------------------------------- features in chunks


def layer_strides(backbone: Backbone) -> dict[str, int]:
    """Pixels per feature position of every layer of the (cut) network: 1, 2, 4, 8, 16."""
    strides, stride = {}, 1
    for name in backbone.layer_names:
        if name.startswith("pool"):
            stride *= 2
        strides[name] = stride
    return strides


def crop_features(t: torch.Tensor, box: Box, stride: int) -> torch.Tensor:
    """The feature positions of pixel box ``box`` (origin a multiple of ``stride``) in map ``t``."""
    return t[..., box.y0 // stride:box.y1 // stride, box.x0 // stride:box.x1 // stride]


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
            window = box.grow(margin, height, width)
            with torch.no_grad():  # not a decorator: torch's generator wrapper would keep the last chunk alive
                feats = backbone(window.crop(image), layers)
            inner = Box(y0 - window.y0, x0 - window.x0, y1 - window.y0, x1 - window.x0)
            crops = {k: crop_features(v, inner, strides[k]) for k, v in feats.items()}
            del feats  # the caller drops ``crops`` before asking for the next chunk: one chunk alive at a time
            yield box, crops
            del crops


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
            crop_features(out[k], box, strides[k]).copy_(v)
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


# --------------------------------------------------------------------------- memory model


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


def buffer_bytes_per_pixel(backbone: Backbone, content_layers: Iterable[str], num_styles: int) -> float:
    """Whole-image buffers of a tiled scale per output pixel (float32 unless said): the content and
    style image(s) of the scale, the canvas (the upsampled start, refined in place), the blend
    weight sum, the content feature targets, and 8 bytes of 8-bit image copies."""
    strides = layer_strides(backbone)
    widths = _layer_widths(backbone)
    content = sum(widths[k] / strides[k] ** 2 for k in content_layers if k in widths)
    return 4.0 * (3 * (2 + num_styles) + 1 + content) + 8


def _layer_widths(backbone: Backbone) -> dict[str, int]:
    widths, last = {}, 3
    for name, module in zip(backbone.layer_names, backbone.features.features, strict=True):
        last = getattr(module, "out_channels", None) or last
        widths[name] = last
    return widths


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


# --------------------------------------------------------------------------- schedule


def long_side_size(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """(width, height) after scaling ``size`` to ``long_side`` (as stylize.imageio.resize_to_long_side)."""
    width, height = size
    scale = long_side / max(width, height)
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    return (long_side, h) if width >= height else (w, long_side)


@dataclass
class Schedule:
    """The scales of a run, which of them are tiled, and the planned work (pixel-steps) of each."""

    sizes: list[tuple[int, int]]  # (width, height) of each scale
    layouts: list[TileLayout | None]  # None: whole image
    work: list[float]
    budget: int  # bytes
    steps: list[int]  # most optimizer steps per scale (per tile on tiled scales)
    margin: int = DEFAULT_MARGIN

    def describe(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = []
        for (w, h), layout, steps in zip(self.sizes, self.layouts, self.steps, strict=True):
            row: dict[str, object] = {"width": w, "height": h, "steps": steps, "tiles": 0}
            if layout is not None:
                first = layout.boxes[0]
                row.update(tiles=len(layout), tile=layout.tile, tile_width=first.width, tile_height=first.height,
                           overlap=layout.overlap, margin=self.margin)
            rows.append(row)
        return rows


def plan_schedule(
    content_size: tuple[int, int],
    sizes: Sequence[tuple[int, int]],
    backbone: Backbone,
    *,
    steps: int,
    tile_steps: int = 0,
    max_memory: float | None = None,
    tile_size: int = 0,
    overlap: int = DEFAULT_OVERLAP,
    margin: int = DEFAULT_MARGIN,
    content_layers: Sequence[str] = ("relu4_2",),
    num_styles: int = 1,
    device: torch.device | str = "cpu",
    add_global_pass: bool = True,
) -> Schedule:
    """Decide, scale by scale, whether the whole image fits the memory budget.

    ``max_memory`` is in GiB (default :func:`default_memory_budget`). With ``tile_size`` > 0 a
    scale is tiled when its long side exceeds ``tile_size``; otherwise when :func:`step_bytes` of
    the whole image exceeds the budget, and the tile side is then the largest multiple of 16 whose
    tile (with its context margin) fits beside the whole-image buffers. With ``add_global_pass``,
    a first scale too big for one piece gets a whole-image scale in front of it (its size halved
    until it fits), so tiles always refine an image that was stylized as a whole.
    """
    device = torch.device(device)
    budget = int(max_memory * GIB) if max_memory else default_memory_budget(device)
    tile_steps = tile_steps or steps
    history = min(50, steps)

    def fits_whole(wh: tuple[int, int]) -> bool:
        if tile_size:
            return max(wh) <= tile_size
        return step_bytes(backbone, wh[0] * wh[1], history=history) <= budget

    plans = list(sizes)
    if add_global_pass and plans and not fits_whole(plans[0]):
        side = max(plans[0]) // 2
        while side >= MIN_GLOBAL_SIDE:  # the largest halving that fits whole, if any is not too small
            first = long_side_size(content_size, side)
            if fits_whole(first):
                if min(first) >= 2 * ALIGN:
                    plans.insert(0, first)
                break
            side //= 2

    buffers = buffer_bytes_per_pixel(backbone, content_layers, num_styles)
    layouts: list[TileLayout | None] = []
    work: list[float] = []
    step_counts: list[int] = []
    whole_steps = scale_steps(steps, len(plans))  # coarse to fine: half as many steps at each finer scale
    for (width, height), scale_max in zip(plans, whole_steps, strict=True):
        if fits_whole((width, height)):
            layouts.append(None)
            work.append(float(width * height * scale_max))
            step_counts.append(scale_max)
            continue
        tile = tile_size or _auto_tile(backbone, budget - buffers * width * height, margin,
                                       history=min(50, tile_steps))
        tile = tile_size or max(ALIGN * math.floor(tile / ALIGN), 2 * overlap, MIN_TILE)
        layout = TileLayout(height, width, tile, overlap)
        layouts.append(layout)
        work.append(float(sum(b.grow(margin, height, width).area for b in layout.boxes) * tile_steps))
        step_counts.append(tile_steps)
    return Schedule(plans, layouts, work, budget, step_counts, margin)


def _auto_tile(backbone: Backbone, budget: float, margin: int, *, history: int) -> int:
    per_pixel = step_bytes(backbone, 1, history=history) - FIXED_BYTES
    pixels = max(0.0, budget - FIXED_BYTES) / per_pixel
    tile = ALIGN * math.floor((math.sqrt(pixels) - 2 * margin) / ALIGN)
    if tile < MIN_TILE:
        warnings.warn(
            f"the memory budget ({budget / GIB:.1f} GiB left beside the image buffers) is too small for "
            f"tiles of {MIN_TILE} px; using {MIN_TILE} px tiles (raise --max-memory or set --tile-size)",
            stacklevel=3,
        )
        tile = MIN_TILE
    return tile


# --------------------------------------------------------------------------- tiled optimization


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") else None


def release_free_memory() -> None:
    """Give the heap's free pages back to the OS (glibc ``malloc_trim``; elsewhere nothing).

    Called between tiles: inside :func:`stylize.runtime.run_settings` freed blocks are kept for
    reuse, which saves page faults within a tile but lets a tiled run's resident memory creep up
    from tile to tile (measured at 4096 px: 5.0 GiB at the first tile, 6.3 GiB at the 12th).
    """
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


@dataclass
class TileStep:
    """Where a tiled scale stands: tile ``index`` (from 1) of ``count``, ``done`` pixel-steps of this scale."""

    index: int
    count: int
    done: float


class _ContextBackbone:
    """Runs the backbone on a frozen context window with the tile pasted in; crops to the tile."""

    def __init__(self, backbone: Backbone, window: torch.Tensor, inner: Box, strides: dict[str, int]) -> None:
        self.backbone = backbone
        self.window = window
        self.inner = inner
        self.strides = strides
        self.full = inner.height == window.shape[-2] and inner.width == window.shape[-1]

    def __call__(self, tile: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        if self.full:
            return self.backbone(tile, layers)
        x = self.window.clone()
        self.inner.crop(x).copy_(tile)  # autograd flows from x back into tile
        feats = self.backbone(x, layers)
        return {k: crop_features(v, self.inner, self.strides[k]) for k, v in feats.items()}


def tile_objective(objective: Objective, canvas: torch.Tensor, box: Box, margin: int) -> Objective:
    """The objective of one tile: a copy of the whole-image ``objective`` whose network sees the
    tile inside ``margin`` px of frozen ``canvas`` context, with the content targets (and any
    spatial style masks) cropped to the tile. Style targets and weights are the global ones."""
    strides = layer_strides(objective.backbone)
    height, width = canvas.shape[-2:]
    window = box.grow(margin, height, width)
    inner = Box(box.y0 - window.y0, box.x0 - window.x0, box.y1 - window.y0, box.x1 - window.x0)
    sub = copy.copy(objective)
    sub.backbone = _ContextBackbone(objective.backbone, window.crop(canvas).detach(), inner, strides)  # type: ignore[assignment]
    sub.content_targets = {k: crop_features(v, box, strides[k]) for k, v in objective.content_targets.items()}
    masks = getattr(objective, "style_masks", None)
    if masks:
        sub.style_masks = {k: _crop_mask(v, box, strides.get(k, 1), height, width) for k, v in masks.items()}
    regions = getattr(objective, "style_regions", None)
    if regions is not None:
        sub.style_regions = _crop_regions(regions, box, height, width)
    return sub


def _crop_regions(regions: object, box: Box, height: int, width: int) -> object:
    """Spatial style control (stylize.regions.RegionalStyle) restricted to a tile: its region maps
    at image resolution are cropped; the per-region Gram targets and area weights stay global."""
    maps = getattr(regions, "maps", None)
    if not isinstance(maps, torch.Tensor) or tuple(maps.shape[-2:]) != (height, width):
        raise ValueError("tiling needs region maps at the image's resolution")
    sub = copy.copy(regions)
    sub.maps = box.crop(maps)  # type: ignore[attr-defined]
    if hasattr(sub, "_layer_masks"):
        sub._layer_masks = {}  # type: ignore[attr-defined]  # per-resolution cache of the whole image's masks
    return sub


def _crop_mask(mask: torch.Tensor, box: Box, stride: int, height: int, width: int) -> torch.Tensor:
    if mask.dim() >= 2 and tuple(mask.shape[-2:]) == (height // stride, width // stride):
        return crop_features(mask, box, stride)
    return mask


def optimize_tiled(
    image: torch.Tensor,
    objective: Objective,
    *,
    tile: int = 512,
    overlap: int = DEFAULT_OVERLAP,
    layout: TileLayout | None = None,
    margin: int = DEFAULT_MARGIN,
    steps: int,
    optimizer: str = "lbfgs",
    lr: float | None = None,
    tol: float = 1e-3,
    window: int = 20,
    sequential: bool = True,
    on_step: Callable[[StepRecord, torch.Tensor, TileStep], None] | None = None,
    on_tile: Callable[[int, int, torch.Tensor], None] | None = None,
) -> OptimizeResult:
    """Refine ``image`` tile by tile against the whole-image ``objective`` and blend the tiles.

    ``objective`` holds the global targets: content feature maps of the whole content image at
    this scale (same size as ``image``) and the Gram targets of the whole style image at this
    scale. Each tile (``layout``, or one built from ``tile`` and ``overlap``) is optimized for at
    most ``steps`` steps by :func:`stylize.optimize.optimize` with ``margin`` px of context, starting
    from the running canvas (``sequential``; False starts every tile from ``image``, for
    comparison), and blended in with feathered weights. With ``sequential`` the canvas is
    ``image`` itself, refined in place (pass a copy to keep it). ``on_step(record, canvas, where)`` is
    called after every step, ``on_tile(index, count, canvas)`` after every tile. An interruption
    (Ctrl-C or :class:`~stylize.errors.StopTransfer`) keeps the tiles done so far.
    """
    height, width = image.shape[-2:]
    layout = layout or TileLayout(height, width, tile, overlap)
    if (layout.height, layout.width) != (height, width):
        raise ValueError(f"layout is for {layout.width}x{layout.height}, image is {width}x{height}")
    if margin % ALIGN:
        raise ValueError(f"margin must be a multiple of {ALIGN}")
    strides = layer_strides(objective.backbone)
    coarse = [k for k in objective.layers if strides[k] > ALIGN]
    if coarse:
        raise ValueError(f"layer {coarse[0]} is coarser than the {ALIGN}-px tile grid; use layers up to relu5_x")
    base = image.detach()
    canvas = base if sequential else base.clone()  # the normalized blend of the tiles done so far;
    # the start where none is yet. Sequential: refined in place (``image`` is overwritten), one copy less.
    covered = torch.zeros((1, 1, height, width), dtype=canvas.dtype, device=canvas.device)  # Σ weights so far
    boxes, weights = layout.boxes, layout.iter_weights()
    result = OptimizeResult(image=canvas, best_loss=0.0)
    reasons: list[str] = []
    done = 0.0
    for index, (box, weight) in enumerate(zip(boxes, weights, strict=True), start=1):
        source = canvas if sequential else base
        sub = tile_objective(objective, source, box, margin)
        area = box.grow(margin, height, width).area
        done_before = done

        def step_hook(record: StepRecord, best: torch.Tensor, index: int = index, area: int = area,
                      done_before: float = done_before) -> None:
            if on_step is not None:
                on_step(record, canvas, TileStep(index, len(boxes), done_before + area * record.step))

        part = optimize(box.crop(source).clone(), sub, steps=steps, optimizer=optimizer, lr=lr, tol=tol,
                        window=window, history_size=max(1, min(50, steps)), on_step=step_hook)
        done += area * len(part.history)
        with torch.no_grad():  # canvas <- Σ_{j<=k} w_j tile_j / Σ_{j<=k} w_j on the tile
            w = weight.to(canvas.device, canvas.dtype)
            box.crop(covered).add_(w)
            share = w / box.crop(covered).clamp_min(1e-12)
            box.crop(canvas).add_(share * (part.image - box.crop(canvas)))
        result.history.extend(part.history)
        result.restores += part.restores
        result.best_loss += part.best_loss * weight.sum().item() / (height * width)
        reasons.append(part.stop_reason)
        del sub, part, w, share
        release_free_memory()
        if on_tile is not None:
            on_tile(index, len(boxes), canvas)
        if reasons[-1] in ("interrupted", "stopped"):
            break
    result.image = canvas
    stop = next((r for r in reasons if r in ("interrupted", "stopped")), None)
    result.stop_reason = stop or ("converged" if all(r == "converged" for r in reasons) else
                                  "diverged" if "diverged" in reasons else "max_steps")
    return result


__all__ = [
    "Box", "Schedule", "TileLayout", "TileStep", "axis_spans", "axis_weights", "chunked_feature_maps",
    "chunked_features", "chunked_grams", "default_memory_budget", "layer_strides", "optimize_tiled",
    "plan_schedule", "seam_ratio", "step_bytes", "tile_objective",
]

"""The run plan: every scale of a run, decided once before any optimization starts.

:func:`make_plan` turns the options, the input sizes, the network and the memory budget into a
:class:`RunPlan`: one :class:`ScalePlan` per scale with its size, its step limit, its tile layout
(or none: the whole image in one piece), the sizes of the style images at that scale and its
planned work in pixel-steps. :func:`stylize.transfer` runs it; the progress bar's ETA, the grid,
the web app's work limits and the benchmarks read it instead of re-deriving it.

The pyramid (:mod:`stylize.pyramid`): ``--scales`` gives the long sides, coarse to fine, ``--steps``
the step limit of the first scale and half as many at each next one. The memory model
(:mod:`stylize.tiles.memory`) decides which scales fit whole; the others are tiled, and a first
scale too big for one piece gets a smaller whole-image scale in front of it (with ``--scales auto``).
A tiled scale keeps its content feature targets for the whole image while a tile still fits beside
them; above that (8192 px with the default content layers) each tile computes its own
(``ScalePlan.content_per_tile``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from stylize.backbone import Backbone, shape_backbone
from stylize.errors import OptionError
from stylize.features import ALIGN, CHUNK_MARGIN
from stylize.options import Options
from stylize.pyramid import long_side_size, scale_sizes, scale_steps
from stylize.tiles.layout import TileLayout
from stylize.tiles.memory import (
    GIB,
    MIN_TILE,
    TILED_BUDGET_SHARE,
    auto_tile,
    buffer_bytes_per_pixel,
    default_memory_budget,
    least_tiled_budget,
    step_bytes,
    tile_extra_bytes_per_pixel,
)
from stylize.tiles.refine import DEFAULT_MARGIN

MIN_GLOBAL_SIDE = 32  # smallest long side of the whole-image pass added in front of a tiled schedule
#: style images are used at the content's area, but at most this many pixels: beyond it (prints above
#: ~2500 px) the statistics of the painting at 4 MP guide the finest scales, whose memory stays bounded
MAX_STYLE_PIXELS = 1 << 22


#: a step of the whole objective (network, Gram matrices and the losses' arithmetic, forward and
#: backward) over a step of the bare network, as :func:`measure_step_seconds` times it: 1.20 at
#: 512 px and 1.24 at 1024 px in ``bench/bench_flops.py`` ("stylize objective" against "engine")
OBJECTIVE_OVERHEAD = 1.2


@dataclass(frozen=True)
class ScalePlan:
    """One scale of a run."""

    index: int  # from 0
    size: tuple[int, int]  # (width, height)
    steps: int  # most optimizer steps (per tile when tiled)
    layout: TileLayout | None  # None: the whole image in one piece
    style_sizes: tuple[tuple[int, int], ...]  # (width, height) of each style image at this scale
    work: float  # planned pixel-steps (tiles count with their context margin)
    #: tiled scales whose whole-image content targets do not fit the budget: each tile computes its
    #: own from the content image (:meth:`stylize.loss.ContentLoss.per_tile`)
    content_per_tile: bool = False

    @property
    def tiled(self) -> bool:
        return self.layout is not None

    @property
    def content_target_pixels(self) -> int:
        """Pixels the content targets' forward pass covers: the image, or with targets per tile every
        tile with :data:`stylize.features.CHUNK_MARGIN` px of context."""
        width, height = self.size
        if self.layout is None or not self.content_per_tile:
            return width * height
        return sum(b.grow(CHUNK_MARGIN, height, width).area for b in self.layout.boxes)

    def describe(self, margin: int) -> dict[str, object]:
        width, height = self.size
        row: dict[str, object] = {"width": width, "height": height, "steps": self.steps, "tiles": 0}
        if self.layout is not None:
            first = self.layout.boxes[0]
            row.update(tiles=len(self.layout), tile=self.layout.tile, tile_width=first.width,
                       tile_height=first.height, overlap=self.layout.overlap, margin=margin)
        if self.content_per_tile:
            row["content_targets"] = "per tile"
        return row


@dataclass(frozen=True)
class RunPlan:
    """The scales of a run, coarse to fine, and the memory budget they were planned for."""

    scales: tuple[ScalePlan, ...]
    budget: int  # bytes
    margin: int = DEFAULT_MARGIN  # context around each tile
    min_side: int = 1  # least short side of any image the network sees (its poolings)

    @property
    def total_work(self) -> float:
        return sum(s.work for s in self.scales)

    def work_before(self, index: int) -> float:
        """Planned pixel-steps of the scales before scale ``index``."""
        return sum(s.work for s in self.scales[:index])

    def describe(self) -> list[dict[str, object]]:
        """One row per scale: width, height, steps, tiles (and the tile layout when tiled)."""
        return [s.describe(self.margin) for s in self.scales]

    def estimate_seconds(self, step_seconds: float) -> float:
        """Planned time with ``step_seconds`` per pixel-step of the bare network
        (:func:`measure_step_seconds`): every step of the plan, plus each scale's targets (a forward
        pass, about a third of a step, over the content and style images; content targets per tile:
        over every tile with its context), all times :data:`OBJECTIVE_OVERHEAD` (the losses' share)."""
        targets = sum(s.content_target_pixels + sum(w * h for w, h in s.style_sizes) for s in self.scales)
        return step_seconds * OBJECTIVE_OVERHEAD * (self.total_work + targets / 3)

    def table(self, seconds: float | None = None) -> list[str]:
        """The plan in lines of text, for front ends: one line per scale, then the total work and,
        given, the estimated ``seconds``."""
        lines = []
        for s in self.scales:
            where = f"{len(s.layout)} tiles of {s.layout.tile} px" if s.layout is not None else "whole image"
            per = " per tile" if s.layout is not None else ""
            targets = ", content targets per tile" if s.content_per_tile else ""
            lines.append(f"scale {s.index + 1}/{len(self.scales)}: {s.size[0]}x{s.size[1]}, {where}, "
                         f"at most {s.steps} step{'s' if s.steps != 1 else ''}{per}{targets}")
        total = f"{self.total_work / 1e6:.1f} M pixel-steps, memory budget {self.budget / GIB:.1f} GiB"
        if seconds is not None:
            total += f", about {_duration(seconds)} on this device"
        return [*lines, total]


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def measure_step_seconds(backbone: Backbone, layers: Sequence[str], device: torch.device | str = "cpu",
                         side: int = 192) -> float:
    """Seconds per pixel-step of this network on this device: the best of two timed forward and
    backward passes on a ``side`` x ``side`` image (after one to warm up). About a second on a CPU."""
    image = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0)).to(device)
    image.requires_grad_(True)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        loss = sum(f.square().mean() for f in backbone(image, layers).values())
        loss.backward()  # type: ignore[union-attr]
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times[1:]) / (side * side)


def style_long_side(style_size: tuple[int, int], content_wh: tuple[int, int], scale: float = 1.0,
                    min_side: int = 16) -> int:
    """Long side for a style image of ``style_size`` so that its area matches the content's (times ``scale``²)."""
    style_w, style_h = style_size
    factor = math.sqrt(content_wh[0] * content_wh[1] / (style_w * style_h)) * scale
    long_side = max(16, round(max(style_size) * factor))
    if min(style_size) * long_side / max(style_size) < min_side:  # a thin strip: enlarge it until its short
        long_side = math.ceil(min_side * max(style_size) / min(style_size))  # side reaches min_side
    return long_side


def network_min_side(backbone: Backbone, layers: Sequence[str]) -> int:
    """Each pooling before the deepest of ``layers`` halves the image: the least short side that
    keeps at least 1 pixel there (16 for relu5_1)."""
    used = backbone.layer_names[: 1 + max(backbone.layer_names.index(n) for n in layers)]
    return 2 ** sum(name.startswith("pool") for name in used)


def _check_sizes(sizes: Sequence[tuple[int, int]], need: int, deepest: str) -> None:
    for width, height in sizes:
        if min(width, height) < need:
            raise OptionError(
                f"--size: the content image would be {width}x{height} pixels, too small for layer {deepest} "
                f"(at least {need} pixels on the short side); raise --size or --scales"
            )


class _Budget:
    """Whether a scale fits whole: by ``--tile-size`` when given, else by the memory model."""

    def __init__(self, opts: Options, backbone: Backbone, device: torch.device, bytes_: int | None = None) -> None:
        self.bytes = bytes_ if bytes_ is not None else \
            int(opts.max_memory * GIB) if opts.max_memory else default_memory_budget(device)
        self.tile_size = opts.tile_size
        self.backbone = backbone
        self.history = min(50, opts.steps)

    def fits_whole(self, size: tuple[int, int]) -> bool:
        if self.tile_size:
            return max(size) <= self.tile_size
        return step_bytes(self.backbone, size[0] * size[1], history=self.history) <= self.bytes


def _with_global_pass(content_size: tuple[int, int], sizes: list[tuple[int, int]], budget: _Budget
                      ) -> list[tuple[int, int]]:
    """A first scale too big for one piece gets a whole-image scale in front of it (its size halved
    until it fits), so tiles always refine an image that was stylized as a whole."""
    if not sizes or budget.fits_whole(sizes[0]):
        return sizes
    side = max(sizes[0]) // 2
    while side >= MIN_GLOBAL_SIDE:  # the largest halving that fits whole, if any is not too small
        first = long_side_size(content_size, side)
        if budget.fits_whole(first):
            return [first, *sizes] if min(first) >= 2 * ALIGN else sizes
        side //= 2
    return sizes


class _BudgetTooSmallError(Exception):
    """A tiled scale does not fit the budget even with the smallest tile; ``need_gib`` is the
    least budget (GiB, rounded up to 0.01) that this scale would fit in."""

    def __init__(self, need_gib: float) -> None:
        super().__init__(need_gib)
        self.need_gib = need_gib


def _tile_layout(opts: Options, backbone: Backbone, budget: _Budget, size: tuple[int, int], num_styles: int,
                 margin: int, steps: int) -> tuple[TileLayout, bool]:
    """The tiles of a scale, and whether its content targets are computed per tile: only when the
    whole-image ones leave no room for even a :data:`MIN_TILE` tile (by the memory model)."""
    width, height = size
    tile, per_tile = opts.tile_size, False
    if not tile:
        history = min(50, steps)
        usable = budget.bytes * TILED_BUDGET_SHARE
        for per_tile in (False, True):  # whole-image content targets when a tile fits beside them
            buffers = buffer_bytes_per_pixel(backbone, opts.content_layers, num_styles,
                                             content_per_tile=per_tile) * width * height
            extra = tile_extra_bytes_per_pixel(backbone, opts.content_layers, content_per_tile=per_tile)
            tile = auto_tile(backbone, usable - buffers, margin, history=history, extra_per_pixel=extra)
            if tile:
                break
        if not tile:
            need = least_tiled_budget(backbone, buffers, margin, history=history,
                                      extra_per_pixel=extra) / TILED_BUDGET_SHARE
            raise _BudgetTooSmallError(math.ceil(need / GIB * 100) / 100)
        tile = max(ALIGN * math.floor(tile / ALIGN), 2 * opts.tile_overlap, MIN_TILE)
    return TileLayout(height, width, tile, opts.tile_overlap), per_tile


def style_size(style: tuple[int, int], content: tuple[int, int], scale: float, min_side: int) -> tuple[int, int]:
    """A style image's (width, height) at a scale: the content's area times ``scale``², at most
    :data:`MAX_STYLE_PIXELS`, its short side at least ``min_side``."""
    long_side = style_long_side(style, content, scale, min_side=min_side)
    size = long_side_size(style, long_side)
    least = style_long_side(style, (1, 1), 1.0, min_side=min_side)  # the smallest that keeps min_side
    while size[0] * size[1] > MAX_STYLE_PIXELS and long_side > least:
        shrunk = math.floor(long_side * math.sqrt(MAX_STYLE_PIXELS / (size[0] * size[1])))
        long_side = max(least, min(long_side - 1, shrunk))
        size = long_side_size(style, long_side)
    return size


def make_plan(opts: Options, content_size: tuple[int, int], style_sizes: Sequence[tuple[int, int]],
              backbone: Backbone, device: torch.device | str = "cpu", *, margin: int = DEFAULT_MARGIN) -> RunPlan:
    """The :class:`RunPlan` of a run of ``opts`` on a content image of ``content_size`` with style
    images of ``style_sizes`` (as loaded), on ``backbone`` and ``device``. Raises OptionError when
    a scale is too small for the network's layers, or when the memory budget is too small for the
    run (naming the least budget in which every scale fits)."""
    layers = list(opts.computed_layers)
    need = network_min_side(backbone, layers)
    sizes = [long_side_size(content_size, s) for s in scale_sizes(opts.scales, opts.size)]
    _check_sizes(sizes, need, max(layers, key=backbone.layer_names.index))
    budget = _Budget(opts, backbone, torch.device(device))
    try:
        return _plan_scales(opts, content_size, style_sizes, backbone, budget, sizes, margin, need)
    except _BudgetTooSmallError as first:
        least = first.need_gib
    # The least budget of the whole request: a larger budget can change the plan (more scales whole,
    # another pass in front), so raise it to each failing scale's need until every scale fits.
    while True:  # ends: each failure raises the budget by >= 0.01 GiB towards the largest scale's need
        try:
            _plan_scales(opts, content_size, style_sizes, backbone,
                         _Budget(opts, backbone, torch.device(device), int(least * GIB)), sizes, margin, need)
            break
        except _BudgetTooSmallError as again:
            least = max(round(least + 0.01, 2), again.need_gib)
    width, height = sizes[-1]
    raise OptionError(
        f"--max-memory: {budget.bytes / GIB:.2f} GiB is too small for the {width}x{height} output; it needs at "
        f"least {least:.2f} GiB (the whole-image buffers and one {MIN_TILE} px tile at every scale); raise "
        f"--max-memory or lower --size")


def _plan_scales(opts: Options, content_size: tuple[int, int], style_sizes: Sequence[tuple[int, int]],
                 backbone: Backbone, budget: _Budget, sizes: list[tuple[int, int]], margin: int, need: int
                 ) -> RunPlan:
    """The plan of ``sizes`` on ``budget``; raises :class:`_BudgetTooSmallError` when a tiled scale cannot fit."""
    if opts.scales == "auto":
        sizes = _with_global_pass(content_size, sizes, budget)
    scales = []
    for index, (size, steps) in enumerate(zip(sizes, scale_steps(opts.steps, [max(s) for s in sizes]), strict=True)):
        styles = tuple(style_size(s, size, opts.style_scale, need) for s in style_sizes)
        if budget.fits_whole(size):
            scales.append(ScalePlan(index, size, steps, None, styles, float(size[0] * size[1] * steps)))
            continue
        tile_steps = opts.tile_steps or steps
        layout, per_tile = _tile_layout(opts, backbone, budget, size, len(style_sizes), margin, tile_steps)
        work = float(sum(b.grow(margin, size[1], size[0]).area for b in layout.boxes) * tile_steps)
        scales.append(ScalePlan(index, size, tile_steps, layout, styles, work, per_tile))
    return RunPlan(tuple(scales), budget.bytes, margin, need)


def planned_work(opts: Options, content_size: tuple[int, int]) -> float:
    """The pixel-steps a run of ``opts`` on a content image of ``content_size`` plans, on the CPU's
    default budget, without loading weights (grids and batches weigh their jobs' progress by it)."""
    backbone = shape_backbone(opts.model, list(opts.computed_layers))
    return make_plan(opts, content_size, [], backbone).total_work


__all__ = [
    "MAX_STYLE_PIXELS", "MIN_GLOBAL_SIDE", "RunPlan", "ScalePlan", "make_plan", "measure_step_seconds",
    "network_min_side", "planned_work", "style_long_side", "style_size",
]

"""The work a job will do, known before it starts, and the server's limits on it.

Every option that multiplies work is capped on its own in the options form (``size``, ``steps``,
``tile_steps``, ``window``: :mod:`stylize.web.form`); what they do together depends on the
content image and the tiling, so :func:`check_work` plans the run as the engine will and refuses
a job whose number of scales, of tiles, or of pixel-steps (pixels times optimizer steps, summed
over the scales and tiles: what the run costs) is over the server's limits, with a message that
says which option to lower. :func:`planned_schedule` is the one place that asks the engine for
the plan.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch

from stylize.api import make_options
from stylize.backbone import Backbone, deepest_layer
from stylize.backbone.vgg import VGGFeatures
from stylize.errors import OptionError
from stylize.options import Options, scale_sizes
from stylize.tiles import Schedule, long_side_size, plan_schedule


@dataclass(frozen=True)
class WorkLimits:
    """The server's limits on one job as a whole."""

    max_scales: int = 4
    max_tiles: int = 64  # per scale
    max_work: float = 400e6  # pixel-steps: a default 2048 px run, tiled, is 230 million
    max_styles: int = 8


def shape_backbone(opts: Options) -> Backbone:
    """The run's network without weights (on PyTorch's ``meta`` device): its shape is all a plan needs."""
    layers = [*opts.content_layers, *opts.style_layers]
    try:
        last = deepest_layer(opts.model, layers)
    except ValueError as exc:  # an unknown layer name
        raise OptionError(f"--style-layers/--content-layers: {exc}") from None
    with torch.device("meta"):
        return Backbone(VGGFeatures(opts.model, last_layer=last, pooling=opts.pooling), "torchvision")


def planned_schedule(content_size: tuple[int, int], opts: Options, num_styles: int) -> Schedule:
    """The scales, tiles and work (pixel-steps per scale) of a run, as :func:`stylize.transfer` plans it."""
    sizes = scale_sizes(opts.scales, opts.size)
    plans = [long_side_size(content_size, s) for s in sizes]
    with warnings.catch_warnings():  # "tiles of 256 px": the limits below speak for themselves
        warnings.simplefilter("ignore")
        return plan_schedule(
            content_size, plans, shape_backbone(opts), steps=opts.steps, tile_steps=opts.tile_steps,
            max_memory=opts.max_memory, tile_size=opts.tile_size, overlap=opts.tile_overlap,
            content_layers=opts.content_layers, num_styles=num_styles, device="cpu",
            add_global_pass=opts.scales == "auto")


def check_work(content_size: tuple[int, int], options: dict[str, Any], num_styles: int,
               limits: WorkLimits = WorkLimits()) -> float:
    """The planned pixel-steps of a job; OptionError (one line naming what to lower) over a limit."""
    if num_styles > limits.max_styles:
        raise OptionError(f"{num_styles} style images, at most {limits.max_styles} here")
    opts = make_options(**options)
    if opts.style_blend is not None and len(opts.style_blend) != num_styles:
        raise OptionError(f"--style-blend: {len(opts.style_blend)} weights for {num_styles} style images")
    schedule = planned_schedule(content_size, opts, num_styles)
    if len(schedule.sizes) > limits.max_scales:
        raise OptionError(f"--scales: {len(schedule.sizes)} scales, at most {limits.max_scales} here")
    for (width, height), layout in zip(schedule.sizes, schedule.layouts, strict=True):
        if layout is not None and len(layout) > limits.max_tiles:
            raise OptionError(f"--max-memory/--tile-size: {len(layout)} tiles at {width}x{height}, at most "
                              f"{limits.max_tiles} here: raise --max-memory or --tile-size, or lower --size")
    work = sum(schedule.work)
    if work > limits.max_work:
        tiled = sum(w for w, layout in zip(schedule.work, schedule.layouts, strict=True) if layout is not None)
        lower = "--tile-steps or --size" if tiled > work / 2 and opts.tile_steps else "--steps or --size"
        raise OptionError(f"this job needs {work / 1e6:,.0f} million pixel-steps, over this server's limit of "
                          f"{limits.max_work / 1e6:,.0f} million per job: lower {lower}")
    return work

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

from dataclasses import dataclass
from typing import Any

from stylize.api import make_options
from stylize.backbone import deepest_layer, shape_backbone
from stylize.errors import OptionError
from stylize.options import Options
from stylize.plan import RunPlan, make_plan
from stylize.pyramid import MAX_SCALES


@dataclass(frozen=True)
class WorkLimits:
    """The server's limits on one job as a whole."""

    max_scales: int = MAX_SCALES  # --scales auto visits 128 px ... --size
    max_tiles: int = 64  # per scale
    max_work: float = 400e6  # pixel-steps: a default 2048 px run, tiled, is about 50 million
    max_styles: int = 8


def planned_schedule(content_size: tuple[int, int], opts: Options, num_styles: int) -> RunPlan:
    """The run plan of a job (scales, tiles, pixel-steps), as :func:`stylize.transfer` makes it, with
    a weightless network and the CPU's default memory budget unless ``max_memory`` is given."""
    layers = list(opts.computed_layers)  # a zero-weight style layer is not computed, but must exist
    try:
        deepest_layer(opts.model, list(opts.network_layers))
    except ValueError as exc:  # an unknown layer name
        raise OptionError(f"--style-layers/--content-layers/--structure-layers: {exc}") from None
    styles = [content_size] * num_styles  # only their count matters for the work and the memory
    return make_plan(opts, content_size, styles, shape_backbone(opts.model, layers), "cpu")


def check_work(content_size: tuple[int, int], options: dict[str, Any], num_styles: int,
               limits: WorkLimits = WorkLimits()) -> float:
    """The planned pixel-steps of a job; OptionError (one line naming what to lower) over a limit."""
    if num_styles > limits.max_styles:
        raise OptionError(f"{num_styles} style images, at most {limits.max_styles} here")
    opts = make_options(**options)
    if opts.style_blend is not None and len(opts.style_blend) != num_styles:
        raise OptionError(f"--style-blend: {len(opts.style_blend)} weights for {num_styles} style images")
    plan = planned_schedule(content_size, opts, num_styles)
    if len(plan.scales) > limits.max_scales:
        raise OptionError(f"--scales: {len(plan.scales)} scales, at most {limits.max_scales} here")
    for scale in plan.scales:
        if scale.layout is not None and len(scale.layout) > limits.max_tiles:
            width, height = scale.size
            raise OptionError(f"--max-memory/--tile-size: {len(scale.layout)} tiles at {width}x{height}, at most "
                              f"{limits.max_tiles} here: raise --max-memory or --tile-size, or lower --size")
    work = plan.total_work
    if work > limits.max_work:
        tiled = sum(s.work for s in plan.scales if s.layout is not None)
        lower = "--tile-steps or --size" if tiled > work / 2 and opts.tile_steps else "--steps or --size"
        raise OptionError(f"this job needs {work / 1e6:,.0f} million pixel-steps, over this server's limit of "
                          f"{limits.max_work / 1e6:,.0f} million per job: lower {lower}")
    return work

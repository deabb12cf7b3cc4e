"""High-resolution output in bounded memory: overlapping tiles refined against global targets.

One module per job: :mod:`~stylize.tiles.layout` (where the tiles lie, feathered blend weights),
:mod:`~stylize.tiles.memory` (what a step costs, the budget, the largest tile that fits),
:mod:`~stylize.tiles.refine` (the tiled optimization) and :mod:`~stylize.tiles.seams` (how visible
the borders are). Feature maps of large images in chunks are in :mod:`stylize.features`; which
scales are tiled is decided by the run plan (:mod:`stylize.plan`). See ``docs/highres.md``.
"""

from stylize.geometry import Box
from stylize.tiles.layout import DEFAULT_OVERLAP, TileLayout, axis_spans, axis_weights
from stylize.tiles.memory import (
    MIN_TILE,
    buffer_bytes_per_pixel,
    default_memory_budget,
    physical_memory,
    step_bytes,
)
from stylize.tiles.refine import DEFAULT_MARGIN, TileStep, optimize_tiled, tile_objective
from stylize.tiles.seams import seam_ratio

__all__ = [
    "DEFAULT_MARGIN", "DEFAULT_OVERLAP", "MIN_TILE", "Box", "TileLayout", "TileStep", "axis_spans", "axis_weights",
    "buffer_bytes_per_pixel", "default_memory_budget", "optimize_tiled", "physical_memory", "seam_ratio",
    "step_bytes", "tile_objective",
]

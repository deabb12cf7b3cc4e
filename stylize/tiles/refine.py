"""Tiled refinement: a scale too big for the memory budget, refined tile by tile.

* **Global targets**: every tile is optimized against the whole image's objective, each term
  cropped to the tile (:meth:`stylize.objective.Objective.crop`): the content feature maps of the
  *whole* content image at this scale (computed in chunks, :mod:`stylize.features`) and the style
  statistics of the *whole* style image, so all tiles share one style and one content.
* **Context**: the network sees the tile plus a margin of the surrounding canvas (frozen), and the
  losses use only the tile's own feature positions, so a tile's edges are not computed against
  zero padding.
* **Sequential refinement over the running canvas**: each tile starts from the current blend of
  the tiles done so far (not from the stale upsampled image): the canvas is kept as the
  normalized partial blend ``Σ_{j<=k} wⱼ·tileⱼ / Σ_{j<=k} wⱼ`` (the upsampled image where no tile
  has been yet), so a tile's overlap with the next one holds its full result, not a fade to the
  stale image. Blend weights: :meth:`stylize.tiles.layout.TileLayout.weights`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from stylize.features import ALIGN, layer_strides
from stylize.geometry import Box
from stylize.objective import FeatureNetwork, Objective
from stylize.optimize import OptimizeResult, StepRecord, StopReason, optimize
from stylize.runtime import release_free_memory
from stylize.tiles.layout import DEFAULT_OVERLAP, TileLayout

DEFAULT_MARGIN = 32  # context around a tile while it is optimized (frozen canvas pixels)


@dataclass
class TileStep:
    """Where a tiled scale stands: tile ``index`` (from 1) of ``count``, ``done`` pixel-steps of this scale."""

    index: int
    count: int
    done: float


class ContextBackbone:
    """Runs the backbone on a frozen context window with the tile pasted in; crops to the tile."""

    def __init__(self, backbone: FeatureNetwork, window: torch.Tensor, inner: Box, strides: dict[str, int]) -> None:
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
        return {k: self.inner.crop_features(v, self.strides[k]) for k, v in feats.items()}


def tile_objective(objective: Objective, canvas: torch.Tensor, box: Box, margin: int) -> Objective:
    """The objective of one tile: each of the whole-image ``objective``'s terms cropped to ``box``
    (content targets, region maps ...; style statistics stay global), with a network that sees the
    tile inside ``margin`` px of frozen ``canvas`` context."""
    backbone = objective.backbone
    strides = layer_strides(backbone)  # type: ignore[arg-type]
    height, width = canvas.shape[-2:]
    window = box.grow(margin, height, width)
    inner = Box(box.y0 - window.y0, box.x0 - window.x0, box.y1 - window.y0, box.x1 - window.x0)
    return objective.crop(box, ContextBackbone(backbone, window.crop(canvas).detach(), inner, strides))


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
    lr: float | None = None, tol: float = 1e-3, window: int = 20,
    sequential: bool = True,
    step_scale: float | None = None, carry: bool = False,
    on_step: Callable[[StepRecord, torch.Tensor, TileStep], None] | None = None,
    on_tile: Callable[[int, int, torch.Tensor], None] | None = None,
) -> OptimizeResult:
    """Refine ``image`` tile by tile against the whole-image ``objective`` and blend the tiles.

    ``objective`` holds the global targets: content feature maps of the whole content image at
    this scale (same size as ``image``) and the Gram targets of the whole style image at this
    scale. Each tile (``layout``, or one built from ``tile`` and ``overlap``) is optimized for at
    most ``steps`` steps by :func:`stylize.optimize.optimize` with ``margin`` px of context, starting
    from the running canvas (``sequential``; False starts every tile from ``image``, for
    comparison), and blended in with feathered weights. ``step_scale`` sizes the first tile's first
    L-BFGS step; with ``carry`` each later tile starts from the step size its predecessor learned.
    With ``sequential`` the canvas is ``image`` itself, refined in place (pass a copy to keep it).
    ``on_step(record, canvas, where)`` follows every step, ``on_tile(index, count, canvas)`` every
    tile. An interruption (Ctrl-C or StopTransfer) keeps the tiles done so far.
    """
    height, width = image.shape[-2:]
    layout = layout or TileLayout(height, width, tile, overlap)
    if (layout.height, layout.width) != (height, width) or margin % ALIGN:
        raise ValueError(f"layout for {layout.width}x{layout.height} (image {width}x{height}) or margin {margin} "
                         f"not a multiple of {ALIGN}")
    strides = layer_strides(objective.backbone)  # type: ignore[arg-type]
    coarse = [k for k in objective.layers if strides[k] > ALIGN]
    if coarse:
        raise ValueError(f"layer {coarse[0]} is coarser than the {ALIGN}-px tile grid; use layers up to relu5_x")
    base = image.detach()
    canvas = base if sequential else base.clone()  # the normalized blend of the tiles done so far;
    # the start where none is yet. Sequential: refined in place (``image`` is overwritten), one copy less.
    covered = torch.zeros((1, 1, height, width), dtype=canvas.dtype, device=canvas.device)  # Σ weights so far
    boxes, weights = layout.boxes, layout.iter_weights()
    result = OptimizeResult(image=canvas, best_loss=0.0)
    reasons: list[StopReason] = []
    done = 0.0
    for index, (box, weight) in enumerate(zip(boxes, weights, strict=True), start=1):
        source = canvas if sequential else base
        sub = tile_objective(objective, source, box, margin)
        release_free_memory()  # content targets per tile: their forward pass's blocks, before the step's
        area = box.grow(margin, height, width).area
        done_before = done

        def step_hook(record: StepRecord, best: torch.Tensor, index: int = index, area: int = area,
                      done_before: float = done_before) -> None:
            if on_step is not None:
                on_step(record, canvas, TileStep(index, len(boxes), done_before + area * record.step))

        part = optimize(box.crop(source).clone(), sub, steps=steps, optimizer=optimizer, lr=lr, tol=tol,
                        window=window, history_size=max(1, min(50, steps)), on_step=step_hook,
                        step_scale=step_scale, carry=carry)
        if carry and part.step_scale is not None:
            step_scale = part.step_scale  # the next tile starts with what this one learned
        done += area * len(part.history)
        _blend_in(canvas, covered, box, weight, part.image)
        result.history.extend(part.history)
        result.restores += part.restores
        result.best_loss += part.best_loss * weight.sum().item() / (height * width)
        reasons.append(part.stop_reason)
        del sub, part
        release_free_memory()
        if on_tile is not None:
            on_tile(index, len(boxes), canvas)
        if reasons[-1].early:
            break
    result.image = canvas
    result.step_scale = step_scale
    result.stop_reason = combined_stop_reason(reasons)
    return result




@torch.no_grad()
def _blend_in(canvas: torch.Tensor, covered: torch.Tensor, box: Box, weight: torch.Tensor, tile: torch.Tensor) -> None:
    """canvas <- Σ_{j<=k} w_j tile_j / Σ_{j<=k} w_j on the box (``covered`` holds Σ w_j so far)."""
    w = weight.to(canvas.device, canvas.dtype)
    box.crop(covered).add_(w)
    share = w / box.crop(covered).clamp_min(1e-12)
    box.crop(canvas).add_(share * (tile - box.crop(canvas)))


def combined_stop_reason(reasons: list[StopReason]) -> StopReason:
    """The stop reason of a tiled scale from its tiles': an early stop wins, then all-converged,
    then any divergence, else the step limit."""
    early = next((r for r in reasons if r.early), None)
    if early is not None:
        return early
    if reasons and all(r == StopReason.CONVERGED for r in reasons):
        return StopReason.CONVERGED
    return StopReason.DIVERGED if StopReason.DIVERGED in reasons else StopReason.MAX_STEPS


__all__ = ["DEFAULT_MARGIN", "ContextBackbone", "TileStep", "combined_stop_reason", "optimize_tiled", "tile_objective"]

"""The public entry point: :func:`transfer` runs a plan, scale by scale.

plan (:mod:`stylize.plan`) -> targets and objective per scale (:mod:`stylize.objective`) ->
refinement, whole or tiled (:mod:`stylize.optimize`, :mod:`stylize.tiles`) -> the best image.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import PIL.Image
import torch
import torch.nn.functional as F

from stylize.backbone import Backbone
from stylize.color import ColorControl
from stylize.errors import OptionError
from stylize.imageio import ImageSource, image_to_tensor, load_image, resize_to_long_side, tensor_to_image, to_float
from stylize.network import check_layers, load_network
from stylize.objective import Objective, ScaleContext, TermFactory, build_objective
from stylize.optimize import STOP_REASONS, OptimizeResult, StepRecord, StopReason, optimize
from stylize.options import Options, flag
from stylize.plan import RunPlan, ScalePlan, make_plan, measure_step_seconds, style_long_side
from stylize.regions import load_mask
from stylize.runtime import run_settings
from stylize.tiles import TileStep, optimize_tiled


@dataclass
class Progress:
    """What a progress callback receives after every optimizer step."""

    step: int  # step within the current scale, from 1
    max_steps: int  # most steps of this scale
    scale: int  # index of the scale, from 1
    num_scales: int
    size: tuple[int, int]  # (width, height) of this scale
    losses: dict[str, float]  # total, content, style, style_<layer>, ...
    event: str  # "" or "restored"
    elapsed: float  # seconds since the run started
    fraction: float  # share of the planned work done, 0..1 (an upper bound on the work left)
    eta: float | None  # seconds left if every scale ran all its steps
    _best: torch.Tensor = field(repr=False, default=None)  # type: ignore[assignment]
    tile: int = 0  # tiled scales (stylize.tiles): the tile being refined, from 1; step/max_steps are per tile
    num_tiles: int = 0  # tiles of this scale; 0 when the scale runs on the whole image

    @property
    def image(self) -> PIL.Image.Image:
        """The best image so far at this scale, made when asked for (on a tiled scale, the blend of
        the tiles done so far)."""
        return tensor_to_image(self._best.clamp(0, 1))


@dataclass
class Result:
    """The outcome of :func:`transfer`."""

    image: PIL.Image.Image  # the stylized image (best iterate of the last scale)
    history: list[dict[str, Any]]  # one row per step: step, scale, width, height, seconds, losses, event
    settings: dict[str, Any]  # every option used, plus the network and the plan actually run
    stop_reasons: list[StopReason]  # why each scale ended
    seconds: float

    @property
    def stop_reason(self) -> StopReason:
        return self.stop_reasons[-1] if self.stop_reasons else StopReason.MAX_STEPS

    @property
    def interrupted(self) -> bool:
        return self.stop_reason.early

    def describe_stop(self) -> str:
        return self.stop_reason.description


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda, else mps, else cpu; an unavailable explicit device is an OptionError."""
    has_mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise OptionError("--device: cuda was asked for, but PyTorch sees no CUDA GPU here")
    if name == "mps" and not has_mps:
        raise OptionError("--device: mps was asked for, but it is not available here")
    if name not in ("cpu", "cuda", "mps"):
        raise OptionError(f"--device: {name!r} is not one of auto, cpu, cuda, mps")
    return torch.device(name)


#: validated :class:`Options` from keywords (the same as :meth:`Options.from_kwargs`)
make_options = Options.from_kwargs


@dataclass
class Inputs:
    """The images of a run, loaded and prepared (colour preservation applied to them)."""

    content: PIL.Image.Image
    styles: list[PIL.Image.Image]
    color: ColorControl
    masks: torch.Tensor | None  # one-hot region maps (--mask), or None
    init: PIL.Image.Image | None = None  # the starting image (init_image, or --init FILE), or None

    @classmethod
    def load(cls, content: ImageSource, style: ImageSource | Sequence[ImageSource], opts: Options,
             init_image: ImageSource | None = None) -> Inputs:
        styles = list(style) if isinstance(style, (list, tuple)) else [style]
        if not styles:
            raise OptionError("give at least one style image")
        if opts.style_blend is not None and len(opts.style_blend) != len(styles):
            raise OptionError(f"--style-blend: {len(opts.style_blend)} weights for {len(styles)} style images")
        content_image = load_image(content, what="content image", max_pixels=opts.max_pixels, max_side=opts.size)
        style_images = [load_image(s, what="style image", max_pixels=opts.max_pixels) for s in styles]
        color = ColorControl(opts.preserve_color, content_image)  # --preserve-color: prepare inputs, finish output
        masks = None if opts.mask is None else load_mask(opts.mask, len(styles), max_pixels=opts.max_pixels)
        init_source = init_image if init_image is not None else None if opts.init in ("content", "noise") else opts.init
        init = None if init_source is None else load_image(init_source, what="init image", max_pixels=opts.max_pixels)
        return cls(color.content(), [color.style(s) for s in style_images], color, masks, init)

    def at(self, scale: ScalePlan, device: torch.device) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The content and style tensors at a scale's sizes; the content as 8 bits when its targets are
        computed per tile (the tiles convert their own pieces: 0.4 GB less at 8192 px)."""
        width, height = scale.size
        content = self.content if self.content.size == scale.size else \
            self.content.resize((width, height), PIL.Image.Resampling.LANCZOS)
        styles = [image_to_tensor(resize_to_long_side(s, max(size)), device)
                  for s, size in zip(self.styles, scale.style_sizes, strict=True)]
        return image_to_tensor(content, device, eight_bit=scale.content_per_tile), styles


class _RunLog:
    """The history rows and the progress callback of one run."""

    def __init__(self, plan: RunPlan, callback: Callable[[Progress], None] | None) -> None:
        self.plan, self.callback = plan, callback
        self.history: list[dict[str, Any]] = []
        self.stop_reasons: list[StopReason] = []
        self.start = time.perf_counter()

    def hook(self, scale: ScalePlan) -> Callable[..., None]:
        """``on_step(record, best, tile=None)`` for one scale."""
        done_before, scale_start = self.plan.work_before(scale.index), time.perf_counter()
        width, height = scale.size

        def on_step(record: StepRecord, best: torch.Tensor, tile: TileStep | None = None) -> None:
            now = time.perf_counter()
            row = {"step": len(self.history) + 1, "scale": scale.index + 1, "scale_step": record.step,
                   "width": width, "height": height, "seconds": round(now - self.start, 4), **record.losses,
                   "event": record.event}
            if tile is not None:
                row["tile"] = tile.index
            self.history.append(row)
            if self.callback is None:
                return
            done = done_before + (tile.done if tile is not None else width * height * record.step)
            rate = (now - scale_start) / max(1.0, done - done_before)  # seconds per pixel-step here
            total = self.plan.total_work
            self.callback(Progress(
                step=record.step, max_steps=scale.steps, scale=scale.index + 1, num_scales=len(self.plan.scales),
                size=scale.size, losses=dict(record.losses), event=record.event, elapsed=now - self.start,
                fraction=done / total, eta=(total - done) * rate, _best=best,
                tile=tile.index if tile is not None else 0, num_tiles=tile.count if tile is not None else 0,
            ))

        return on_step


def _start_image(opts: Options, content: torch.Tensor, init: PIL.Image.Image | None) -> torch.Tensor:
    """The first scale's starting image: ``init`` (resized), else ``--init`` content or noise."""
    if init is not None:
        image = init.resize((content.shape[3], content.shape[2]), PIL.Image.Resampling.LANCZOS)
        return image_to_tensor(image, content.device)
    if opts.init == "noise":
        gen = torch.Generator().manual_seed(opts.seed)
        return torch.rand(content.shape, generator=gen).to(content.device)
    return to_float(content).clone()


def _scale_start(setup: Setup, scale: ScalePlan, image: torch.Tensor | None, extra_terms: Sequence[TermFactory]
                 ) -> tuple[Objective, torch.Tensor]:
    """The objective of a scale and its starting image (``image``, the previous scale's result,
    upsampled; or the first scale's start). Only the objective keeps what it needs of the scale's
    content and style tensors: the rest is let go on return (at 4096 px the content image is 0.1 GB)."""
    opts, inputs, device, backbone = setup.opts, setup.inputs, setup.device, setup.backbone
    content, styles = inputs.at(scale, device)
    extra = [make(ScaleContext(scale.index, scale.size, device, backbone)) for make in extra_terms]
    objective = build_objective(backbone, opts, content, styles, masks=inputs.masks, extra=extra,
                                content_per_tile=scale.content_per_tile, tiled=scale.tiled)
    start = _start_image(opts, content, inputs.init) if image is None else \
        F.interpolate(image, size=scale.size[::-1], mode="bicubic", align_corners=False)
    return objective, start


def _refine(start: torch.Tensor, objective: Objective, scale: ScalePlan, plan: RunPlan, opts: Options,
            on_step: Callable[..., None], step_scale: float | None = None) -> OptimizeResult:
    """Optimize one scale: the whole image, or tile by tile against the scale's global targets;
    ``step_scale`` (the previous scale's learned L-BFGS step, with ``warm_steps``) sizes the first step."""
    common = {"steps": scale.steps, "optimizer": opts.optimizer, "lr": opts.lr, "tol": opts.tol,
              "window": opts.window, "on_step": on_step, "carry": opts.warm_steps,
              "step_scale": step_scale if opts.warm_steps else None}
    if scale.layout is None:
        return optimize(start, objective, **common)
    return optimize_tiled(start, objective, layout=scale.layout, margin=plan.margin, **common)


@dataclass
class Setup:
    """A run made ready: validated options, loaded inputs, the network on its device, the plan."""

    opts: Options
    inputs: Inputs
    device: torch.device
    backbone: Backbone
    plan: RunPlan

    @classmethod
    def make(cls, content: ImageSource, style: ImageSource | Sequence[ImageSource], backbone: Backbone | None,
             download_progress: Callable[[int, int], None] | None, options: dict[str, Any],
             init_image: ImageSource | None = None) -> Setup:
        opts = Options.from_kwargs(**options)
        inputs = Inputs.load(content, style, opts, init_image)
        device = resolve_device(opts.device)
        backbone = backbone if backbone is not None else load_network(opts, progress=download_progress)
        check_layers(opts, backbone.layer_names, backbone.arch)
        backbone = backbone.to(device)
        plan = make_plan(opts, inputs.content.size, [s.size for s in inputs.styles], backbone, device)
        return cls(opts, inputs, device, backbone, plan)

    def estimate_seconds(self) -> float:
        """The plan's time on this device, from a short measurement of the network (about a second)."""
        layers = list(self.opts.computed_layers)
        return self.plan.estimate_seconds(measure_step_seconds(self.backbone, layers, self.device))


def plan_run(content: ImageSource, style: ImageSource | Sequence[ImageSource], *, backbone: Backbone | None = None,
             **options: Any) -> tuple[RunPlan, float]:
    """What :func:`transfer` would do with these inputs and options, without doing it: the
    :class:`stylize.plan.RunPlan` and its estimated seconds on this device (``stylize --dry-run``)."""
    setup = Setup.make(content, style, backbone, None, options)
    return setup.plan, setup.estimate_seconds()


def transfer(
    content: ImageSource,
    style: ImageSource | Sequence[ImageSource],
    *,
    callback: Callable[[Progress], None] | None = None,
    backbone: Backbone | None = None,
    download_progress: Callable[[int, int], None] | None = None,
    init_image: ImageSource | None = None,
    extra_terms: Sequence[TermFactory] = (),
    on_plan: Callable[[RunPlan, float], None] | None = None,
    **options: Any,
) -> Result:
    """Repaint ``content`` in the style of ``style`` (Gatys, Ecker & Bethge, CVPR 2016).

    Args:
        content: the photo: a path, a PIL image, an RGB tensor in [0, 1] or an HxWx3 array.
        style: the artwork, same kinds, or a list of them (their statistics are blended).
        callback: called with a :class:`Progress` after every step; it may raise
            :class:`stylize.StopTransfer` to end the run early (the best image is kept).
        backbone: a ready :class:`stylize.backbone.Backbone` (skips loading weights; tests use
            :func:`stylize.backbone.tiny_backbone`).
        download_progress: ``(done_bytes, total_bytes)`` while weights are downloaded (first use).
        init_image: the starting image of the first scale (overrides ``init``), any image kind.
        extra_terms: factories ``f(scale) -> term`` of more objective terms (:mod:`stylize.loss`),
            called once per scale with a :class:`stylize.objective.ScaleContext`.
        on_plan: called once before any work with the :class:`stylize.plan.RunPlan` and its
            estimated seconds on this device (measuring that takes about a second).
        **options: any field of :class:`stylize.Options` (``size``, ``steps``, ``style_weight`` ...).

    Returns:
        a :class:`Result` with the image, the per-step loss history and the settings used.

    Raises:
        stylize.StylizeError: a bad input file or option value (one-line message).

    Ctrl-C during the run returns the best image so far (``result.interrupted`` is true). The
    library prints nothing and writes no files.
    """
    setup = Setup.make(content, style, backbone, download_progress, options, init_image)
    opts, inputs, device, backbone, plan = setup.opts, setup.inputs, setup.device, setup.backbone, setup.plan
    estimate = None
    if on_plan is not None:
        estimate = setup.estimate_seconds()
        on_plan(plan, estimate)
    log = _RunLog(plan, callback)
    image: torch.Tensor | None = None
    step_scale: float | None = None  # the L-BFGS step size learned so far, per pixel value
    for scale in plan.scales:
        with contextlib.ExitStack() as settings:
            # measured faster (stylize.runtime, BENCHMARKS.md): a whole-image scale's targets too (a relu3_1
            # pass at 512 px: 0.72 -> 0.41 s); a tiled scale's chunked target passes would pile up in the
            # kept heap blocks instead (9.2 GiB at 4096 px against 5.9), so its settings start at the steps
            if not scale.tiled:
                settings.enter_context(run_settings(device))
            try:  # targets of this scale; Ctrl-C here keeps the finished scales' image
                objective, start = _scale_start(setup, scale, image, extra_terms)
            except KeyboardInterrupt:
                if image is None:
                    raise
                log.stop_reasons.append(StopReason.INTERRUPTED)
                break
            image = None  # let go of the previous scale's image before the steps (0.1 GB at 8192 px)
            if scale.tiled:
                settings.enter_context(run_settings(device))
            result = _refine(start, objective, scale, plan, opts, log.hook(scale), step_scale)
        image, step_scale = result.image, result.step_scale
        log.stop_reasons.append(result.stop_reason)
        # Let go of this scale's targets and images before the next, larger scale builds its own:
        # at 8192 px they are gigabytes (issue 4's memory bound).
        del objective, start, result
        if log.stop_reasons[-1].early:
            break
    assert image is not None
    settings = {**dataclasses.asdict(opts), **_run_settings(backbone, device, plan, len(inputs.styles), estimate)}
    return Result(image=tensor_to_image(inputs.color.finish(image).clamp(0, 1)), history=log.history,
                  settings=settings, stop_reasons=log.stop_reasons, seconds=time.perf_counter() - log.start)


def _run_settings(backbone: Backbone, device: torch.device, plan: RunPlan, num_styles: int,
                  estimate: float | None) -> dict[str, Any]:
    """What the run actually used beside its options: the network, the device and the plan."""
    settings = {
        "network": backbone.description, "arch": backbone.arch, "convention": backbone.convention,
        "device": str(device), "scale_sizes": [list(s.size) for s in plan.scales], "num_styles": num_styles,
        "tiling": plan.describe(), "memory_budget_gib": round(plan.budget / 2**30, 2),
        "planned_work": plan.total_work,
    }
    if estimate is not None:
        settings["estimated_seconds"] = round(estimate, 1)
    return settings


__all__ = [
    "STOP_REASONS", "ImageSource", "Inputs", "Progress", "Result", "Setup", "flag", "make_options", "plan_run",
    "resolve_device", "style_long_side", "transfer",
]

"""The public entry point: :func:`transfer`."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

from stylize.backbone import Backbone, load_backbone
from stylize.backbone.vgg import layer_names
from stylize.color import ColorControl
from stylize.controls import resolve_controls
from stylize.errors import OptionError
from stylize.imageio import image_to_tensor, load_image, resize_to_long_side, tensor_to_image
from stylize.objective import Objective, content_targets, style_targets
from stylize.optimize import STOP_REASONS, StepRecord, optimize
from stylize.options import Options, flag, scale_sizes
from stylize.regions import load_mask, regional_style
from stylize.runtime import run_settings
from stylize.tiles import TileStep, optimize_tiled, plan_schedule

ImageSource = str | Path | PIL.Image.Image | torch.Tensor | np.ndarray


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

    def image(self) -> PIL.Image.Image:
        """The best image so far at this scale (computed on demand; on a tiled scale, the blend of
        the tiles done so far)."""
        return tensor_to_image(self._best.clamp(0, 1))


@dataclass
class Result:
    """The outcome of :func:`transfer`."""

    image: PIL.Image.Image  # the stylized image (best iterate of the last scale)
    history: list[dict[str, Any]]  # one row per step: step, scale, width, height, seconds, losses, event
    settings: dict[str, Any]  # every option used, plus the network and schedule actually run
    stop_reasons: list[str]  # why each scale ended (keys of stylize.optimize.STOP_REASONS)
    seconds: float

    @property
    def stop_reason(self) -> str:
        return self.stop_reasons[-1] if self.stop_reasons else "max_steps"

    @property
    def interrupted(self) -> bool:
        return self.stop_reason in ("interrupted", "stopped")

    def describe_stop(self) -> str:
        return STOP_REASONS[self.stop_reason]


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


def make_options(**options: Any) -> Options:
    """Build validated :class:`Options`, turning unknown names into OptionError."""
    names = {f.name for f in dataclasses.fields(Options)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise OptionError(f"unknown option {unknown[0]!r}")
    for key in ("content_layers", "style_layers"):
        if isinstance(options.get(key), str):
            options[key] = tuple(p.strip() for p in options[key].split(",") if p.strip())
    for key in ("style_layer_weights", "style_blend"):
        if options.get(key) is not None:
            options[key] = tuple(float(w) for w in options[key])
    return Options(**resolve_controls(options)).validate()  # presets and --strength, see stylize.controls


def style_long_side(style: PIL.Image.Image, content_wh: tuple[int, int], scale: float = 1.0, min_side: int = 16) -> int:
    """Long side for a style image so that its area matches the content's (times ``scale``²)."""
    factor = math.sqrt(content_wh[0] * content_wh[1] / (style.width * style.height)) * scale
    long_side = max(16, round(max(style.size) * factor))
    if min(style.size) * long_side / max(style.size) < min_side:  # a thin strip: enlarge it until its short
        long_side = math.ceil(min_side * max(style.size) / min(style.size))  # side reaches min_side (see _check_plans)
    return long_side


def _check_layers(opts: Options, names: Sequence[str], arch: str) -> None:
    bad = [name for name in [*opts.content_layers, *opts.style_layers] if name not in names]
    if bad:
        raise OptionError(
            f"--{'content' if bad[0] in opts.content_layers else 'style'}-layers: {bad[0]!r} is not a layer "
            f"of {arch} (layers are named like conv1_1, relu4_2, pool5)"
        )


def _check_plans(plans: Sequence[tuple[int, int]], used: Sequence[str]) -> int:
    """Each pooling before the deepest layer used halves the image: it must keep at least 1 pixel.

    Returns that least short side (16 for relu5_1); style images are enlarged to it if needed."""
    need = 2 ** sum(name.startswith("pool") for name in used)
    for width, height in plans:
        if min(width, height) < need:
            raise OptionError(
                f"--size: the content image would be {width}x{height} pixels, too small for layer {used[-1]} "
                f"(at least {need} pixels on the short side); raise --size or --scales"
            )
    return need


def _initial_image(init: str, content: torch.Tensor, seed: int, max_pixels: int) -> torch.Tensor:
    if init == "content":
        return content.clone()
    if init == "noise":
        gen = torch.Generator().manual_seed(seed)
        return torch.rand(content.shape, generator=gen).to(content.device)
    image = load_image(init, what="init image", max_pixels=max_pixels)
    image = image.resize((content.shape[3], content.shape[2]), PIL.Image.Resampling.LANCZOS)
    return image_to_tensor(image, content.device)


def transfer(
    content: ImageSource,
    style: ImageSource | Sequence[ImageSource],
    *,
    callback: Callable[[Progress], None] | None = None,
    backbone: Backbone | None = None,
    download_progress: Callable[[int, int], None] | None = None,
    **options: Any,
) -> Result:
    """Repaint ``content`` in the style of ``style`` (Gatys, Ecker & Bethge, CVPR 2016).

    Args:
        content: the photo: a path, a PIL image, an RGB tensor in [0, 1] or an HxWx3 array.
        style: the artwork, same kinds, or a list of them (their Gram targets are blended).
        callback: called with a :class:`Progress` after every step; it may raise
            :class:`stylize.StopTransfer` to end the run early (the best image is kept).
        backbone: a ready :class:`stylize.backbone.Backbone` (skips loading weights; tests use
            :func:`stylize.backbone.tiny_backbone`).
        download_progress: ``(done_bytes, total_bytes)`` while weights are downloaded (first use).
        **options: any field of :class:`stylize.Options` (``size``, ``steps``, ``style_weight`` ...).

    Returns:
        a :class:`Result` with the image, the per-step loss history and the settings used.

    Raises:
        stylize.StylizeError: a bad input file or option value (one-line message).

    Ctrl-C during the run returns the best image so far (``result.interrupted`` is true). The
    library prints nothing and writes no files.
    """
    opts = make_options(**options)
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    if not styles:
        raise OptionError("give at least one style image")
    if opts.style_blend is not None and len(opts.style_blend) != len(styles):
        raise OptionError(f"--style-blend: {len(opts.style_blend)} weights for {len(styles)} style images")
    device = resolve_device(opts.device)
    content_image = load_image(content, what="content image", max_pixels=opts.max_pixels, max_side=opts.size)
    style_images = [load_image(s, what="style image", max_pixels=opts.max_pixels) for s in styles]
    color = ColorControl(opts.preserve_color, content_image)  # --preserve-color: prepare inputs, finish output
    content_image, style_images = color.content(), [color.style(s) for s in style_images]
    masks = None if opts.mask is None else load_mask(opts.mask, len(styles), max_pixels=opts.max_pixels)

    layers = [*opts.content_layers, *opts.style_layers]
    if backbone is None:
        _check_layers(opts, layer_names(opts.model), opts.model)  # before loading any weights
        backbone = load_backbone(
            opts.model, layers=layers, weights=opts.weights, convention=opts.weights_convention,
            pooling=opts.pooling, allow_download=opts.allow_download, progress=download_progress,
        )
    _check_layers(opts, backbone.layer_names, backbone.arch)
    backbone = backbone.to(device)
    layer_weights = dict(zip(opts.style_layers, opts.style_layer_weights or [1.0] * len(opts.style_layers),
                             strict=True))

    sizes = scale_sizes(opts.scales, opts.size)
    plans = [resize_to_long_side(content_image, s).size for s in sizes]
    need = _check_plans(plans, backbone.layer_names[: 1 + max(backbone.layer_names.index(n) for n in layers)])
    schedule = plan_schedule(  # which scales fit the memory budget whole; the others are tiled
        content_image.size, plans, backbone, steps=opts.steps, tile_steps=opts.tile_steps, max_memory=opts.max_memory,
        tile_size=opts.tile_size, overlap=opts.tile_overlap, content_layers=opts.content_layers,
        num_styles=len(styles), device=device, add_global_pass=opts.scales == "auto")
    plans, work = schedule.sizes, schedule.work  # planned cost of each scale, in pixel-steps
    history: list[dict[str, Any]] = []
    stop_reasons: list[str] = []
    start = time.perf_counter()
    image: torch.Tensor | None = None
    global_step = 0

    for index, (width, height) in enumerate(plans):
        try:  # targets of this scale; Ctrl-C here keeps the finished scales' image
            content_t = image_to_tensor(content_image.resize((width, height), PIL.Image.Resampling.LANCZOS)
                                        if content_image.size != (width, height) else content_image, device)
            style_ts = [image_to_tensor(resize_to_long_side(
                s, style_long_side(s, (width, height), opts.style_scale, min_side=need)), device) for s in style_images]
            objective = Objective(
                backbone,
                content_targets(backbone, content_t, opts.content_layers),
                style_targets(backbone, style_ts, opts.style_layers, opts.style_blend),
                content_weight=opts.content_weight, style_weight=opts.style_weight, tv_weight=opts.tv_weight,
                style_layer_weights=layer_weights,
                style_regions=None if masks is None else regional_style(
                    backbone, masks, style_ts, opts.style_layers, (width, height)),
            )
            if image is None:
                init = _initial_image(opts.init, content_t, opts.seed, opts.max_pixels)
            else:
                init = F.interpolate(image, size=(height, width), mode="bicubic", align_corners=False)
        except KeyboardInterrupt:
            if image is None:
                raise
            stop_reasons.append("interrupted")
            break
        done_before = sum(work[:index])
        scale_start = time.perf_counter()

        def on_step(record: StepRecord, best: torch.Tensor, tile: TileStep | None = None, index: int = index,
                    width: int = width, height: int = height, done_before: float = done_before,
                    scale_start: float = scale_start) -> None:
            nonlocal global_step
            global_step += 1
            now = time.perf_counter()
            row = {"step": global_step, "scale": index + 1, "scale_step": record.step, "width": width,
                   "height": height, "seconds": round(now - start, 4), **record.losses, "event": record.event}
            if tile is not None:
                row["tile"] = tile.index
            history.append(row)
            if callback is None:
                return
            done = done_before + (tile.done if tile is not None else width * height * record.step)
            rate = (now - scale_start) / max(1.0, done - done_before)  # seconds per pixel-step here
            callback(Progress(
                step=record.step, max_steps=schedule.steps[index], scale=index + 1, num_scales=len(plans),
                size=(width, height), losses=dict(record.losses), event=record.event, elapsed=now - start,
                fraction=done / sum(work), eta=(sum(work) - done) * rate, _best=best,
                tile=tile.index if tile is not None else 0, num_tiles=tile.count if tile is not None else 0,
            ))

        with run_settings(device):  # measured faster: see stylize.runtime and BENCHMARKS.md
            if schedule.layouts[index] is None:
                result = optimize(
                    init, objective, steps=schedule.steps[index], optimizer=opts.optimizer, lr=opts.lr,
                    tol=opts.tol, window=opts.window, on_step=on_step,
                )
            else:  # above the memory budget: overlapping tiles against this scale's global targets
                result = optimize_tiled(
                    init, objective, layout=schedule.layouts[index], margin=schedule.margin,
                    steps=schedule.steps[index], optimizer=opts.optimizer, lr=opts.lr, tol=opts.tol,
                    window=opts.window, on_step=on_step,
                )
        image = result.image
        stop_reasons.append(result.stop_reason)
        # Let go of this scale's targets and images before the next, larger scale builds its own:
        # at 8192 px they are gigabytes (issue 4's memory bound).
        del content_t, style_ts, objective, init, result, on_step
        if stop_reasons[-1] in ("interrupted", "stopped"):
            break

    assert image is not None
    image = color.finish(image)
    settings = dataclasses.asdict(opts)
    settings.update({
        "network": backbone.description, "arch": backbone.arch, "convention": backbone.convention,
        "device": str(device), "scale_sizes": [list(p) for p in plans], "num_styles": len(styles),
        "tiling": schedule.describe(), "memory_budget_gib": round(schedule.budget / 2**30, 2),
    })
    return Result(
        image=tensor_to_image(image.clamp(0, 1)), history=history, settings=settings,
        stop_reasons=stop_reasons, seconds=time.perf_counter() - start,
    )


__all__ = ["ImageSource", "Progress", "Result", "flag", "make_options", "resolve_device", "style_long_side", "transfer"]

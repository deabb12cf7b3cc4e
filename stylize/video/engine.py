"""One stylized frame: :func:`stylize.transfer` with a start image and extra objective terms.

The engine's hook (``transfer(..., init_image=..., extra_terms=[factory, ...])``, issue 10) is used
when this version of stylize has it. Until then :func:`_single_scale` is a minimal stand-in for
the later frames of a clip, which run one scale at the output size: it builds the same objective
as :func:`stylize.transfer` (content, style, blends, layer weights, colour control, masks) from the
same building blocks, adds the terms, and calls :func:`stylize.optimize.optimize` directly.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import PIL.Image
import torch

from stylize.api import Progress, Result, make_options, resolve_device, style_long_side, transfer
from stylize.backbone import Backbone
from stylize.color import ColorControl
from stylize.imageio import image_to_tensor, load_image, resize_to_long_side, tensor_to_image
from stylize.objective import Objective, content_targets, style_targets
from stylize.optimize import StepRecord, optimize
from stylize.regions import load_mask, regional_style
from stylize.runtime import run_settings

TermFactory = Callable[[Any], Any]


@dataclass(frozen=True)
class Scale:
    """What a term factory is told about the scale it will run at."""

    size: tuple[int, int]  # (width, height)
    index: int
    device: torch.device


def engine_has_hook() -> bool:
    """Whether :func:`stylize.transfer` takes ``init_image`` and ``extra_terms`` (issue 10)."""
    parameters = inspect.signature(transfer).parameters
    return "init_image" in parameters and "extra_terms" in parameters


def stylize_frame(content: PIL.Image.Image, styles: Sequence[Any], *, init: torch.Tensor | None,
                  terms: Sequence[TermFactory], backbone: Backbone, callback: Callable[[Progress], None] | None,
                  options: dict[str, Any]) -> Result:
    """Stylize one frame; with ``init`` (a later frame) one scale at the output size."""
    if init is None:
        return transfer(content, list(styles), callback=callback, backbone=backbone, **options)
    if engine_has_hook():
        return transfer(content, list(styles), callback=callback, backbone=backbone, init_image=init,
                        extra_terms=list(terms), **{**options, "scales": "1"})
    return _single_scale(content, styles, init, terms, backbone, callback, options)


def _single_scale(content: PIL.Image.Image, styles: Sequence[Any], init: torch.Tensor,
                  factories: Sequence[TermFactory], backbone: Backbone,
                  callback: Callable[[Progress], None] | None, options: dict[str, Any]) -> Result:
    opts = make_options(**{**options, "scales": "1"})
    device = resolve_device(opts.device)
    start = time.perf_counter()
    style_images = [load_image(s, what="style image", max_pixels=opts.max_pixels) for s in styles]
    color = ColorControl(opts.preserve_color, content)
    content, style_images = color.content(), [color.style(s) for s in style_images]
    width, height = content.size
    content_t = image_to_tensor(content, device)
    style_ts = [image_to_tensor(resize_to_long_side(s, style_long_side(s, (width, height), opts.style_scale)),
                                device) for s in style_images]
    masks = None if opts.mask is None else load_mask(opts.mask, len(styles), max_pixels=opts.max_pixels)
    objective = Objective(
        backbone, content_targets(backbone, content_t, opts.content_layers),
        style_targets(backbone, style_ts, opts.style_layers, opts.style_blend),
        content_weight=opts.content_weight, style_weight=opts.style_weight, tv_weight=opts.tv_weight,
        style_layer_weights=dict(zip(opts.style_layers, opts.style_layer_weights or [1.0] * len(opts.style_layers),
                                     strict=True)),
        style_regions=None if masks is None else regional_style(backbone, masks, style_ts, opts.style_layers,
                                                                (width, height)))
    terms = [factory(Scale((width, height), 0, device)) for factory in factories]

    def total(image: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        loss, parts = objective(image)
        for term in terms:  # the terms of a video frame need pixels only (term.layers is empty)
            value = term({}, image)
            loss = loss + term.weight * value
            parts[term.name] = float(value.detach())
        return loss, parts

    history: list[dict[str, Any]] = []

    def on_step(record: StepRecord, best: torch.Tensor) -> None:
        now = time.perf_counter()
        history.append({"step": record.step, "scale": 1, "scale_step": record.step, "width": width,
                        "height": height, "seconds": round(now - start, 4), **record.losses, "event": record.event})
        if callback is not None:
            rate = (now - start) / record.step
            callback(Progress(step=record.step, max_steps=opts.steps, scale=1, num_scales=1, size=(width, height),
                              losses=dict(record.losses), event=record.event, elapsed=now - start,
                              fraction=record.step / opts.steps, eta=(opts.steps - record.step) * rate, _best=best))

    with run_settings(device):
        result = optimize(init.to(device), total, steps=opts.steps, optimizer=opts.optimizer, lr=opts.lr,
                          tol=opts.tol, window=opts.window, on_step=on_step)
    image = color.finish(result.image)
    settings = {**asdict(opts), "network": backbone.description, "arch": backbone.arch,
                "scale_sizes": [[width, height]], "num_styles": len(styles), "device": str(device)}
    return Result(image=tensor_to_image(image.clamp(0, 1)), history=history, settings=settings,
                  stop_reasons=[result.stop_reason], seconds=time.perf_counter() - start)

"""Running one job: load its images, get a network, call :func:`stylize.transfer`, keep the result.

The progress callback records every step's losses in the job, renders a preview JPEG at most
every ``preview_interval`` seconds, keeps the best image so far in the results folder every
``checkpoint_interval`` seconds (so a killed server still has it), and raises
:class:`stylize.StopTransfer` once the job is cancelled or has run for ``max_seconds`` (the
transfer then returns the best image so far, which is kept as the result).

The images are decoded within a :class:`~stylize.web.uploads.DecodeBudget`, and at the size the
run uses: the photo at ``size``, each style image at the size that matches the photo's area
(JPEGs are decoded at a reduced scale right away, other formats resized once read).
"""

from __future__ import annotations

import io
import logging
import math
import re
import time
from collections.abc import Callable
from typing import Any

import PIL.Image

from stylize.api import Progress, make_options, transfer
from stylize.atomic import write_atomically
from stylize.errors import InputError, OptionError, StopTransfer
from stylize.imageio import load_image, resize_to_long_side, save_image
from stylize.network import BackboneFactory, NetworkCache
from stylize.optimize import STOP_REASONS
from stylize.plan import style_long_side
from stylize.pyramid import long_side_size
from stylize.web.jobs import CANCELLED, FAILED, INTERNAL_ERROR, ImageInput, Job
from stylize.web.store import ResultStore
from stylize.web.uploads import DecodeBudget, decode_pixels

log = logging.getLogger("stylize.web")

#: Makes the feature network for a run's options (tests pass one that returns a tiny network).

PREVIEW_MAX_SIDE = 1024
TIME_LIMIT = "time_limit"


def finite(value: float | None) -> float | None:
    """``value``, or None when it is not a finite number (JSON has no NaN or infinity)."""
    return value if value is not None and math.isfinite(value) else None


def jpeg_bytes(image: PIL.Image.Image, max_side: int = PREVIEW_MAX_SIDE, quality: int = 85) -> bytes:
    """``image`` as a JPEG, scaled down to ``max_side`` if it is larger."""
    if max(image.size) > max_side:
        image = resize_to_long_side(image, max_side)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def public_network(description: str) -> str:
    """A network's description without the server's file path (``vgg16 (caffe weights, cache)``)."""
    return re.sub(r" from [^()]*(?=\)$)", "", description)


class StepReporter:
    """The progress callback of one job."""

    def __init__(self, job: Job, store: ResultStore, *, preview_interval: float, checkpoint_interval: float,
                 max_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.job = job
        self.store = store
        self.preview_interval = preview_interval
        self.checkpoint_interval = checkpoint_interval
        self.clock = clock
        self.deadline = clock() + max_seconds
        self.timed_out = False
        self.last_preview = self.last_checkpoint = -float("inf")
        self.stored_losses = 0
        self.index = 0

    def __call__(self, p: Progress) -> None:
        self.index += 1
        losses = p.losses
        self.job.record_step(
            {"step": p.step, "max_steps": p.max_steps, "scale": p.scale, "num_scales": p.num_scales,
             "width": p.size[0], "height": p.size[1], "fraction": round(p.fraction, 5),
             "eta": finite(None if p.eta is None else round(p.eta, 2)), "elapsed": round(p.elapsed, 2),
             "losses": {k: finite(losses.get(k)) for k in ("total", "content", "style")}, "event": p.event},
            [self.index, p.scale, *(finite(losses.get(k)) for k in ("total", "content", "style"))],
        )
        now = self.clock()
        if now - self.last_checkpoint >= self.checkpoint_interval:
            self.last_checkpoint = self.last_preview = now
            self.checkpoint(p.image, {"steps": self.index, "seconds": round(p.elapsed, 2),
                                        "stop_reason": "running", "stop_text": "the best image so far"})
        elif now - self.last_preview >= self.preview_interval:
            self.last_preview = now
            self.job.set_preview(jpeg_bytes(p.image))
        if self.job.cancel_requested.is_set():
            raise StopTransfer  # after recording the step: the run's history has it too
        if now >= self.deadline:
            self.timed_out = True
            raise StopTransfer

    def checkpoint(self, image: PIL.Image.Image, result: dict[str, Any], *, final: bool = False) -> None:
        """Keep ``image`` in the results folder (atomically), its preview, and the losses so far; the
        job shows it as kept only once the database has it too."""
        save_image(image, self.store.result_path(self.job.id), **({} if final else {"compress_level": 1}))
        jpeg = jpeg_bytes(image)
        write_atomically(self.store.preview_path(self.job.id), lambda handle: handle.write(jpeg))
        best = {"width": image.width, "height": image.height, **result}
        self.store_losses()
        if not final:
            record = self.job.record()
            self.store.save({**record, "result": best, "preview_version": record["preview_version"] + 1})
        self.job.set_preview(jpeg, best=best)

    def store_losses(self) -> None:
        points = self.job.losses[self.stored_losses:]  # only this thread appends
        self.store.add_losses(self.job.id, points)
        self.stored_losses += len(points)


class JobRunner:
    """Runs a job on a device; every outcome, errors included, is recorded in the job."""

    def __init__(self, store: ResultStore, *, backbone_factory: BackboneFactory | None = None,
                 preview_interval: float = 0.5, checkpoint_interval: float = 10.0, max_seconds: float = 1800.0,
                 max_pixels: int, decode: DecodeBudget, allow_download: bool = True) -> None:
        self.store = store
        self.backbone_factory = backbone_factory or NetworkCache()
        self.preview_interval = preview_interval
        self.checkpoint_interval = checkpoint_interval
        self.max_seconds = max_seconds
        self.max_pixels = max_pixels
        self.decode = decode
        self.allow_download = allow_download

    def __call__(self, job: Job, device: str) -> None:
        try:
            self._run(job, device)
        except (InputError, OptionError) as exc:  # their messages name the option or the image's label
            job.end(FAILED, str(exc))
        except Exception:
            log.exception("job %s failed", job.id)
            job.end(FAILED, INTERNAL_ERROR)

    def _load(self, image: ImageInput, what: str, max_side: int) -> PIL.Image.Image:
        """Decode ``image`` to at most ``max_side`` (long side), within the decode budget."""
        try:
            with self.decode.hold(decode_pixels(image.path, max_side)):
                loaded = load_image(image.path, what=what, max_pixels=self.max_pixels, max_side=max_side)
        except InputError as exc:  # name the image as the visitor knows it, never the server's path
            raise InputError(None, f"{image.label}: {exc.problem}") from None
        return resize_to_long_side(loaded, max_side) if max(loaded.size) > max_side else loaded

    def _run(self, job: Job, device: str) -> None:
        options = {**job.options, "device": device, "max_pixels": self.max_pixels,
                   "allow_download": self.allow_download}
        opts = make_options(**options)
        job.set_phase("reading the images")
        content = self._load(job.content, "content image", opts.size)
        final = long_side_size(content.size, opts.size)  # the photo's size at the last scale
        styles = []
        for style in job.styles:
            side = style_long_side(style.size or (1, 1), final, opts.style_scale)
            styles.append(self._load(style, "style image", side))
        if job.cancel_requested.is_set():
            job.end(job.stop_status, "cancelled before it started" if job.stop_status == CANCELLED
                    else "the server stopped before this job started")
            return
        job.set_phase("loading the network (the first run may download weights)")
        backbone = self.backbone_factory(opts)
        job.set_network(public_network(backbone.description))
        if backbone.arch != opts.model:
            job.add_note(f"{opts.model} weights are not available on this server; {backbone.arch} was used")
        job.set_phase("computing the style targets")
        reporter = StepReporter(job, self.store, preview_interval=self.preview_interval,
                                checkpoint_interval=self.checkpoint_interval, max_seconds=self.max_seconds)
        result = transfer(content, styles, callback=reporter, backbone=backbone, **options)
        stopped = result.stop_reason == "stopped" and not reporter.timed_out
        reason = TIME_LIMIT if reporter.timed_out else result.stop_reason
        text = (f"stopped at this server's time limit of {self.max_seconds:g} s; the best image was kept"
                if reporter.timed_out else STOP_REASONS.get(result.stop_reason, result.stop_reason))
        reporter.checkpoint(result.image, {"seconds": round(result.seconds, 2), "steps": len(result.history),
                                           "stop_reason": reason, "stop_text": text}, final=True)
        settings = {**result.settings, "network": public_network(str(result.settings.get("network", "")))}
        phase = text
        if stopped:
            phase = ("cancelled: the best image so far was kept" if job.stop_status == CANCELLED
                     else "the server stopped while this job was running; the best image so far was kept")
        job.finish(dict(job.result or {}), _json_safe(settings), stopped=stopped, phase=phase)


def _json_safe(value: Any) -> Any:
    """``value`` with tuples as lists and non-finite floats as None (the database stores JSON)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float):
        return finite(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)

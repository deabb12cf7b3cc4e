"""Running one job: load its images, get a network, call :func:`stylize.transfer`, keep the result.

The progress callback records every step's losses in the job, renders a preview JPEG at most
every ``preview_interval`` seconds, and raises :class:`stylize.StopTransfer` once the job is
cancelled (the transfer then returns the best image so far, which is kept as the result).
"""

from __future__ import annotations

import io
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import PIL.Image

from stylize.api import Progress, make_options, transfer
from stylize.backbone import Backbone, load_backbone
from stylize.errors import InputError, OptionError, StopTransfer, StylizeError
from stylize.imageio import load_image, resize_to_long_side, save_image
from stylize.optimize import STOP_REASONS
from stylize.options import Options
from stylize.web.jobs import CANCELLED, FAILED, ImageInput, Job, JobResult

log = logging.getLogger("stylize.web")

#: Makes the feature network for a run's options (tests pass one that returns a tiny network).
BackboneFactory = Callable[[Options], Backbone]

PREVIEW_MAX_SIDE = 1024


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


class BackboneCache:
    """Loads the real networks and keeps the last few, one set per device (loading takes seconds)."""

    def __init__(self, max_entries: int = 2) -> None:
        self._entries: OrderedDict[tuple, Backbone] = OrderedDict()
        self._max_entries = max_entries
        self._lock = threading.Lock()

    def __call__(self, opts: Options) -> Backbone:
        layers = [*opts.content_layers, *opts.style_layers]
        key = (opts.model, opts.pooling, tuple(sorted(set(layers))), opts.device, opts.allow_download)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            try:
                backbone = load_backbone(opts.model, layers=layers, pooling=opts.pooling,
                                         allow_download=opts.allow_download)
            except ValueError as exc:  # an unknown layer name
                raise OptionError(f"--style-layers/--content-layers: {exc}") from None
            self._entries[key] = backbone
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
            return backbone


class StepReporter:
    """The progress callback of one job."""

    def __init__(self, job: Job, preview_interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.job = job
        self.preview_interval = preview_interval
        self.clock = clock
        self.last_preview = -float("inf")
        self.index = 0

    def __call__(self, p: Progress) -> None:
        if self.job.cancel_requested.is_set():
            raise StopTransfer
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
        if now - self.last_preview >= self.preview_interval:
            self.last_preview = now
            self.job.set_preview(jpeg_bytes(p.image))


class JobRunner:
    """Runs a job on a device; every outcome, errors included, is recorded in the job."""

    def __init__(self, results_dir: Path, *, backbone_factory: BackboneFactory | None = None,
                 preview_interval: float = 0.5, max_pixels: int, allow_download: bool = True) -> None:
        self.results_dir = results_dir
        self.backbone_factory = backbone_factory or BackboneCache()
        self.preview_interval = preview_interval
        self.max_pixels = max_pixels
        self.allow_download = allow_download
        results_dir.mkdir(parents=True, exist_ok=True)

    def __call__(self, job: Job, device: str) -> None:
        try:
            self._run(job, device)
        except StylizeError as exc:
            job.end(FAILED, str(exc))
        except Exception as exc:
            log.exception("job %s failed", job.id)
            job.end(FAILED, f"internal error ({type(exc).__name__}: {exc})")

    def _load(self, image: ImageInput, what: str, opts: Options, max_side: int | None = None) -> PIL.Image.Image:
        try:
            return load_image(image.path, what=what, max_pixels=opts.max_pixels, max_side=max_side)
        except InputError as exc:  # name the image as the visitor knows it, never the server's path
            raise InputError(None, f"{image.label}: {exc.problem}") from None

    def _run(self, job: Job, device: str) -> None:
        options = {**job.options, "device": device, "max_pixels": self.max_pixels,
                   "allow_download": self.allow_download}
        opts = make_options(**options)
        job.set_phase("reading the images")
        content = self._load(job.content, "content image", opts, max_side=opts.size)
        styles = [self._load(s, "style image", opts) for s in job.styles]
        if job.cancel_requested.is_set():
            job.end(CANCELLED, "cancelled before it started")
            return
        job.set_phase("loading the network (the first run may download weights)")
        backbone = self.backbone_factory(opts)
        job.set_network(backbone.description)
        if backbone.arch != opts.model:
            job.add_note(f"{opts.model} weights are not available on this server; {backbone.arch} was used")
        job.set_phase("computing the style targets")
        reporter = StepReporter(job, self.preview_interval)
        result = transfer(content, styles, callback=reporter, backbone=backbone, **options)
        path = save_image(result.image, self.results_dir / f"{job.id}.png")
        job.set_preview(jpeg_bytes(result.image))
        job.finish(JobResult(path=path, width=result.image.width, height=result.image.height,
                             seconds=result.seconds, steps=len(result.history), stop_reason=result.stop_reason,
                             stop_text=STOP_REASONS.get(result.stop_reason, result.stop_reason)),
                   cancelled=result.stop_reason == "stopped")

"""Running one job: load its images here, paint it in the device's job process, keep what it reports.

The server's side of a job (:mod:`stylize.web.worker` has the other): the images are decoded in
the server within a :class:`~stylize.web.uploads.DecodeBudget`, and at the size the run uses: the
photo at ``size``, each style image at the size that matches the photo's area (JPEGs are decoded
at a reduced scale right away, other formats resized once read). The task then goes to the job
process of its device, which runs :func:`stylize.transfer` at a lower CPU priority; its reports
are applied here, in the queue's worker thread: every step's losses go into the job, previews
into memory, and each checkpoint (the best image so far, every ``checkpoint_interval`` seconds,
already written to the results folder by the job process) into the database with the losses so
far, so a killed server still has it. A cancel or a shutdown asks the job process to stop after
its current step; it then keeps the best image so far, as at ``max_seconds``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import PIL.Image

from stylize.api import make_options
from stylize.errors import InputError, OptionError
from stylize.imageio import load_image, resize_to_long_side
from stylize.network import BackboneFactory
from stylize.plan import style_long_side
from stylize.pyramid import long_side_size
from stylize.web.jobs import CANCELLED, FAILED, INTERNAL_ERROR, INTERRUPTED, ImageInput, Job
from stylize.web.store import ResultStore
from stylize.web.uploads import DecodeBudget, decode_pixels
from stylize.web.worker import JobProcess, Message, Task, WorkerDiedError, public_network

log = logging.getLogger("stylize.web")

__all__ = ["JobRunner", "public_network"]


class Relay:
    """Applies the reports of one task's job process to its job and the results store."""

    def __init__(self, job: Job, store: ResultStore) -> None:
        self.job = job
        self.store = store
        self.stored_losses = 0

    def __call__(self, message: Message) -> None:
        kind, job = message[0], self.job
        if kind == "step":
            job.record_step(message[1], message[2])
        elif kind == "preview":
            job.set_preview(message[1])
        elif kind == "checkpoint":
            self.checkpoint(*message[1:])
        elif kind == "phase":
            job.set_phase(message[1])
        elif kind == "network":
            job.set_network(message[1])
        elif kind == "note":
            job.add_note(message[1])
        elif kind == "finish":
            settings, stopped, text = message[1:]
            phase = text
            if stopped:
                phase = ("cancelled: the best image so far was kept" if job.stop_status == CANCELLED
                         else "the server stopped while this job was running; the best image so far was kept")
            job.finish(dict(job.result or {}), settings, stopped=stopped, phase=phase)
        elif kind == "fail":
            job.end(FAILED, message[1])

    def checkpoint(self, jpeg: bytes, best: dict[str, Any], final: bool) -> None:
        """The job process wrote the best image so far: the database gets it with the losses so far,
        and only then does the job show it as kept."""
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
    """Runs a job on a device, in that device's job process; every outcome, errors included, is
    recorded in the job. :meth:`close` ends the job processes (a later job starts them again)."""

    def __init__(self, store: ResultStore, *, backbone_factory: BackboneFactory | None = None,
                 preview_interval: float = 0.5, checkpoint_interval: float = 10.0, max_seconds: float = 1800.0,
                 max_pixels: int, decode: DecodeBudget, allow_download: bool = True, nice: int = 10) -> None:
        self.store = store
        self.backbone_factory = backbone_factory  # None: the job process loads the real network, once
        self.preview_interval = preview_interval
        self.checkpoint_interval = checkpoint_interval
        self.max_seconds = max_seconds
        self.max_pixels = max_pixels
        self.decode = decode
        self.allow_download = allow_download
        self.nice = nice
        self._processes: dict[str, JobProcess] = {}
        self._lock = threading.Lock()

    def process(self, device: str) -> JobProcess:
        """The job process of ``device`` (made on first use; it starts with its first task)."""
        with self._lock:
            if device not in self._processes:
                self._processes[device] = JobProcess(self.backbone_factory, nice=self.nice,
                                                     name=f"stylize-job-{device}")
            return self._processes[device]

    def close(self, timeout: float = 5.0) -> None:
        with self._lock:
            processes = list(self._processes.values())
        for process in processes:
            process.close(timeout)

    def __call__(self, job: Job, device: str) -> None:
        try:
            self._run(job, device)
        except (InputError, OptionError) as exc:  # their messages name the option or the image's label
            job.end(FAILED, str(exc))
        except WorkerDiedError as exc:
            log.error("job %s: %s", job.id, exc)
            if job.stop_status == INTERRUPTED:  # ended by the shutdown: like a killed server, keep the image
                job.end(INTERRUPTED, "the server stopped while this job was running" +
                        ("; the best image so far was kept" if job.result is not None else ""))
            else:
                job.end(FAILED, INTERNAL_ERROR)
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
        process = self.process(device)
        process.start()  # it imports while the images are read
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
        job.set_phase("starting the job process")
        task = Task(content=content, styles=styles, options=options, result_path=str(self.store.result_path(job.id)),
                    preview_path=str(self.store.preview_path(job.id)), preview_interval=self.preview_interval,
                    checkpoint_interval=self.checkpoint_interval, max_seconds=self.max_seconds)
        process.run(task, Relay(job, self.store), job.cancel_requested.is_set)

"""Jobs of the web app and the queue that runs them, one at a time per device.

A :class:`Job` holds everything the page shows about one transfer while this server runs it: its
status, the latest progress, the loss of every step, the latest preview JPEG and, at the end, the
result or the error. Its :meth:`Job.record` is what the results database keeps
(:mod:`stylize.web.store`); :func:`snapshot` turns a record (of a live job or of a stored one)
into what the page gets. The :class:`JobQueue` keeps waiting jobs in order and has one worker
thread per device; each worker takes the next job and hands it to a runner
(:class:`stylize.web.runner.JobRunner`), which has it painted in the device's job process
(:mod:`stylize.web.worker`) and applies what that process reports.

Every change to a job bumps its ``version``; the event stream of the page sends a new snapshot
when the version moved.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stylize.web.store import CANCELLED, DONE, FAILED, INTERRUPTED, QUEUED, RUNNING, TERMINAL

log = logging.getLogger("stylize.web")

__all__ = ["CANCELLED", "DONE", "FAILED", "INTERRUPTED", "QUEUED", "RUNNING", "TERMINAL", "ImageInput", "Job",
           "JobQueue", "QueueFullError", "encode", "snapshot"]

INTERNAL_ERROR = "internal error: the job failed (the server's log has the details)"


class QueueFullError(Exception):
    """Too many jobs are waiting."""


@dataclass(frozen=True)
class ImageInput:
    """An image a job will read: a path the server chose, a label for the page, and its size."""

    label: str
    path: Path
    size: tuple[int, int] = (0, 0)


def snapshot(record: dict[str, Any], losses: list[list[float | None]], *, loss_offset: int = 0,
             queue_position: int = 0, progress: dict[str, Any] | None = None, version: int = 0) -> dict[str, Any]:
    """What the page gets about a job, from its record and its loss points from ``loss_offset`` on."""
    result = record["result"]
    return {
        "id": record["id"], "title": record["title"], "status": record["status"], "phase": record["phase"],
        "queue_position": queue_position, "device": record["device"], "network": record["network"],
        "notes": list(record["notes"]), "error": record["error"], "created": record["created"],
        "content": record["content"], "styles": list(record["styles"]), "options": dict(record["options"]),
        "settings": record["settings"], "work": record["work"], "progress": progress,
        "preview_version": record["preview_version"], "version": version, "has_result": result is not None,
        "result": None if result is None else dict(result), "loss_offset": loss_offset, "losses": losses,
    }


def encode(value: Any) -> bytes:
    """JSON as the API sends it (as FastAPI's JSONResponse does: compact, UTF-8, no NaN)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


@dataclass(eq=False)  # jobs are compared by identity
class Job:
    """One style transfer requested from the page. Thread-safe: use the methods to change it."""

    content: ImageInput
    styles: list[ImageInput]
    options: dict[str, Any]
    work: float = 0.0  # planned pixel-steps
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    status: str = QUEUED
    phase: str = "waiting in the queue"
    device: str = ""
    network: str = ""
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    progress: dict[str, Any] | None = None
    losses: list[list[float | None]] = field(default_factory=list)  # [index, scale, total, content, style]
    preview: bytes | None = None
    preview_version: int = 0
    result: dict[str, Any] | None = None  # width, height, seconds, steps, stop_reason, stop_text
    settings: dict[str, Any] | None = None
    created: float = field(default_factory=time.time)
    version: int = 0
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    stop_status: str = CANCELLED  # what a stopped run becomes: cancelled, or interrupted by a shutdown
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _encoded: dict[tuple[int, int], tuple[int, bytes]] = field(default_factory=dict, repr=False)

    @property
    def title(self) -> str:
        return f"{self.content.label} × {' + '.join(s.label for s in self.styles)}"

    def _changed(self) -> None:
        self.version += 1

    def touch(self) -> None:
        """Something outside the job changed (its queue position)."""
        with self._lock:
            self._changed()

    def set_phase(self, phase: str, *, status: str | None = None, device: str | None = None) -> None:
        with self._lock:
            self.phase = phase
            if status is not None:
                self.status = status
            if device is not None:
                self.device = device
            self._changed()

    def add_note(self, note: str) -> None:
        with self._lock:
            self.notes.append(note)
            self._changed()

    def set_network(self, description: str) -> None:
        with self._lock:
            self.network = description
            self._changed()

    def record_step(self, progress: dict[str, Any], loss_point: list[float | None]) -> None:
        with self._lock:
            self.progress = progress
            self.losses.append(loss_point)
            self.phase = "painting"
            self._changed()

    def set_preview(self, jpeg: bytes, best: dict[str, Any] | None = None) -> None:
        """A new preview; with ``best`` (the result fields of the best image so far) a kept image."""
        with self._lock:
            self.preview = jpeg
            self.preview_version += 1
            if best is not None:
                self.result = best
            self._changed()

    def finish(self, result: dict[str, Any], settings: dict[str, Any], *, stopped: bool, phase: str) -> None:
        with self._lock:
            self.result = result
            self.settings = settings
            self.status = self.stop_status if stopped else DONE
            self.phase = phase
            self._changed()

    def end(self, status: str, message: str) -> None:
        """End without a result: cancelled before it painted anything, or failed."""
        with self._lock:
            self.status = status
            self.phase = message
            if status == FAILED:
                self.error = message
            if status != INTERRUPTED or self.result is None:
                self.result = None
            self._changed()

    def record(self) -> dict[str, Any]:
        """The job's row of the results database (:data:`stylize.web.store.COLUMNS`)."""
        with self._lock:
            return {
                "id": self.id, "created": self.created, "updated": time.time(), "status": self.status,
                "phase": self.phase, "title": self.title, "content": self.content.label,
                "styles": [s.label for s in self.styles],
                "options": {k: list(v) if isinstance(v, tuple) else v for k, v in self.options.items()},
                "settings": self.settings, "device": self.device, "network": self.network,
                "notes": list(self.notes), "error": self.error,
                "result": None if self.result is None else dict(self.result), "work": self.work,
                "preview_version": self.preview_version,
            }

    def snapshot(self, *, loss_offset: int = 0, queue_position: int = 0) -> dict[str, Any]:
        """What the page needs, as JSON-ready data; ``losses`` holds the points from ``loss_offset`` on."""
        record = self.record()
        with self._lock:
            offset = min(max(loss_offset, 0), len(self.losses))
            losses = [list(p) for p in self.losses[offset:]]
            progress = dict(self.progress) if self.progress else None
            version = self.version
        return snapshot(record, losses, loss_offset=offset, queue_position=queue_position, progress=progress,
                        version=version)

    def snapshot_json(self, *, loss_offset: int = 0, queue_position: int = 0) -> bytes:
        """:meth:`snapshot` as JSON, encoded once per version of the job (and offset, queue position):
        the many pages polling a job in the same moment share one encoding."""
        key = (loss_offset, queue_position)
        version = self.version
        cached = self._encoded.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        data = encode(self.snapshot(loss_offset=loss_offset, queue_position=queue_position))
        if len(self._encoded) >= 8:
            self._encoded.clear()
        self._encoded[key] = (version, data)
        return data


Runner = Callable[[Job, str], None]


class JobQueue:
    """Waiting jobs in order, one worker thread per device, and the jobs of this server run.

    ``run(job, device)`` does the work; it must record the outcome in the job itself (the queue
    marks a job failed only if ``run`` raises). ``on_update(job)`` is called (from any thread) when
    a job is submitted, starts, and ends, to keep its record; a job that ended is then let go (the
    database has it).
    """

    def __init__(self, run: Runner, *, devices: tuple[str, ...] = ("auto",), max_waiting: int = 20,
                 on_update: Callable[[Job], None] | None = None) -> None:
        if not devices:
            raise ValueError("give at least one device")
        self._run = run
        self._devices = devices
        self._max_waiting = max_waiting
        self._on_update = on_update or (lambda job: None)
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._waiting: deque[Job] = deque()
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._closed = False

    # -- public

    def submit(self, job: Job) -> Job:
        with self._cond:
            if self._closed:
                raise QueueFullError("the server is shutting down")
            if len(self._waiting) >= self._max_waiting:
                raise QueueFullError(f"{len(self._waiting)} jobs are already waiting; try again later")
            self._on_update(job)
            self._start_workers()
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._cond.notify()
        return job

    def get(self, job_id: str) -> Job | None:
        with self._cond:
            return self._jobs.get(job_id)

    def position(self, job: Job) -> int:
        """1 for the next job to start, 2 for the one after ...; 0 when not waiting."""
        with self._cond:
            for index, waiting in enumerate(self._waiting):
                if waiting is job:
                    return index + 1
            return 0

    def snapshot(self, job: Job, loss_offset: int = 0) -> dict[str, Any]:
        return job.snapshot(loss_offset=loss_offset, queue_position=self.position(job))

    def snapshot_json(self, job: Job, loss_offset: int = 0) -> bytes:
        return job.snapshot_json(loss_offset=loss_offset, queue_position=self.position(job))

    def cancel(self, job: Job) -> None:
        """A waiting job ends at once; a running one stops after its current step."""
        with self._cond:
            job.cancel_requested.set()
            if job in self._waiting:
                self._waiting.remove(job)
                job.end(CANCELLED, "cancelled before it started")
                self._ended(job)
                self._touch_waiting()

    def close(self, timeout: float = 10.0) -> None:
        """Stop everything (running jobs keep their best image as ``interrupted``) and wait for the workers."""
        with self._cond:
            self._closed = True
            for job in list(self._waiting):
                job.end(INTERRUPTED, "the server stopped before this job started")
                self._ended(job)
            self._waiting.clear()
            for job in self._jobs.values():
                job.stop_status = INTERRUPTED
                job.cancel_requested.set()
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def reopen(self) -> None:
        """Take jobs again after :meth:`close` (an app whose lifespan starts again)."""
        with self._cond:
            if self._closed:
                self._closed = False
                self._threads = [t for t in self._threads if t.is_alive()]

    @property
    def closed(self) -> bool:
        return self._closed

    # -- internals (call with self._cond held)

    def _start_workers(self) -> None:
        if self._threads:
            return
        for index, device in enumerate(self._devices):
            thread = threading.Thread(target=self._work, args=(device,), name=f"stylize-worker-{index}-{device}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    def _touch_waiting(self) -> None:
        for job in self._waiting:
            job.touch()

    def _keep(self, job: Job) -> None:
        try:
            self._on_update(job)
        except Exception:  # a full disk must not stop the worker; the job goes on in memory
            log.exception("could not store job %s", job.id)

    def _ended(self, job: Job) -> None:
        self._keep(job)
        self._jobs.pop(job.id, None)

    # -- the worker thread

    def _work(self, device: str) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job = self._waiting.popleft()
                job.set_phase("starting", status=RUNNING, device=device)
                self._touch_waiting()
            self._keep(job)
            try:
                self._run(job, device)
            except Exception:  # the runner reports errors itself; this is a last resort
                log.exception("job %s failed", job.id)
                job.end(FAILED, INTERNAL_ERROR)
            if job.status not in TERMINAL:
                job.end(FAILED, INTERNAL_ERROR)
            with self._cond:
                self._ended(job)

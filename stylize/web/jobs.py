"""Jobs of the web app and the queue that runs them, one at a time per device.

A :class:`Job` holds everything the page shows about one transfer: its status, the latest
progress, the loss of every step, the latest preview JPEG and, at the end, the result file or
the error. The :class:`JobQueue` keeps waiting jobs in order and has one worker thread per
device; each worker takes the next job and hands it to a runner
(:class:`stylize.web.runner.JobRunner`), which calls :func:`stylize.transfer`.

Every change to a job bumps its ``version``; the event stream of the page sends a new snapshot
when the version moved.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("stylize.web")

QUEUED, RUNNING, DONE, CANCELLED, FAILED = "queued", "running", "done", "cancelled", "failed"
TERMINAL = frozenset({DONE, CANCELLED, FAILED})


class QueueFullError(Exception):
    """Too many jobs are waiting."""


@dataclass(frozen=True)
class ImageInput:
    """An image a job will read: a path the server chose, and a label for the page."""

    label: str
    path: Path


@dataclass
class JobResult:
    path: Path  # the PNG, inside the server's work folder
    width: int
    height: int
    seconds: float
    steps: int
    stop_reason: str
    stop_text: str


@dataclass(eq=False)  # jobs are compared by identity
class Job:
    """One style transfer requested from the page. Thread-safe: use the methods to change it."""

    content: ImageInput
    styles: list[ImageInput]
    options: dict[str, Any]
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
    result: JobResult | None = None
    created: float = field(default_factory=time.time)
    version: int = 0
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

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

    def set_preview(self, jpeg: bytes) -> None:
        with self._lock:
            self.preview = jpeg
            self.preview_version += 1
            self._changed()

    def finish(self, result: JobResult, *, cancelled: bool) -> None:
        with self._lock:
            self.result = result
            self.status = CANCELLED if cancelled else DONE
            self.phase = "cancelled: the best image so far was kept" if cancelled else result.stop_text
            self._changed()

    def end(self, status: str, message: str) -> None:
        """End without a result: cancelled before it painted anything, or failed."""
        with self._lock:
            self.status = status
            self.phase = message
            if status == FAILED:
                self.error = message
            self._changed()

    def snapshot(self, *, loss_offset: int = 0, queue_position: int = 0) -> dict[str, Any]:
        """What the page needs, as JSON-ready data; ``losses`` holds the points from ``loss_offset`` on."""
        with self._lock:
            offset = min(max(loss_offset, 0), len(self.losses))
            result = self.result
            return {
                "id": self.id, "title": self.title, "status": self.status, "phase": self.phase,
                "queue_position": queue_position, "device": self.device, "network": self.network,
                "notes": list(self.notes), "error": self.error, "created": self.created,
                "content": self.content.label, "styles": [s.label for s in self.styles],
                "options": {k: list(v) if isinstance(v, tuple) else v for k, v in self.options.items()},
                "progress": dict(self.progress) if self.progress else None,
                "preview_version": self.preview_version, "version": self.version,
                "has_result": result is not None,
                "result": None if result is None else {
                    "width": result.width, "height": result.height, "seconds": round(result.seconds, 2),
                    "steps": result.steps, "stop_reason": result.stop_reason, "stop_text": result.stop_text,
                },
                "loss_offset": offset, "losses": [list(p) for p in self.losses[offset:]],
            }


Runner = Callable[[Job, str], None]


class JobQueue:
    """Waiting jobs in order, one worker thread per device, and the jobs of this server run.

    ``run(job, device)`` does the work; it must record the outcome in the job itself (the queue
    marks a job failed only if ``run`` raises). The oldest finished jobs are forgotten beyond
    ``max_jobs``, and ``on_forget(job)`` is called for each (to delete its files).
    """

    def __init__(self, run: Runner, *, devices: tuple[str, ...] = ("auto",), max_waiting: int = 20,
                 max_jobs: int = 100, on_forget: Callable[[Job], None] | None = None) -> None:
        if not devices:
            raise ValueError("give at least one device")
        self._run = run
        self._devices = devices
        self._max_waiting = max_waiting
        self._max_jobs = max_jobs
        self._on_forget = on_forget
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
            self._start_workers()
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._forget_old()
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

    def cancel(self, job: Job) -> None:
        """A waiting job ends at once; a running one stops after its current step."""
        with self._cond:
            job.cancel_requested.set()
            if job in self._waiting:
                self._waiting.remove(job)
                job.end(CANCELLED, "cancelled before it started")
                self._touch_waiting()

    def close(self, timeout: float = 10.0) -> None:
        """Cancel everything and wait (up to ``timeout`` seconds) for the workers to end."""
        with self._cond:
            self._closed = True
            for job in self._waiting:
                job.end(CANCELLED, "the server shut down")
            self._waiting.clear()
            for job in self._jobs.values():
                job.cancel_requested.set()
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

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

    def _forget_old(self) -> None:
        finished = [job for job in self._jobs.values() if job.status in TERMINAL]
        for job in finished[: max(0, len(self._jobs) - self._max_jobs)]:
            del self._jobs[job.id]
            if self._on_forget is not None:
                with contextlib.suppress(Exception):
                    self._on_forget(job)

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
            try:
                self._run(job, device)
            except Exception as exc:  # the runner reports errors itself; this is a last resort
                log.exception("job %s failed", job.id)
                job.end(FAILED, f"internal error ({type(exc).__name__}: {exc})")
            if job.status not in TERMINAL:
                job.end(FAILED, "internal error (the job ended without an outcome)")

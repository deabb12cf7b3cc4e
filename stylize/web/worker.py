"""The job process of the web app: the optimizer runs here, never in the server's own process.

Each device gets one :class:`JobProcess`: a child process (``multiprocessing``, *spawn*: a fresh
interpreter, never a fork of the server's threads) that runs at a lower CPU priority, gets its
network once from the backbone factory and keeps it, and runs one :class:`Task` at a time with
:func:`paint`. The server's event loop and threads then never wait for the optimizer's share of
the GIL, and the scheduler gives the job only the CPU time the server does not need.

A task carries the decoded images (the server decodes them within its decode budget) and the
transfer keywords. The child reports back over a pipe, in order, with tuples:

* ``("phase", text)``, ``("network", description)``, ``("note", text)``;
* ``("step", progress, loss_point)`` for every step;
* ``("preview", jpeg)`` at most every ``preview_interval`` seconds;
* ``("checkpoint", jpeg, best, final)`` every ``checkpoint_interval`` seconds and at the end,
  once the image (``result_path``) and its preview (``preview_path``) are written atomically;
* last, ``("finish", settings, stopped, text)`` or ``("fail", message)``.

The server asks a running task to stop through a shared flag (checked after every step: a
cancel, or a shutdown); the time limit is kept by the child. A child whose server is gone (even
killed with SIGKILL) exits at once; Ctrl-C in the terminal reaches only the server, which stops
the job itself.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import PIL.Image

from stylize.api import Progress, make_options, transfer
from stylize.atomic import write_atomically
from stylize.errors import InputError, OptionError, StopTransfer
from stylize.imageio import resize_to_long_side, save_image
from stylize.network import BackboneFactory, NetworkCache
from stylize.optimize import STOP_REASONS
from stylize.web.jobs import INTERNAL_ERROR

log = logging.getLogger("stylize.web")

PREVIEW_MAX_SIDE = 1024
TIME_LIMIT = "time_limit"
Message = tuple[Any, ...]


class WorkerDiedError(RuntimeError):
    """The job process ended in the middle of a task (killed, out of memory, a crash)."""


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


def json_safe(value: Any) -> Any:
    """``value`` with tuples as lists and non-finite floats as None (the database stores JSON)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float):
        return finite(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


@dataclass(frozen=True)
class Task:
    """One job as the job process gets it."""

    content: PIL.Image.Image
    styles: list[PIL.Image.Image]
    options: dict[str, Any]  # transfer keywords, device and limits included
    result_path: str
    preview_path: str
    preview_interval: float = 0.5
    checkpoint_interval: float = 10.0
    max_seconds: float = 1800.0


class StepReporter:
    """The progress callback of one task, in the job process."""

    def __init__(self, task: Task, send: Callable[[Message], None], stop: Callable[[], bool], *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.task = task
        self.send = send
        self.stop = stop
        self.clock = clock
        self.deadline = clock() + task.max_seconds
        self.timed_out = False
        self.last_preview = self.last_checkpoint = -float("inf")
        self.index = 0

    def __call__(self, p: Progress) -> None:
        self.index += 1
        losses = p.losses
        self.send(("step",
                   {"step": p.step, "max_steps": p.max_steps, "scale": p.scale, "num_scales": p.num_scales,
                    "width": p.size[0], "height": p.size[1], "fraction": round(p.fraction, 5),
                    "eta": finite(None if p.eta is None else round(p.eta, 2)), "elapsed": round(p.elapsed, 2),
                    "losses": {k: finite(losses.get(k)) for k in ("total", "content", "style")}, "event": p.event},
                   [self.index, p.scale, *(finite(losses.get(k)) for k in ("total", "content", "style"))]))
        now = self.clock()
        if now - self.last_checkpoint >= self.task.checkpoint_interval:
            self.last_checkpoint = self.last_preview = now
            self.checkpoint(p.image, {"steps": self.index, "seconds": round(p.elapsed, 2),
                                        "stop_reason": "running", "stop_text": "the best image so far"})
        elif now - self.last_preview >= self.task.preview_interval:
            self.last_preview = now
            self.send(("preview", jpeg_bytes(p.image)))
        if self.stop():
            raise StopTransfer  # after reporting the step: the run's history has it too
        if now >= self.deadline:
            self.timed_out = True
            raise StopTransfer

    def checkpoint(self, image: PIL.Image.Image, result: dict[str, Any], *, final: bool = False) -> None:
        """Write ``image`` and its preview (atomically), then report them as kept."""
        save_image(image, self.task.result_path, **({} if final else {"compress_level": 1}))
        jpeg = jpeg_bytes(image)
        write_atomically(self.task.preview_path, lambda handle: handle.write(jpeg))
        self.send(("checkpoint", jpeg, {"width": image.width, "height": image.height, **result}, final))


def paint(task: Task, factory: BackboneFactory, send: Callable[[Message], None], stop: Callable[[], bool]) -> None:
    """Run one task, reporting everything with ``send``, errors included (it never raises)."""
    try:
        _paint(task, factory, send, stop)
    except (InputError, OptionError) as exc:  # their messages name the option or the image's label
        send(("fail", str(exc)))
    except Exception:
        log.exception("a job failed")
        send(("fail", INTERNAL_ERROR))


def _paint(task: Task, factory: BackboneFactory, send: Callable[[Message], None], stop: Callable[[], bool]) -> None:
    opts = make_options(**task.options)
    send(("phase", "loading the network (the first run may download weights)"))
    backbone = factory(opts)
    send(("network", public_network(backbone.description)))
    if backbone.arch != opts.model:
        send(("note", f"{opts.model} weights are not available on this server; {backbone.arch} was used"))
    send(("phase", "computing the style targets"))
    reporter = StepReporter(task, send, stop)
    result = transfer(task.content, task.styles, callback=reporter, backbone=backbone, **task.options)
    reason = TIME_LIMIT if reporter.timed_out else result.stop_reason
    text = (f"stopped at this server's time limit of {task.max_seconds:g} s; the best image was kept"
            if reporter.timed_out else STOP_REASONS.get(result.stop_reason, result.stop_reason))
    reporter.checkpoint(result.image, {"seconds": round(result.seconds, 2), "steps": len(result.history),
                                       "stop_reason": reason, "stop_text": text}, final=True)
    settings = {**result.settings, "network": public_network(str(result.settings.get("network", "")))}
    send(("finish", json_safe(settings), result.stop_reason == "stopped" and not reporter.timed_out, text))


# --------------------------------------------------------------------------- the child process


def lower_priority(nice: int) -> None:
    """Lower the CPU priority of this whole process by ``nice`` (every thread it has now; the ones
    it starts later inherit it). Linux keeps a nice value per thread, hence the loop."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    tids = [0]
    if sys.platform == "linux":
        with contextlib.suppress(OSError):
            tids = [int(t) for t in os.listdir("/proc/self/task")]
    for tid in tids:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))


def _exit_with(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(1)  # the server is gone (even SIGKILLed): nothing more to report to


def serve_tasks(conn: multiprocessing.connection.Connection, stop: Any, factory: BackboneFactory | None,
                nice: int) -> None:
    """The job process: run the tasks that arrive on ``conn`` until None arrives or the server is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle: it stops the job itself
    lower_priority(nice)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True, name="stylize-watch").start()
    factory = factory or NetworkCache()  # made here: the network is loaded once, in this process
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        paint(task, factory, conn.send, lambda: stop.value != 0)


# --------------------------------------------------------------------------- the server's side


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Start a child without the server's main module: *spawn* would run it again in the child, and
    a script without a ``__main__`` guard, or ``python -m stylize serve``, would start a second
    server there. Nothing a job process gets refers to it (factories must be importable)."""
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if main is not None and k in main.__dict__}
    for name in saved:
        if name == "__spec__":
            main.__spec__ = None  # type: ignore[union-attr]
        else:
            delattr(main, name)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(main, name, value)


class JobProcess:
    """The server's handle on one job process, started on the first task and again after a crash.

    Used by one thread at a time (the queue's worker thread of its device)."""

    def __init__(self, factory: BackboneFactory | None = None, *, nice: int = 10, name: str = "stylize-job") -> None:
        self.factory = factory
        self.nice = nice
        self.name = name
        self._context = multiprocessing.get_context("spawn")  # never fork a process with threads
        self._process: Any = None
        self._conn: multiprocessing.connection.Connection | None = None
        self._stop: Any = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.is_alive() else None

    def start(self) -> None:
        """Start the process if it is not running (it then imports in the background)."""
        with self._lock:
            if self._process is not None and self._process.is_alive():
                return
            self._discard()
            ours, theirs = self._context.Pipe()
            self._stop = self._context.RawValue("b", 0)  # shared memory: no semaphore to leak
            self._process = self._context.Process(
                target=serve_tasks, args=(theirs, self._stop, self.factory, self.nice), name=self.name, daemon=True)
            with _main_module_hidden():
                self._process.start()
            theirs.close()
            self._conn = ours

    def run(self, task: Task, on_message: Callable[[Message], None], stop_requested: Callable[[], bool],
            poll: float = 0.05) -> None:
        """Run ``task``, calling ``on_message`` for each report up to the last one (``finish`` or ``fail``);
        once ``stop_requested()`` the task is asked to stop. WorkerDiedError if the process ends first."""
        self.start()
        conn, process = self._conn, self._process
        assert conn is not None and process is not None
        self._stop.value = 0
        try:
            conn.send(task)
        except OSError:
            raise WorkerDiedError(f"the job process ended (exit code {process.exitcode})") from None
        while True:
            if stop_requested():
                self._stop.value = 1
            try:
                message = conn.recv() if conn.poll(poll) else None
                ended = message is None and not process.is_alive() and not conn.poll(0)
            except (EOFError, OSError, ValueError):  # its end of the pipe closed: it ended (or close() ended it)
                process.join(1.0)
                ended = True
            if ended:
                raise WorkerDiedError(f"the job process ended (exit code {process.exitcode})")
            if message is None:
                continue
            on_message(message)
            if message[0] in ("finish", "fail"):
                return

    def close(self, timeout: float = 5.0) -> None:
        """Let the process end (after its task, if one still runs), or end it after ``timeout`` seconds."""
        with self._lock:
            process, conn = self._process, self._conn
            if process is None:
                return
            if self._stop is not None:
                self._stop.value = 1
            with contextlib.suppress(OSError, ValueError):
                conn.send(None)  # type: ignore[union-attr]
            process.join(timeout)
            if process.is_alive():
                process.kill()
                process.join(5.0)
            self._discard()

    def _discard(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._process = self._conn = None

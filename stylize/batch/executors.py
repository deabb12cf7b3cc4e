"""Where the jobs of a batch (and the cells of a grid) run: one small interface, three executors.

An :class:`Executor` takes :class:`Task` objects (``submit``, one per free slot) and hands back an
:class:`Outcome` for each as it finishes (``poll``), reporting the steps of running jobs through a
callback. It computes; it never writes files: the driver (:func:`stylize.batch.run_batch` and the
``stylize batch`` command) saves the results and the index.

* :class:`InlineExecutor`: in this process, one job at a time (what ``stylize grid`` always did).
* :class:`LocalExecutor`: ``workers`` processes, each with ``cores / workers`` torch threads,
  each loading its network once and keeping it for every later job.
* :class:`stylize.batch.ray_executor.RayExecutor`: a pool of Ray actors on a local or remote
  cluster (``pip install 'stylize[ray]'``).

A worker that dies in the middle of a job (killed, out of memory) is replaced and its job is
reported with ``retryable`` set, so the driver can run it again; an input error (a corrupt image)
is not retryable. Factories and hooks must be picklable (module-level functions) to reach other
processes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import queue
import signal
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import PIL.Image

from stylize.api import Progress, Result, make_options, transfer
from stylize.backbone import Backbone
from stylize.errors import StylizeError
from stylize.network import BackboneFactory, load_network
from stylize.options import Options
from stylize.runs import network_key

#: ``hook(task, progress)`` runs in the worker after every step (tests use it to kill a worker).
StepHook = Callable[["Task", Progress], None]
#: Files that options may name and that are sent along with the images when paths are not shared.
SENT_OPTION_FILES = ("mask", "init")
#: ``--workers`` of ``stylize batch`` when not given: two processes of ``cores / 2`` threads. Measured by
#: bench/bench_batch.py on 2 cores (16 jobs at 256 px): 295 images/hour against 239 for one process of
#: 2 threads (1.23x); each worker holds its own network and activations (docs/batch.md).
DEFAULT_WORKERS = 2
#: Seconds between two progress messages from a worker process (the last step of a scale always goes).
REPORT_EVERY = 0.2


@dataclass
class Task:
    """One job as a worker receives it."""

    key: str
    content: str  # the path (also the name used in error messages)
    style: str
    options: dict[str, Any]
    data: dict[str, bytes] | None = None  # "content", "style", "mask", "init" -> file bytes, when sent by value
    attempt: int = 0  # 0 the first time, 1 for the first retry ...


@dataclass
class StepInfo:
    """A step of a running job (``progress`` has no image when it comes from another process)."""

    key: str
    worker: str
    progress: Progress


@dataclass
class Outcome:
    """What a worker sends back for one task."""

    key: str
    worker: str
    network_loads: int = 0  # networks this worker has loaded so far (1 per kind of network when all is well)
    image: PIL.Image.Image | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    stop_reasons: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None  # one line
    retryable: bool = False  # the failure may not happen again (a dead worker, out of memory)

    @property
    def ok(self) -> bool:
        return self.error is None and self.image is not None

    def result(self) -> Result:
        assert self.image is not None
        return Result(image=self.image, history=self.history, settings=self.settings,
                      stop_reasons=self.stop_reasons, seconds=self.seconds)


def default_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Worker:
    """Runs tasks in the current process, keeping one network per (model, weights, pooling)."""

    def __init__(self, name: str, *, factory: BackboneFactory | None = None, hook: StepHook | None = None,
                 backbone: Backbone | None = None, networks: dict[tuple[Any, ...], Backbone] | None = None,
                 transfer_fn: Callable[..., Result] | None = None) -> None:
        self.name = name
        self.factory = factory or load_network
        self.hook = hook
        self.backbone = backbone
        self.networks = dict(networks or {})
        self.loads = 0
        self.transfer_fn = transfer_fn or transfer

    def network(self, opts: Options) -> Backbone:
        if self.backbone is not None:
            return self.backbone
        key = network_key(opts)
        need = list(opts.network_layers)
        net = self.networks.get(key)
        if net is None or any(name not in net.layer_names for name in need):
            layers = tuple(dict.fromkeys([*need, *(net.layer_names[-1:] if net is not None else [])]))
            net = self.factory(dataclasses.replace(opts, style_layers=layers))
            self.networks[key] = net
            self.loads += 1
        return net

    def run(self, task: Task, report: Callable[[StepInfo], None] | None = None) -> Outcome:
        """Run one task; every error becomes a failed :class:`Outcome` (KeyboardInterrupt excepted)."""
        with tempfile.TemporaryDirectory(prefix="stylize-job-") if task.data else contextlib.nullcontext() as tmp:
            content, style, options, renames = _materialize(task, tmp)
            try:
                opts = make_options(**options)
                net = self.network(opts)

                def on_step(p: Progress) -> None:
                    if self.hook is not None:
                        self.hook(task, p)
                    if report is not None:
                        report(StepInfo(task.key, self.name, p))

                result = self.transfer_fn(content, style, callback=on_step, backbone=net, **options)
            except StylizeError as exc:
                return Outcome(task.key, self.name, self.loads, error=_rename(str(exc), renames))
            except Exception as exc:  # out of memory, a bug: worth another try
                message = " ".join(f"{type(exc).__name__}: {exc}".split())
                return Outcome(task.key, self.name, self.loads, error=_rename(message, renames), retryable=True)
        settings = dict(result.settings)
        for name in SENT_OPTION_FILES:
            if name in (task.data or {}):
                settings[name] = task.options.get(name)
        return Outcome(task.key, self.name, self.loads, image=result.image, history=result.history,
                       settings=settings, stop_reasons=result.stop_reasons, seconds=result.seconds)


def _materialize(task: Task, tmp: str | None) -> tuple[str, str, dict[str, Any], dict[str, str]]:
    """Paths of the task's files: its own, or copies of the bytes it carries written into ``tmp``."""
    options = dict(task.options)
    paths = {"content": task.content, "style": task.style}
    renames: dict[str, str] = {}
    for kind, data in (task.data or {}).items():
        original = paths.get(kind) or str(options.get(kind))
        local = str(Path(str(tmp)) / f"{kind}{Path(original).suffix}")
        Path(local).write_bytes(data)
        renames[local] = original
        if kind in paths:
            paths[kind] = local
        else:
            options[kind] = local
    return paths["content"], paths["style"], options, renames


def _rename(message: str, renames: dict[str, str]) -> str:
    for local, original in renames.items():
        message = message.replace(local, original)
    return message


def task_data(task: Task, kinds: tuple[str, ...] = ("content", "style")) -> dict[str, bytes]:
    """The bytes of a task's input files (and of the option files it names), for sending by value."""
    data = {kind: Path(getattr(task, kind)).read_bytes() for kind in kinds}
    for name in SENT_OPTION_FILES:
        value = task.options.get(name)
        if isinstance(value, str) and not (name == "init" and value in ("content", "noise")):
            data[name] = Path(value).read_bytes()
    return data


class Executor:
    """The interface: ``with executor: submit(task) while slots are free; poll() for outcomes``."""

    slots: int = 1  # tasks that can run at once

    def __init__(self) -> None:
        self.network_loads: dict[str, int] = {}  # worker -> networks it loaded (from its outcomes)

    def __enter__(self) -> Executor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        return type(self).__name__

    def start(self) -> None:
        """Start the workers (idempotent)."""

    def submit(self, task: Task) -> None:
        raise NotImplementedError

    def poll(self, timeout: float, on_step: Callable[[StepInfo], None]) -> list[Outcome]:
        """Outcomes of tasks that finished within ``timeout`` seconds (maybe none); steps go to ``on_step``."""
        raise NotImplementedError

    def cancel(self) -> None:
        """Stop the running tasks at once (Ctrl-C); their outcomes are never reported."""

    def close(self) -> None:
        """Stop the workers."""

    def record(self, outcome: Outcome) -> Outcome:
        if outcome.worker and outcome.network_loads:
            self.network_loads[outcome.worker] = max(self.network_loads.get(outcome.worker, 0),
                                                     outcome.network_loads)
        return outcome


class InlineExecutor(Executor):
    """In this process, one task at a time; progress reaches the callback with the live image."""

    def __init__(self, *, backbone: Backbone | None = None, backbone_factory: BackboneFactory | None = None,
                 hook: StepHook | None = None, networks: dict[tuple[Any, ...], Backbone] | None = None,
                 transfer_fn: Callable[..., Result] | None = None) -> None:
        super().__init__()
        self.worker = Worker("main", factory=backbone_factory, hook=hook, backbone=backbone, networks=networks,
                             transfer_fn=transfer_fn)
        self.queued: list[Task] = []

    def describe(self) -> str:
        return "this process"

    def submit(self, task: Task) -> None:
        self.queued.append(task)

    def poll(self, timeout: float, on_step: Callable[[StepInfo], None]) -> list[Outcome]:
        if not self.queued:
            return []
        return [self.record(self.worker.run(self.queued.pop(0), report=on_step))]

    def cancel(self) -> None:
        self.queued.clear()


def _worker_main(name: str, inbox: Any, outbox: Any, factory: BackboneFactory | None, threads: int,
                 hook: StepHook | None) -> None:
    """A worker process: its own network cache, ``threads`` torch threads; Ctrl-C is the driver's."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    warnings.formatwarning = _one_line
    import torch

    torch.set_num_threads(threads)
    worker = Worker(name, factory=factory, hook=hook)
    sent = [0.0]

    def report(info: StepInfo) -> None:
        p = info.progress
        now = time.monotonic()
        if now - sent[0] >= REPORT_EVERY or p.step == p.max_steps:
            sent[0] = now
            outbox.put(("step", StepInfo(info.key, info.worker, dataclasses.replace(p, _best=None))))

    while (task := inbox.get()) is not None:
        outbox.put(("done", name, worker.run(task, report=report)))


def _one_line(message: Warning | str, category: type[Warning], filename: str, lineno: int,
              line: str | None = None) -> str:
    return f"stylize: warning: {message}\n"


@dataclass
class _Slot:
    name: str
    process: Any
    inbox: Any
    task: Task | None = None


class LocalExecutor(Executor):
    """``workers`` processes on this machine, each with ``cores // workers`` torch threads."""

    def __init__(self, workers: int = 1, *, backbone_factory: BackboneFactory | None = None,
                 hook: StepHook | None = None, threads: int | None = None) -> None:
        super().__init__()
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.slots = workers
        self.factory = backbone_factory
        self.hook = hook
        self.threads = threads or max(1, default_cores() // workers)
        self.context = multiprocessing.get_context("spawn")  # never fork a process that runs torch threads
        self.outbox: Any = None
        self.workers: list[_Slot] = []
        self.spawned = 0

    def describe(self) -> str:
        return f"{self.slots} local worker process(es), {self.threads} thread(s) each"

    def start(self) -> None:
        if self.outbox is None:
            self.outbox = self.context.Queue()
            self.workers = [self._spawn() for _ in range(self.slots)]

    def _spawn(self) -> _Slot:
        self.spawned += 1
        name = f"local-{self.spawned}"
        inbox = self.context.Queue()
        process = self.context.Process(target=_worker_main, name=f"stylize-{name}", daemon=True,
                                       args=(name, inbox, self.outbox, self.factory, self.threads, self.hook))
        process.start()
        return _Slot(name, process, inbox)

    def submit(self, task: Task) -> None:
        slot = next(s for s in self.workers if s.task is None)
        slot.task = task
        slot.inbox.put(task)

    def poll(self, timeout: float, on_step: Callable[[StepInfo], None]) -> list[Outcome]:
        deadline = time.monotonic() + timeout
        outcomes: list[Outcome] = []
        while True:
            try:
                message = self.outbox.get(timeout=max(0.0, min(0.1, deadline - time.monotonic())))
            except queue.Empty:
                outcomes += self._dead_workers()
                if outcomes or time.monotonic() >= deadline:
                    return outcomes
                continue
            if message[0] == "step":
                on_step(message[1])
                continue
            slot = next((s for s in self.workers if s.name == message[1]), None)
            outcome: Outcome = message[2]
            if slot is not None and slot.task is not None and slot.task.key == outcome.key:
                slot.task = None
                outcomes.append(self.record(outcome))

    def _dead_workers(self) -> list[Outcome]:
        """Outcomes for the tasks of workers that died (each is replaced by a fresh process)."""
        out = []
        for i, slot in enumerate(self.workers):
            if slot.process.is_alive():
                continue
            code = slot.process.exitcode
            if slot.task is not None:
                out.append(Outcome(slot.task.key, slot.name, retryable=True,
                                   error=f"worker {slot.name} died during the job (exit code {code})"))
            self.workers[i] = self._spawn()
        return out

    def cancel(self) -> None:
        for slot in self.workers:
            slot.process.terminate()
        for slot in self.workers:
            slot.process.join(5)
        self.workers = []
        self._close_queues()

    def close(self) -> None:
        for slot in self.workers:
            with contextlib.suppress(Exception):
                slot.inbox.put(None)
        for slot in self.workers:
            slot.process.join(10)
            if slot.process.is_alive():
                slot.process.terminate()
                slot.process.join(5)
        self.workers = []
        self._close_queues()

    def _close_queues(self) -> None:
        if self.outbox is not None:
            self.outbox.close()
            self.outbox.join_thread()
            self.outbox = None


__all__ = ["DEFAULT_WORKERS", "BackboneFactory", "Executor", "InlineExecutor", "LocalExecutor", "Outcome", "StepHook",
           "StepInfo", "Task", "Worker", "default_cores", "load_network", "task_data"]

"""Running a batch on Ray (``pip install 'stylize[ray]'``): a pool of actors that keep their network.

:class:`RayExecutor` connects to a cluster (``"auto"``: the one ``ray start --head`` started on
this machine or ``RAY_ADDRESS``; an address such as ``"10.0.0.5:6379"`` or ``"ray://host:10001"``;
``"local"``: a new single-machine cluster), or uses the one this process already initialized. It
starts one actor per ``cpus_per_job`` CPUs (``gpus_per_job`` GPUs with ``--device cuda``); each
actor loads its network once and runs one job at a time with ``cpus_per_job`` torch threads.
Jobs go to idle actors; ``ray.wait`` hands each result back as soon as it is ready. An actor
that dies (a killed process, a lost node) is restarted by Ray and its job is reported as
retryable. The driver sends each job's image bytes (and a mask or init file named by the
options), not paths, unless ``shared_storage`` says every node reads the same paths; the
driver receives the images and writes every file itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable
from typing import Any

from stylize.batch.executors import (
    BackboneFactory,
    Executor,
    Outcome,
    StepHook,
    StepInfo,
    Task,
    Worker,
    task_data,
)
from stylize.errors import OptionError

REPORT_EVERY = 0.25  # seconds between two progress messages from an actor


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise OptionError("--ray: Ray is not installed; install it with: pip install 'stylize[ray]'") from None
    return ray


class RayWorker:
    """The actor: a :class:`~stylize.batch.executors.Worker` with its networks, in a Ray worker process."""

    def __init__(self, name: str, factory: BackboneFactory | None, hook: StepHook | None, threads: int,
                 progress: Any) -> None:
        import torch

        torch.set_num_threads(threads)
        self.worker = Worker(f"{name}:pid{os.getpid()}", factory=factory, hook=hook)
        self.progress = progress
        self.sent = 0.0

    def run(self, task: Task) -> Outcome:
        return self.worker.run(task, report=self._report)

    def _report(self, info: StepInfo) -> None:
        p = info.progress
        now = time.monotonic()
        if self.progress is None or (now - self.sent < REPORT_EVERY and p.step != p.max_steps):
            return
        self.sent = now
        with contextlib.suppress(Exception):  # a full or gone progress queue never stops the job
            self.progress.put_nowait(StepInfo(info.key, info.worker, dataclasses.replace(p, _best=None)))


class RayExecutor(Executor):
    """A pool of Ray actors (see the module's documentation)."""

    def __init__(self, address: str | None = None, *, actors: int | None = None, cpus_per_job: float = 1,
                 gpus_per_job: float | None = None, shared_storage: bool = False,
                 backbone_factory: BackboneFactory | None = None, hook: StepHook | None = None,
                 init_options: dict[str, Any] | None = None) -> None:
        super().__init__()
        if cpus_per_job <= 0:
            raise OptionError("--cpus-per-job: must be positive")
        self.address = address
        self.actors_wanted = actors
        self.cpus = cpus_per_job
        self.gpus = gpus_per_job
        self.shared_storage = shared_storage
        self.factory = backbone_factory
        self.hook = hook
        self.init_options = dict(init_options or {})
        self.ray: Any = None
        self.started_ray = False
        self.actors: list[Any] = []
        self.idle: list[Any] = []
        self.running: dict[Any, tuple[Any, Task]] = {}
        self.names: dict[str, str] = {}  # key of a running task -> its actor's name
        self.failed: list[Outcome] = []  # tasks that could not even be sent (an unreadable file)
        self.queue: Any = None

    def describe(self) -> str:
        where = self.address or "this process's Ray"
        return f"Ray ({where}): {self.slots} actor(s), {self.cpus:g} CPU(s) each"

    def start(self) -> None:
        if self.actors:
            return
        ray = self.ray = import_ray()
        if not ray.is_initialized():
            options = {"include_dashboard": False, "log_to_driver": False, **self.init_options}
            if self.address == "local":
                options.setdefault("num_cpus", os.cpu_count())
            ray.init(address=self.address, **options)
            self.started_ray = True
        from ray.util.queue import Queue

        resources = ray.cluster_resources()
        gpus = self.gpus if self.gpus is not None else 0
        fit = int(resources.get("CPU", 1) // self.cpus)
        if gpus:
            fit = min(fit, int(resources.get("GPU", 0) // gpus))
        if fit < 1:
            raise OptionError(f"--ray: the cluster has {resources.get('CPU', 0):g} CPU(s) and "
                              f"{resources.get('GPU', 0):g} GPU(s), too few for one job")
        self.slots = min(self.actors_wanted or fit, fit)
        self.queue = Queue(actor_options={"num_cpus": 0})
        actor_class = ray.remote(num_cpus=self.cpus, num_gpus=gpus, max_restarts=-1, max_task_retries=0)(RayWorker)
        threads = max(1, int(self.cpus))
        self.actors = [actor_class.remote(f"ray-{i + 1}", self.factory, self.hook, threads, self.queue)
                       for i in range(self.slots)]
        self.idle = list(self.actors)

    def submit(self, task: Task) -> None:
        actor = self.idle.pop(0)
        if not self.shared_storage:
            try:
                task = dataclasses.replace(task, data=task_data(task))
            except OSError as exc:
                self.idle.append(actor)
                self.failed.append(Outcome(task.key, "driver", error=f"{exc.filename}: cannot read "
                                                                     f"({exc.strerror or exc})"))
                return
        self.running[actor.run.remote(task)] = (actor, task)
        self.names[task.key] = f"ray-{self.actors.index(actor) + 1}"

    def poll(self, timeout: float, on_step: Callable[[StepInfo], None]) -> list[Outcome]:
        ray = self.ray
        outcomes, self.failed = self.failed, []
        ready = []
        if self.running and not outcomes:
            ready, _ = ray.wait(list(self.running), num_returns=1, timeout=timeout)
        for info in self._drain():
            on_step(info)
        for ref in ready:
            actor, task = self.running.pop(ref)
            self.idle.append(actor)
            outcomes.append(self.record(self._outcome(ref, task)))
        return outcomes

    def _drain(self) -> list[StepInfo]:
        try:
            return list(self.queue.get_nowait_batch(self.queue.qsize()))
        except Exception:  # progress is best effort
            return []

    def _outcome(self, ref: Any, task: Task) -> Outcome:
        exceptions = self.ray.exceptions
        try:
            return self.ray.get(ref)
        except exceptions.RayActorError as exc:
            reason = " ".join(str(exc).split())[:160]
            return Outcome(task.key, self.names.pop(task.key, "ray"), retryable=True,
                           error=f"the Ray worker died during the job ({reason})")
        except exceptions.RayError as exc:
            return Outcome(task.key, self.names.pop(task.key, "ray"), retryable=True,
                           error=" ".join(str(exc).split())[:300])
        finally:
            self.names.pop(task.key, None)

    def cancel(self) -> None:
        self._stop()

    def close(self) -> None:
        self._stop()

    def _stop(self) -> None:
        if self.ray is None:
            return
        for actor in self.actors:
            with contextlib.suppress(Exception):  # already gone
                self.ray.kill(actor, no_restart=True)
        if self.queue is not None:
            with contextlib.suppress(Exception):
                self.queue.shutdown()
        self.actors, self.idle, self.running, self.queue = [], [], {}, None
        if self.started_ray:
            self.ray.shutdown()
            self.started_ray = False


__all__ = ["RayExecutor", "RayWorker", "import_ray"]

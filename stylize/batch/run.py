"""The batch run: jobs through an executor, one :class:`JobResult` per job as it finishes.

:func:`run_batch` prints nothing and writes no files; it yields results as they come (the
``stylize batch`` command saves each one at once, so Ctrl-C keeps everything finished). Jobs
whose key is in ``skip`` are reported first as ``skipped``; a job that fails is reported with its
one-line error and the batch goes on; a job whose worker died (or ran out of memory) is run again
up to ``retries`` times. An input error (a corrupt image, an option the network cannot serve)
is not retried: it would fail the same way.

    >>> from stylize.batch import plan_jobs, run_batch, LocalExecutor
    >>> jobs = plan_jobs(["photos/"], ["starry.jpg"], {"size": 256})
    >>> for done in run_batch(jobs, executor=LocalExecutor(2)):
    ...     if done.status == "done":
    ...         done.result.image.save(done.job.name)
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from stylize.api import Progress, Result
from stylize.batch.executors import Executor, InlineExecutor, Outcome, StepInfo, Task
from stylize.batch.jobs import Job
from stylize.errors import StopTransfer
from stylize.runs import index_entry, planned_work

STATUSES = ("done", "failed", "skipped", "interrupted")


@dataclass
class JobResult:
    """One job of a batch, finished (``done``), ``failed``, ``skipped`` (done before) or ``interrupted``."""

    job: Job
    status: str
    result: Result | None = None  # done (and interrupted in this process): the run's Result
    error: str | None = None  # failed: one line
    attempts: int = 0  # runs of this job (retries included)
    worker: str = ""
    network_loads: int = 0  # networks the worker had loaded when it finished this job

    def entry(self) -> dict[str, Any]:
        """The job's record in ``index.json`` / ``index.csv`` (the grid's format plus status and error)."""
        job = self.job
        if self.status == "done" and self.result is not None:
            entry = index_entry(job, self.result)
        else:
            entry = {"key": job.key, "file": job.name, "log": job.log_name, "content": job.content,
                     "style": job.style, "params": {k.replace("_", "-"): v for k, v in job.params.items()},
                     "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        entry.update({"status": self.status, "error": self.error, "attempts": self.attempts, "worker": self.worker})
        return entry


@dataclass
class BatchProgress:
    """What the callback of :func:`run_batch` receives after a step of a running job."""

    job: Job
    worker: str
    step: Progress  # the job's own progress (its image only when it runs in this process)
    done: int  # jobs finished in this run
    failed: int
    skipped: int
    running: int
    to_run: int  # jobs to run (not skipped)
    fraction: float  # share of the planned pixel-steps of the jobs to run, 0..1
    elapsed: float
    eta: float | None  # seconds left at the pace so far (finished and running jobs' pixel-steps)


class _Tally:
    """Work done so far, for the fraction and ETA of :class:`BatchProgress`."""

    def __init__(self, jobs: list[Job]) -> None:
        self.work = {job.key: planned_work(job) for job in jobs}
        self.total = sum(self.work.values()) or 1.0
        self.finished = 0.0
        self.partial: dict[str, float] = {}
        self.counts = dict.fromkeys(STATUSES, 0)
        self.start = time.perf_counter()

    def fraction(self) -> float:
        return min(1.0, (self.finished + sum(self.partial.values())) / self.total)

    def finish(self, key: str, status: str) -> None:
        self.partial.pop(key, None)
        self.finished += self.work.get(key, 0.0)
        self.counts[status] += 1


def run_batch(jobs: Iterable[Job], *, executor: Executor | None = None, skip: Collection[str] = (),
              retries: int = 0, callback: Callable[[BatchProgress], None] | None = None) -> Iterator[JobResult]:
    """Run ``jobs`` on ``executor`` (default: this process) and yield each one's result as it finishes.

    Args:
        skip: keys of jobs already done; they are yielded first, as ``skipped``.
        retries: how many more times a job whose worker died (or that ran out of memory) is run.
        callback: a :class:`BatchProgress` after the steps of running jobs; raising
            :class:`stylize.StopTransfer` from it stops the batch (running jobs are ``interrupted``).

    Ctrl-C (KeyboardInterrupt) stops the workers and propagates; every result yielded before it
    is complete. Close the generator early to stop the batch the same way.
    """
    jobs = list(jobs)
    executor = executor or InlineExecutor()
    todo = [job for job in jobs if job.key not in skip]
    for job in jobs:
        if job.key in skip:
            yield JobResult(job, "skipped")
    tally = _Tally(todo)
    tally.counts["skipped"] = len(jobs) - len(todo)
    by_key = {job.key: job for job in todo}
    pending = deque(Task(job.key, job.content, job.style, dict(job.options)) for job in todo)
    running: dict[str, Task] = {}
    stopped = False

    def on_step(info: StepInfo) -> None:
        if callback is None or info.key not in running:
            return
        tally.partial[info.key] = info.progress.fraction * tally.work[info.key]
        fraction, elapsed = tally.fraction(), time.perf_counter() - tally.start
        c = tally.counts
        callback(BatchProgress(
            job=by_key[info.key], worker=info.worker, step=info.progress, done=c["done"], failed=c["failed"],
            skipped=c["skipped"], running=len(running), to_run=len(todo), fraction=fraction, elapsed=elapsed,
            eta=elapsed * (1 - fraction) / fraction if fraction > 0 else None))

    with executor:
        try:
            while (pending and not stopped) or running:
                while pending and not stopped and len(running) < executor.slots:
                    task = pending.popleft()
                    running[task.key] = task
                    executor.submit(task)
                try:
                    outcomes = executor.poll(0.5, on_step)
                except StopTransfer:
                    executor.cancel()
                    stopped = True
                    outcomes = [Outcome(key, "", error="stopped") for key in running]
                for outcome in outcomes:
                    task = running.pop(outcome.key)
                    result = _settle(outcome, task, by_key[task.key], retries, stopped)
                    if result is None:  # a retry: first in line again
                        pending.appendleft(Task(task.key, task.content, task.style, task.options,
                                                attempt=task.attempt + 1))
                        continue
                    tally.finish(task.key, result.status)
                    stopped = stopped or result.status == "interrupted"
                    yield result
        except BaseException:
            executor.cancel()
            raise


def _settle(outcome: Outcome, task: Task, job: Job, retries: int, stopped: bool) -> JobResult | None:
    """The job's result, or None when it should run again."""
    common = {"attempts": task.attempt + 1, "worker": outcome.worker, "network_loads": outcome.network_loads}
    if stopped and not outcome.ok:
        return JobResult(job, "interrupted", **common)
    if not outcome.ok:
        if outcome.retryable and task.attempt < retries:
            return None
        return JobResult(job, "failed", error=outcome.error or "no image", **common)
    result = outcome.result()
    return JobResult(job, "interrupted" if result.interrupted else "done", result=result, **common)


__all__ = ["BatchProgress", "JobResult", "STATUSES", "run_batch"]

"""Batch work: many style transfers, resumable, on local worker processes or on a Ray cluster.

    >>> import stylize.batch
    >>> jobs = stylize.batch.plan_jobs(["holiday/"], ["starry.jpg", "wave.jpg"], {"size": 512})
    >>> for done in stylize.batch(jobs, executor=stylize.batch.LocalExecutor(2)):
    ...     print(done.job.name, done.status, done.error)

``stylize.batch(jobs, executor=..., skip=..., retries=..., callback=...)`` is
:func:`run_batch`: the module itself can be called. Jobs come from :func:`plan_jobs`
(files, folders, globs; every combination or pairs) or :func:`read_manifest` (CSV / JSON Lines);
executors are :class:`InlineExecutor` (this process), :class:`LocalExecutor` (worker processes)
and :class:`~stylize.batch.ray_executor.RayExecutor` (``pip install 'stylize[ray]'``).
"""

from __future__ import annotations

import sys
import types
from typing import Any

from stylize.batch.choose import make_executor
from stylize.batch.executors import Executor, InlineExecutor, LocalExecutor, Outcome, StepInfo, Task
from stylize.batch.jobs import Job, expand_images, plan_jobs, read_manifest
from stylize.batch.run import BatchProgress, JobResult, run_batch


def __getattr__(name: str) -> Any:
    if name == "RayExecutor":  # imported on first use: Ray is an optional extra
        from stylize.batch.ray_executor import RayExecutor

        return RayExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    """``stylize.batch(jobs, ...)`` is ``stylize.batch.run_batch(jobs, ...)``."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return run_batch(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["BatchProgress", "Executor", "InlineExecutor", "Job", "JobResult", "LocalExecutor", "Outcome",
           "RayExecutor", "StepInfo", "Task", "expand_images", "make_executor", "plan_jobs", "read_manifest",
           "run_batch"]

"""Choosing an executor from the command line's words (``--workers``, ``--ray``)."""

from __future__ import annotations

from typing import Any

from stylize.batch.executors import BackboneFactory, Executor, InlineExecutor, LocalExecutor, StepHook
from stylize.batch.ray_executor import RayExecutor


def make_executor(*, workers: int = 1, ray: str | None = None, backbone_factory: BackboneFactory | None = None,
                  hook: StepHook | None = None, **ray_options: Any) -> Executor:
    """``ray`` (``auto``, ``local`` or an address) -> a :class:`RayExecutor`; ``workers`` 0 -> in this
    process; otherwise that many local worker processes."""
    if ray is not None:
        return RayExecutor(ray, actors=workers or None, backbone_factory=backbone_factory, hook=hook, **ray_options)
    if workers == 0:
        return InlineExecutor(backbone_factory=backbone_factory, hook=hook)
    return LocalExecutor(workers, backbone_factory=backbone_factory, hook=hook)


__all__ = ["make_executor"]

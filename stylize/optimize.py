"""The optimizer loop: L-BFGS or Adam on the pixels, with a spike guard and early stopping.

* The pixels are optimized unconstrained; nothing is clamped inside the L-BFGS closure (that
  corrupts the optimizer's curvature history: the PyTorch tutorial's loss jumps from 0.45 to
  over a million that way). A range penalty in the objective keeps pixels near [0, 1].
* The guard looks at every evaluation: a non-finite loss, or one far above the best so far,
  restores the best iterate and restarts the optimizer with an empty history.
* Early stopping: the run ends once the best loss improved by less than ``tol`` (relative)
  over the last ``window`` steps.
* The result is always the best iterate seen, also when the run is interrupted.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from stylize.errors import StopTransfer
from stylize.lbfgs import LBFGS
from stylize.options import OPTIMIZERS

#: loss_fn(image) -> (total loss, {name: value}); the dict holds python floats for logging
#: (a :class:`stylize.objective.Objective` is one)
LossFunction = Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, float]]]

DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}
WARM_FACTOR = 0.5  # a warm-started L-BFGS takes this share of the step size learned before
#: with ``carry``, no L-BFGS step moves a pixel value (0..1) further than this: measured on VGG-16
#: at 128-512 px, the steps that end in a loss spike move some pixel by 0.3-1.6, good ones by < 0.3
MAX_PIXEL_CHANGE = 0.25


class StopReason(str, enum.Enum):
    """Why a scale (or a tile, or a run) ended; compares equal to its value (``"converged"`` ...)."""

    CONVERGED = "converged"
    MAX_STEPS = "max_steps"
    INTERRUPTED = "interrupted"
    STOPPED = "stopped"
    DIVERGED = "diverged"

    def __str__(self) -> str:
        return self.value

    @property
    def description(self) -> str:
        return STOP_REASONS[self.value]

    @property
    def early(self) -> bool:
        """Ended by the user (Ctrl-C or a callback's StopTransfer): later scales do not run."""
        return self in (StopReason.INTERRUPTED, StopReason.STOPPED)


#: stop reason -> what it means, in words
STOP_REASONS = {
    "converged": "the loss stopped improving",
    "max_steps": "the step limit was reached",
    "interrupted": "interrupted (Ctrl-C); the best image so far was kept",
    "stopped": "stopped on request; the best image so far was kept",
    "diverged": "the loss kept jumping after restarts; the best image so far was kept",
}


@dataclass
class StepRecord:
    """One optimizer step as logged: the losses at the iterate the step started from."""

    step: int
    seconds: float
    losses: dict[str, float]
    event: str = ""  # "" or "restored" (the guard restored the best iterate)


@dataclass
class OptimizeResult:
    image: torch.Tensor  # the best iterate (unclamped)
    best_loss: float
    history: list[StepRecord] = field(default_factory=list)
    stop_reason: StopReason = StopReason.MAX_STEPS
    restores: int = 0
    #: the L-BFGS step size learned (the inverse curvature sᵀy/yᵀy), for the next run's first step
    #: (``optimize(step_scale=...)``); None when not known (Adam, or fewer than two steps). The losses
    #: are normalized, so it stays about the same from scale to scale and tile to tile (1.5-7 at the
    #: end of one scale and the first steps of the next, measured on VGG-16 at 128 -> 256 px).
    step_scale: float | None = None


def _make_optimizer(name: str, param: torch.Tensor, lr: float, history_size: int,
                    initial_scale: float | None = None, max_change: float | None = None
                    ) -> LBFGS | torch.optim.Optimizer:
    if name == "lbfgs":
        return LBFGS(param, lr=lr, history_size=history_size, initial_scale=initial_scale, max_change=max_change)
    if name == "adam":
        return torch.optim.Adam([param], lr=lr)
    raise ValueError(f"unknown optimizer {name!r}; choose {' or '.join(OPTIMIZERS)}")


def _converged(best_per_step: list[float], tol: float, window: int) -> bool:
    """The best loss improved by at most ``tol`` (relative) over the last ``window`` steps."""
    if tol <= 0 or len(best_per_step) <= window:
        return False
    before = best_per_step[-window - 1]
    return before - best_per_step[-1] <= tol * abs(before)  # <=: a loss stuck at exactly 0 has converged


def _closure(objective: LossFunction, param: torch.Tensor, current: Callable[[], object],
             best: dict[str, object], last: dict[str, object]) -> Callable[[], torch.Tensor]:
    """The optimizer's closure: evaluate at ``param``, fill its gradient, note the last and best
    losses (``best`` keeps the best iterate's image); ``current()`` is the optimizer now in use."""

    def closure() -> torch.Tensor:
        current().zero_grad(set_to_none=True)  # type: ignore[attr-defined]
        loss, parts = objective(param)
        loss.backward()
        value = float(loss.detach())
        last["loss"], last["parts"] = value, parts
        if math.isfinite(value) and value < best["loss"]:  # type: ignore[operator]
            best["loss"], best["image"] = value, param.detach().clone()
        if not math.isfinite(value):
            param.grad = torch.zeros_like(param)  # keep the optimizer's arithmetic finite
        return loss

    return closure


def _restart_scale(opt: object, scale: float | None) -> float | None:
    """The first step size of an L-BFGS restarted after a spike: a share of what it had learned."""
    learned = getattr(opt, "inverse_curvature", None)
    return WARM_FACTOR * learned if learned is not None else scale


def optimize(
    image: torch.Tensor,
    objective: LossFunction,
    *,
    steps: int,
    optimizer: str = "lbfgs",
    lr: float | None = None,
    tol: float = 1e-3,
    window: int = 20,
    spike_factor: float = 1.5,
    max_restores: int = 10,
    history_size: int = 50,
    step_scale: float | None = None,
    carry: bool = False,
    on_step: Callable[[StepRecord, torch.Tensor], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> OptimizeResult:
    """Minimize ``objective`` over the pixels of ``image`` for at most ``steps`` steps.

    ``on_step(record, best_image)`` is called after every step; it may raise
    :class:`~stylize.errors.StopTransfer` to end the run (the best image is kept), as a
    ``KeyboardInterrupt`` does (stop reason ``"interrupted"``). ``tol <= 0``: no early stopping.
    L-BFGS: ``step_scale`` (an earlier run's :attr:`OptimizeResult.step_scale`) sizes the first step
    (times :data:`WARM_FACTOR`); None takes torch's tiny first step (``lr / ‖g‖₁``). ``carry``: a
    restart after a spike starts from a share of the step size learned so far, not a tiny step, and
    no step moves a pixel further than :data:`MAX_PIXEL_CHANGE`.
    """
    lr = DEFAULT_LR[optimizer] if lr is None else lr
    param = image.detach().clone().requires_grad_(True)
    scale = None if step_scale is None else step_scale * WARM_FACTOR
    cap = MAX_PIXEL_CHANGE if carry else None
    opt = _make_optimizer(optimizer, param, lr, history_size, scale, cap)
    best = {"loss": math.inf, "image": param.detach().clone()}
    last: dict[str, object] = {}
    closure = _closure(objective, param, lambda: opt, best, last)
    result = OptimizeResult(image=best["image"], best_loss=math.inf)
    best_per_step: list[float] = []
    start = clock()
    consecutive_restores = 0
    try:
        for step in range(1, steps + 1):
            opt.step(closure)
            value = float(last["loss"])  # type: ignore[arg-type]
            event = ""
            if not math.isfinite(value) or value > spike_factor * best["loss"]:
                # Guard: back to the best iterate, with a fresh optimizer (empty history).
                with torch.no_grad():
                    param.copy_(best["image"])
                lr = lr * 0.5 if optimizer == "adam" else lr
                scale = _restart_scale(opt, scale) if carry else None
                opt = _make_optimizer(optimizer, param, lr, history_size, scale, cap)
                event = "restored"
                result.restores += 1
                consecutive_restores += 1
            else:
                consecutive_restores = 0
            record = StepRecord(step, clock() - start, {**last["parts"], "total": value}, event)  # type: ignore
            result.history.append(record)
            best_per_step.append(best["loss"])
            if on_step is not None:
                on_step(record, best["image"])
            if consecutive_restores >= max_restores:
                result.stop_reason = StopReason.DIVERGED
                break
            if _converged(best_per_step, tol, window):
                result.stop_reason = StopReason.CONVERGED
                break
    except KeyboardInterrupt:
        result.stop_reason = StopReason.INTERRUPTED
    except StopTransfer:
        result.stop_reason = StopReason.STOPPED
    result.image = best["image"]
    result.best_loss = best["loss"]
    learned = getattr(opt, "inverse_curvature", None)
    result.step_scale = learned if learned is not None else step_scale
    return result

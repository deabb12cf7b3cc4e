"""L-BFGS on one tensor with a fixed step (Liu & Nocedal 1989), as stylize uses it.

The arithmetic is that of ``torch.optim.LBFGS(max_iter=1, line_search_fn=None,
tolerance_grad=0, tolerance_change=0)``, step for step and bit for bit (``tests/test_lbfgs.py``
checks it), with one addition: the *first* step. torch's first step is the gradient scaled by
``lr / ‖g‖₁``, which on an image of N pixels is ~1/N of a useful step, so the first evaluation of
every scale, tile and restart is wasted, and the second step's curvature estimate comes from a
tiny move. ``initial_scale`` (the inverse-curvature estimate ``sᵀy / yᵀy`` of an earlier run,
:attr:`LBFGS.inverse_curvature`) starts the first step as ``-initial_scale · g`` instead, like the
later steps that have no history; and ``max_change`` caps the step so that no value moves further
than that (a trust region: on the image, the steps that overshoot into a loss spike are the ones
that move some pixel by more than about a quarter of the range). Owning the loop also keeps
``torch.optim`` (and the ~3 s import of ``torch._dynamo`` that its decorators trigger) out of a
default run.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


class LBFGS:
    """Minimizes ``closure()`` over ``param`` (whose ``.grad`` the closure fills) one step per :meth:`step`."""

    def __init__(self, param: torch.Tensor, *, lr: float = 1.0, history_size: int = 50,
                 initial_scale: float | None = None, max_change: float | None = None) -> None:
        self.param = param
        self.max_change = max_change
        self.lr = lr
        self.history_size = history_size
        self.initial_scale = initial_scale
        self.steps = 0
        self._dirs: list[torch.Tensor] = []  # y = Δgradient
        self._stps: list[torch.Tensor] = []  # s = Δparam
        self._ro: list[torch.Tensor] = []  # 1 / yᵀs
        self._h_diag: torch.Tensor | float = 1
        self._d: torch.Tensor | None = None  # last direction
        self._t: torch.Tensor | float = lr  # last step length
        self._prev_grad: torch.Tensor | None = None

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget ``param``'s gradient (as ``torch.optim.Optimizer.zero_grad``)."""
        if set_to_none or self.param.grad is None:
            self.param.grad = None
        else:
            self.param.grad.zero_()

    @property
    def inverse_curvature(self) -> float | None:
        """The current initial-Hessian scale ``sᵀy / yᵀy`` (None before two steps)."""
        return float(self._h_diag) if isinstance(self._h_diag, torch.Tensor) else None

    def _direction(self, grad: torch.Tensor) -> torch.Tensor:
        if self.steps == 1:
            if self.initial_scale is None:
                return grad.neg()
            self._h_diag = torch.tensor(self.initial_scale, dtype=grad.dtype, device=grad.device)
            return torch.mul(grad.neg(), self._h_diag)
        assert self._prev_grad is not None and self._d is not None
        y = grad.sub(self._prev_grad)
        s = self._d.mul(self._t)
        ys = y.dot(s)
        if ys > 1e-10:
            if len(self._dirs) == self.history_size:
                self._dirs.pop(0)
                self._stps.pop(0)
                self._ro.pop(0)
            self._dirs.append(y)
            self._stps.append(s)
            self._ro.append(1.0 / ys)
            self._h_diag = ys / y.dot(y)
        q = grad.neg()  # the two-loop recursion, in one buffer
        alphas = [torch.zeros(())] * len(self._dirs)
        for i in range(len(self._dirs) - 1, -1, -1):
            alphas[i] = self._stps[i].dot(q) * self._ro[i]
            q.add_(self._dirs[i], alpha=-alphas[i])
        r = torch.mul(q, self._h_diag)
        for i in range(len(self._dirs)):
            beta = self._dirs[i].dot(r) * self._ro[i]
            r.add_(self._stps[i], alpha=alphas[i] - beta)
        return r

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Evaluate ``closure`` at the current point, then move ``param`` one L-BFGS step; returns the loss."""
        with torch.enable_grad():
            loss = closure()
        grad = self.param.grad.reshape(-1).clone() if self.param.grad is not None else \
            torch.zeros(self.param.numel(), dtype=self.param.dtype, device=self.param.device)
        if grad.abs().max() <= 0:  # a stationary point: nothing to learn, no step (as torch's LBFGS)
            return loss
        self.steps += 1
        d = self._direction(grad)
        if self._prev_grad is None:
            self._prev_grad = grad.clone(memory_format=torch.contiguous_format)
        else:
            self._prev_grad.copy_(grad)
        first_tiny = self.steps == 1 and self.initial_scale is None
        t = min(1.0, 1.0 / grad.abs().sum()) * self.lr if first_tiny else self.lr
        if self.max_change is not None:  # a trust region: no value moves further than max_change
            largest = float(d.abs().max()) * float(t)
            if largest > self.max_change:
                t = float(t) * self.max_change / largest
        self._d, self._t = d, t
        if grad.dot(d) <= 0:  # a descent direction; else (broken curvature) stand still, as torch's LBFGS
            self.param.add_(d.view_as(self.param), alpha=t)
        return loss


__all__ = ["LBFGS"]

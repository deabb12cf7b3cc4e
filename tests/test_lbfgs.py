"""stylize's own L-BFGS: torch's arithmetic bit for bit, plus a sized first step."""

from __future__ import annotations

import pytest
import torch

from stylize.lbfgs import LBFGS


def _loss(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # non-quadratic, badly scaled: curvature information matters
    return ((x - target) ** 2 * torch.linspace(0.1, 10, x.numel()).view_as(x)).sum() + (x ** 4).sum() * 0.1


def _run(make, steps: int, seed: int = 0) -> tuple[torch.Tensor, list[float]]:
    gen = torch.Generator().manual_seed(seed)
    target = torch.randn(3, 8, 8, generator=gen)
    x = torch.randn(3, 8, 8, generator=gen).requires_grad_(True)
    opt = make(x)
    losses = []

    def closure() -> torch.Tensor:
        opt.zero_grad() if hasattr(opt, "zero_grad") else setattr(x, "grad", None)
        loss = _loss(x, target)
        loss.backward()
        return loss

    for _ in range(steps):
        losses.append(float(opt.step(closure).detach()))
    return x.detach().clone(), losses


def test_same_bits_as_torch_lbfgs() -> None:
    for history in (3, 50):
        ours, ours_losses = _run(lambda x, h=history: LBFGS(x, lr=1.0, history_size=h), 40)
        theirs, theirs_losses = _run(lambda x, h=history: torch.optim.LBFGS(
            [x], lr=1.0, max_iter=1, history_size=h, tolerance_grad=0.0, tolerance_change=0.0), 40)
        assert ours_losses == theirs_losses
        assert torch.equal(ours, theirs)


def test_sized_first_step_moves_further_than_torch_tiny_step() -> None:
    _, tiny = _run(lambda x: LBFGS(x), 3)
    _, sized = _run(lambda x: LBFGS(x, initial_scale=0.05), 3)
    assert tiny[0] == sized[0]  # the same start
    # torch's first step is lr/|g|_1: the loss barely moves; a sized step makes real progress
    assert tiny[1] > 0.97 * tiny[0]
    assert sized[1] < 0.8 * sized[0]


def test_inverse_curvature_is_learned() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(10, generator=gen).requires_grad_(True)
    opt = LBFGS(x)
    assert opt.inverse_curvature is None

    def closure() -> torch.Tensor:
        x.grad = None
        loss = (4.0 * x ** 2).sum()  # Hessian 8 I: inverse curvature 1/8
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    assert abs(opt.inverse_curvature - 0.125) < 1e-6


def test_zero_gradient_takes_no_step() -> None:
    x = torch.zeros(5, requires_grad=True)
    opt = LBFGS(x)

    def closure() -> torch.Tensor:
        x.grad = None
        loss = (x ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    assert opt.steps == 0 and torch.equal(x.detach(), torch.zeros(5))


def test_max_change_caps_every_step() -> None:
    moves = []
    gen = torch.Generator().manual_seed(0)
    target = torch.randn(3, 8, 8, generator=gen) * 5
    x = torch.zeros(3, 8, 8, requires_grad=True)
    opt = LBFGS(x, initial_scale=10.0, max_change=0.25)

    def closure() -> torch.Tensor:
        x.grad = None
        loss = ((x - target) ** 2).sum()
        loss.backward()
        return loss

    for _ in range(6):
        before = x.detach().clone()
        opt.step(closure)
        moves.append(float((x.detach() - before).abs().max()))
    assert max(moves) <= 0.25 + 1e-6
    assert moves[0] == pytest.approx(0.25)  # the uncapped first step (10 x gradient) would move far more

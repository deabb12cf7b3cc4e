"""The optimizer loop: the spike guard, early stopping, interruption, Adam, determinism.

The objectives here are small quadratics on a 1x3x4x4 "image", so every run takes milliseconds
and the exact minimum is known.
"""

from __future__ import annotations

import math

import pytest
import torch

from stylize.errors import StopTransfer
from stylize.optimize import DEFAULT_LR, OPTIMIZERS, STOP_REASONS, StepRecord, optimize

SHAPE = (1, 3, 4, 4)


def _target() -> torch.Tensor:
    return torch.rand(SHAPE, generator=torch.Generator().manual_seed(0))


class Quadratic:
    """``‖x - target‖² * scale`` that records every evaluation; it can lie at chosen evaluations."""

    def __init__(self, *, spikes: dict[int, float] | None = None, scale: float = 1.0,
                 interrupt_at: int | None = None) -> None:
        self.target = _target()
        self.scale = scale
        self.spikes = spikes or {}
        self.interrupt_at = interrupt_at
        self.calls = 0
        self.seen: list[tuple[float, torch.Tensor]] = []

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        loss = (image - self.target).pow(2).sum() * self.scale
        if self.calls in self.spikes:
            loss = loss * 0 + self.spikes[self.calls]  # same graph, a lying value
        self.seen.append((float(loss.detach()), image.detach().clone()))
        return loss, {"content": float(loss.detach()), "style": 0.0}

    def best_seen(self) -> tuple[float, torch.Tensor]:
        finite = [(v, x) for v, x in self.seen if math.isfinite(v)]
        return min(finite, key=lambda pair: pair[0])


def _start() -> torch.Tensor:
    return torch.zeros(SHAPE)


def test_constants() -> None:
    assert set(OPTIMIZERS) == {"lbfgs", "adam"} and set(DEFAULT_LR) == set(OPTIMIZERS)
    assert {"converged", "max_steps", "interrupted", "stopped", "diverged"} <= set(STOP_REASONS)


def test_lbfgs_minimizes_and_logs_every_step() -> None:
    obj = Quadratic()
    records: list[StepRecord] = []
    result = optimize(_start(), obj, steps=8, tol=0, on_step=lambda r, best: records.append(r))
    assert result.best_loss < 1e-6 * obj.seen[0][0]
    assert [r.step for r in result.history] == list(range(1, 9)) == [r.step for r in records]
    assert result.history[0].losses["total"] == pytest.approx(obj.seen[0][0])
    assert {"content", "style", "total"} <= set(result.history[0].losses)
    assert all(r.event == "" for r in result.history) and result.restores == 0
    assert [r.seconds for r in result.history] == sorted(r.seconds for r in result.history)
    assert result.stop_reason == "max_steps"
    torch.testing.assert_close(result.image, obj.target, atol=1e-3, rtol=0)


@pytest.mark.parametrize("spike", [1e12, math.nan, math.inf])
def test_guard_restores_best_iterate_and_continues(spike: float) -> None:
    obj = Quadratic(spikes={4: spike}, scale=1.0)
    result = optimize(_start(), obj, steps=10, tol=0, optimizer="adam", lr=0.05)
    events = [r.event for r in result.history]
    assert events[3] == "restored" and events.count("restored") == 1 and result.restores == 1
    assert len(result.history) == 10  # the run went on after the restore
    # the evaluation after the restore starts from the best iterate (the one before the spike)
    torch.testing.assert_close(obj.seen[4][1], obj.seen[2][1])
    # and the run kept improving afterwards
    assert result.best_loss < obj.seen[2][0]
    best_value, best_image = obj.best_seen()
    assert result.best_loss == best_value
    assert torch.equal(result.image, best_image)


def test_guard_restores_with_lbfgs_and_resets_history() -> None:
    obj = Quadratic(spikes={3: 1e9})
    result = optimize(_start(), obj, steps=6, tol=0)
    assert [r.event for r in result.history] == ["", "", "restored", "", "", ""]
    torch.testing.assert_close(obj.seen[3][1], obj.seen[1][1])
    assert result.best_loss == obj.best_seen()[0] < obj.seen[1][0]


def test_returned_image_is_best_iterate_when_the_last_steps_are_bad() -> None:
    """Steps whose loss is worse (but below the spike threshold) do not replace the best image."""

    class Worsening(Quadratic):
        def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
            loss, parts = super().__call__(image)
            if self.calls >= 4:  # pretend everything after step 3 is 20% worse than the true best
                loss = loss * 0 + self.seen[2][0] * 1.2
                self.seen[-1] = (float(loss.detach()), self.seen[-1][1])
            return loss, parts

    obj = Worsening()
    result = optimize(_start(), obj, steps=6, tol=0, optimizer="adam")
    assert result.restores == 0
    assert torch.equal(result.image, obj.seen[2][1])
    assert result.best_loss == obj.seen[2][0]


def test_guard_gives_up_after_repeated_spikes() -> None:
    obj = Quadratic(spikes={n: math.nan for n in range(3, 100)})
    result = optimize(_start(), obj, steps=50, tol=0, max_restores=4)
    assert result.stop_reason == "diverged" and result.restores == 4
    assert len(result.history) == 2 + 4
    assert torch.equal(result.image, obj.best_seen()[1])


def test_nan_on_first_step_keeps_the_start_image() -> None:
    obj = Quadratic(spikes={1: math.nan})
    result = optimize(_start(), obj, steps=3, tol=0)
    assert result.history[0].event == "restored"
    torch.testing.assert_close(obj.seen[1][1], _start())
    assert math.isfinite(result.best_loss)


def test_guard_threshold_is_spike_factor() -> None:
    # a value 1.4x the best is tolerated with spike_factor 1.5, not with 1.3
    for factor, expected in ((1.5, ""), (1.3, "restored")):
        obj = Quadratic()
        first = float((_start() - obj.target).pow(2).sum())
        obj.spikes = {2: first * 1.4}
        result = optimize(_start(), obj, steps=2, tol=0, optimizer="adam", lr=1e-4, spike_factor=factor)
        assert result.history[1].event == expected


def test_early_stop_converged_before_max_steps() -> None:
    obj = Quadratic()
    result = optimize(_start(), obj, steps=500, tol=1e-3, window=5)
    assert result.stop_reason == "converged"
    assert len(result.history) < 500
    assert result.best_loss < 1e-6 * obj.seen[0][0]


def test_early_stop_converged_with_adam() -> None:
    obj = Quadratic()
    result = optimize(_start(), obj, steps=3000, optimizer="adam", lr=0.05, tol=1e-3, window=10)
    assert result.stop_reason == "converged" and len(result.history) < 3000


def test_tol_zero_runs_all_steps() -> None:
    obj = Quadratic()
    result = optimize(_start(), obj, steps=60, tol=0, window=5)
    assert result.stop_reason == "max_steps" and len(result.history) == 60


def test_early_stop_needs_a_full_window() -> None:
    def flat(image: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return image.sum() * 0 + 1.0, {}

    # no progress at all: the run stops at the first step that has a whole window behind it
    result = optimize(_start(), flat, steps=500, tol=1e-3, window=7)
    assert result.stop_reason == "converged" and len(result.history) == 8
    result = optimize(_start(), flat, steps=7, tol=1e-3, window=7)
    assert result.stop_reason == "max_steps" and len(result.history) == 7


def test_loss_stuck_at_zero_has_converged() -> None:
    """Starting at the optimum (e.g. the content image with no style weight) must not run every step."""
    obj = Quadratic()
    result = optimize(obj.target.clone(), obj, steps=200, tol=1e-3, window=5)
    assert result.best_loss == 0
    assert result.stop_reason == "converged" and len(result.history) == 6


def test_stop_transfer_from_callback_keeps_best() -> None:
    obj = Quadratic()

    def on_step(record: StepRecord, best: torch.Tensor) -> None:
        if record.step == 3:
            raise StopTransfer

    result = optimize(_start(), obj, steps=20, tol=0, optimizer="adam", on_step=on_step)
    assert result.stop_reason == "stopped" and len(result.history) == 3
    assert torch.equal(result.image, obj.best_seen()[1])


def test_keyboard_interrupt_in_callback_keeps_best() -> None:
    obj = Quadratic()

    def on_step(record: StepRecord, best: torch.Tensor) -> None:
        if record.step == 4:
            raise KeyboardInterrupt

    result = optimize(_start(), obj, steps=20, tol=0, optimizer="adam", on_step=on_step)
    assert result.stop_reason == "interrupted" and len(result.history) == 4
    assert torch.equal(result.image, obj.best_seen()[1])
    assert result.best_loss < obj.seen[0][0]


def test_keyboard_interrupt_inside_the_objective_keeps_best() -> None:
    obj = Quadratic(interrupt_at=5)
    result = optimize(_start(), obj, steps=20, tol=0, optimizer="adam")
    assert result.stop_reason == "interrupted" and len(result.history) == 4
    assert torch.equal(result.image, obj.best_seen()[1])


def test_callback_receives_best_image() -> None:
    obj = Quadratic()
    bests: list[torch.Tensor] = []
    optimize(_start(), obj, steps=5, tol=0, on_step=lambda r, best: bests.append(best.clone()))
    assert torch.equal(bests[0], obj.seen[0][1])  # after step 1 only the start was evaluated
    assert torch.equal(bests[-1], obj.best_seen()[1])


def test_adam_path() -> None:
    obj = Quadratic()
    result = optimize(_start(), obj, steps=100, optimizer="adam", tol=0)
    assert result.best_loss < 0.05 * obj.seen[0][0]
    losses = [r.losses["total"] for r in result.history]
    assert losses[-1] < losses[0]


def test_input_image_is_not_modified() -> None:
    start = _start()
    optimize(start, Quadratic(), steps=3, tol=0)
    assert torch.equal(start, _start())


def test_unknown_optimizer() -> None:
    with pytest.raises(ValueError, match="sgd"):
        optimize(_start(), Quadratic(), steps=1, optimizer="sgd", lr=1.0)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_deterministic(optimizer: str) -> None:
    def run() -> tuple[torch.Tensor, list[float]]:
        result = optimize(_start(), Quadratic(scale=3.0), steps=15, optimizer=optimizer, tol=0)
        return result.image, [r.losses["total"] for r in result.history]

    (a, la), (b, lb) = run(), run()
    assert torch.equal(a, b) and la == lb

"""The style-loss kinds (--style-loss gram|wasserstein|sliced): hand computations on tiny tensors,
normalization (1 for an all-zero output, the same under any scaling of the features), that each
falls under optimization, and that the option reaches the objective."""

from __future__ import annotations

import pytest
import torch

from stylize import transfer
from stylize.backbone import Backbone, tiny_backbone
from stylize.errors import OptionError
from stylize.loss import STYLE_LOSSES, GramLoss, SlicedWassersteinLoss, StyleLoss, WassersteinLoss
from stylize.objective import Objective
from stylize.optimize import optimize


class FixedFeatures:
    """A stand-in network that returns the same features for every image."""

    def __init__(self, features: dict[str, torch.Tensor]) -> None:
        self.features = features
        self.layer_names = list(features)

    def __call__(self, image: torch.Tensor, layers: object) -> dict[str, torch.Tensor]:
        return self.features


def targets(kind: type[StyleLoss], feats: torch.Tensor) -> dict[str, object]:
    return kind.targets_of(FixedFeatures({"x": feats}), [torch.zeros(1, 3, 4, 4)], ["x"])  # type: ignore[arg-type]


def two_channels(m0: float, m1: float, a: float, b: float) -> torch.Tensor:
    """(1, 2, 2, 2) features with means m0, m1 and uncorrelated deviations a, b (covariance diag(a², b²))."""
    c0 = torch.tensor([1.0, -1.0, 1.0, -1.0]) * a + m0
    c1 = torch.tensor([1.0, 1.0, -1.0, -1.0]) * b + m1
    return torch.stack([c0, c1]).reshape(1, 2, 2, 2)


def test_wasserstein_by_hand() -> None:
    target = two_channels(1.0, 2.0, 3.0, 1.0)
    output = two_channels(0.0, 2.5, 1.0, 2.0)
    loss = WassersteinLoss(targets(WassersteinLoss, target)).layer_loss(output, targets(WassersteinLoss, target)["x"])
    # diagonal covariances: W2² = |μ - μt|² + Σ (σ - σt)²; normalized by |μt|² + tr Σt
    expected = ((1.0 + 0.25) + (2.0**2 + 1.0**2)) / ((1.0 + 4.0) + (9.0 + 1.0))
    assert loss.item() == pytest.approx(expected, rel=1e-4)


def test_sliced_by_hand_in_one_dimension() -> None:
    target = torch.tensor([0.0, 2.0, 4.0, 6.0]).reshape(1, 1, 2, 2)
    output = torch.tensor([3.0, 1.0, 2.0, 0.0]).reshape(1, 1, 2, 2)
    t = targets(SlicedWassersteinLoss, target)["x"]
    # sorted: [0,1,2,3] against [0,2,4,6]: mean squared difference 3.5, over the target's mean square 14
    assert SlicedWassersteinLoss({"x": t}).layer_loss(output, t).item() == pytest.approx(0.25, rel=1e-6)


@pytest.mark.parametrize("kind", list(STYLE_LOSSES.values()))
def test_every_kind_is_zero_at_the_target_one_at_zero_and_scale_free(kind: type[StyleLoss]) -> None:
    gen = torch.Generator().manual_seed(1)
    style = torch.randn(1, 8, 6, 6, generator=gen).relu()
    output = torch.randn(1, 8, 6, 6, generator=gen).relu()
    t = targets(kind, style)
    term = kind(t)
    assert term.layer_loss(style, t["x"]).item() == pytest.approx(0.0, abs=1e-3)
    assert term.layer_loss(torch.zeros_like(style), t["x"]).item() == pytest.approx(1.0, rel=1e-3)
    base = term.layer_loss(output, t["x"]).item()
    assert base > 0.05
    scaled_t = targets(kind, 7.0 * style)
    assert kind(scaled_t).layer_loss(7.0 * output, scaled_t["x"]).item() == pytest.approx(base, rel=1e-4)


def test_sliced_directions_are_seeded_per_layer() -> None:
    from stylize.loss.style import projections

    assert torch.equal(projections(16, 3), projections(16, 3))
    assert not torch.equal(projections(16, 3), projections(16, 4))
    d = projections(16, 3)
    torch.testing.assert_close(d @ d.T, torch.eye(16), atol=1e-5, rtol=0)  # orthonormal


def test_blend_of_zero_and_one_is_the_single_style() -> None:
    gen = torch.Generator().manual_seed(2)
    a, b = torch.randn(1, 4, 5, 5, generator=gen), torch.randn(1, 4, 5, 5, generator=gen) + 1

    class TwoImages(FixedFeatures):
        def __call__(self, image: torch.Tensor, layers: object) -> dict[str, torch.Tensor]:
            return {"x": a if image.sum() == 0 else b}

    net = TwoImages({"x": a})
    images = [torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)]
    blended = WassersteinLoss.targets_of(net, images, ["x"], (0.0, 1.0))["x"]  # type: ignore[arg-type]
    single = targets(WassersteinLoss, b)["x"]
    for got, want in zip(blended, single, strict=True):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("kind", list(STYLE_LOSSES))
def test_each_kind_falls_under_optimization(kind: str) -> None:
    net = tiny_backbone("vgg19", seed=0)
    gen = torch.Generator().manual_seed(3)
    style = torch.rand(1, 3, 48, 48, generator=gen) ** 2
    layers = ["relu1_1", "relu2_1", "relu3_1"]
    term = STYLE_LOSSES[kind].from_images(net, [style], layers)
    objective = Objective(net, [term])
    start = torch.rand(1, 3, 48, 48, generator=gen)
    result = optimize(start, objective, steps=25, tol=0)
    first, last = result.history[0].losses["style"], min(r.losses["style"] for r in result.history)
    assert last < 0.3 * first


@pytest.mark.parametrize("kind", ["wasserstein", "sliced"])
def test_style_loss_option_reaches_the_objective(kind: str, small_image: object, tiny: Backbone) -> None:
    content, style = small_image("content/forest_stream.jpg", 48), small_image("style/munch_the_scream.jpg", 48)  # type: ignore[operator]
    gram = transfer(content, style, backbone=tiny, size=48, scales="1", steps=3)
    other = transfer(content, style, backbone=tiny, size=48, scales="1", steps=3, style_loss=kind)
    assert other.settings["style_loss"] == kind
    assert other.history[0]["style"] != pytest.approx(gram.history[0]["style"], rel=1e-3)
    # the same seed gives the same image
    again = transfer(content, style, backbone=tiny, size=48, scales="1", steps=3, style_loss=kind)
    assert again.image.tobytes() == other.image.tobytes()


def test_mask_needs_the_gram_kind() -> None:
    from stylize.options import Options

    with pytest.raises(OptionError, match="--mask works with --style-loss gram"):
        Options.from_kwargs(mask="m.png", style_loss="sliced")


def test_gram_is_the_default_and_the_papers() -> None:
    from stylize.options import Options

    assert Options().style_loss == "gram" and STYLE_LOSSES["gram"] is GramLoss

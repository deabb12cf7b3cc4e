"""The structure term (stylize.loss.structure): the photo's self-similarity, by hand and in a run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stylize import Options, transfer
from stylize.backbone import Backbone
from stylize.errors import OptionError
from stylize.geometry import Box
from stylize.loss import StructureLoss
from stylize.loss.structure import STRUCTURE_POSITIONS, grid_stride, self_similarity, self_similarity_l1
from stylize.network import check_layers
from stylize.objective import build_objective


def test_self_similarity_by_hand() -> None:
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).reshape(1, 2, 1, 2)  # two positions, orthogonal
    feats = torch.cat([feats, torch.tensor([[1.0], [1.0]]).reshape(1, 2, 1, 1)], dim=3)  # a third at 45 degrees
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    distance = 1 - unit @ unit.T
    expected = distance / distance.mean(axis=0, keepdims=True)
    assert self_similarity(feats, 1).numpy() == pytest.approx(expected, abs=1e-6)


def test_the_grid_keeps_about_the_same_number_of_positions_at_every_size() -> None:
    for height, width in ((32, 48), (128, 85), (512, 341), (2048, 1365)):
        stride = grid_stride(height, width)
        kept = len(range(0, height, stride)) * len(range(0, width, stride))
        assert STRUCTURE_POSITIONS / 2.5 <= kept <= STRUCTURE_POSITIONS * 2.5, (height, width, kept)
    assert grid_stride(8, 8) == 1


def _term(target: torch.Tensor) -> StructureLoss:
    return StructureLoss({"f": self_similarity(target, 1)}, {"f": 1})


def test_zero_at_the_photo_and_blind_to_the_features_magnitude() -> None:
    gen = torch.Generator().manual_seed(0)
    photo = torch.rand(1, 8, 6, 6, generator=gen)
    term = _term(photo)
    assert float(term({"f": photo}, photo)) == pytest.approx(0.0, abs=1e-6)
    assert float(term({"f": 7.5 * photo}, photo)) == pytest.approx(0.0, abs=1e-5)  # cosine: magnitude-free
    assert float(term({"f": torch.rand(1, 8, 6, 6, generator=gen)}, photo)) > 0.05


def test_an_object_in_a_uniform_region_costs_and_a_repainted_region_does_not() -> None:
    """The photo: a uniform left half (fog) and a different uniform right half (a bridge)."""
    photo = torch.zeros(1, 4, 6, 6)
    photo[0, 0, :, :3] = 1.0
    photo[0, 1, :, 3:] = 1.0
    term = _term(photo)
    repainted = torch.zeros(1, 4, 6, 6)  # each half in another "colour", still uniform and still different
    repainted[0, 2, :, :3] = 2.0
    repainted[0, 3, :, 3:] = 0.5
    pasted = photo.clone()
    pasted[0, 2, 1:3, 0:2] = 1.0  # a star in the fog
    assert float(term({"f": repainted}, photo)) == pytest.approx(0.0, abs=1e-6)
    assert float(term({"f": pasted}, photo)) > 0.05


def test_it_falls_under_optimization() -> None:
    gen = torch.Generator().manual_seed(1)
    photo = torch.rand(1, 6, 8, 8, generator=gen)
    term = _term(photo)
    x = torch.rand(1, 6, 8, 8, generator=gen).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.05)
    first = float(term({"f": x}, x).detach())
    for _ in range(150):
        opt.zero_grad()
        loss = term({"f": x}, x)
        loss.backward()
        opt.step()
    assert float(term({"f": x}, x).detach()) < 0.3 * first


def test_on_a_tile_the_term_is_inactive() -> None:
    photo = torch.rand(1, 4, 6, 6, generator=torch.Generator().manual_seed(2))
    cropped = _term(photo).crop(Box(0, 0, 4, 4))
    assert cropped.layers == () and cropped.weight == 0 and not cropped.logged
    assert float(cropped({}, torch.zeros(1, 3, 4, 4))) == 0.0


def _content_and_style(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, 48, 64, generator=gen), torch.rand(1, 3, 48, 64, generator=gen)


def test_the_objective_has_the_term_on_whole_image_scales_only(tiny: Backbone) -> None:
    content, style = _content_and_style()
    opts = Options.from_kwargs(structure_weight=3.0)
    whole = build_objective(tiny, opts, content, [style])
    assert whole.term("structure").weight == 3.0 and "relu3_1" in whole.layers
    names = [t.name for t in build_objective(tiny, opts, content, [style], tiled=True).terms]
    assert "structure" not in names
    names = [t.name for t in build_objective(tiny, Options.from_kwargs(structure_weight=0), content, [style]).terms]
    assert "structure" not in names


def test_a_run_logs_the_term_and_keeps_the_photos_structure_better(tiny: Backbone) -> None:
    content, style = _content_and_style(3)
    common = {"backbone": tiny, "size": 64, "scales": "1", "steps": 12, "seed": 0, "style_weight": 100.0}
    on = transfer(content, style, structure_weight=20.0, **common)
    off = transfer(content, style, structure_weight=0.0, **common)
    assert "structure" in on.history[-1] and "structure" not in off.history[-1]
    measure = build_objective(tiny, Options.from_kwargs(structure_weight=1.0), content, [style]).term("structure")
    with torch.no_grad():
        def structure_error(result) -> float:  # noqa: ANN001 - a Result
            from stylize.imageio import image_to_tensor
            image = image_to_tensor(result.image)
            return float(measure(tiny(image, ["relu3_1"]), image))
        assert structure_error(on) < structure_error(off)


def test_options_check_the_term() -> None:
    assert "relu3_1" in Options.from_kwargs(style_layers="relu1_1,relu2_1").computed_layers
    assert "relu3_1" not in Options.from_kwargs(style_layers="relu1_1,relu2_1", structure_weight=0).computed_layers
    with pytest.raises(OptionError, match="--structure-weight"):
        Options.from_kwargs(structure_weight=-1)
    with pytest.raises(OptionError, match="--structure-layers"):
        Options.from_kwargs(structure_layers="")
    with pytest.raises(OptionError, match="--structure-layers: 'relu9_1'"):
        check_layers(Options.from_kwargs(structure_layers="relu9_1"), list(Options().network_layers), "vgg19")


def test_the_written_out_gradient_is_the_formulas() -> None:
    """The term's own backward pass against autograd's gradient of the plain formula."""
    gen = torch.Generator().manual_seed(3)
    for shape, stride in (((1, 5, 4, 6), 1), ((1, 8, 9, 7), 2)):
        photo = torch.rand(shape, generator=gen, dtype=torch.float64)
        target = self_similarity(photo, stride)
        feats = torch.rand(shape, generator=gen, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda f, s=stride, t=target: self_similarity_l1(f, s, t), (feats,))
        plain = (self_similarity(feats, stride) - target).abs().mean()
        (expected,) = torch.autograd.grad(plain, feats)
        (got,) = torch.autograd.grad(self_similarity_l1(feats, stride, target), feats)
        value = self_similarity_l1(feats, stride, target).detach()
        assert float(value) == pytest.approx(float(plain.detach()), rel=1e-12)
        assert torch.allclose(got, expected, rtol=1e-9, atol=1e-12)

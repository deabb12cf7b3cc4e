"""Spatial control (stylize.regions): mask reading, region maps, the regional style loss, the
errors for bad masks, and the claim on a real pair with the real offline VGG-16."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

import stylize
from stylize.cli import main as cli_main
from stylize.errors import InputError, OptionError
from stylize.imageio import image_to_tensor
from stylize.loss import GramLoss, RegionalStyle, style_targets
from stylize.loss import functional as losses
from stylize.options import PAPER_STYLE_LAYERS
from stylize.regions import load_mask, mask_palette, region_maps

BLACK, RED, WHITE = (0, 0, 0), (200, 30, 30), (255, 255, 255)


def painted(size: tuple[int, int], stripes: list[tuple[int, int, int]]) -> PIL.Image.Image:
    """Vertical stripes of equal width, one per colour, left to right."""
    width, height = size
    arr = np.zeros((height, width, 3), np.uint8)
    bounds = np.linspace(0, width, len(stripes) + 1).round().astype(int)
    for colour, a, b in zip(stripes, bounds[:-1], bounds[1:], strict=True):
        arr[:, a:b] = colour
    return PIL.Image.fromarray(arr, "RGB")


def noise_image(seed: int, size: tuple[int, int] = (40, 32)) -> PIL.Image.Image:
    rng = np.random.default_rng(seed)
    return PIL.Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8), "RGB")


# --------------------------------------------------------------------------- reading masks


def test_palette_is_ordered_dark_to_light() -> None:
    mask = painted((60, 20), [WHITE, BLACK, RED])
    assert mask_palette(np.asarray(mask)) == [BLACK, RED, WHITE]


def test_region_order_follows_the_palette(tmp_path: Path) -> None:
    path = tmp_path / "m.png"
    painted((60, 20), [WHITE, BLACK, RED]).save(path)
    onehot = load_mask(path, 3)
    assert onehot.shape == (3, 20, 60)
    assert torch.equal(onehot.sum(dim=0), torch.ones(20, 60))
    assert onehot[0, :, 20:40].min() == 1  # black (the middle stripe) -> style 1
    assert onehot[1, :, 40:].min() == 1  # red -> style 2
    assert onehot[2, :, :20].min() == 1  # white -> style 3


def test_jpeg_noise_and_antialiased_edges_do_not_make_extra_regions(tmp_path: Path) -> None:
    mask = painted((120, 80), [BLACK, WHITE])
    mask = mask.resize((97, 61), PIL.Image.Resampling.LANCZOS)  # soft edges
    path = tmp_path / "m.jpg"
    mask.save(path, quality=60)
    onehot = load_mask(path, 2)
    assert float(onehot[0, :, :40].mean()) == 1.0 and float(onehot[1, :, 60:].mean()) == 1.0


def test_wrong_number_of_colours_names_the_mask(tmp_path: Path) -> None:
    path = tmp_path / "regions.png"
    painted((60, 20), [BLACK, RED, WHITE]).save(path)
    with pytest.raises(InputError) as info:
        load_mask(path, 2)
    message = str(info.value)
    assert message.startswith(f"{path}: the mask has 3 colour region(s) (#000000, #c81e1e, #ffffff) but 2 style")
    assert "\n" not in message


def test_tiny_specks_are_not_regions(tmp_path: Path) -> None:
    arr = np.asarray(painted((100, 100), [BLACK, WHITE])).copy()
    arr[5, 5] = RED  # one pixel: far below 1 % of the mask
    onehot = load_mask(PIL.Image.fromarray(arr), 2)
    assert onehot.shape == (2, 100, 100)


def test_unreadable_mask_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "mask.png"
    path.write_bytes(b"not an image")
    with pytest.raises(InputError, match="mask.png"):
        load_mask(path, 2)


# --------------------------------------------------------------------------- region maps


def test_region_maps_resize_feather_and_sum_to_one() -> None:
    onehot = load_mask(painted((200, 100), [BLACK, WHITE]), 2)
    maps = region_maps(onehot, (80, 60), feather=0.05)  # another aspect ratio: stretched
    assert maps.shape == (2, 1, 60, 80)
    assert torch.allclose(maps.sum(dim=0), torch.ones(1, 60, 80), atol=1e-5)
    row = maps[0, 0, 30]
    assert float(row[:25].min()) > 0.999 and float(row[55:].max()) < 1e-3  # far from the border: hard
    border = row[36:44]
    assert float(border.min()) > 0.05 and float(border.max()) < 0.95  # at the border: soft
    assert torch.all(border[1:] <= border[:-1])  # a smooth ramp
    hard = region_maps(onehot, (80, 60), feather=0.0)
    assert float(((hard > 0.01) & (hard < 0.99)).float().sum()) <= 2 * 60  # at most one mixed column


def test_layer_masks_are_area_averaged_to_the_feature_resolution(tiny) -> None:  # noqa: ANN001
    onehot = load_mask(painted((64, 48), [BLACK, WHITE]), 2)
    styles = [image_to_tensor(noise_image(1)), image_to_tensor(noise_image(2))]
    regional = RegionalStyle.from_masks(tiny, onehot, styles, PAPER_STYLE_LAYERS, (64, 48))
    feats = tiny(torch.rand(1, 3, 48, 64), PAPER_STYLE_LAYERS)
    regional.per_layer(feats)
    for layer in PAPER_STYLE_LAYERS:
        masks = regional.layer_masks(*feats[layer].shape[-2:])
        assert masks.shape[-2:] == feats[layer].shape[-2:]
        assert torch.allclose(masks.sum(dim=0), torch.ones_like(masks[0]), atol=1e-5)
    assert regional.areas == pytest.approx([0.5, 0.5])


# --------------------------------------------------------------------------- regional loss


def test_one_region_covering_everything_is_the_plain_style_loss(tiny) -> None:  # noqa: ANN001
    style = image_to_tensor(noise_image(3))
    targets = style_targets(tiny, [style], PAPER_STYLE_LAYERS)
    feats = tiny(torch.rand(1, 3, 32, 40, generator=torch.Generator().manual_seed(0)), PAPER_STYLE_LAYERS)
    regional = RegionalStyle(torch.ones(1, 1, 32, 40), [targets]).per_layer(feats)
    plain = GramLoss(targets).evaluate(feats, torch.zeros(1, 3, 32, 40))[1]
    for layer in PAPER_STYLE_LAYERS:
        assert torch.allclose(regional[layer], plain[layer], rtol=1e-5)


def test_regional_loss_is_the_area_weighted_sum_of_region_losses(tiny) -> None:  # noqa: ANN001
    a, b = image_to_tensor(noise_image(4)), image_to_tensor(noise_image(5, (30, 50)))
    ta, tb = style_targets(tiny, [a], PAPER_STYLE_LAYERS), style_targets(tiny, [b], PAPER_STYLE_LAYERS)
    maps = torch.zeros(2, 1, 32, 40)
    maps[0, ..., :10] = 1  # a quarter
    maps[1, ..., 10:] = 1
    feats = tiny(torch.rand(1, 3, 32, 40, generator=torch.Generator().manual_seed(1)), ["relu1_1"])
    got = RegionalStyle(maps, [{"relu1_1": ta["relu1_1"]}, {"relu1_1": tb["relu1_1"]}]).per_layer(feats)["relu1_1"]
    f = feats["relu1_1"]
    loss_a = losses.relative_squared_error(losses.gram_matrix(f[..., :10]), ta["relu1_1"])
    loss_b = losses.relative_squared_error(losses.gram_matrix(f[..., 10:]), tb["relu1_1"])
    assert torch.allclose(got, 0.25 * loss_a + 0.75 * loss_b, rtol=1e-5)


def test_gradients_of_a_region_stay_in_its_region(tiny) -> None:  # noqa: ANN001
    """A region whose output already matches its style pulls on nothing; the other one does."""
    a = image_to_tensor(noise_image(6))
    image = torch.rand(1, 3, 32, 64, generator=torch.Generator().manual_seed(2), requires_grad=True)
    maps = torch.zeros(2, 1, 32, 64)
    maps[0, ..., :32], maps[1, ..., 32:] = 1, 1
    feats = tiny(image.detach(), ["relu1_1"])["relu1_1"]
    left_targets = {"relu1_1": losses.gram_matrix(feats, maps[:1])}  # the left half as it is
    regional = RegionalStyle(maps, [left_targets, style_targets(tiny, [a], ["relu1_1"])])
    regional.per_layer(tiny(image, ["relu1_1"]))["relu1_1"].backward()
    grad = image.grad.abs().sum(dim=(0, 1, 2))
    assert float(grad[:30].sum()) < 1e-3 * float(grad[34:].sum())


# --------------------------------------------------------------------------- runs and errors


def test_masked_transfer_runs_with_a_mask_of_another_size(tiny, tmp_path: Path) -> None:  # noqa: ANN001
    path = tmp_path / "regions.png"
    painted((300, 100), [WHITE, BLACK]).save(path)  # another size and aspect than the content
    result = stylize.transfer(noise_image(0, (48, 32)), [noise_image(1), noise_image(2)], backbone=tiny,
                              size=48, scales="1", steps=3, mask=str(path))
    assert result.image.size == (48, 32)
    assert result.settings["mask"] == str(path)
    assert all(np.isfinite(row["style"]) for row in result.history)


def test_mask_with_blend_is_an_option_error(tiny, tmp_path: Path) -> None:  # noqa: ANN001
    with pytest.raises(OptionError, match="^--style-blend cannot be combined with --mask"):
        stylize.transfer(noise_image(0), [noise_image(1), noise_image(2)], backbone=tiny, mask="m.png",
                         style_blend=(1, 1))


def test_cli_bad_mask_is_a_one_line_error(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    content, style, mask = tmp_path / "c.png", tmp_path / "s.png", tmp_path / "regions.png"
    noise_image(0).save(content)
    noise_image(1).save(style)
    painted((40, 32), [BLACK, WHITE]).save(mask)
    out = tmp_path / "out.png"
    code = cli_main([str(content), str(style), "-o", str(out), "--mask", str(mask), "--size", "32"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"stylize: error: {mask}: the mask has 2 colour region(s)") and err.count("\n") == 1
    assert not out.exists()


# --------------------------------------------------------------------------- claim on real images


def gram_distance(backbone, image: PIL.Image.Image, style: PIL.Image.Image, layers) -> float:  # noqa: ANN001
    """Mean over ``layers`` of the relative Gram error between an image and a style."""
    feats = backbone(image_to_tensor(image), layers)
    target = style_targets(backbone, [image_to_tensor(style)], layers)
    return float(np.mean([float(losses.relative_squared_error(losses.gram_matrix(feats[k]), target[k]))
                          for k in layers]))


@pytest.mark.integration
def test_masked_regions_each_move_toward_their_own_style(real_vgg16, small_image, tmp_path: Path) -> None:  # noqa: ANN001
    content = small_image("content/building_eiffel_tower.jpg", 128)
    first = small_image("style/munch_the_scream.jpg", 160)
    second = small_image("style/monet_water_lilies_1919.jpg", 160)
    mask = tmp_path / "halves.png"
    painted(content.size, [BLACK, WHITE]).save(mask)  # left: black -> first style; right: white -> second
    result = stylize.transfer(content, [first, second], backbone=real_vgg16, size=128, scales="1", steps=30,
                              mask=str(mask))
    width, height = result.image.size
    band = width // 8  # leave out the feathered border between the regions
    left_box, right_box = (0, 0, width // 2 - band, height), (width // 2 + band, 0, width, height)
    layers = ["relu1_1", "relu2_1", "relu3_1"]
    d = {}
    for name, box in (("left", left_box), ("right", right_box)):
        for image_name, image in (("out", result.image), ("content", content)):
            crop = image.crop(box)
            d[name, image_name] = (gram_distance(real_vgg16, crop, first, layers),
                                   gram_distance(real_vgg16, crop, second, layers))
    # each region is closer to its own style than to the other one (measured: left 0.21 against 0.76,
    # right 0.08 against 0.73; the photo itself is closer to the second style in both halves) ...
    assert d["left", "out"][0] < d["left", "out"][1], d
    assert d["right", "out"][1] < d["right", "out"][0], d
    # ... and moved toward it from the content
    assert d["left", "out"][0] < 0.5 * d["left", "content"][0], d
    assert d["right", "out"][1] < 0.5 * d["right", "content"][1], d

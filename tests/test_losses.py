"""Losses: hand-computed Grams, scale-free normalization, and the balance across conventions.

The balance tests build, from one random torchvision-convention tiny VGG, a Caffe-convention
network whose every feature map is exactly ``k`` times larger (like real Caffe weights, whose
activations are orders of magnitude above torchvision's). The normalized objective must not
see the difference; a raw squared error must (so the test is able to fail).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from stylize.backbone import Backbone, tiny_backbone
from stylize.backbone.preprocess import CAFFE_MEAN_BGR, TORCHVISION_MEAN, TORCHVISION_STD
from stylize.backbone.vgg import VGGFeatures, conv_state_keys
from stylize.imageio import image_to_tensor
from stylize.loss import GramLoss, content_targets, style_targets
from stylize.loss import functional as losses
from stylize.objective import Objective
from stylize.options import PAPER_CONTENT_LAYERS, PAPER_STYLE_LAYERS

LAYERS = [*PAPER_CONTENT_LAYERS, *PAPER_STYLE_LAYERS]

# --------------------------------------------------------------------------- Gram matrices


def test_gram_matrix_by_hand() -> None:
    # 2 channels on a 1x3 grid: a = (1, 2, 3), b = (0, -1, 2)
    f = torch.tensor([[[[1.0, 2.0, 3.0]], [[0.0, -1.0, 2.0]]]])
    gram = losses.gram_matrix(f)
    # a.a = 14, a.b = 0 - 2 + 6 = 4, b.b = 5; divided by H*W = 3
    expected = torch.tensor([[[14.0, 4.0], [4.0, 5.0]]]) / 3
    assert gram.shape == (1, 2, 2)
    torch.testing.assert_close(gram, expected)


def test_gram_matrix_batch_and_symmetry() -> None:
    f = torch.randn(2, 4, 3, 5, generator=torch.Generator().manual_seed(1))
    gram = losses.gram_matrix(f)
    assert gram.shape == (2, 4, 4)
    torch.testing.assert_close(gram, gram.transpose(1, 2))
    for n in range(2):
        flat = f[n].reshape(4, -1)
        torch.testing.assert_close(gram[n], flat @ flat.T / 15)


def test_gram_matrix_gradient_is_autograds_of_the_plain_product() -> None:
    # the one-product backward must give what autograd gives for F Fᵀ / P, for any upstream
    # gradient, symmetric or not (gradcheck in float64 against finite differences too)
    f = torch.randn(2, 3, 4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    upstream = torch.randn(2, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    mine = f.clone().requires_grad_(True)
    (losses.gram_matrix(mine) * upstream).sum().backward()
    plain = f.clone().requires_grad_(True)
    flat = plain.reshape(2, 3, 20)
    (flat @ flat.transpose(1, 2) / 20 * upstream).sum().backward()
    torch.testing.assert_close(mine.grad, plain.grad)
    assert torch.autograd.gradcheck(losses.gram_matrix, (f.clone().requires_grad_(True),))


def test_gram_matrix_does_not_grow_with_size() -> None:
    # The same texture tiled 2x2 has the same position-averaged Gram.
    f = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(2))
    tiled = f.repeat(1, 1, 2, 2)
    torch.testing.assert_close(losses.gram_matrix(tiled), losses.gram_matrix(f))


def test_masked_gram_by_hand() -> None:
    f = torch.tensor([[[[1.0, 2.0, 3.0]], [[0.0, -1.0, 2.0]]]])
    mask = torch.tensor([[[[1.0, 0.0, 0.5]]]])
    # weighted sums: a.a = 1 + 0 + 4.5 = 5.5, a.b = 0 + 0 + 3 = 3, b.b = 0 + 0 + 2 = 2; total weight 1.5
    expected = torch.tensor([[[5.5, 3.0], [3.0, 2.0]]]) / 1.5
    torch.testing.assert_close(losses.gram_matrix(f, mask), expected)


def test_masked_gram_all_ones_equals_plain_and_binary_mask_selects() -> None:
    f = torch.randn(1, 3, 4, 6, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(losses.gram_matrix(f, torch.ones(1, 1, 4, 6)), losses.gram_matrix(f))
    mask = torch.zeros(1, 1, 4, 6)
    mask[..., :3] = 1
    torch.testing.assert_close(losses.gram_matrix(f, mask), losses.gram_matrix(f[..., :3]))


def test_masked_gram_empty_mask_is_finite() -> None:
    f = torch.randn(1, 2, 3, 3)
    gram = losses.gram_matrix(f, torch.zeros(1, 1, 3, 3))
    assert torch.isfinite(gram).all() and gram.abs().max() == 0


# --------------------------------------------------------------------------- relative errors


def test_relative_squared_error_by_hand() -> None:
    value = torch.tensor([1.0, 2.0, 2.0])
    target = torch.tensor([1.0, 0.0, 2.0])
    # (0 + 4 + 0) / (1 + 0 + 4)
    assert losses.relative_squared_error(value, target).item() == pytest.approx(0.8)
    assert losses.relative_squared_error(torch.zeros(3), target).item() == pytest.approx(1.0)
    assert losses.relative_squared_error(target, target).item() == 0


def test_relative_squared_error_is_scale_free() -> None:
    gen = torch.Generator().manual_seed(4)
    value, target = torch.randn(10, generator=gen), torch.randn(10, generator=gen)
    base = losses.relative_squared_error(value, target)
    for k in (1e-3, 7.0, 1e4):
        torch.testing.assert_close(losses.relative_squared_error(k * value, k * target), base)


def test_relative_squared_error_zero_target_is_finite() -> None:
    assert math.isfinite(losses.relative_squared_error(torch.ones(3), torch.zeros(3)).item())


def test_content_loss_is_mean_over_layers() -> None:
    feats = {"a": torch.tensor([2.0, 0.0]), "b": torch.tensor([1.0, 1.0])}
    targets = {"a": torch.tensor([1.0, 0.0]), "b": torch.tensor([1.0, 1.0])}
    # a: 1 / 1 = 1, b: 0
    assert losses.content_loss(feats, targets).item() == pytest.approx(0.5)


def test_style_losses_per_layer_and_weighting() -> None:
    gen = torch.Generator().manual_seed(5)
    feats = {"x": torch.randn(1, 3, 4, 4, generator=gen), "y": torch.randn(1, 2, 2, 2, generator=gen)}
    targets = {"x": losses.gram_matrix(feats["x"]), "y": 2 * losses.gram_matrix(feats["y"])}
    total, per_layer = GramLoss(targets, layer_weights={"x": 1.0, "y": 3.0}).evaluate(feats, torch.zeros(1, 3, 4, 4))
    assert set(per_layer) == {"x", "y"}
    assert per_layer["x"].item() == pytest.approx(0.0, abs=1e-7)
    assert per_layer["y"].item() == pytest.approx(0.25)  # ‖G - 2G‖² / ‖2G‖²
    weighted = losses.weighted_style_loss(per_layer, {"x": 1.0, "y": 3.0})
    assert weighted.item() == pytest.approx(0.75 * 0.25) and total.item() == pytest.approx(weighted.item())
    # only the layers present count, and the weights are normalized
    assert losses.weighted_style_loss({"y": per_layer["y"]}, {"x": 1.0, "y": 3.0}).item() == pytest.approx(0.25)


def test_style_losses_with_masks() -> None:
    feats = {"x": torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(6))}
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2] = 1
    targets = {"x": losses.gram_matrix(feats["x"][..., :2])}
    masked = losses.relative_squared_error(losses.gram_matrix(feats["x"], mask), targets["x"])
    assert masked.item() == pytest.approx(0.0, abs=1e-7)
    assert GramLoss(targets).evaluate(feats, torch.zeros(1, 3, 4, 4))[1]["x"].item() > 1e-3


def test_blend_grams() -> None:
    a = {"l": torch.full((1, 2, 2), 1.0)}
    b = {"l": torch.full((1, 2, 2), 5.0)}
    blended = losses.blend_grams([a, b], [3.0, 1.0])
    torch.testing.assert_close(blended["l"], torch.full((1, 2, 2), 2.0))  # 0.75 * 1 + 0.25 * 5
    torch.testing.assert_close(losses.blend_grams([a, b], [1.0, 0.0])["l"], a["l"])
    with pytest.raises(ValueError, match="one blend weight"):
        losses.blend_grams([a, b], [1.0])
    with pytest.raises(ValueError, match="non-negative"):
        losses.blend_grams([a, b], [1.0, -1.0])
    with pytest.raises(ValueError, match="non-negative"):
        losses.blend_grams([a, b], [0.0, 0.0])


def test_tv_loss_by_hand() -> None:
    image = torch.tensor([[[[0.0, 1.0], [1.0, 1.0]]]])
    # dx: (1, 0) -> mean 0.5 ; dy: (1, 0) -> mean 0.5
    assert losses.tv_loss(image).item() == pytest.approx(1.0)
    assert losses.tv_loss(torch.full((1, 3, 5, 5), 0.3)).item() == 0


def test_range_penalty() -> None:
    inside = torch.rand(1, 3, 4, 4)
    assert losses.range_penalty(inside).item() == 0
    image = torch.tensor([[[[-0.5, 1.5], [0.5, 1.0]]]])
    # (0.25 + 0.25 + 0 + 0) / 4
    assert losses.range_penalty(image).item() == pytest.approx(0.125)
    image.requires_grad_(True)
    losses.range_penalty(image).backward()
    assert image.grad[0, 0, 0, 0] < 0 < image.grad[0, 0, 0, 1]  # pushes both back into [0, 1]
    assert image.grad[0, 0, 1, 0] == 0


# --------------------------------------------------------------------------- balance across conventions


def _d_direction() -> torch.Tensor:
    """Per RGB channel, the offset between the two conventions' zero points, in torchvision units.

    A pixel that Caffe normalization maps to 0 (the Caffe mean) maps to ``d`` under torchvision's
    normalization. Zero padding inside conv1_1 is 0 in both input spaces, so conv1_1 weights
    orthogonal to ``d`` (per tap) make the two networks agree exactly at the image border too.
    """
    caffe_mean_rgb = torch.tensor(CAFFE_MEAN_BGR[::-1]) / 255.0
    return (caffe_mean_rgb - torch.tensor(TORCHVISION_MEAN)) / torch.tensor(TORCHVISION_STD)


def torchvision_tiny(arch: str = "vgg19", seed: int = 0) -> Backbone:
    """A random tiny VGG (torchvision convention) with conv1_1 weights orthogonal to ``d``."""
    net = tiny_backbone(arch, seed=seed, convention="torchvision")
    conv = net.features.features[0]
    d = _d_direction().view(1, 3, 1, 1)
    with torch.no_grad():
        w = conv.weight
        w -= (w * d).sum(dim=1, keepdim=True) * d / d.pow(2).sum()
    assert (conv.weight * d).sum(dim=1).abs().max() < 1e-6
    return net


def caffe_equivalent(tv: Backbone, k: float) -> Backbone:
    """The Caffe-convention network whose every feature map is exactly ``k`` times ``tv``'s.

    conv1_1 takes BGR 0-255 minus the mean pixel: permute the input channels RGB -> BGR and fold
    ``1 / (255 std)`` into the weights; the mean difference vanishes because the weights are
    orthogonal to it (see :func:`torchvision_tiny`). Then multiply conv1_1 by ``k`` and every
    bias by ``k``: ReLU and max-pool are positively homogeneous, so each layer is ``k`` times larger.
    """
    state = {}
    std = torch.tensor(TORCHVISION_STD)
    for _name, prefix in conv_state_keys(tv.arch).items():
        index = int(prefix.split(".")[1])
        if index >= len(tv.features.features):
            break
        conv = tv.features.features[index]
        weight, bias = conv.weight.detach().clone(), conv.bias.detach().clone()
        if index == 0:
            weight = weight / (255.0 * std.view(1, 3, 1, 1))
            weight = weight[:, [2, 1, 0]] * k  # input channel j of the Caffe net is BGR channel j
        state[f"{prefix}.weight"] = weight
        state[f"{prefix}.bias"] = bias * k
    features = VGGFeatures(tv.arch, last_layer=tv.features.last_layer, widths=tv.features.widths)
    features.load_conv_weights(state)
    return Backbone(features, "caffe", f"caffe twin x{k}")


@pytest.fixture(scope="module")
def pair(small_image: Callable[[str, int], Image.Image]) -> tuple[torch.Tensor, torch.Tensor]:
    content = small_image("content/animal_dog.jpg", 64)
    style = small_image("style/van_gogh_starry_night.jpg", 64)
    return image_to_tensor(content), image_to_tensor(style)


def _objective(net: Backbone, content: torch.Tensor, style: torch.Tensor) -> Objective:
    return Objective.from_targets(
        net,
        content_targets(net, content, PAPER_CONTENT_LAYERS),
        style_targets(net, [style], PAPER_STYLE_LAYERS),
        content_weight=1.0,
        style_weight=10.0,
    )


K = 57.0  # the Caffe twin's features are this much larger


def test_caffe_twin_features_are_exactly_k_times_larger(pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    tv = torchvision_tiny()
    caffe = caffe_equivalent(tv, K)
    content, _ = pair
    a, b = tv(content, LAYERS), caffe(content, LAYERS)
    for layer in LAYERS:
        torch.testing.assert_close(b[layer], K * a[layer], rtol=1e-4, atol=1e-4 * K * a[layer].abs().max().item())
    assert a["relu5_1"].abs().max() > 0  # not a dead network


def test_objective_is_the_same_for_both_conventions(pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    tv = torchvision_tiny()
    caffe = caffe_equivalent(tv, K)
    content, style = pair
    image = (0.6 * content + 0.4 * torch.rand(content.shape, generator=torch.Generator().manual_seed(7)))
    image = image.requires_grad_(True)
    totals, grads, parts = [], [], []
    for net in (tv, caffe):
        objective = _objective(net, content, style)
        total, p = objective(image)
        (grad,) = torch.autograd.grad(total, image)
        totals.append(total.item())
        grads.append(grad)
        parts.append(p)
    assert parts[0]["content"] > 1e-3 and parts[0]["style"] > 1e-3  # a real, non-trivial comparison
    assert set(parts[0]) == set(parts[1])
    for key in parts[0]:
        assert parts[1][key] == pytest.approx(parts[0][key], rel=1e-3), key
    assert totals[1] == pytest.approx(totals[0], rel=1e-3)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-3, atol=1e-3 * grads[0].abs().max().item())


def test_raw_mse_would_not_balance(pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Proves the test above can fail: unnormalized losses differ by k² (content) and k⁴ (style)."""
    tv = torchvision_tiny()
    caffe = caffe_equivalent(tv, K)
    content, style = pair
    image = 0.5 * content + 0.25
    raw = []
    for net in (tv, caffe):
        feats, targets = net(image, LAYERS), net(content, LAYERS)
        style_feats = net(style, LAYERS)
        content_mse = F.mse_loss(feats["relu4_2"], targets["relu4_2"]).item()
        style_mse = sum(
            F.mse_loss(losses.gram_matrix(feats[k]), losses.gram_matrix(style_feats[k])).item()
            for k in PAPER_STYLE_LAYERS
        )
        raw.append((content_mse, style_mse))
    assert raw[1][0] != pytest.approx(raw[0][0], rel=1e-3)
    assert raw[1][1] != pytest.approx(raw[0][1], rel=1e-3)
    assert raw[1][0] / raw[0][0] == pytest.approx(K**2, rel=1e-2)
    assert raw[1][1] / raw[0][1] == pytest.approx(K**4, rel=1e-2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vgg16_and_vgg19_start_with_comparable_style_losses(
    pair: tuple[torch.Tensor, torch.Tensor], seed: int
) -> None:
    """Starting from the content image, each layer's style loss is within 10x across architectures."""
    content, style = pair
    first = {}
    for arch in ("vgg16", "vgg19"):
        net = tiny_backbone(arch, seed=seed)
        _, parts = _objective(net, content, style)(content)
        first[arch] = {k: parts[f"style_{k}"] for k in PAPER_STYLE_LAYERS}
        assert all(v > 0 for v in first[arch].values())
    for layer in PAPER_STYLE_LAYERS:
        ratio = first["vgg16"][layer] / first["vgg19"][layer]
        assert 0.1 < ratio < 10, (layer, first)


def test_normalized_losses_do_not_depend_on_image_size(small_image: Callable[[str, int], Image.Image]) -> None:
    """The same pair at 48 and 96 px gives style losses of the same magnitude (Gram averaging)."""
    net = tiny_backbone("vgg19", seed=0)
    styles = {}
    for size in (48, 96):
        c = image_to_tensor(small_image("content/forest_stream.jpg", size))
        s = image_to_tensor(small_image("style/hokusai_great_wave.jpg", size))
        _, parts = _objective(net, c, s)(c)
        styles[size] = parts["style"]
    assert 1 / 3 < styles[48] / styles[96] < 3, styles


def test_caffe_twin_is_built_from_the_real_normalize() -> None:
    """The Caffe twin relies on Normalize('caffe') = BGR * 255 - mean: a sanity check of that claim."""
    rgb = torch.tensor([0.2, 0.5, 0.8]).view(1, 3, 1, 1)
    tv, caffe = torchvision_tiny(), caffe_equivalent(torchvision_tiny(), 1.0)
    x = caffe.normalize(rgb).flatten().tolist()
    assert x == pytest.approx([0.8 * 255 - 103.939, 0.5 * 255 - 116.779, 0.2 * 255 - 123.68], rel=1e-5)
    assert tv.normalize(rgb).flatten().tolist() == pytest.approx(
        [(0.2 - 0.485) / 0.229, (0.5 - 0.456) / 0.224, (0.8 - 0.406) / 0.225], rel=1e-5
    )


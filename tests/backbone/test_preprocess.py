"""The two input conventions: torchvision (RGB, mean/std) and Caffe (BGR, 0-255, mean pixel)."""

from __future__ import annotations

import pytest
import torch

from stylize.backbone import tiny_backbone
from stylize.backbone.preprocess import (
    CAFFE_MEAN_BGR,
    CONVENTIONS,
    TORCHVISION_MEAN,
    TORCHVISION_STD,
    Normalize,
    denormalize,
    normalize,
)


def _rgb(*values: float) -> torch.Tensor:
    return torch.tensor(values).view(1, 3, 1, 1)


def test_conventions() -> None:
    assert CONVENTIONS == ("torchvision", "caffe")


def test_torchvision_known_pixels() -> None:
    out = normalize(_rgb(0.0, 0.5, 1.0), "torchvision").flatten().tolist()
    expected = [(0.0 - 0.485) / 0.229, (0.5 - 0.456) / 0.224, (1.0 - 0.406) / 0.225]
    assert out == pytest.approx(expected, rel=1e-6)
    # the ImageNet mean maps to zero
    assert normalize(_rgb(*TORCHVISION_MEAN), "torchvision").abs().max() < 1e-6


def test_caffe_is_bgr_times_255_minus_mean() -> None:
    r, g, b = 0.1, 0.6, 0.9
    out = normalize(_rgb(r, g, b), "caffe").flatten().tolist()
    assert out == pytest.approx([b * 255 - 103.939, g * 255 - 116.779, r * 255 - 123.68], rel=1e-5)
    # pure red lands in the last (R) channel of the Caffe input
    red = normalize(_rgb(1.0, 0.0, 0.0), "caffe").flatten().tolist()
    assert red == pytest.approx([-103.939, -116.779, 255 - 123.68], rel=1e-5)
    # the mean pixel maps to zero
    mean_rgb = [m / 255 for m in reversed(CAFFE_MEAN_BGR)]
    assert normalize(_rgb(*mean_rgb), "caffe").abs().max() < 1e-4


def test_caffe_on_an_image_equals_manual_computation() -> None:
    rgb = torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    manual = rgb[:, [2, 1, 0]] * 255 - torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1)
    torch.testing.assert_close(normalize(rgb, "caffe"), manual, rtol=1e-5, atol=1e-4)
    manual_tv = (rgb - torch.tensor(TORCHVISION_MEAN).view(1, 3, 1, 1)) / torch.tensor(TORCHVISION_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(normalize(rgb, "torchvision"), manual_tv)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_round_trip(convention: str) -> None:
    rgb = torch.rand(1, 3, 9, 4, generator=torch.Generator().manual_seed(1))
    x = normalize(rgb, convention)
    assert not torch.allclose(x, rgb)
    torch.testing.assert_close(denormalize(x, convention), rgb, rtol=0, atol=1e-5)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_normalize_is_differentiable(convention: str) -> None:
    rgb = torch.rand(1, 3, 4, 4, requires_grad=True)
    Normalize(convention)(rgb)[:, 0].sum().backward()
    grad = rgb.grad[0, :, 0, 0].tolist()
    if convention == "caffe":
        assert grad == pytest.approx([0.0, 0.0, 255.0])  # output channel 0 is blue
    else:
        assert grad == pytest.approx([1 / 0.229, 0.0, 0.0])


def test_unknown_convention() -> None:
    with pytest.raises(ValueError, match="keras"):
        Normalize("keras")


def test_normalize_keeps_device_and_dtype() -> None:
    rgb = torch.rand(1, 3, 2, 2, dtype=torch.float64)
    assert normalize(rgb, "caffe").dtype == torch.float64


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_backbone_applies_its_convention(convention: str) -> None:
    net = tiny_backbone(convention=convention, layers=["conv1_1"])
    rgb = torch.rand(1, 3, 6, 6)
    direct = net.features(normalize(rgb, convention), ["conv1_1"])["conv1_1"]
    torch.testing.assert_close(net(rgb, ["conv1_1"])["conv1_1"], direct)
    assert net.convention == convention

"""VGG layer naming, truncation, pooling and weight loading (tiny widths, random weights)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stylize.backbone import deepest_layer, tiny_backbone
from stylize.backbone.vgg import (
    ARCHITECTURES,
    VGGFeatures,
    conv_names,
    conv_state_keys,
    layer_names,
    random_state_dict,
)

TINY = (4, 4, 8, 8, 8)

# torchvision's vgg19().features / vgg16().features: index -> module kind
TORCHVISION_CONV_INDICES = {
    "vgg16": [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28],
    "vgg19": [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34],
}
TORCHVISION_POOL_INDICES = {"vgg16": [4, 9, 16, 23, 30], "vgg19": [4, 9, 18, 27, 36]}


def test_architectures() -> None:
    assert set(ARCHITECTURES) == {"vgg16", "vgg19"}


@pytest.mark.parametrize(("arch", "count", "convs"), [("vgg16", 31, 13), ("vgg19", 37, 16)])
def test_layer_names_count_and_order(arch: str, count: int, convs: int) -> None:
    names = layer_names(arch)
    assert len(names) == count and len(set(names)) == count
    assert len(conv_names(arch)) == convs
    assert names[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert names[-1] == "pool5"
    # every conv is followed by its relu
    for i, name in enumerate(names):
        if name.startswith("conv"):
            assert names[i + 1] == "relu" + name[4:]


def test_vgg19_has_conv3_4_and_vgg16_does_not() -> None:
    assert "relu3_4" in layer_names("vgg19") and "relu5_4" in layer_names("vgg19")
    assert "relu3_4" not in layer_names("vgg16") and "relu5_3" in layer_names("vgg16")
    assert layer_names("vgg19").index("relu4_2") == 22
    assert layer_names("vgg16").index("relu4_2") == 20


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_torchvision_indices(arch: str) -> None:
    names = layer_names(arch)
    assert [i for i, n in enumerate(names) if n.startswith("conv")] == TORCHVISION_CONV_INDICES[arch]
    assert [i for i, n in enumerate(names) if n.startswith("pool")] == TORCHVISION_POOL_INDICES[arch]
    keys = conv_state_keys(arch)
    assert keys["conv1_1"] == "features.0"
    assert [int(v.split(".")[1]) for v in keys.values()] == TORCHVISION_CONV_INDICES[arch]
    net = VGGFeatures(arch, widths=TINY)
    for i, module in enumerate(net.features):
        kind = names[i][:4]
        assert isinstance(module, {"conv": nn.Conv2d, "relu": nn.ReLU, "pool": nn.MaxPool2d}[kind]), (i, names[i])


def test_unknown_architecture() -> None:
    with pytest.raises(ValueError, match="vgg11"):
        layer_names("vgg11")


@pytest.mark.parametrize(("arch", "layers", "last"), [
    ("vgg19", ["relu1_1", "relu4_2", "relu2_1"], "relu4_2"),
    ("vgg19", ["relu5_1", "relu4_2"], "relu5_1"),
    ("vgg16", ["conv3_3", "pool2"], "conv3_3"),
    ("vgg19", ["pool5"], "pool5"),
])
def test_deepest_layer(arch: str, layers: list[str], last: str) -> None:
    assert deepest_layer(arch, layers) == last


def test_deepest_layer_unknown_name() -> None:
    with pytest.raises(ValueError, match="relu3_4"):
        deepest_layer("vgg16", ["relu1_1", "relu3_4"])


@pytest.mark.parametrize(("arch", "last"), [("vgg19", "relu5_1"), ("vgg19", "relu4_2"), ("vgg16", "conv1_1")])
def test_truncation_after_deepest_layer(arch: str, last: str) -> None:
    net = VGGFeatures(arch, last_layer=last, widths=TINY)
    names = layer_names(arch)
    assert net.names == names[: names.index(last) + 1]
    assert len(net.features) == names.index(last) + 1
    assert net.last_layer == last


def test_untruncated_has_every_layer() -> None:
    assert VGGFeatures("vgg19", widths=TINY).names == layer_names("vgg19")


def test_truncation_to_unknown_layer() -> None:
    with pytest.raises(ValueError, match="relu9_1"):
        VGGFeatures("vgg19", last_layer="relu9_1")


def test_tiny_backbone_cut_by_layers() -> None:
    net = tiny_backbone("vgg16", layers=["relu1_1", "relu3_1"])
    assert net.layer_names[-1] == "relu3_1"
    with pytest.raises(ValueError, match="relu4_1"):
        net(torch.rand(1, 3, 16, 16), ["relu4_1"])


def test_forward_returns_the_requested_layers_with_their_shapes() -> None:
    net = VGGFeatures("vgg19", last_layer="relu5_1", widths=TINY)
    net.load_conv_weights(random_state_dict("vgg19", TINY, seed=0))
    x = torch.randn(1, 3, 32, 48)
    out = net(x, ["relu5_1", "relu1_1", "pool1", "conv3_2"])
    assert set(out) == {"relu5_1", "relu1_1", "pool1", "conv3_2"}
    assert out["relu1_1"].shape == (1, 4, 32, 48)
    assert out["pool1"].shape == (1, 4, 16, 24)
    assert out["conv3_2"].shape == (1, 8, 8, 12)
    assert out["relu5_1"].shape == (1, 8, 2, 3)
    assert (out["relu1_1"] >= 0).all() and (out["conv3_2"] < 0).any()
    # the same activations as running the modules by hand
    y = x
    for name, module in zip(net.names, net.features, strict=True):
        y = module(y)
        if name == "conv3_2":
            torch.testing.assert_close(out["conv3_2"], y)


def test_forward_unknown_layer() -> None:
    net = VGGFeatures("vgg19", last_layer="relu2_1", widths=TINY)
    with pytest.raises(ValueError, match="relu3_1"):
        net(torch.rand(1, 3, 8, 8), ["relu3_1"])


def test_pooling_choice() -> None:
    state = random_state_dict("vgg19", TINY, seed=3)
    nets = {}
    for pooling, kind in (("max", nn.MaxPool2d), ("average", nn.AvgPool2d)):
        net = VGGFeatures("vgg19", last_layer="relu3_1", pooling=pooling, widths=TINY)
        net.load_conv_weights(state)
        pools = [m for n, m in zip(net.names, net.features, strict=True) if n.startswith("pool")]
        assert len(pools) == 2 and all(type(m) is kind for m in pools)
        assert all(m.kernel_size == 2 and m.stride == 2 for m in pools)
        nets[pooling] = net
    x = torch.rand(1, 3, 16, 16)
    a, b = (nets[p](x, ["pool1", "relu1_2"]) for p in ("max", "average"))
    torch.testing.assert_close(a["relu1_2"], b["relu1_2"])
    torch.testing.assert_close(a["pool1"], nn.functional.max_pool2d(a["relu1_2"], 2))
    torch.testing.assert_close(b["pool1"], nn.functional.avg_pool2d(a["relu1_2"], 2))
    with pytest.raises(ValueError, match="pooling"):
        VGGFeatures("vgg19", pooling="min")


def test_tiny_backbone_average_pooling() -> None:
    net = tiny_backbone(pooling="average")
    assert any(isinstance(m, nn.AvgPool2d) for m in net.features.features)


def test_load_conv_weights_copies_values_and_ignores_extra_keys() -> None:
    state = random_state_dict("vgg19", TINY, seed=1)
    state["classifier.0.weight"] = torch.zeros(3, 3)
    net = VGGFeatures("vgg19", last_layer="relu2_1", widths=TINY)
    net.load_conv_weights(state)  # deeper convs and the classifier are extra keys here
    torch.testing.assert_close(net.features[0].weight, state["features.0.weight"])
    torch.testing.assert_close(net.features[5].bias, state["features.5.bias"])
    assert not any(p.requires_grad for p in net.parameters())


def test_load_conv_weights_missing_key_names_layer() -> None:
    state = random_state_dict("vgg19", TINY, seed=1)
    del state["features.7.bias"]
    net = VGGFeatures("vgg19", last_layer="relu2_2", widths=TINY)
    with pytest.raises(ValueError, match=r"features\.7\.bias \(conv2_2\)"):
        net.load_conv_weights(state)
    VGGFeatures("vgg19", last_layer="relu2_1", widths=TINY).load_conv_weights(state)  # not needed there


def test_load_conv_weights_wrong_shape_names_layer() -> None:
    state = random_state_dict("vgg19", (4, 4, 8, 8, 8), seed=1)
    net = VGGFeatures("vgg19", last_layer="relu1_1", widths=(5, 4, 8, 8, 8))
    with pytest.raises(ValueError, match=r"features\.0\.weight \(conv1_1\) has shape \(4, 3, 3, 3\), expected"):
        net.load_conv_weights(state)


def test_vgg16_state_does_not_fit_vgg19_deep_layers() -> None:
    state = random_state_dict("vgg16", TINY, seed=1)
    net = VGGFeatures("vgg19", last_layer="relu5_1", widths=TINY)
    with pytest.raises(ValueError):
        net.load_conv_weights(state)


def test_random_state_dict_is_seeded() -> None:
    a, b = random_state_dict("vgg16", TINY, seed=5), random_state_dict("vgg16", TINY, seed=5)
    c = random_state_dict("vgg16", TINY, seed=6)
    assert set(a) == {f"{p}.{part}" for p in conv_state_keys("vgg16").values() for part in ("weight", "bias")}
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["features.0.weight"], c["features.0.weight"])


def test_tiny_backbone_is_frozen_and_described() -> None:
    net = tiny_backbone("vgg16", seed=2)
    assert net.arch == "vgg16" and net.convention == "torchvision"
    assert "vgg16" in net.description and "seed 2" in net.description
    assert not any(p.requires_grad for p in net.parameters()) and not net.training
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    net(x, ["relu3_1"])["relu3_1"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0

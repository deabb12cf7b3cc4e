"""bench/tutorial_baseline.py still runs and still is the tutorial's algorithm (tiny backbone, 32 px)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from PIL import Image

from stylize.backbone import tiny_backbone
from stylize.backbone.vgg import conv_names
from stylize.imageio import image_to_tensor

REPO = Path(__file__).resolve().parents[1]
SmallImage = Callable[[str, int], Image.Image]


@pytest.fixture
def baseline(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(REPO))
    import bench.tutorial_baseline as module

    return module


def test_layer_mapping_is_the_tutorials(baseline: ModuleType) -> None:
    # the tutorial's conv_1..conv_5 and conv_4, counted over the convolutions of VGG in order
    for arch in ("vgg16", "vgg19"):
        convs = conv_names(arch)
        assert tuple(convs[:5]) == baseline.TUTORIAL_STYLE_LAYERS
        assert (convs[3],) == baseline.TUTORIAL_CONTENT_LAYERS
    assert (baseline.STYLE_WEIGHT, baseline.CONTENT_WEIGHT, baseline.NUM_STEPS) == (1e6, 1.0, 300)
    assert baseline.tutorial_feature_scale("torchvision") == 1.0
    assert baseline.tutorial_feature_scale("caffe") == pytest.approx(1 / 57.6, rel=0.01)


def test_gram_is_normalized_by_the_number_of_elements(baseline: ModuleType) -> None:
    x = torch.randn(1, 4, 3, 5, generator=torch.Generator().manual_seed(0))
    flat = x.reshape(4, 15)
    assert torch.allclose(baseline.gram_matrix(x), flat @ flat.T / (4 * 3 * 5))


def test_run_tutorial_counts_closure_evaluations(baseline: ModuleType, small_image: SmallImage) -> None:
    torch.manual_seed(0)
    backbone = tiny_backbone("vgg19", seed=0, layers=baseline.TUTORIAL_STYLE_LAYERS)
    content = image_to_tensor(small_image("content/animal_dog.jpg", 32))
    style = image_to_tensor(small_image("style/van_gogh_starry_night.jpg", 32).resize(
        (content.shape[3], content.shape[2])))
    seen: list[tuple[int, float, float]] = []
    result = baseline.run_tutorial(backbone, content, style, num_steps=25, feature_scale=1.0,
                                   on_evaluation=lambda *row: seen.append(row))
    # while run[0] <= 25: one LBFGS step = up to 20 evaluations -> two steps, 40 evaluations
    assert result.evaluations == len(seen) == 40
    assert [row[0] for row in seen] == list(range(1, 41))
    assert result.history == [row for row in seen if row[0] % 50 == 0] == []
    assert result.image.shape == content.shape
    assert result.image.min() >= 0 and result.image.max() <= 1  # clamped
    first = seen[0][1] + seen[0][2]
    assert seen[0][2] == 0.0  # content init: no content loss at the start
    assert result.style_score + result.content_score < 0.5 * first  # it optimizes
    # the scores are the tutorial's: mse of Grams times 1e6 at its conv layers, on the clamped image
    targets = baseline.tutorial_targets(backbone, content, style)
    with torch.no_grad():
        style_score, content_score = baseline.tutorial_scores(backbone, result.image, targets)
        feats = backbone(result.image, baseline.TUTORIAL_STYLE_LAYERS)
        by_hand = sum(F.mse_loss(baseline.gram_matrix(feats[k]), baseline.gram_matrix(v)) for k, v in
                      backbone(style, baseline.TUTORIAL_STYLE_LAYERS).items()) * 1e6
    assert float(style_score) == pytest.approx(float(by_hand), rel=1e-5)
    assert float(content_score) == pytest.approx(
        float(F.mse_loss(feats["conv2_2"], backbone(content, ["conv2_2"])["conv2_2"])), rel=1e-5)

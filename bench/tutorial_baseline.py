"""The PyTorch "Neural Transfer" tutorial algorithm, reimplemented as the benchmark's baseline.

Source: pytorch/tutorials, ``advanced_source/neural_style_tutorial.py`` (Alexis Jacq, edited by
Winston Herring). What is kept exactly as the tutorial does it:

* losses at the *outputs of convolutions* (the tutorial inserts its loss modules right after
  ``nn.Conv2d``, before the ReLU): style at ``conv_1 .. conv_5``, content at ``conv_4``;
* ``gram_matrix``: ``F Fᵀ / (a·b·c·d)`` with ``F`` of shape ``(a·b, c·d)`` (batch·channels by
  positions), i.e. divided by the number of elements of the feature map;
* style loss per layer ``F.mse_loss(G, A)`` (mean over the ``C×C`` entries), summed over the
  five layers, times ``style_weight = 1e6``; content loss ``F.mse_loss(F, P)`` (mean over all
  elements) times ``content_weight = 1``;
* the network is trimmed after the last loss layer (here: cut after ``conv3_1``);
* the input starts as a copy of the content image;
* the optimizer is ``optim.LBFGS([input_img])`` with torch's default settings (lr 1,
  max_iter 20, max_eval 25, history 100, tolerance_grad 1e-7, tolerance_change 1e-9, no line
  search), and the loop is the tutorial's ``while run[0] <= num_steps: optimizer.step(closure)``
  with ``num_steps = 300``, where ``run[0]`` counts closure evaluations. Each ``step`` runs up to
  20 L-BFGS iterations (20 evaluations), so the loop stops at the first multiple of 20 above 300:
  **320 evaluations** (fewer only if L-BFGS's own tolerances end a step early). The benchmark
  reports the count;
* ``input_img.clamp_(0, 1)`` *inside* the closure, before every evaluation, and once more at the end.

Layer mapping. The tutorial numbers the convolutions of torchvision's VGG-19 ``conv_1, conv_2,
...`` in order. In the paper's names (used by :mod:`stylize.backbone`) the first five are
``conv1_1, conv1_2, conv2_1, conv2_2, conv3_1`` and ``conv_4`` is ``conv2_2``. VGG-16 and VGG-19
have the same first five convolutions, so the mapping is the same for both networks.

What differs, because only the offline VGG-16 is available here: the tutorial uses torchvision's
VGG-19 with ImageNet mean/std normalization; this uses :class:`stylize.backbone.Backbone`, which
applies the normalization its weights were trained with (Caffe convention for the offline
VGG-16: BGR, 0-255, mean pixel subtracted). VGG-16 and VGG-19 share the first five convolutions
in shape, so the tutorial's layers exist in both.

Feature scale. The weights 1e6 / 1 only make sense for the feature magnitudes of the network
they were chosen with: the style term grows with the 4th power of the features and the content
term with the 2nd. The Caffe network is fed inputs 255·σ ≈ 57.6 times larger than the tutorial's
standardized ones (σ ≈ 0.226, the mean ImageNet std), and its features are correspondingly
larger. :func:`tutorial_feature_scale` therefore gives ``1 / (255·σ)`` for Caffe-convention
weights (the features expressed in the tutorial's input units) and 1 for torchvision weights
(exactly the tutorial). A check that this restores the tutorial's balance: its published run
prints style ≈ content at evaluation 50 (4.17 vs 4.24); with this scale the dog/Starry-Night
pair at 128 px gives a similar ratio, while with scale 1 the style term is thousands of times
the content term and the photo disappears under the texture.

The tutorial requires the style and the content image to have the same size. Here the style
image may have another aspect ratio, but the benchmark gives it the same *area* as the content
(as stylize does), so the Gram normalization by ``c·d`` (the number of positions) is the same as
with equal sizes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F  # noqa: N812 - the tutorial's alias

from stylize.backbone import Backbone

TUTORIAL_STYLE_LAYERS: tuple[str, ...] = ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1")  # conv_1..conv_5
TUTORIAL_CONTENT_LAYERS: tuple[str, ...] = ("conv2_2",)  # conv_4
STYLE_WEIGHT = 1_000_000.0
CONTENT_WEIGHT = 1.0
NUM_STEPS = 300
REPORT_EVERY = 50  # the tutorial prints the losses every 50 evaluations
IMAGENET_STD_MEAN = sum((0.229, 0.224, 0.225)) / 3
CAFFE_FEATURE_SCALE = 1.0 / (255.0 * IMAGENET_STD_MEAN)  # ≈ 1 / 57.6


def tutorial_feature_scale(convention: str) -> float:
    """Feature scale that puts a network's features in the tutorial's units (see the module docstring)."""
    return CAFFE_FEATURE_SCALE if convention == "caffe" else 1.0


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """The tutorial's Gram matrix: ``F Fᵀ`` divided by the number of elements of ``features``."""
    a, b, c, d = features.size()
    flat = features.reshape(a * b, c * d)
    return torch.mm(flat, flat.t()).div(a * b * c * d)


@dataclass
class TutorialTargets:
    """Content feature maps and style Gram matrices of the tutorial's layers (no graph kept)."""

    content: dict[str, torch.Tensor]
    style: dict[str, torch.Tensor]
    feature_scale: float = 1.0

    @property
    def layers(self) -> list[str]:
        return list(dict.fromkeys([*self.style, *self.content]))


@torch.no_grad()
def tutorial_targets(
    backbone: Backbone,
    content: torch.Tensor,
    style: torch.Tensor,
    *,
    content_layers: Sequence[str] = TUTORIAL_CONTENT_LAYERS,
    style_layers: Sequence[str] = TUTORIAL_STYLE_LAYERS,
    feature_scale: float = 1.0,
) -> TutorialTargets:
    content_feats = backbone(content, content_layers)
    style_feats = backbone(style, style_layers)
    return TutorialTargets(
        content={k: (v * feature_scale).detach() for k, v in content_feats.items()},
        style={k: gram_matrix(v * feature_scale).detach() for k, v in style_feats.items()},
        feature_scale=feature_scale,
    )


def tutorial_scores(
    backbone: Backbone,
    image: torch.Tensor,
    targets: TutorialTargets,
    *,
    style_weight: float = STYLE_WEIGHT,
    content_weight: float = CONTENT_WEIGHT,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(style_score, content_score)`` exactly as the tutorial's closure computes them (weighted)."""
    feats = backbone(image, targets.layers)
    style_score = sum(F.mse_loss(gram_matrix(feats[k] * targets.feature_scale), t) for k, t in targets.style.items())
    content_score = sum(F.mse_loss(feats[k] * targets.feature_scale, t) for k, t in targets.content.items())
    return style_score * style_weight, content_score * content_weight  # type: ignore[return-value]


@dataclass
class TutorialResult:
    image: torch.Tensor  # (1, 3, H, W), clamped to [0, 1]
    evaluations: int  # closure calls (the tutorial's run[0])
    style_score: float  # weighted, at the last evaluation
    content_score: float
    history: list[tuple[int, float, float]] = field(default_factory=list)  # (run, style, content) every 50


def run_tutorial(
    backbone: Backbone,
    content: torch.Tensor,
    style: torch.Tensor,
    *,
    num_steps: int = NUM_STEPS,
    style_weight: float = STYLE_WEIGHT,
    content_weight: float = CONTENT_WEIGHT,
    content_layers: Sequence[str] = TUTORIAL_CONTENT_LAYERS,
    style_layers: Sequence[str] = TUTORIAL_STYLE_LAYERS,
    feature_scale: float = 1.0,
    on_evaluation: Callable[[int, float, float], None] | None = None,
) -> TutorialResult:
    """The tutorial's ``run_style_transfer`` on ``content`` and ``style`` (RGB in [0, 1], (1, 3, H, W)).

    ``on_evaluation(run, style_score, content_score)`` is called after every closure evaluation.
    """
    targets = tutorial_targets(backbone, content, style, content_layers=content_layers, style_layers=style_layers,
                               feature_scale=feature_scale)
    input_img = content.clone()
    optimizer = torch.optim.LBFGS([input_img.requires_grad_()])
    run = [0]
    last = [0.0, 0.0]
    history: list[tuple[int, float, float]] = []

    while run[0] <= num_steps:

        def closure() -> torch.Tensor:
            with torch.no_grad():
                input_img.clamp_(0, 1)  # the tutorial's "correct the values of updated input image"
            optimizer.zero_grad()
            style_score, content_score = tutorial_scores(backbone, input_img, targets, style_weight=style_weight,
                                                         content_weight=content_weight)
            loss = style_score + content_score
            loss.backward()
            run[0] += 1
            last[0], last[1] = float(style_score.detach()), float(content_score.detach())
            if run[0] % REPORT_EVERY == 0:
                history.append((run[0], last[0], last[1]))
            if on_evaluation is not None:
                on_evaluation(run[0], last[0], last[1])
            return style_score + content_score

        optimizer.step(closure)

    with torch.no_grad():
        input_img.clamp_(0, 1)  # "a last correction..."
    return TutorialResult(image=input_img.detach(), evaluations=run[0], style_score=last[0],
                          content_score=last[1], history=history)


__all__ = [
    "CAFFE_FEATURE_SCALE", "CONTENT_WEIGHT", "NUM_STEPS", "STYLE_WEIGHT", "TUTORIAL_CONTENT_LAYERS",
    "TUTORIAL_STYLE_LAYERS", "TutorialResult", "TutorialTargets", "gram_matrix", "run_tutorial",
    "tutorial_feature_scale", "tutorial_scores", "tutorial_targets",
]

"""The coarse-to-fine schedule: sizes, per-scale targets, per-scale stopping (tiny backbone, <= 64 px)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from PIL import Image

import stylize.api
import stylize.loss.content
import stylize.loss.style
import stylize.objective
from stylize import Options, transfer
from stylize.backbone import Backbone
from stylize.errors import OptionError
from stylize.imageio import resize_to_long_side
from stylize.pyramid import scale_sizes, scale_steps

SmallImage = Callable[[str, int], Image.Image]


@pytest.fixture
def pair(small_image: SmallImage) -> tuple[Image.Image, Image.Image]:
    # a portrait photo (3:4) and a landscape painting: the aspects differ
    return small_image("content/animal_dog.jpg", 96), small_image("style/hokusai_great_wave.jpg", 80)


def test_default_schedule_is_coarse_to_fine() -> None:
    opts = Options()
    assert opts.scales == "auto"
    assert scale_sizes(opts.scales, 512) == [128, 256, 512]
    assert scale_sizes(opts.scales, 1024) == [128, 256, 512, 1024]  # every run starts at 128-255 px
    assert scale_sizes(opts.scales, 4096) == [128, 256, 512, 1024, 2048, 4096]
    assert scale_sizes(opts.scales, 200) == [200]  # no scale below 128 px
    assert scale_sizes("1", 512) == [512]  # a single scale stays possible
    # most steps where they are cheap: half as many at each finer scale
    assert scale_steps(opts.steps, [128, 256, 512]) == [48, 24, 12]
    assert scale_steps(opts.steps, [512]) == [48]
    assert scale_steps(5, [128, 256, 512]) == [5, 3, 2] and scale_steps(1, [1, 2, 4, 8]) == [1, 1, 1, 1]  # rounded up
    # the steps follow the cost: a scale k times longer gets 1/k of the steps, so its work grows with k, not k²
    assert scale_steps(opts.steps, [128, 256, 512, 1024, 2048, 4096]) == [48, 24, 12, 6, 3, 2]
    assert scale_steps(30, [100, 300]) == [30, 10]


def test_scales_as_a_number_or_a_list() -> None:
    assert scale_sizes("3", 512) == [128, 256, 512]
    assert scale_sizes("8", 512) == [32, 64, 128, 256, 512]  # none below 32 px
    assert scale_sizes("256,512", 512) == [256, 512] and scale_sizes("256,", 512) == [256, 512]
    # A large number is a size typed without the list: refused with the way to say it.
    with pytest.raises(OptionError, match=r"--scales: 256 scales is too many \(1 to 8\).* e\.g\. 256,512$"):
        scale_sizes("256", 512)
    for bad in ("0", "-2", "x", "512,256", "8,600"):
        with pytest.raises(OptionError, match="^--scales: "):
            scale_sizes(bad, 512)


def test_schedule_gives_requested_size_and_aspect(pair: tuple[Image.Image, Image.Image], tiny: Backbone) -> None:
    content, style = pair
    result = transfer(content, style, backbone=tiny, size=96, steps=2, tol=0, scales="24,48,96")
    assert result.image.size == resize_to_long_side(content, 96).size == (72, 96)
    sizes = result.settings["scale_sizes"]
    assert sizes == [[18, 24], [36, 48], [72, 96]]
    for width, height in sizes:  # every scale keeps the photo's aspect
        assert width / height == pytest.approx(content.width / content.height, abs=0.02)
    assert [row["width"] for row in result.history] == [18, 18, 36, 72]  # 2 steps, then 1 and 1


def test_each_scale_has_its_own_targets(pair: tuple[Image.Image, Image.Image], tiny: Backbone,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Content and style targets are computed once per scale, from images at that scale."""
    content_calls: list[tuple[int, int]] = []
    style_calls: list[list[tuple[int, int]]] = []
    inits: list[tuple[int, int]] = []
    caps: list[int] = []
    real_content, real_style, real_optimize = stylize.loss.content.content_targets, \
        stylize.loss.style.style_targets, stylize.api.optimize

    def content_targets(backbone: Backbone, image: torch.Tensor, layers: Any) -> dict[str, torch.Tensor]:
        content_calls.append((image.shape[3], image.shape[2]))
        targets = real_content(backbone, image, layers)
        assert all(not t.requires_grad and t.grad_fn is None for t in targets.values())  # no graph kept
        return targets

    def style_targets(backbone: Backbone, styles: Any, layers: Any, blend: Any = None) -> dict[str, torch.Tensor]:
        style_calls.append([(s.shape[3], s.shape[2]) for s in styles])
        targets = real_style(backbone, styles, layers, blend)
        assert all(not t.requires_grad and t.grad_fn is None for t in targets.values())
        return targets

    def optimize(image: torch.Tensor, objective: Any, **kwargs: Any) -> Any:
        inits.append((image.shape[3], image.shape[2]))
        caps.append(kwargs["steps"])
        return real_optimize(image, objective, **kwargs)

    monkeypatch.setattr(stylize.loss.content, "content_targets", content_targets)
    monkeypatch.setattr(stylize.objective, "content_targets", content_targets)  # whole-image scales' pass
    monkeypatch.setattr(stylize.loss.style, "style_targets", style_targets)
    monkeypatch.setattr(stylize.api, "optimize", optimize)
    content, style = pair
    progress: list[Any] = []
    result = transfer(content, style, backbone=tiny, size=96, steps=8, tol=0, scales="24,48,96",
                      callback=progress.append)
    plans = [tuple(p) for p in result.settings["scale_sizes"]]
    assert plans == [(18, 24), (36, 48), (72, 96)]
    assert content_calls == plans  # one content target per scale, at that scale
    assert inits == plans  # the optimizer starts each scale at that scale's size
    assert caps == [8, 4, 2]  # ... with that scale's step limit, reported as max_steps
    assert [(p.size, p.max_steps) for p in progress] == [(plan, cap) for plan, cap in zip(plans, caps, strict=True)
                                                         for _ in range(cap)]
    assert len(style_calls) == len(plans)
    for (width, height), styles in zip(plans, style_calls, strict=True):
        (style_w, style_h), = styles
        assert style_w > style_h  # the painting keeps its own (landscape) aspect
        assert style_w / style_h == pytest.approx(style.width / style.height, rel=0.05)
        # ... and is resized so that its area matches the content's area at this scale
        assert style_w * style_h == pytest.approx(width * height, rel=0.15)


def test_stopping_rule_applies_per_scale(pair: tuple[Image.Image, Image.Image], tiny: Backbone) -> None:
    content, style = pair
    # tol 0: no early stop, every scale runs all its steps
    full = transfer(content, style, backbone=tiny, size=96, steps=6, tol=0, scales="24,48,96")
    assert full.stop_reasons == ["max_steps"] * 3
    assert [sum(1 for r in full.history if r["scale"] == k) for k in (1, 2, 3)] == [6, 3, 2]
    # a huge tolerance: each scale stops as soon as its own window is full, and the next scale
    # starts a fresh window (a shared window would stop the later scales after one step)
    early = transfer(content, style, backbone=tiny, size=96, steps=50, tol=0.99, window=3, scales="24,48,96")
    assert early.stop_reasons == ["converged"] * 3
    per_scale = [[r["scale_step"] for r in early.history if r["scale"] == k] for k in (1, 2, 3)]
    assert per_scale == [[1, 2, 3, 4]] * 3


@pytest.mark.integration
@pytest.mark.parametrize(("content_name", "style_name"), [
    ("content/animal_dog.jpg", "style/van_gogh_starry_night.jpg"),
    ("content/street_canal_colorful_houses.jpg", "style/kandinsky_composition_vii.jpg"),
], ids=["dog", "canal"])
def test_default_steps_over_two_scales_with_the_real_network(real_vgg16: Backbone, small_image: SmallImage,
                                                             content_name: str, style_name: str) -> None:
    """The foundation's quality bounds hold for the default coarse-to-fine steps (48 then 24)."""
    from stylize.imageio import image_to_tensor
    from stylize.loss.functional import gram_matrix, relative_squared_error
    from stylize.options import PAPER_STYLE_LAYERS
    from stylize.plan import style_long_side

    content, style = small_image(content_name, 128), small_image(style_name, 256)
    result = transfer(content, style, backbone=real_vgg16, size=128, scales="64,128", seed=0)
    assert result.image.size == content.size
    assert [sum(1 for r in result.history if r["scale"] == k) for k in (1, 2)] == [48, 24]
    first, last = result.history[0], min((r for r in result.history if r["scale"] == 2), key=lambda r: r["total"])
    assert last["style"] <= first["style"] / 10  # the style loss falls at least 10x
    style_t = image_to_tensor(resize_to_long_side(style, style_long_side(style.size, content.size)))
    with torch.no_grad():
        grams = {k: gram_matrix(v) for k, v in real_vgg16(style_t, PAPER_STYLE_LAYERS).items()}

        def distance(image: Image.Image) -> float:
            feats = real_vgg16(image_to_tensor(image), PAPER_STYLE_LAYERS)
            return sum(float(relative_squared_error(gram_matrix(feats[k]), grams[k])) for k in grams) / len(grams)

        assert distance(result.image) < 0.5 * distance(content)  # the output's style moved toward the painting's


def test_ctrl_c_between_scales_keeps_the_finished_scales(pair: tuple[Image.Image, Image.Image], tiny: Backbone,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while the next scale's targets are computed returns the last finished scale's image."""
    content, style = pair
    real_targets = stylize.loss.content.content_targets
    calls = []

    def interrupted_at_the_second_scale(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_targets(*args, **kwargs)

    monkeypatch.setattr(stylize.loss.content, "content_targets", interrupted_at_the_second_scale)
    monkeypatch.setattr(stylize.objective, "content_targets", interrupted_at_the_second_scale)
    result = transfer(content, style, backbone=tiny, size=96, steps=4, tol=0, scales="48,96")
    assert result.interrupted and result.stop_reasons == ["max_steps", "interrupted"]
    assert max(result.image.size) == 48 and {r["scale"] for r in result.history} == {1}
    # Before any scale has finished there is nothing to keep: the interrupt goes on.
    calls.clear()
    calls.append(1)  # the first call is now the "second"
    with pytest.raises(KeyboardInterrupt):
        transfer(content, style, backbone=tiny, size=96, steps=4, tol=0, scales="48,96")


def test_on_plan_gets_the_plan_and_its_estimate_first(pair: tuple[Image.Image, Image.Image], tiny: Backbone) -> None:
    content, style = pair
    seen: list[Any] = []
    result = transfer(content, style, backbone=tiny, size=96, steps=4, scales="24,48,96",
                      on_plan=lambda plan, seconds: seen.append((plan, seconds)),
                      callback=lambda p: seen.append(p))
    plan, seconds = seen[0]  # before the first step
    assert [list(s.size) for s in plan.scales] == result.settings["scale_sizes"]
    assert [s.steps for s in plan.scales] == [4, 2, 1]
    assert seconds > 0 and result.settings["estimated_seconds"] == round(seconds, 1)
    assert result.settings["planned_work"] == plan.total_work == 18 * 24 * 4 + 36 * 48 * 2 + 72 * 96 * 1
    assert "estimated_seconds" not in transfer(content, style, backbone=tiny, size=48, steps=1).settings


def test_planned_work_without_weights_matches_the_run(pair: tuple[Image.Image, Image.Image], tiny: Backbone) -> None:
    from stylize.plan import planned_work

    content, style = pair
    result = transfer(content, style, backbone=tiny, size=96, steps=4, scales="24,48,96")
    assert planned_work(Options.from_kwargs(size=96, steps=4, scales="24,48,96"), content.size) == \
        result.settings["planned_work"]
    # a print: the tiled scales count their tiles with their context margins
    big = planned_work(Options.from_kwargs(size=4096, model="vgg16", max_memory=5.9), (6000, 4000))
    whole = sum(s * round(s * 4000 / 6000) * n for s, n in zip([128, 256, 512, 1024, 2048, 4096],
                                                               [48, 24, 12, 6, 3, 2], strict=True))
    assert whole < big < 1.5 * whole


def test_estimate_counts_every_step_the_targets_and_the_losses(
        pair: tuple[Image.Image, Image.Image], tiny: Backbone) -> None:
    from stylize.plan import OBJECTIVE_OVERHEAD

    content, style = pair
    seen: list[Any] = []
    transfer(content, style, backbone=tiny, size=96, steps=4, scales="24,48,96",
             on_plan=lambda plan, seconds: seen.append(plan))
    plan = seen[0]
    areas = [w * h for w, h in (s.size for s in plan.scales)]
    styles = sum(w * h for s in plan.scales for w, h in s.style_sizes)
    # one second per pixel-step: the steps and the targets' forward passes (a third of a step)
    expected = OBJECTIVE_OVERHEAD * (plan.total_work + (sum(areas) + styles) / 3)
    assert plan.estimate_seconds(1.0) == pytest.approx(expected)
    assert OBJECTIVE_OVERHEAD > 1

"""Strength, presets, style scale and style blends: unit tests with the tiny backbone, the CLI,
and the claims on real images with the real offline VGG-16."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import PIL.Image
import pytest
import torch

import stylize
from stylize.api import make_options
from stylize.cli import main as cli_main
from stylize.cli import main_command
from stylize.color import luminance
from stylize.controls import PRESET_NAMES, ratio_strength, resolve_controls, strength_ratio
from stylize.errors import OptionError
from stylize.imageio import image_to_tensor
from stylize.loss import style_targets
from stylize.options import PAPER_STYLE_LAYERS, Options
from stylize.plan import style_long_side

DEFAULTS = {f.name: f.default for f in dataclasses.fields(Options)}


def noise_image(seed: int, size: tuple[int, int] = (40, 32)) -> PIL.Image.Image:
    rng = np.random.default_rng(seed)
    return PIL.Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8), "RGB")


# --------------------------------------------------------------------------- strength


def test_default_strength_gives_the_default_weights() -> None:
    plain = make_options()
    assert plain.strength is None
    five = make_options(strength=5)
    assert (five.style_weight, five.content_weight) == (DEFAULTS["style_weight"], DEFAULTS["content_weight"])
    assert five.style_weight == plain.style_weight


def test_strength_is_a_log_scale_of_the_style_content_ratio() -> None:
    base = DEFAULTS["style_weight"] / DEFAULTS["content_weight"]
    weights = [make_options(strength=s).style_weight for s in (0, 2.5, 5, 7.5, 10)]
    assert weights == pytest.approx([base / 100, base / 10, base, base * 10, base * 100])
    assert ratio_strength(strength_ratio(6.3, base), base) == pytest.approx(6.3)
    # the knob sets the ratio: with another content weight the style weight follows it
    opts = make_options(strength=7.5, content_weight=2.0)
    assert opts.style_weight / opts.content_weight == pytest.approx(base * 10)


def test_explicit_style_weight_still_works_and_strength_wins_when_both_given() -> None:
    assert make_options(style_weight=42.0).style_weight == 42.0
    with pytest.warns(UserWarning, match="--style-weight is ignored"):
        opts = make_options(strength=7.5, style_weight=42.0)
    assert opts.style_weight == pytest.approx(10 * DEFAULTS["style_weight"])


@pytest.mark.parametrize("value", [-1, 10.5, float("nan")])
def test_strength_out_of_range_is_an_option_error(value: float) -> None:
    with pytest.raises(OptionError, match="^--strength: must be a number from 0 to 10"):
        make_options(strength=value)


# --------------------------------------------------------------------------- presets


def test_presets_set_groups_of_options() -> None:
    assert PRESET_NAMES == ("fine", "balanced", "bold")
    balanced = make_options(preset="balanced")
    plain = make_options()
    assert dataclasses.asdict(balanced) == dataclasses.asdict(plain)
    fine, bold = make_options(preset="fine"), make_options(preset="bold")
    assert fine.style_scale < 1 < bold.style_scale
    assert bold.style_weight > plain.style_weight
    # fine emphasizes the shallow layers, bold the deep ones
    assert fine.style_layer_weights[0] > fine.style_layer_weights[-1]
    assert bold.style_layer_weights[0] < bold.style_layer_weights[-1]
    assert len(fine.style_layer_weights) == len(PAPER_STYLE_LAYERS)


def test_explicit_options_override_preset_values() -> None:
    opts = make_options(preset="bold", style_scale=1.0, style_layer_weights=(1, 1, 1, 1, 1))
    assert opts.style_scale == 1.0
    assert opts.style_layer_weights == (1, 1, 1, 1, 1)
    assert opts.style_weight == make_options(preset="bold").style_weight  # the preset's strength stays
    # an explicit style weight beats the preset's strength (no warning: the user gave one of them)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opts = make_options(preset="bold", style_weight=3.0)
    assert opts.style_weight == 3.0 and opts.strength is None
    # an explicit strength beats the preset's strength
    assert make_options(preset="bold", strength=5).style_weight == DEFAULTS["style_weight"]


def test_none_counts_as_not_given() -> None:
    bold = make_options(preset="bold")
    assert make_options(preset="bold", strength=None, style_layer_weights=None) == bold


def test_preset_layer_weights_follow_custom_style_layers() -> None:
    opts = make_options(preset="fine", style_layers="relu1_1,relu3_1,relu5_1")
    assert opts.style_layers == ("relu1_1", "relu3_1", "relu5_1")
    full = dict(zip(PAPER_STYLE_LAYERS, make_options(preset="fine").style_layer_weights, strict=True))
    assert opts.style_layer_weights == (full["relu1_1"], full["relu3_1"], full["relu5_1"])


def test_unknown_preset_is_an_option_error() -> None:
    with pytest.raises(OptionError, match="^--preset: 'wild' is not one of fine, balanced, bold"):
        make_options(preset="wild")


def test_resolve_controls_leaves_explicit_values_alone() -> None:
    given = {"preset": "fine", "style_scale": 2.0}
    values = resolve_controls(given, {f.name: f.default for f in dataclasses.fields(Options)})
    assert values["style_scale"] == 2.0 and "style_layer_weights" in values
    assert given == {"preset": "fine", "style_scale": 2.0}  # not modified


# --------------------------------------------------------------------------- style scale


@pytest.mark.parametrize("value", [0.0, -1.0, 5.0, float("inf")])
def test_style_scale_out_of_range_is_an_option_error(value: float) -> None:
    with pytest.raises(OptionError, match="^--style-scale: must be from 0.1 to 4"):
        make_options(style_scale=value)


def test_style_size_scales_with_the_style_scale() -> None:
    style = PIL.Image.new("RGB", (400, 300))
    assert style_long_side(style.size, (200, 150)) == 200
    assert style_long_side(style.size, (200, 150), 2.0) == 400
    assert style_long_side(style.size, (200, 150), 0.5) == 100


def test_style_scale_resizes_the_style_image_in_a_run(tiny) -> None:  # noqa: ANN001
    """The style image reaches the network at style_scale x its default size."""
    seen: list[tuple[int, ...]] = []
    hook = tiny.register_forward_pre_hook(lambda _module, args: seen.append(tuple(args[0].shape[-2:])))
    content, style = noise_image(0, (96, 72)), noise_image(1, (150, 200))  # landscape photo, portrait style
    sizes = {}
    try:
        for scale in (1.0, 2.0, 0.5):
            seen.clear()
            stylize.transfer(content, style, backbone=tiny, size=96, scales="1", steps=1, style_scale=scale)
            sizes[scale] = [s for s in seen if s != (72, 96)]  # (H, W) of what is not the content
    finally:
        hook.remove()
    assert sizes[1.0] == [(96, 72)]  # the same area as the 96x72 content
    assert sizes[2.0] == [(192, 144)]
    assert sizes[0.5] == [(48, 36)]


# --------------------------------------------------------------------------- style blend


def test_blend_of_zero_and_one_equals_the_single_style(tiny) -> None:  # noqa: ANN001
    a, b = image_to_tensor(noise_image(2)), image_to_tensor(noise_image(3))
    blended = style_targets(tiny, [a, b], PAPER_STYLE_LAYERS, (0.0, 1.0))
    single = style_targets(tiny, [b], PAPER_STYLE_LAYERS)
    assert blended.keys() == single.keys()
    for layer in single:
        assert torch.equal(blended[layer], single[layer])
    assert not torch.equal(style_targets(tiny, [a], PAPER_STYLE_LAYERS)["relu2_1"], single["relu2_1"])

    content = noise_image(4, (40, 30))
    kwargs = {"backbone": tiny, "size": 40, "scales": "1", "steps": 5, "init": "noise", "seed": 3}
    one = stylize.transfer(content, [noise_image(2), noise_image(3)], style_blend=(0, 1), **kwargs)
    ref = stylize.transfer(content, noise_image(3), **kwargs)
    assert np.array_equal(np.asarray(one.image), np.asarray(ref.image))


# --------------------------------------------------------------------------- CLI


def test_cli_passes_only_explicit_options(monkeypatch, tmp_path) -> None:  # noqa: ANN001
    captured: dict = {}

    def fake_transfer(content, style, **kwargs):  # noqa: ANN001, ANN202
        captured.update(kwargs)
        raise stylize.OptionError("stop here")

    monkeypatch.setattr(main_command, "transfer", fake_transfer)
    code = cli_main(["c.jpg", "s.jpg", "-o", str(tmp_path / "o.png"), "--preset", "bold", "--style-scale", "1",
                     "--preserve-color", "luminance"])
    assert code == 2
    options = {k: v for k, v in captured.items() if k in DEFAULTS}
    assert options == {"preset": "bold", "style_scale": 1.0, "preserve_color": "luminance",
                       "allow_download": True, "warm_steps": True}  # booleans always pass their value
    # and so the preset fills in only what was not given
    opts = make_options(**options)
    assert opts.style_scale == 1.0 and opts.style_weight == make_options(preset="bold").style_weight


def test_cli_lists_presets(capsys) -> None:  # noqa: ANN001
    assert cli_main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in PRESET_NAMES:
        assert f"\n{name}" in f"\n{out}"
    assert "--style-scale 1.6" in out and "--strength S sets --style-weight" in out


@pytest.mark.parametrize(("flags", "message"), [
    (["--strength", "12"], "stylize: error: --strength: must be a number from 0 to 10, got 12.0\n"),
    (["--style-scale", "9"], "stylize: error: --style-scale: must be from 0.1 to 4"),
])
def test_cli_bad_control_values_are_one_line_errors(flags, message, tmp_path, capsys) -> None:  # noqa: ANN001
    content, style = tmp_path / "c.png", tmp_path / "s.png"
    noise_image(0).save(content)
    noise_image(1).save(style)
    out = tmp_path / "out.png"
    assert cli_main([str(content), str(style), "-o", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
    assert not out.exists()


def test_cli_unknown_preset_is_a_usage_error(tmp_path, capsys) -> None:  # noqa: ANN001
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["c.png", "s.png", "-o", str(tmp_path / "o.png"), "--preset", "wild"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("stylize: error: argument --preset: invalid choice: 'wild'") and err.count("\n") == 1


# --------------------------------------------------------------------------- claims on real images


def high_frequency_energy(image: PIL.Image.Image, sigma: float = 1.0) -> float:
    """Mean squared Laplacian of Gaussian (sigma in px) of the luminance: detail 2-6 px across.

    The Gaussian leaves out the pixel-level band: a larger style also shows more of the
    painting's canvas grain and scan noise there, which is no brush stroke.
    """
    y = luminance(image_to_tensor(image))
    radius = int(3 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    y = torch.nn.functional.pad(y, (radius,) * 4, mode="replicate")
    y = torch.nn.functional.conv2d(torch.nn.functional.conv2d(y, kernel.view(1, 1, 1, -1)), kernel.view(1, 1, -1, 1))
    y = y[0, 0]
    lap = 4 * y[1:-1, 1:-1] - y[:-2, 1:-1] - y[2:, 1:-1] - y[1:-1, :-2] - y[1:-1, 2:]
    return float(lap.pow(2).mean())


@pytest.mark.integration
def test_blend_of_zero_and_one_equals_the_single_style_on_vgg16(real_vgg16, small_image) -> None:  # noqa: ANN001
    content = small_image("content/coast_golden_gate_fog.jpg", 64)
    a, b = small_image("style/hokusai_great_wave.jpg", 96), small_image("style/munch_the_scream.jpg", 96)
    layers = PAPER_STYLE_LAYERS
    ta, tb = image_to_tensor(a), image_to_tensor(b)
    blended = style_targets(real_vgg16, [ta, tb], layers, (0.0, 1.0))
    single = style_targets(real_vgg16, [tb], layers)
    assert all(torch.equal(blended[k], single[k]) for k in layers)
    kwargs = {"backbone": real_vgg16, "size": 64, "scales": "1", "steps": 4, "seed": 1}
    one = stylize.transfer(content, [a, b], style_blend=(0, 1), **kwargs)
    ref = stylize.transfer(content, b, **kwargs)
    other = stylize.transfer(content, a, **kwargs)
    assert np.array_equal(np.asarray(one.image), np.asarray(ref.image))
    assert not np.array_equal(np.asarray(one.image), np.asarray(other.image))


@pytest.mark.integration
def test_larger_style_scale_gives_larger_texture(real_vgg16, small_image) -> None:  # noqa: ANN001
    content = small_image("content/coast_golden_gate_fog.jpg", 128)  # 128 x 60, mostly fog: little own detail
    style = small_image("style/van_gogh_starry_night.jpg", 320)
    energy = {}
    for scale in (0.5, 2.0):
        result = stylize.transfer(content, style, backbone=real_vgg16, size=128, scales="1", steps=25,
                                  style_scale=scale, style_weight=30.0)
        energy[scale] = high_frequency_energy(result.image)
    assert energy[2.0] < 0.85 * energy[0.5], energy  # measured: 0.00120 against 0.00166

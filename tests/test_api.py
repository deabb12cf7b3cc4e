"""stylize.transfer on the tiny backbone (<= 64 px, few steps): results, options, inputs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import stylize
from stylize import OptionError, Options, Progress, Result, StopTransfer, transfer
from stylize.backbone import Backbone, tiny_backbone
from stylize.errors import InputError
from stylize.imageio import image_to_tensor
from stylize.options import PAPER_STYLE_LAYERS
from stylize.pyramid import scale_sizes, scale_steps

SmallImage = Callable[[str, int], Image.Image]


@pytest.fixture
def pair(small_image: SmallImage) -> tuple[Image.Image, Image.Image]:
    return small_image("content/animal_dog.jpg", 64), small_image("style/van_gogh_starry_night.jpg", 64)


def run(pair: tuple[Image.Image, Image.Image], tiny: Backbone, **options: object) -> Result:
    options = {"size": 48, "steps": 4, "tol": 0, **options}
    return transfer(pair[0], pair[1], backbone=tiny, **options)


def test_result_fields(pair: tuple[Image.Image, Image.Image], tiny: Backbone) -> None:
    progress: list[Progress] = []
    result = run(pair, tiny, callback=progress.append)
    assert isinstance(result.image, Image.Image) and result.image.mode == "RGB"
    assert result.image.size == (36, 48)  # the dog photo is portrait 3369 x 4492
    assert len(result.history) == 4 and [row["step"] for row in result.history] == [1, 2, 3, 4]
    assert result.stop_reasons == ["max_steps"] and result.stop_reason == "max_steps"
    assert not result.interrupted and result.describe_stop()
    assert result.seconds > 0
    settings = result.settings
    assert {f.name for f in dataclasses.fields(Options)} <= set(settings)
    assert settings["size"] == 48 and settings["steps"] == 4
    assert settings["arch"] == "vgg19" and settings["convention"] == "torchvision"
    assert settings["device"] == "cpu" and settings["scale_sizes"] == [[36, 48]] and settings["num_styles"] == 1
    assert "tiny" in settings["network"]
    # progress after every step
    assert [p.step for p in progress] == [1, 2, 3, 4] and all(p.max_steps == 4 for p in progress)
    assert progress[-1].fraction == pytest.approx(1.0) and progress[-1].eta == pytest.approx(0.0, abs=1e-9)
    assert progress[0].size == (36, 48) and (progress[0].scale, progress[0].num_scales) == (1, 1)
    assert isinstance(progress[-1].image, Image.Image) and progress[-1].image.size == (36, 48)


def test_history_columns(pair: tuple[Image.Image, Image.Image], tiny: Backbone) -> None:
    result = run(pair, tiny, tv_weight=0.1)
    row = result.history[0]
    expected = {"step", "scale", "scale_step", "width", "height", "seconds", "total", "content", "style", "tv",
                "structure", "event"} | {f"style_{k}" for k in PAPER_STYLE_LAYERS[:3]}  # blocks 4, 5 weigh 0 by default
    assert set(row) == expected
    assert all(isinstance(row[k], float) for k in ("total", "content", "style", "style_relu1_1", "tv"))
    assert row["content"] == 0 and row["structure"] == pytest.approx(0, abs=1e-6)  # it starts from the content
    weight, structure = Options().style_weight, Options().structure_weight  # the defaults (16, 4)
    later = result.history[-1]
    for r in (row, later):
        assert r["total"] == pytest.approx(r["content"] + weight * r["style"] + structure * r["structure"]
                                           + 0.1 * r["tv"], rel=1e-5)


def test_style_loss_falls(pair: tuple[Image.Image, Image.Image], tiny: Backbone) -> None:
    result = run(pair, tiny, steps=25)
    styles = [row["style"] for row in result.history]
    assert min(styles[-5:]) < 0.5 * styles[0]
    assert result.history[-1]["content"] > 0  # it moved away from the content


def test_custom_layers_and_weights(pair: tuple[Image.Image, Image.Image], tiny: Backbone) -> None:
    result = run(pair, tiny, content_layers="relu3_1", style_layers="relu1_1,relu2_1",
                 style_layer_weights=(1.0, 0.0), steps=2)
    row = result.history[0]
    assert {k for k in row if k.startswith("style_")} == {"style_relu1_1"}  # relu2_1 weighs nothing: not computed
    assert row["style"] == pytest.approx(row["style_relu1_1"], rel=1e-6)
    assert result.settings["content_layers"] == ("relu3_1",)


@pytest.mark.parametrize(("scales", "sizes"), [("1", [[48, 64]]), ("2", [[24, 32], [48, 64]]),
                                               ("32,64", [[24, 32], [48, 64]])])
def test_scales_give_requested_size_and_aspect(small_image: SmallImage, tiny: Backbone, scales: str,
                                               sizes: list[list[int]]) -> None:
    content = small_image("content/animal_dog.jpg", 128)  # portrait, 3:4
    style = small_image("style/hokusai_great_wave.jpg", 64)
    result = transfer(content, style, backbone=tiny, size=64, steps=2, tol=0, scales=scales)
    assert result.image.size == (48, 64)
    assert result.settings["scale_sizes"] == sizes
    assert len(result.stop_reasons) == len(sizes)
    steps = scale_steps(2, [max(s) for s in sizes])  # 2 at the first scale, half as many (at least 1) at each next one
    assert [row["scale"] for row in result.history] == [i + 1 for i in range(len(sizes)) for _ in range(steps[i])]
    assert [(row["width"], row["height"]) for row in result.history][-1] == (48, 64)


def test_landscape_aspect(small_image: SmallImage, tiny: Backbone) -> None:
    content = small_image("content/coast_golden_gate_fog.jpg", 128)  # 1280 x 595
    result = transfer(content, small_image("style/munch_the_scream.jpg", 64), backbone=tiny, size=64, steps=1)
    assert result.image.size == (64, round(64 * 595 / 1280))


def test_scale_sizes() -> None:
    assert scale_sizes("auto", 512) == [128, 256, 512]
    assert scale_sizes("auto", 64) == [64]
    assert scale_sizes("3", 256) == [64, 128, 256]
    assert scale_sizes("256,512", 512) == [256, 512]
    assert scale_sizes("1", 300) == [300]


def test_seed_makes_noise_init_bit_for_bit_reproducible(pair: tuple[Image.Image, Image.Image],
                                                       tiny: Backbone) -> None:
    a = run(pair, tiny, init="noise", seed=7, steps=3)
    b = run(pair, tiny, init="noise", seed=7, steps=3)
    c = run(pair, tiny, init="noise", seed=8, steps=3)
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert [r["total"] for r in a.history] == [r["total"] for r in b.history]
    assert not np.array_equal(np.asarray(a.image), np.asarray(c.image))
    assert a.history[0]["content"] > 0.1  # it really started from noise


def test_content_init_is_deterministic(pair: tuple[Image.Image, Image.Image], tiny: Backbone) -> None:
    a, b = run(pair, tiny, steps=3), run(pair, tiny, steps=3)
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))


def test_init_from_file(pair: tuple[Image.Image, Image.Image], tiny: Backbone, tmp_path: Path) -> None:
    init = tmp_path / "init.png"
    Image.new("RGB", (10, 10), (200, 30, 30)).save(init)
    progress: list[Progress] = []
    run(pair, tiny, init=str(init), steps=1, callback=progress.append)
    first = np.asarray(progress[0].image)
    # after one step the best image is still the init (the first evaluation is at the start)
    assert np.abs(first.astype(int) - [200, 30, 30]).max() <= 1


def test_init_missing_file(pair: tuple[Image.Image, Image.Image], tiny: Backbone, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="init image"):
        run(pair, tiny, init=str(tmp_path / "nope.png"))


def test_multiple_styles_and_blend(small_image: SmallImage, tiny: Backbone) -> None:
    content = small_image("content/forest_stream.jpg", 48)
    styles = [small_image("style/hokusai_great_wave.jpg", 48), small_image("style/munch_the_scream.jpg", 48)]
    one = transfer(content, styles[:1], backbone=tiny, size=48, steps=1)
    only_first = transfer(content, styles, backbone=tiny, size=48, steps=1, style_blend=(1.0, 0.0))
    equal = transfer(content, styles, backbone=tiny, size=48, steps=1)
    assert equal.settings["num_styles"] == 2
    assert only_first.history[0]["style"] == pytest.approx(one.history[0]["style"], rel=1e-5)
    assert equal.history[0]["style"] != pytest.approx(one.history[0]["style"], rel=1e-3)
    with pytest.raises(OptionError, match="--style-blend"):
        transfer(content, styles, backbone=tiny, size=48, steps=1, style_blend=(1.0,))


@pytest.mark.parametrize(("options", "flag"), [
    ({"size": 0}, "--size"),
    ({"steps": -1}, "--steps"),
    ({"window": 0}, "--window"),
    ({"max_pixels": 0}, "--max-pixels"),
    ({"style_weight": -1.0}, "--style-weight"),
    ({"content_weight": -1.0}, "--content-weight"),
    ({"tv_weight": -0.5}, "--tv-weight"),
    ({"tol": -1.0}, "--tol"),
    ({"lr": 0.0}, "--lr"),
    ({"model": "resnet50"}, "--model"),
    ({"device": "tpu"}, "--device"),
    ({"optimizer": "sgd"}, "--optimizer"),
    ({"pooling": "min"}, "--pooling"),
    ({"weights_convention": "keras"}, "--weights-convention"),
    ({"style_layers": ()}, "--style-layers"),
    ({"content_layers": ""}, "--content-layers"),
    ({"style_layers": "relu1_1,relu9_1"}, "--style-layers"),
    ({"content_layers": "conv4_9"}, "--content-layers"),
    ({"style_layer_weights": (1.0, 2.0)}, "--style-layer-weights"),
    ({"style_layer_weights": (0.0,) * 5}, "--style-layer-weights"),
    ({"style_blend": (-1.0,)}, "--style-blend"),
    ({"scales": "big"}, "--scales"),
    ({"scales": "64,32"}, "--scales"),
    ({"scales": "32,128"}, "--scales"),
])
def test_bad_options_name_the_flag(pair: tuple[Image.Image, Image.Image], tiny: Backbone,
                                   options: dict[str, object], flag: str) -> None:
    with pytest.raises(OptionError) as info:
        run(pair, tiny, **{"size": 64, **options})
    message = str(info.value)
    assert message.startswith(flag + ":") and "\n" not in message


@pytest.mark.parametrize(("model", "layer"), [("vgg16", "relu9_1"), ("vgg16", "relu3_4"), ("vgg19", "relu3_4")])
def test_unknown_layer_with_real_weights(pair: tuple[Image.Image, Image.Image], offline_weights: Path, model: str,
                                         layer: str, recwarn: pytest.WarningsRecorder) -> None:
    """With the real loader (vgg19 falls back to the offline VGG-16 here), a layer the loaded network
    lacks is an OptionError naming the flag, not a ValueError from deep inside."""
    with pytest.raises(OptionError) as info:
        transfer(pair[0], pair[1], model=model, style_layers=f"relu1_1,{layer}", size=32, steps=1)
    assert str(info.value).startswith("--style-layers:") and layer in str(info.value)


@pytest.mark.parametrize("size", [(400, 8), (8, 400), (3000, 2), (1, 1)])
def test_style_of_any_aspect(pair: tuple[Image.Image, Image.Image], tiny: Backbone,
                             size: tuple[int, int]) -> None:
    style = Image.fromarray(np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    result = transfer(pair[0], style, backbone=tiny, size=48, steps=2)
    assert result.image.size == (36, 48)
    assert all(np.isfinite(row["total"]) for row in result.history)


@pytest.mark.parametrize(("size", "layers"), [(4, {}), (12, {"style_layer_weights": (1, 1, 1, 1, 1)})])
def test_output_too_small_for_the_network(pair: tuple[Image.Image, Image.Image], tiny: Backbone,
                                          size: int, layers: dict) -> None:
    with pytest.raises(OptionError, match="--size"):
        run(pair, tiny, size=size, **layers)


@pytest.mark.parametrize(("size", "side", "layers"), [(5, 4, {}), (22, 16, {"style_layer_weights": (1, 1, 1, 1, 1)})])
def test_smallest_size_that_fits(pair: tuple[Image.Image, Image.Image], tiny: Backbone, size: int, side: int,
                                 layers: dict) -> None:
    # relu5_1 comes after 4 poolings: 16 px on the short side is the least that works; the defaults
    # stop at relu3_1 (blocks 4 and 5 weigh 0), after 2 poolings: 4 px
    result = run(pair, tiny, size=size, steps=1, **layers)
    assert min(result.image.size) == side


def test_unknown_option_name(pair: tuple[Image.Image, Image.Image], tiny: Backbone) -> None:
    with pytest.raises(OptionError, match="stlye_weight"):
        run(pair, tiny, stlye_weight=3.0)


def test_unavailable_device(pair: tuple[Image.Image, Image.Image], tiny: Backbone) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(OptionError, match="--device: cuda"):
        run(pair, tiny, device="cuda")


def test_no_style_image(pair: tuple[Image.Image, Image.Image], tiny: Backbone) -> None:
    with pytest.raises(OptionError, match="style"):
        transfer(pair[0], [], backbone=tiny)


def test_accepts_path_pil_tensor_numpy(pair: tuple[Image.Image, Image.Image], tiny: Backbone,
                                       tmp_path: Path) -> None:
    content, style = pair
    path = tmp_path / "content.png"
    content.save(path)
    arr = np.asarray(content)
    sources = {
        "path": path,
        "str": str(path),
        "pil": content,
        "tensor": image_to_tensor(content),
        "tensor3": image_to_tensor(content)[0],
        "numpy": arr,
        "numpy_float": arr.astype(np.float32) / 255,
    }
    images = {name: np.asarray(transfer(src, style, backbone=tiny, size=32, steps=2, tol=0).image)
              for name, src in sources.items()}
    reference = images["pil"]
    for name, image in images.items():
        assert image.shape == reference.shape, name
        assert np.abs(image.astype(int) - reference.astype(int)).max() <= 1, name
    # the style too
    styled = transfer(content, image_to_tensor(style), backbone=tiny, size=32, steps=2, tol=0)
    assert np.array_equal(np.asarray(styled.image), reference)


def test_bad_source_types(pair: tuple[Image.Image, Image.Image], tiny: Backbone) -> None:
    with pytest.raises(InputError, match="content image"):
        transfer(torch.rand(1, 4, 8, 8), pair[1], backbone=tiny, size=32, steps=1)
    with pytest.raises(InputError, match="style image"):
        transfer(pair[0], np.full((8, 8, 3), 2.0), backbone=tiny, size=32, steps=1)


def test_callback_can_stop(pair: tuple[Image.Image, Image.Image], tiny: Backbone) -> None:
    def stop(p: Progress) -> None:
        if p.step == 2:
            raise StopTransfer

    result = run(pair, tiny, steps=10, scales="2", size=64, callback=stop)
    assert result.stop_reason == "stopped" and result.interrupted
    assert len(result.history) == 2 and len(result.stop_reasons) == 1  # later scales are skipped
    assert result.image.size == (24, 32)


def test_early_stopping_reported(pair: tuple[Image.Image, Image.Image], tiny: Backbone) -> None:
    result = run(pair, tiny, steps=200, tol=0.5, window=3)
    assert result.stop_reason == "converged" and len(result.history) < 200


def test_adam_and_average_pooling(pair: tuple[Image.Image, Image.Image]) -> None:
    net = tiny_backbone(pooling="average")
    result = run(pair, net, optimizer="adam", steps=10)
    assert result.history[-1]["style"] < result.history[0]["style"]


def test_library_prints_nothing(pair: tuple[Image.Image, Image.Image], tiny: Backbone,
                                capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run(pair, tiny, steps=2)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    assert list(tmp_path.iterdir()) == []


def test_public_api() -> None:
    assert stylize.transfer is transfer
    assert "Result" in stylize.__all__ and "Options" in stylize.__all__
    assert "content" in (transfer.__doc__ or "") and "Returns" in (transfer.__doc__ or "")


@pytest.mark.parametrize("tiled", [False, True])
def test_warm_steps_make_the_first_step_of_a_later_scale_count(pair: tuple[Image.Image, Image.Image], tiny: Backbone,
                                                               tiled: bool) -> None:
    tiles = {"tile_size": 64, "tile_overlap": 16} if tiled else {}
    options = {"size": 96, "scales": "48,96", "steps": 6, **tiles}

    def first_moves(warm: bool) -> tuple[float, Result]:
        result = run(pair, tiny, warm_steps=warm, **options)
        later = [row for row in result.history if row["scale"] == 2]
        return later[1]["total"] / later[0]["total"], result  # loss after the first step / before it

    warm, warm_result = first_moves(True)
    cold, cold_result = first_moves(False)
    assert cold > 0.97  # torch's first step (lr / |g|_1) hardly moves the image
    assert warm < 0.97 * cold  # the step size learned on the first scale does (within the 0.25 cap)
    assert warm_result.history[-1]["total"] < cold_result.history[-1]["total"]

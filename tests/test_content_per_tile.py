"""Content targets computed per tile (issue 15, "prints"): when a tiled scale's whole-image content
feature maps do not fit the memory budget, the plan says so, the content term keeps only the
content image and each tile computes its own targets with context."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from stylize import Options, transfer
from stylize.backbone import Backbone, shape_backbone
from stylize.features import chunked_feature_maps, layer_strides
from stylize.geometry import Box
from stylize.loss import ContentLoss, TiledContentLoss
from stylize.options import PAPER_STYLE_LAYERS
from stylize.plan import make_plan
from stylize.tiles.memory import (
    GIB,
    MIN_TILE,
    TILED_BUDGET_SHARE,
    auto_tile,
    buffer_bytes_per_pixel,
    content_floats_per_pixel,
    least_tiled_budget,
    step_bytes,
    tile_extra_bytes_per_pixel,
)
from stylize.tiles.refine import DEFAULT_MARGIN

SmallImage = Callable[[str, int], Image.Image]
LAYERS = ["relu2_2", "relu4_2"]  # a shallow and a deep content layer (the paper's)


@pytest.fixture
def photo() -> torch.Tensor:
    """A 320 x 384 random image with some spatial correlation, like a photo."""
    return F.avg_pool2d(torch.rand(1, 3, 320, 384, generator=torch.Generator().manual_seed(0)), 5, 1, 2)


def relative_errors(a: ContentLoss, b: ContentLoss) -> dict[str, float]:
    return {k: ((a.targets[k] - b.targets[k]).norm() / b.targets[k].norm()).item() for k in b.targets}


# ----------------------------------------------------------------------------- the term


def test_per_tile_targets_are_the_whole_image_targets_crop(tiny: Backbone, photo: torch.Tensor) -> None:
    whole = ContentLoss.from_image(tiny, photo, LAYERS, weight=2.0)
    lazy = ContentLoss.per_tile(tiny, photo, LAYERS, weight=2.0)
    assert isinstance(lazy, TiledContentLoss) and lazy.layers == whole.layers and lazy.weight == 2.0
    assert lazy.content is photo  # the image, not its feature maps
    # inside, at a corner and at the far corner (the window clipped to the image)
    for box in (Box(112, 128, 208, 256), Box(0, 0, 96, 128), Box(224, 256, 320, 384)):
        tile, expected = lazy.crop(box), whole.crop(box)
        assert isinstance(tile, ContentLoss) and tile.weight == 2.0
        for k in LAYERS:
            assert tile.targets[k].shape == expected.targets[k].shape
            # the default 96 px of context cover relu4_2's receptive field (84 px): the same maps
            torch.testing.assert_close(tile.targets[k], expected.targets[k], atol=1e-5, rtol=1e-4)
    # less context: close, not exact, in the deep layer; none: far off
    box = Box(112, 128, 208, 256)
    some = relative_errors(TiledContentLoss(tiny, photo, LAYERS, margin=32).crop(box), whole.crop(box))
    none = relative_errors(TiledContentLoss(tiny, photo, LAYERS, margin=0).crop(box), whole.crop(box))
    assert 0 < some["relu4_2"] < 0.05 < none["relu4_2"]
    with pytest.raises(ValueError, match="multiple of 16"):
        TiledContentLoss(tiny, photo, LAYERS, margin=40)


def test_per_tile_targets_equal_the_chunked_whole_image_targets(tiny: Backbone, photo: torch.Tensor) -> None:
    """A tile's targets are computed as one chunk of the chunked whole-image targets: with the same
    margin, a tile that is a chunk gets exactly that chunk's feature maps (relu5_1: beyond the margin)."""
    layers = [*LAYERS, "relu5_1"]
    strides = layer_strides(tiny)
    maps = chunked_feature_maps(tiny, photo, layers, chunk=64, margin=32)
    for chunk in (Box(128, 192, 192, 256), Box(0, 320, 64, 384)):
        tile = TiledContentLoss(tiny, photo, layers, margin=32).crop(chunk)
        for k in layers:
            torch.testing.assert_close(tile.targets[k], chunk.crop_features(maps[k], strides[k]), atol=0, rtol=0)


def test_per_tile_loss_is_normalized_as_the_cropped_content_loss(tiny: Backbone, photo: torch.Tensor) -> None:
    whole = ContentLoss.from_image(tiny, photo, LAYERS)
    lazy = ContentLoss.per_tile(tiny, photo, LAYERS)
    box = Box(64, 96, 192, 224)
    other = photo.flip(-1)  # an image whose features differ from the targets
    features = {k: box.crop_features(v, layer_strides(tiny)[k]) for k, v in tiny(other, LAYERS).items()}
    value = lazy.crop(box)(features, box.crop(other))
    assert value.item() == pytest.approx(whole.crop(box)(features, box.crop(other)).item(), rel=1e-5)
    assert value.item() > 0.05  # not trivially zero
    whole_features = tiny(other, LAYERS)  # on the whole image (never asked by tiled refinement): the same term
    assert lazy(whole_features, other).item() == pytest.approx(whole(whole_features, other).item(), rel=1e-5)


# ----------------------------------------------------------------------------- memory model and plan


def test_buffers_without_content_targets_and_a_tiles_own() -> None:
    vgg16 = shape_backbone("vgg16", [*LAYERS, *PAPER_STYLE_LAYERS])
    assert content_floats_per_pixel(vgg16, LAYERS) == 128 / 4 + 512 / 64  # 40 floats per pixel
    assert content_floats_per_pixel(vgg16, ["relu4_2"]) == 8
    # content + style + canvas (3 floats each), blend weights, content targets; 8 bytes of 8-bit copies
    assert buffer_bytes_per_pixel(vgg16, LAYERS, 1) == 4 * (9 + 1 + 40) + 8 == 208
    assert buffer_bytes_per_pixel(vgg16, LAYERS, 1, content_per_tile=True) == 4 * (9 + 1) + 8 == 48
    assert buffer_bytes_per_pixel(vgg16, LAYERS, 2, content_per_tile=True) == 4 * (12 + 1) + 8
    assert tile_extra_bytes_per_pixel(vgg16, LAYERS, content_per_tile=True) == 160
    assert tile_extra_bytes_per_pixel(vgg16, LAYERS, content_per_tile=False) == 0
    pixels = (MIN_TILE + 2 * DEFAULT_MARGIN) ** 2
    base = least_tiled_budget(vgg16, 1e9, DEFAULT_MARGIN, history=2)
    assert base == int(1e9 + step_bytes(vgg16, pixels, history=2))
    assert least_tiled_budget(vgg16, 1e9, DEFAULT_MARGIN, history=2, extra_per_pixel=160) == int(base + 160 * pixels)
    budget = 3 * GIB
    assert auto_tile(vgg16, budget, 32, history=2, extra_per_pixel=160) < auto_tile(vgg16, budget, 32, history=2)


def scale_fits(backbone: Backbone, plan: object, index: int) -> bool:
    """Whether the memory model puts scale ``index`` of ``plan`` (tiled) within its budget."""
    scale = plan.scales[index]  # type: ignore[attr-defined]
    width, height = scale.size
    buffers = buffer_bytes_per_pixel(backbone, LAYERS, 1, content_per_tile=scale.content_per_tile) * width * height
    extra = tile_extra_bytes_per_pixel(backbone, LAYERS, content_per_tile=scale.content_per_tile)
    largest = max(b.grow(plan.margin, height, width).area for b in scale.layout.boxes)  # type: ignore[attr-defined]
    history = min(50, scale.steps)
    return buffers + step_bytes(backbone, largest, history=history) + extra * largest <= plan.budget  # type: ignore[attr-defined]


def test_plan_computes_content_targets_per_tile_only_where_the_whole_image_ones_do_not_fit() -> None:
    vgg16 = shape_backbone("vgg16", [*LAYERS, *PAPER_STYLE_LAYERS])
    portrait, painting = (3369, 4492), [(1280, 1014)]  # the photo: 6144 x 8192 at --size 8192
    plan = make_plan(Options.from_kwargs(size=8192, model="vgg16", content_layers=tuple(LAYERS), max_memory=5.89),
                     portrait, painting, vgg16)
    assert [max(s.size) for s in plan.scales] == [128, 256, 512, 1024, 2048, 4096, 8192]
    assert [s.tiled for s in plan.scales] == [False] * 4 + [True] * 3
    assert [s.content_per_tile for s in plan.scales] == [False] * 6 + [True]
    assert all(scale_fits(vgg16, plan, i) for i in (4, 5, 6))
    last = plan.scales[-1]
    assert last.size == (6144, 8192)
    whole_targets = buffer_bytes_per_pixel(vgg16, LAYERS, 1) * 6144 * 8192  # 10.5 GB: no tile fits beside them
    assert least_tiled_budget(vgg16, whole_targets, plan.margin, history=last.steps) > plan.budget
    assert last.content_target_pixels > 6144 * 8192  # every tile with its 96 px of context
    table = plan.table()
    assert table[6].endswith(", content targets per tile") and not any("targets" in line for line in table[:6])
    rows = plan.describe()
    assert rows[6]["content_targets"] == "per tile" and all("content_targets" not in r for r in rows[:6])
    # 4096 px fits with the whole-image targets: the plan is as before
    plan = make_plan(Options.from_kwargs(size=4096, model="vgg16", content_layers=tuple(LAYERS), max_memory=5.89),
                     portrait, painting, vgg16)
    assert plan.scales[-1].tiled and not any(s.content_per_tile for s in plan.scales)
    # ... and so does 8192 px with a larger budget
    plan = make_plan(Options.from_kwargs(size=8192, model="vgg16", content_layers=tuple(LAYERS), max_memory=16.0),
                     portrait, painting, vgg16)
    assert plan.scales[-1].tiled and not any(s.content_per_tile for s in plan.scales)
    assert scale_fits(vgg16, plan, len(plan.scales) - 1)


def test_plan_switches_at_the_budget_that_leaves_no_tile_beside_the_whole_image_targets() -> None:
    vgg16 = shape_backbone("vgg16", [*LAYERS, *PAPER_STYLE_LAYERS])
    size, history = (2048, 1365), 3
    whole = least_tiled_budget(vgg16, buffer_bytes_per_pixel(vgg16, LAYERS, 1) * 2048 * 1365, DEFAULT_MARGIN,
                               history=history)
    per_tile = least_tiled_budget(vgg16, buffer_bytes_per_pixel(vgg16, LAYERS, 1, content_per_tile=True) * 2048 * 1365,
                                  DEFAULT_MARGIN, history=history, extra_per_pixel=160)
    assert per_tile < whole
    common = {"size": 2048, "scales": "1", "steps": history, "model": "vgg16", "content_layers": tuple(LAYERS)}
    # tiled scales are planned within TILED_BUDGET_SHARE of the budget
    whole, per_tile = whole / TILED_BUDGET_SHARE, per_tile / TILED_BUDGET_SHARE
    for budget, expected in ((whole + 2**20, False), (whole - 2**20, True), (per_tile + 2**20, True)):
        plan = make_plan(Options.from_kwargs(**common, max_memory=budget / GIB), size, [size], vgg16)
        assert plan.scales[0].tiled and plan.scales[0].content_per_tile is expected, budget
        assert scale_fits(vgg16, plan, 0)


# ----------------------------------------------------------------------------- a run


def test_transfer_with_content_targets_per_tile(small_image: SmallImage, tiny: Backbone,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A budget that leaves no tile beside the whole-image content targets: the last scale computes
    them per tile, and (the 96 px context covering the tiny network's relu4_2) gives the image of the
    same tiles with whole-image targets."""
    import stylize.loss.content as module

    whole_images: list[tuple[int, ...]] = []
    boxes: list[Box] = []
    real_targets, real_box_features = module.content_targets, module.box_features

    def content_targets(backbone: Backbone, image: torch.Tensor, *args: object) -> dict[str, torch.Tensor]:
        whole_images.append(tuple(image.shape))
        return real_targets(backbone, image, *args)  # type: ignore[arg-type]

    def box_features(backbone: Backbone, image: torch.Tensor, box: Box, *args: object, **kw: object
                     ) -> dict[str, torch.Tensor]:
        boxes.append(box)
        return real_box_features(backbone, image, box, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(module, "content_targets", content_targets)
    monkeypatch.setattr("stylize.objective.content_targets", content_targets)  # the whole-image scales' pass
    monkeypatch.setattr(module, "box_features", box_features)
    content = small_image("content/forest_stream.jpg", 512)
    style = small_image("style/van_gogh_starry_night.jpg", 128)
    width, height = content.size
    buffers = {per: buffer_bytes_per_pixel(tiny, LAYERS, 1, content_per_tile=per) * width * height
               for per in (False, True)}
    need_whole = least_tiled_budget(tiny, buffers[False], DEFAULT_MARGIN, history=2)
    need_per_tile = least_tiled_budget(tiny, buffers[True], DEFAULT_MARGIN, history=2,
                                       extra_per_pixel=tile_extra_bytes_per_pixel(tiny, LAYERS, content_per_tile=True))
    # 40 steps: the whole-image step at 512 px (40 steps of L-BFGS history) must not fit the budget
    options = {"size": 512, "scales": "256,512", "steps": 40, "tile_steps": 2, "tol": 0.0, "seed": 0}
    budget = (need_whole + need_per_tile) / 2 / TILED_BUDGET_SHARE  # tiles are planned within that share
    result = transfer(content, style, backbone=tiny, max_memory=budget / GIB, **options)
    tiling = result.settings["tiling"]
    assert [row["tiles"] > 1 for row in tiling] == [False, True]
    assert tiling[1]["content_targets"] == "per tile"
    assert whole_images == [(1, 3, tiling[0]["height"], tiling[0]["width"])]  # of the whole-image scale only
    assert len(boxes) == tiling[1]["tiles"] and boxes[0] == Box(0, 0, tiling[1]["tile_height"], tiling[1]["tile_width"])
    out = np.asarray(result.image, dtype=np.float64) / 255
    assert result.image.size == content.size and out.std() > 0.05
    assert all(np.isfinite(row["content"]) for row in result.history)
    same = transfer(content, style, backbone=tiny, tile_size=tiling[1]["tile"], **options)  # whole-image targets
    assert same.settings["tiling"][1]["tiles"] == tiling[1]["tiles"] and "content_targets" not in same.settings[
        "tiling"][1]
    reference = np.asarray(same.image, dtype=np.float64) / 255
    assert np.abs(out - reference).max() <= 2 / 255
    start = np.asarray(content, dtype=np.float64) / 255
    assert np.abs(out - start).mean() > 0.02  # it was stylized

"""Optical flow, warping, the consistency mask and the temporal loss term (stylize.video).

The clips are filmed from a real photo of tests/data by a known camera motion
(:class:`stylize.video.synthetic.CameraClip`), written to an MP4 and read back through PyAV, so
the true flow is known and the frames carry real compression.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("av")
pytest.importorskip("cv2")

from stylize.geometry import Box  # noqa: E402
from stylize.loss.temporal import TemporalLoss, temporal_term  # noqa: E402
from stylize.video import flow as fl  # noqa: E402
from stylize.video.io import open_clip, write_video  # noqa: E402
from stylize.video.synthetic import CameraClip, CameraMotion  # noqa: E402

MOTION = CameraMotion(pan=(2.0, 1.0), zoom=1.01)


@pytest.fixture(scope="module")
def clip() -> CameraClip:
    from stylize.imageio import load_image

    photo = load_image(Path(__file__).parent / "data" / "content" / "forest_stream.jpg")
    return CameraClip(photo, (96, 64), 4, MOTION)


@pytest.fixture(scope="module")
def decoded(clip: CameraClip, tmp_path_factory: pytest.TempPathFactory) -> list[Image.Image]:
    """The clip written as H.264 and decoded again."""
    path = tmp_path_factory.mktemp("clip") / "pan.mp4"
    write_video(clip.frames(), path, 10)
    return list(open_clip(path).frames())


def endpoint_error(estimate: np.ndarray, true: np.ndarray) -> float:
    return float(np.linalg.norm(estimate - true, axis=-1)[fl.inside(true)].mean())


def test_true_flow_of_the_synthetic_clip_warps_one_frame_onto_the_next(clip: CameraClip) -> None:
    a, b = (np.asarray(clip.frame(t), np.float32) / 255 for t in (0, 1))
    true = clip.backward_flow(1)
    seen = fl.inside(true)
    assert 0.9 < seen.mean() < 1.0  # the pan brings a strip of new pixels into view
    warped = np.abs(fl.warp(a, true) - b).mean(-1)[seen].mean()  # bilinear resampling of fine foliage
    assert warped < 0.03
    assert np.abs(a - b).mean(-1)[seen].mean() > 4 * warped  # unwarped, the frames differ 6x more


@pytest.mark.parametrize(("quality", "bound"), [("fast", 0.6), ("medium", 0.25), ("accurate", 0.25)])
def test_dis_flow_finds_the_camera_motion(decoded: list[Image.Image], clip: CameraClip, quality: str,
                                          bound: float) -> None:
    for t in (1, 2, 3):
        estimate = fl.flow(fl.gray(decoded[t]), fl.gray(decoded[t - 1]), quality)
        assert estimate.shape == (64, 96, 2) and estimate.dtype == np.float32
        assert endpoint_error(estimate, clip.backward_flow(t)) < bound
        # The convention matters: the same numbers with the other sign are far off.
        assert endpoint_error(-estimate, clip.backward_flow(t)) > 2.0


def test_consistency_mask_excludes_pixels_new_to_the_view(decoded: list[Image.Image]) -> None:
    now, before = fl.gray(decoded[2]), fl.gray(decoded[1])
    backward, forward = fl.flow(now, before), fl.flow(before, now)
    mask = fl.consistency_mask(backward, forward)
    assert mask.dtype == np.float32 and set(np.unique(mask)) <= {0.0, 1.0}
    # Panning right and down: the right and bottom edges were not in the previous frame.
    assert mask[:, -1].max() == 0 and mask[-1, :].max() == 0
    assert mask[8:-8, 8:-8].mean() > 0.95


def _occlusion_pair(small_image: Callable[[str, int], Image.Image]) -> tuple[np.ndarray, np.ndarray]:
    """A static background with a textured square moving 6 px to the right over it."""
    background = np.asarray(small_image("content/forest_stream.jpg", 128).convert("L"))[:64, :96].copy()
    patch = np.asarray(small_image("content/animal_dog.jpg", 128).convert("L"))[30:54, 40:64]
    frames = []
    for x in (30, 36):
        frame = background.copy()
        frame[20:44, x:x + 24] = patch
        frames.append(frame)
    return frames[0], frames[1]


def test_consistency_mask_excludes_disocclusions(small_image: Callable[[str, int], Image.Image]) -> None:
    before, now = _occlusion_pair(small_image)
    backward, forward = fl.flow(now, before, "accurate"), fl.flow(before, now, "accurate")
    mask = fl.consistency_mask(backward, forward)
    # Background the square covered in the previous frame: the forward-backward check rejects it
    # (the motion-boundary test alone would keep about half of it).
    assert mask[22:42, 31:35].mean() < 0.1
    assert mask[24:40, 40:56].mean() > 0.9  # the square itself moved consistently
    assert mask[:, 70:].mean() > 0.9 and mask[48:, :].mean() > 0.9  # far from the square: reliable


def test_warp_replicates_the_border_and_reports_what_is_inside() -> None:
    image = np.arange(12, dtype=np.float32).reshape(3, 4, 1).repeat(3, -1)
    shift = np.zeros((3, 4, 2), np.float32)
    shift[..., 0] = 1.0  # every pixel looks one to the right
    out = fl.warp(image, shift)
    assert np.allclose(out[:, :3, 0], image[:, 1:, 0]) and np.allclose(out[:, 3, 0], image[:, 3, 0])
    assert fl.inside(shift)[:, :3].all() and not fl.inside(shift)[:, 3].any()


def test_temporal_loss_is_the_masked_mean_squared_difference() -> None:
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(1, 3, 8, 10, generator=gen)
    mask = torch.zeros(1, 1, 8, 10)
    mask[..., :, :5] = 1
    term = TemporalLoss(target, mask, weight=3.0)
    assert term.name == "temporal" and term.layers == () and term.weight == 3.0
    assert float(term({}, target)) == 0.0
    image = target.clone()
    image[..., :, 5:] += 0.5  # changes where the mask is 0 cost nothing
    assert float(term({}, image)) == 0.0
    image[..., :, :5] += 0.1
    assert float(term({}, image)) == pytest.approx(0.01 * 3 * 8 * 5 / (3 * 8 * 10), rel=1e-4)


def test_temporal_loss_gradient_pulls_towards_the_target() -> None:
    target = torch.full((1, 3, 4, 4), 0.5)
    image = torch.zeros(1, 3, 4, 4, requires_grad=True)
    TemporalLoss(target, torch.ones(1, 1, 4, 4), 1.0)({}, image).backward()
    assert (image.grad < 0).all()  # a step against the gradient raises the pixels towards 0.5


def test_temporal_loss_crop_is_the_loss_of_the_tile() -> None:
    gen = torch.Generator().manual_seed(1)
    target, image = torch.rand(1, 3, 12, 16, generator=gen), torch.rand(1, 3, 12, 16, generator=gen)
    mask = (torch.rand(1, 1, 12, 16, generator=gen) > 0.3).float()
    box = Box(y0=2, x0=4, y1=10, x1=12)
    tile = TemporalLoss(target, mask, 2.0, "temporal_2").crop(box)
    assert tile.name == "temporal_2" and tile.weight == 2.0
    expected = TemporalLoss(target[..., 2:10, 4:12], mask[..., 2:10, 4:12], 2.0)({}, image[..., 2:10, 4:12])
    assert float(tile({}, image[..., 2:10, 4:12])) == pytest.approx(float(expected))
    assert tuple(tile.target.shape) == (1, 3, 8, 8) and tuple(tile.mask.shape) == (1, 1, 8, 8)


def test_temporal_term_factory_resizes_to_each_scale() -> None:
    target, mask = torch.rand(1, 3, 32, 48), torch.ones(1, 1, 32, 48)
    factory = temporal_term(target, mask, 5.0)
    coarse = factory(SimpleNamespace(size=(24, 16), index=0, device=torch.device("cpu")))
    assert tuple(coarse.target.shape) == (1, 3, 16, 24) and tuple(coarse.mask.shape) == (1, 1, 16, 24)
    assert torch.allclose(coarse.mask, torch.ones(1, 1, 16, 24))
    full = factory(SimpleNamespace(size=(48, 32), index=1, device=torch.device("cpu")))
    assert torch.equal(full.target, target) and full.weight == 5.0


def test_temporal_loss_refuses_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="mask"):
        TemporalLoss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 1, 4, 5), 1.0)


@pytest.mark.parametrize("tile_size", [0, 64])
def test_temporal_term_in_a_transfer_whole_and_tiled(small_image: Callable[[str, int], Image.Image],
                                                     tile_size: int) -> None:
    """Through stylize.transfer's extra_terms hook, on the whole image and cropped to tiles: a
    heavy temporal term pulls the masked half of the output to its target (another photo)."""
    from stylize import transfer
    from stylize.backbone import tiny_backbone
    from stylize.imageio import image_to_tensor

    content = small_image("content/forest_stream.jpg", 128)
    style = small_image("style/van_gogh_starry_night.jpg", 128)
    target = image_to_tensor(small_image("content/animal_dog.jpg", 128).resize(content.size))
    mask = torch.zeros(1, 1, *target.shape[2:])
    mask[..., : target.shape[3] // 2] = 1  # the left half only
    options = {"size": 128, "scales": "1", "steps": 10, "tile_size": tile_size, "tile_overlap": 16}
    result = transfer(content, style, backbone=tiny_backbone("vgg19", seed=0),  # starts from the content
                      extra_terms=[temporal_term(target, mask, 1e4)], **options)
    out = image_to_tensor(result.image)
    half = target.shape[3] // 2
    held = (out - target)[..., :half].abs().mean()
    free = (out - target)[..., half + 8:].abs().mean()
    assert "temporal" in result.history[-1]
    assert held < 0.05 and free > 3 * held
    if tile_size:
        assert "tile" in result.history[-1]

"""Tests for stylize.imageio. Every input file is generated in tmp_path; nothing is downloaded."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylize import atomic, imageio
from stylize.errors import InputError, OutputError
from stylize.imageio import (
    DEFAULT_MAX_PIXELS,
    check_output_path,
    image_to_tensor,
    load_image,
    output_format,
    resize_tensor,
    resize_to_long_side,
    save_image,
    tensor_to_image,
)

# --------------------------------------------------------------------------- helpers


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _write_png(path: Path, width: int, height: int, bit_depth: int, color_type: int, rows: bytes) -> Path:
    """Write a PNG by hand; ``rows`` is the raw scanline data (filter bytes included)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(rows))
    path.write_bytes(data + _png_chunk(b"IEND", b""))
    return path


def _write_blank_bilevel_png(path: Path, width: int, height: int) -> Path:
    """A real, valid 1-bit PNG of any size, built row by row without allocating it."""
    row = b"\x00" * (1 + (width + 7) // 8)
    comp = zlib.compressobj(9)
    parts = [comp.compress(row) for _ in range(height)]
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = b"".join(parts)
    chunks = _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunks)
    return path


def _px(img: Image.Image, x: int, y: int) -> tuple[int, int, int]:
    assert img.mode == "RGB"
    return img.getpixel((x, y))


def _noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# --------------------------------------------------------------------------- bad inputs


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jpg"
    with pytest.raises(InputError) as info:
        load_image(missing, what="content image")
    assert "no such file" in info.value.problem
    assert "content image" in str(info.value)
    assert info.value.path == missing


def test_missing_parent_component_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="no such file"):
        load_image(tmp_path / "f" / "a.png")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a directory"):
        load_image(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty file"):
        load_image(empty)


def test_text_file_named_jpg(tmp_path: Path) -> None:
    fake = tmp_path / "fake.jpg"
    fake.write_text("this is not a picture\n" * 20)
    with pytest.raises(InputError, match="not an image Pillow can read"):
        load_image(fake)


def test_truncated_jpeg(tmp_path: Path) -> None:
    good = tmp_path / "good.jpg"
    _noise(64, 64).save(good, quality=90)
    data = good.read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated or corrupt"):
        load_image(cut)
    assert load_image(good).size == (64, 64)  # the intact file is fine


def test_eps_is_refused(tmp_path: Path) -> None:
    eps = tmp_path / "a.eps"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    with pytest.raises(InputError, match="not an image Pillow can read"):
        load_image(eps)


def test_permission_error_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.png"
    _noise(4, 4).save(path)

    def deny(*args: object, **kwargs: object) -> Image.Image:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(imageio.Image, "open", deny)
    with pytest.raises(InputError, match="permission denied"):
        load_image(path)


def test_pixel_limit_from_header(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    Image.new("RGB", (40, 30)).save(path)
    with pytest.raises(InputError) as info:
        load_image(path, what="style image", max_pixels=1000)
    problem = info.value.problem
    assert "40 x 30 = 1200 pixels" in problem
    assert "1000" in problem
    assert "--max-pixels" in problem
    assert "style image" in problem
    assert load_image(path, max_pixels=1200).size == (40, 30)  # exactly at the limit is fine


def test_pixel_limit_checked_before_decoding(tmp_path: Path) -> None:
    # The header claims 100000 x 100000 but the pixel data is garbage: only a header-based
    # check can report the size instead of a decode error.
    path = _write_png(tmp_path / "bomb.png", 100_000, 100_000, 8, 2, b"\x00" * 10)
    with pytest.raises(InputError, match=r"100000 x 100000 = 10000000000 pixels, over the limit of 5000"):
        load_image(path, max_pixels=5000)


def test_real_decompression_bomb_default_limit(tmp_path: Path) -> None:
    # 14000 x 14000 = 196M pixels, beyond Pillow's own hard limit; the file is tiny.
    path = _write_blank_bilevel_png(tmp_path / "bomb.png", 14_000, 14_000)
    assert path.stat().st_size < 200_000
    saved_limit = Image.MAX_IMAGE_PIXELS
    with pytest.raises(InputError) as info:
        load_image(path)
    problem = info.value.problem
    assert "14000 x 14000 = 196000000 pixels" in problem
    assert str(DEFAULT_MAX_PIXELS) in problem
    assert "--max-pixels" in problem
    assert saved_limit == Image.MAX_IMAGE_PIXELS


def test_pillow_bomb_error_is_converted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)  # Pillow refuses > 100 pixels
    path = tmp_path / "a.png"
    Image.new("RGB", (20, 20)).save(path)
    with pytest.raises(InputError, match=r"20 x 20 = 400 pixels, over the limit of 100;"):
        load_image(path, max_pixels=100)
    assert Image.MAX_IMAGE_PIXELS == 50


def test_max_pixels_above_pillow_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)  # Pillow alone would refuse this image
    path = tmp_path / "a.png"
    Image.new("RGB", (20, 20), (1, 2, 3)).save(path)
    img = load_image(path, max_pixels=400)
    assert img.size == (20, 20)
    assert _px(img, 0, 0) == (1, 2, 3)
    assert Image.MAX_IMAGE_PIXELS == 50  # restored
    with pytest.raises(InputError, match="over the limit of 399"):
        load_image(path, max_pixels=399)
    assert Image.MAX_IMAGE_PIXELS == 50


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        load_image(Image.new("RGB", (2, 2)), max_pixels=0)
    with pytest.raises(ValueError):
        load_image(Image.new("RGB", (2, 2)), max_side=0)
    with pytest.raises(TypeError):
        load_image(12345)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- accepted modes


def test_rgb_png_exact(tmp_path: Path) -> None:
    src = _noise(7, 5)
    src.save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    assert out.mode == "RGB"
    assert np.array_equal(np.asarray(out), np.asarray(src))


def test_grayscale_l(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 100, 255]], dtype=np.uint8)).save(tmp_path / "l.png")
    out = load_image(tmp_path / "l.png")
    assert [_px(out, x, 0) for x in range(3)] == [(0, 0, 0), (100, 100, 100), (255, 255, 255)]


def test_la_transparent_is_white(tmp_path: Path) -> None:
    img = Image.new("LA", (2, 1))
    img.putpixel((0, 0), (50, 255))
    img.putpixel((1, 0), (0, 0))
    img.save(tmp_path / "la.png")
    out = load_image(tmp_path / "la.png")
    assert _px(out, 0, 0) == (50, 50, 50)
    assert _px(out, 1, 0) == (255, 255, 255)


def test_one_bit(tmp_path: Path) -> None:
    img = Image.new("1", (2, 1), 0)
    img.putpixel((1, 0), 1)
    img.save(tmp_path / "b.png")
    out = load_image(tmp_path / "b.png")
    assert _px(out, 0, 0) == (0, 0, 0)
    assert _px(out, 1, 0) == (255, 255, 255)


def test_palette_without_transparency(tmp_path: Path) -> None:
    img = Image.new("P", (2, 1))
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.putpixel((1, 0), 1)
    img.save(tmp_path / "p.png")
    out = load_image(tmp_path / "p.png")
    assert _px(out, 0, 0) == (255, 0, 0)
    assert _px(out, 1, 0) == (0, 0, 255)


def test_palette_with_transparency(tmp_path: Path) -> None:
    img = Image.new("P", (2, 1))
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.putpixel((1, 0), 1)
    img.save(tmp_path / "pt.png", transparency=1)
    out = load_image(tmp_path / "pt.png")
    assert _px(out, 0, 0) == (255, 0, 0)
    assert _px(out, 1, 0) == (255, 255, 255)  # transparent blue -> white


def test_rgba_composited_over_white(tmp_path: Path) -> None:
    img = Image.new("RGBA", (3, 1))
    img.putpixel((0, 0), (10, 20, 30, 255))
    img.putpixel((1, 0), (0, 0, 0, 0))
    img.putpixel((2, 0), (0, 0, 0, 128))
    img.save(tmp_path / "rgba.png")
    out = load_image(tmp_path / "rgba.png")
    assert _px(out, 0, 0) == (10, 20, 30)
    assert _px(out, 1, 0) == (255, 255, 255)
    half = _px(out, 2, 0)
    assert all(125 <= c <= 129 for c in half)


def test_rgb_with_transparent_colour(tmp_path: Path) -> None:
    img = Image.new("RGB", (2, 1), (10, 20, 30))
    img.putpixel((1, 0), (40, 50, 60))
    img.save(tmp_path / "trns.png", transparency=(10, 20, 30))
    out = load_image(tmp_path / "trns.png")
    assert _px(out, 0, 0) == (255, 255, 255)
    assert _px(out, 1, 0) == (40, 50, 60)


@pytest.mark.parametrize("suffix", [".jpg", ".tif"])
def test_cmyk(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"cmyk{suffix}"
    Image.new("CMYK", (8, 8), (255, 0, 0, 0)).save(path)
    assert Image.open(path).mode == "CMYK"
    r, g, b = _px(load_image(path), 4, 4)
    assert r <= 10 and g >= 245 and b >= 245


def test_sixteen_bit_grayscale_png(tmp_path: Path) -> None:
    rows = b"\x00" + struct.pack(">4H", 0, 32768, 65535, 257)
    path = _write_png(tmp_path / "g16.png", 4, 1, 16, 0, rows)
    assert Image.open(path).mode.startswith("I")  # Pillow 13: "I;16"
    out = load_image(path)
    assert [_px(out, x, 0) for x in range(4)] == [(0, 0, 0), (128, 128, 128), (255, 255, 255), (1, 1, 1)]


def test_sixteen_bit_rgb_png(tmp_path: Path) -> None:
    rows = b"\x00" + struct.pack(">6H", 65535, 0, 0, 32768, 32768, 65535)
    path = _write_png(tmp_path / "rgb16.png", 2, 1, 16, 2, rows)
    out = load_image(path)
    assert _px(out, 0, 0) == (255, 0, 0)
    assert _px(out, 1, 0) == (128, 128, 255)


def test_mode_i_tiff(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 32768, 65535, 70000, -5]], dtype=np.int32)).save(tmp_path / "i.tif")
    out = load_image(tmp_path / "i.tif")
    assert [_px(out, x, 0)[0] for x in range(5)] == [0, 128, 255, 255, 0]


def test_float_f_unit_range(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32)).save(tmp_path / "f.tif")
    out = load_image(tmp_path / "f.tif")
    assert [_px(out, x, 0)[1] for x in range(3)] == [0, 128, 255]


def test_float_f_byte_range() -> None:
    img = Image.fromarray(np.array([[0.0, 100.0, 300.0]], dtype=np.float32))
    out = load_image(img)
    assert [_px(out, x, 0)[2] for x in range(3)] == [0, 100, 255]


def test_exif_orientation_6(tmp_path: Path) -> None:
    img = Image.new("RGB", (2, 1))
    img.putpixel((0, 0), (255, 0, 0))
    img.putpixel((1, 0), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(tmp_path / "rot.png", exif=exif)
    out = load_image(tmp_path / "rot.png")
    assert out.size == (1, 2)
    assert _px(out, 0, 0) == (255, 0, 0)  # the left pixel ends up on top
    assert _px(out, 0, 1) == (0, 0, 255)


def test_exif_orientation_6_jpeg(tmp_path: Path) -> None:
    img = Image.new("RGB", (32, 16), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 16, 16))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    out = load_image(tmp_path / "rot.jpg")
    assert out.size == (16, 32)
    top, bottom = _px(out, 8, 4), _px(out, 8, 28)
    assert top[0] > 200 and top[2] < 60  # red on top
    assert bottom[2] > 200 and bottom[0] < 60


def test_gif_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (4, 4), (255, 0, 0)), Image.new("RGB", (4, 4), (0, 255, 0))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert Image.open(tmp_path / "anim.gif").n_frames == 2
    r, g, b = _px(load_image(tmp_path / "anim.gif"), 1, 1)
    assert r > 200 and g < 50


def test_multipage_tiff_first_page(tmp_path: Path) -> None:
    pages = [Image.new("RGB", (4, 4), (0, 0, 200)), Image.new("RGB", (4, 4), (200, 0, 0))]
    pages[0].save(tmp_path / "multi.tif", save_all=True, append_images=pages[1:])
    assert _px(load_image(tmp_path / "multi.tif"), 0, 0) == (0, 0, 200)


# --------------------------------------------------------------------------- max_side draft


def test_max_side_draft_on_large_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    Image.new("RGB", (4000, 3000), (30, 60, 90)).save(path, quality=80)
    out = load_image(path, max_side=512)
    assert 512 <= max(out.size) < 4000
    assert max(out.size) == 1000  # 1/4 scale: 1/8 (500 px) would go below 512
    assert out.size[0] * 3 == out.size[1] * 4
    full = load_image(path)
    assert full.size == (4000, 3000)


def test_max_side_larger_than_image_loads_full(tmp_path: Path) -> None:
    path = tmp_path / "j.jpg"
    _noise(300, 200).save(path)
    assert load_image(path, max_side=512).size == (300, 200)


def test_max_side_ignored_for_png(tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    Image.new("RGB", (1200, 100)).save(path)
    assert load_image(path, max_side=100).size == (1200, 100)


# --------------------------------------------------------------------------- in-memory sources


def test_pil_source_is_converted_and_copied() -> None:
    src = Image.new("RGBA", (2, 2), (0, 0, 0, 0))
    out = load_image(src, what="style image")
    assert _px(out, 0, 0) == (255, 255, 255)
    rgb = Image.new("RGB", (2, 2), (5, 6, 7))
    out = load_image(rgb)
    assert out is not rgb
    assert _px(out, 1, 1) == (5, 6, 7)


def test_pil_source_over_limit() -> None:
    with pytest.raises(InputError) as info:
        load_image(Image.new("L", (10, 10)), what="mask", max_pixels=99)
    assert info.value.path is None
    assert "mask is 10 x 10 = 100 pixels" in str(info.value)


@pytest.mark.parametrize("shape", [(1, 3, 4, 5), (3, 4, 5)])
def test_tensor_source(shape: tuple[int, ...]) -> None:
    t = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    out = load_image(t)
    assert out.size == (5, 4)
    expected = (t.reshape(3, 4, 5).permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    assert np.array_equal(np.asarray(out), expected)


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (torch.zeros(1, 4, 2, 2), "shape"),
        (torch.zeros(2, 3, 2, 2), "shape"),
        (torch.zeros(2, 2), "shape"),
        (torch.full((3, 2, 2), 1.5), r"\[0, 1\]"),
        (torch.full((3, 2, 2), -0.1), r"\[0, 1\]"),
        (torch.full((3, 2, 2), float("nan")), "NaN"),
        (torch.zeros(3, 2, 2, dtype=torch.int64), "floating point"),
        (torch.zeros(3, 0, 2), "empty"),
    ],
)
def test_bad_tensor_source(tensor: torch.Tensor, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        load_image(tensor, what="content image")
    assert info.value.path is None
    assert "content image" in str(info.value)


def test_uint8_tensor_source() -> None:
    t = torch.tensor([[[0, 255]], [[10, 20]], [[30, 40]]], dtype=torch.uint8)
    out = load_image(t)
    assert _px(out, 0, 0) == (0, 10, 30)
    assert _px(out, 1, 0) == (255, 20, 40)


def test_numpy_sources() -> None:
    u8 = np.array([[[1, 2, 3], [250, 251, 252]]], dtype=np.uint8)
    out = load_image(u8)
    assert out.size == (2, 1)
    assert _px(out, 1, 0) == (250, 251, 252)
    f = np.array([[[0.0, 0.5, 1.0]]], dtype=np.float32)
    assert _px(load_image(f), 0, 0) == (0, 128, 255)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((2, 2), dtype=np.uint8), "shape"),
        (np.zeros((2, 2, 4), dtype=np.uint8), "shape"),
        (np.full((2, 2, 3), 2.0), r"\[0, 1\]"),
        (np.zeros((2, 2, 3), dtype=np.int16), "uint8 or floating point"),
        (np.full((2, 2, 3), np.inf), "infinite"),
    ],
)
def test_bad_numpy_source(array: np.ndarray, message: str) -> None:
    with pytest.raises(InputError, match=message):
        load_image(array)


# --------------------------------------------------------------------------- tensors


def test_image_tensor_round_trip() -> None:
    src = _noise(9, 6, seed=3)
    t = image_to_tensor(src)
    assert t.shape == (1, 3, 6, 9)
    assert t.dtype == torch.float32
    assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0
    assert float(t[0, 0, 0, 0]) == pytest.approx(src.getpixel((0, 0))[0] / 255.0)
    back = tensor_to_image(t)
    assert np.array_equal(np.asarray(back), np.asarray(src))


def test_image_to_tensor_converts_mode() -> None:
    t = image_to_tensor(Image.new("L", (2, 2), 51))
    assert t.shape == (1, 3, 2, 2)
    assert torch.allclose(t, torch.full_like(t, 0.2))


def test_tensor_to_image_clamps_and_rounds() -> None:
    t = torch.tensor([[[-0.5, 2.0, 0.5 / 255, 1.6 / 255, float("nan")]]]).expand(3, 1, 5)
    out = tensor_to_image(t)
    assert [_px(out, x, 0)[0] for x in range(5)] == [0, 255, 0, 2, 0]
    with pytest.raises(ValueError):
        tensor_to_image(torch.zeros(1, 1, 2, 2))


# --------------------------------------------------------------------------- resizing


@pytest.mark.parametrize(
    ("size", "long_side", "expected"),
    [
        ((400, 300), 200, (200, 150)),
        ((300, 400), 200, (150, 200)),
        ((100, 50), 300, (300, 150)),
        ((1000, 1), 10, (10, 1)),
        ((1, 1000), 10, (1, 10)),
    ],
)
def test_resize_to_long_side(size: tuple[int, int], long_side: int, expected: tuple[int, int]) -> None:
    out = resize_to_long_side(Image.new("RGB", size, (9, 99, 199)), long_side)
    assert out.size == expected
    assert _px(out, 0, 0) == (9, 99, 199)


def test_resize_to_long_side_rejects_zero() -> None:
    with pytest.raises(ValueError):
        resize_to_long_side(Image.new("RGB", (4, 4)), 0)


def test_resize_tensor() -> None:
    t = torch.rand(1, 3, 40, 60, generator=torch.Generator().manual_seed(1))
    small = resize_tensor(t, (10, 15))
    assert small.shape == (1, 3, 10, 15)
    assert float(small.min()) >= 0.0 and float(small.max()) <= 1.0
    # Antialiasing averages 4 x 4 blocks of noise (std ~0.06); plain bicubic would just
    # sample it (std ~0.21).
    assert float(small.std()) < float(t.std()) * 0.4
    big = resize_tensor(t, (80, 120))
    assert big.shape == (1, 3, 80, 120)
    assert float(big.min()) >= 0.0 and float(big.max()) <= 1.0  # bicubic overshoot clamped
    assert resize_tensor(t[0], (10, 10)).shape == (3, 10, 10)
    flat = torch.full((1, 3, 8, 8), 0.25)
    assert torch.allclose(resize_tensor(flat, (3, 5)), torch.full((1, 3, 3, 5), 0.25), atol=1e-6)


# --------------------------------------------------------------------------- output paths


@pytest.mark.parametrize(
    ("name", "fmt"), [("a.png", "PNG"), ("a.JPG", "JPEG"), ("a.jpeg", "JPEG"), ("a.tif", "TIFF")]
)
def test_output_format(name: str, fmt: str) -> None:
    assert output_format(name) == fmt


@pytest.mark.parametrize("name", ["a.xyz", "a", "a.xbm", "a.h5"])
def test_output_format_unsupported(name: str) -> None:
    with pytest.raises(OutputError) as info:
        output_format(name)
    assert info.value.path == Path(name)


def test_check_output_path_ok(tmp_path: Path) -> None:
    assert check_output_path(tmp_path / "out.png") == tmp_path / "out.png"


def test_check_output_path_exists(tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    out.write_bytes(b"old")
    with pytest.raises(OutputError, match="already exists; pass --force to overwrite"):
        check_output_path(out)
    assert check_output_path(out, force=True) == out
    assert out.read_bytes() == b"old"  # checking never touches the file


def test_check_output_path_missing_parent(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        check_output_path(tmp_path / "no" / "out.png")


def test_check_output_path_parent_is_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="not a directory"):
        check_output_path(tmp_path / "file" / "out.png")


def test_check_output_path_unwritable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imageio.os, "access", lambda path, mode: False)
    with pytest.raises(OutputError, match="not writable"):
        check_output_path(tmp_path / "out.png")


def test_check_output_path_is_directory(tmp_path: Path) -> None:
    d = tmp_path / "d.png"
    d.mkdir()
    with pytest.raises(OutputError, match="is a directory"):
        check_output_path(d, force=True)


def test_check_output_path_unsupported_extension(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="xyz"):
        check_output_path(tmp_path / "out.xyz")


# --------------------------------------------------------------------------- saving


@pytest.mark.parametrize("name", ["out.png", "out.jpg", "out.webp", "out.tif", "out.bmp"])
def test_save_image_writes_readable_file(tmp_path: Path, name: str) -> None:
    src = Image.new("RGB", (16, 8), (200, 100, 50))
    result = save_image(src, tmp_path / name)
    assert result == tmp_path / name
    assert _files(tmp_path) == [name]
    back = load_image(result)
    assert back.size == (16, 8)
    assert all(abs(a - b) <= 3 for a, b in zip(_px(back, 3, 3), (200, 100, 50), strict=True))


def test_save_png_is_lossless_and_permissions_normal(tmp_path: Path) -> None:
    src = _noise(10, 10, seed=5)
    out = save_image(src, tmp_path / "a.png")
    assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), np.asarray(src))
    assert os.stat(out).st_mode & 0o777 == 0o666 & ~atomic._umask()


def test_save_jpeg_quality_95(tmp_path: Path) -> None:
    src = _noise(64, 64, seed=7)
    default = save_image(src, tmp_path / "a.jpg").stat().st_size
    low = save_image(src, tmp_path / "b.jpg", quality=50).stat().st_size
    explicit = tmp_path / "c.jpg"
    src.save(explicit, quality=95)
    assert default == explicit.stat().st_size
    assert low < default


def test_save_overwrites_atomically(tmp_path: Path) -> None:
    out = tmp_path / "a.png"
    out.write_bytes(b"old")
    save_image(Image.new("RGB", (3, 3), (1, 2, 3)), out)
    assert _px(load_image(out), 1, 1) == (1, 2, 3)
    assert _files(tmp_path) == ["a.png"]


def test_save_converts_modes(tmp_path: Path) -> None:
    save_image(Image.new("RGBA", (2, 2), (0, 0, 0, 0)), tmp_path / "a.jpg")
    assert Image.open(tmp_path / "a.jpg").mode == "RGB"
    assert all(c >= 250 for c in _px(load_image(tmp_path / "a.jpg"), 0, 0))
    save_image(Image.new("RGBA", (2, 2), (0, 0, 0, 0)), tmp_path / "a.png")
    assert Image.open(tmp_path / "a.png").mode == "RGBA"  # PNG keeps alpha


def test_failed_save_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    img = Image.new("RGB", (4, 4))

    def broken_save(*args: object, **kwargs: object) -> None:
        fh = args[0]
        fh.write(b"partial")  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(img, "save", broken_save)
    with pytest.raises(OutputError, match="No space left on device"):
        save_image(img, tmp_path / "out.png")
    assert _files(tmp_path) == []


def test_interrupted_save_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out.png"
    out.write_bytes(b"old")
    img = Image.new("RGB", (4, 4))

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(img, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_image(img, out)
    assert _files(tmp_path) == ["out.png"]
    assert out.read_bytes() == b"old"


def test_save_into_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(OutputError):
        save_image(Image.new("RGB", (2, 2)), tmp_path / "missing" / "a.png")
    assert _files(tmp_path) == []


def test_save_unsupported_extension(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="xyz"):
        save_image(Image.new("RGB", (2, 2)), tmp_path / "a.xyz")
    assert _files(tmp_path) == []

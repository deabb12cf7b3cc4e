"""Reading and writing images.

Inside stylize an image is a float32 RGB tensor with values in [0, 1] and shape
``(1, 3, H, W)``. This module turns files (and in-memory images) into 8-bit RGB
:class:`PIL.Image.Image` objects, converts between those and tensors, resizes, and writes
results atomically.

Every problem a user can cause is raised as :class:`~stylize.errors.InputError` or
:class:`~stylize.errors.OutputError` with a one-line message that names the file.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import os
import re
import stat
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias
from PIL import ExifTags, Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

from stylize.atomic import write_atomically
from stylize.errors import InputError, OutputError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "check_output_path",
    "image_to_tensor",
    "load_image",
    "output_format",
    "resize_tensor",
    "resize_to_long_side",
    "save_image",
    "tensor_to_image",
    "to_float",
]

#: Images with more pixels than this are refused before they are decoded. It equals
#: Pillow's own default hard limit (``2 * Image.MAX_IMAGE_PIXELS``).
DEFAULT_MAX_PIXELS: int = 178_956_970

ImageSource = str | os.PathLike[str] | Image.Image | torch.Tensor | np.ndarray

# Formats Pillow can open that stylize refuses to read: Pillow renders EPS by running
# Ghostscript on the file, which is not something to do with untrusted input.
_REFUSED_INPUT_FORMATS = frozenset({"EPS"})

# Formats that keep their save settings unless the caller overrides them.
_DEFAULT_SAVE_KWARGS: dict[str, dict[str, object]] = {
    "JPEG": {"quality": 95},
    "MPO": {"quality": 95},
}

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})

# Serialises the rare temporary change of Pillow's global pixel limit (see _pillow_limit).
_PILLOW_LIMIT_LOCK = threading.RLock()  # re-entrant: _header_size may nest inside it


# --------------------------------------------------------------------------- loading


def load_image(
    source: ImageSource,
    *,
    what: str = "image",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_side: int | None = None,
) -> Image.Image:
    """Load ``source`` as a fully decoded 8-bit RGB image.

    ``source`` may be a path, a PIL image, a float tensor of shape ``(1, 3, H, W)`` or
    ``(3, H, W)`` with values in [0, 1] (uint8 tensors are read as 0..255), or a numpy array
    of shape ``(H, W, 3)`` that is uint8 or floating point in [0, 1]. ``what`` names the
    image's role ("content image", "style image") in error messages.

    Conversion to RGB:

    * grayscale, 1-bit, palette, CMYK (JPEG CMYK included), YCbCr: Pillow's conversion.
    * anything with transparency (RGBA, LA, PA, palette or RGB/L with a transparent
      colour) is composited over **white**: style transfer has no alpha channel, and white
      matches how such images usually look in a viewer or on paper.
    * 16-bit grayscale (``I;16*``) and 32-bit integer (``I``) images are scaled by
      255 / 65535 and clipped; Pillow's own ``convert`` would clip them at 255 instead,
      turning almost everything white. (16-bit RGB PNGs already arrive as 8-bit RGB.)
    * float (``F``) images are taken as 0..1 when all values lie in [0, 1], otherwise as
      0..255 (Pillow's convention); NaN becomes 0.
    * JPEGs (and other files) with an EXIF orientation are rotated upright.
    * multi-frame files (GIF, TIFF, APNG) give their first frame.

    The pixel count is checked from the file header before anything is decoded, so a
    decompression bomb costs nothing. Pillow has its own hard limit
    (``2 * Image.MAX_IMAGE_PIXELS``, by default equal to :data:`DEFAULT_MAX_PIXELS`); it is
    never changed for images within it. Only when ``max_pixels`` is above it is Pillow's
    limit raised, inside a lock-guarded context manager that restores it right after the
    read. Pillow's DecompressionBombWarning is silenced for the read.

    ``max_side``, when given, lets a JPEG decoder load at a reduced scale (1/2, 1/4, 1/8)
    while keeping the long side at least ``max_side``; the caller resizes precisely after.
    Other formats are loaded at full size.

    EPS files are refused: Pillow would run Ghostscript on them.
    """
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be at least 1, got {max_pixels}")
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be at least 1, got {max_side}")
    if isinstance(source, Image.Image):
        return _load_pil(source, what=what, max_pixels=max_pixels)
    if isinstance(source, torch.Tensor):
        return _load_tensor(source, what=what, max_pixels=max_pixels)
    if isinstance(source, np.ndarray):
        return _load_array(source, what=what, max_pixels=max_pixels)
    if isinstance(source, str | os.PathLike):
        return _load_path(Path(source), what=what, max_pixels=max_pixels, max_side=max_side)
    raise TypeError(f"cannot load an image from a {type(source).__name__}")


def _load_path(path: Path, *, what: str, max_pixels: int, max_side: int | None) -> Image.Image:
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise InputError(path, f"{what}: no such file") from None
    except PermissionError:
        raise InputError(path, f"{what}: permission denied") from None
    except OSError as e:
        raise InputError(path, f"{what}: cannot read ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(path, f"{what}: is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(path, f"{what}: not a regular file")
    if st.st_size == 0:
        raise InputError(path, f"{what}: empty file")

    pillow_limit = _pillow_hard_limit()
    raise_limit = pillow_limit is not None and max_pixels > pillow_limit
    with _pillow_limit(max_pixels if raise_limit else None, active=raise_limit), warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(path, formats=_input_formats())
        except UnidentifiedImageError:
            raise InputError(path, f"{what}: not an image Pillow can read") from None
        except Image.DecompressionBombError as e:
            raise _too_many_pixels(path, what, _header_size(path), max_pixels, str(e)) from None
        except PermissionError:
            raise InputError(path, f"{what}: permission denied") from None
        except OSError as e:
            raise InputError(path, f"{what}: cannot read ({e.strerror or e})") from None

        with img:
            width, height = img.size
            if width * height > max_pixels:
                raise _too_many_pixels(path, what, img.size, max_pixels)
            if max_side is not None and isinstance(img, JpegImagePlugin.JpegImageFile):
                _draft(img, max_side)
            try:
                img.load()
            except Image.DecompressionBombError as e:
                raise _too_many_pixels(path, what, None, max_pixels, str(e)) from None
            except (OSError, SyntaxError, ValueError, EOFError) as e:
                raise InputError(path, f"{what}: truncated or corrupt image data") from e
            try:
                return _to_rgb(_exif_upright(img, in_place=True))
            except _ModeError as e:
                raise InputError(path, f"{what}: {e}") from None


def _load_pil(img: Image.Image, *, what: str, max_pixels: int) -> Image.Image:
    width, height = img.size
    if width * height > max_pixels:
        raise _too_many_pixels(None, what, img.size, max_pixels)
    try:
        img.load()
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise InputError(None, f"{what}: truncated or corrupt image data") from e
    try:
        out = _to_rgb(_exif_upright(img, in_place=False))
    except _ModeError as e:
        raise InputError(None, f"{what}: {e}") from None
    # Never hand back the caller's own object: they may change or close it.
    return out.copy() if out is img else out


def _load_tensor(t: torch.Tensor, *, what: str, max_pixels: int) -> Image.Image:
    shape = tuple(t.shape)
    if not (len(shape) == 4 and shape[:2] == (1, 3)) and not (len(shape) == 3 and shape[0] == 3):
        raise InputError(None, f"{what}: a tensor must have shape (1, 3, H, W) or (3, H, W), got {shape}")
    t = t.detach()
    if t.dim() == 4:
        t = t[0]
    _check_pixels(what, t.shape[-1], t.shape[-2], max_pixels)
    if t.dtype == torch.uint8:
        arr = t.permute(1, 2, 0).cpu().numpy()
        return Image.fromarray(np.ascontiguousarray(arr))
    if not t.is_floating_point():
        raise InputError(None, f"{what}: a tensor must be floating point (or uint8), got {t.dtype}")
    t = t.to("cpu", torch.float32)
    if not bool(torch.isfinite(t).all()):
        raise InputError(None, f"{what}: the tensor contains NaN or infinite values")
    lo, hi = float(t.min()), float(t.max())
    if lo < 0.0 or hi > 1.0:
        raise InputError(None, f"{what}: tensor values must lie in [0, 1], got {lo:.4g} to {hi:.4g}")
    return tensor_to_image(t)


def _load_array(a: np.ndarray, *, what: str, max_pixels: int) -> Image.Image:
    if a.ndim != 3 or a.shape[2] != 3:
        raise InputError(None, f"{what}: an array must have shape (H, W, 3), got {a.shape}")
    _check_pixels(what, a.shape[1], a.shape[0], max_pixels)
    if a.dtype == np.uint8:
        return Image.fromarray(np.ascontiguousarray(a))
    if not np.issubdtype(a.dtype, np.floating):
        raise InputError(None, f"{what}: an array must be uint8 or floating point, got {a.dtype}")
    if not np.isfinite(a).all():
        raise InputError(None, f"{what}: the array contains NaN or infinite values")
    lo, hi = float(a.min()), float(a.max())
    if lo < 0.0 or hi > 1.0:
        raise InputError(None, f"{what}: float array values must lie in [0, 1], got {lo:.4g} to {hi:.4g}")
    arr = np.rint(a.astype(np.float64) * 255.0).astype(np.uint8)
    return Image.fromarray(arr)


def _check_pixels(what: str, width: int, height: int, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise InputError(None, f"{what}: the image is empty ({width} x {height})")
    if width * height > max_pixels:
        raise _too_many_pixels(None, what, (width, height), max_pixels)


def _too_many_pixels(
    path: Path | None,
    what: str,
    size: tuple[int, int] | None,
    max_pixels: int,
    pillow_message: str = "",
) -> InputError:
    if size is not None:
        width, height = size
        desc = f"{width} x {height} = {width * height} pixels"
    else:
        found = re.search(r"\((\d+) pixels\)", pillow_message)
        desc = f"{found.group(1)} pixels" if found else "too many pixels"
    return InputError(path, f"{what} is {desc}, over the limit of {max_pixels}; raise it with --max-pixels")


def _header_size(path: Path) -> tuple[int, int] | None:
    """Width and height from the header of a file Pillow refused as a decompression bomb.

    Opening only parses the header, so switching Pillow's check off for it is safe; it is
    done in the scoped :func:`_pillow_limit` and undone at once.
    """
    with _pillow_limit(None, active=True), warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(path, formats=_input_formats()) as img:
                return img.size
        except Exception:  # noqa: BLE001 - only a nicer message is at stake
            return None


def _pillow_hard_limit() -> int | None:
    limit = Image.MAX_IMAGE_PIXELS
    return None if limit is None else 2 * limit


@contextlib.contextmanager
def _pillow_limit(max_pixels: int | None, *, active: bool) -> Iterator[None]:
    """Temporarily let Pillow open images of up to ``max_pixels`` (None: no limit).

    Does nothing unless ``active``. Pillow's limit is a module global, so the change is
    made under a lock and always restored; stylize then applies ``max_pixels`` itself.
    """
    if not active:
        yield
        return
    with _PILLOW_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None if max_pixels is None else -(-max_pixels // 2)
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


@functools.cache
def _input_formats() -> tuple[str, ...]:
    Image.init()
    return tuple(sorted(set(Image.OPEN) - _REFUSED_INPUT_FORMATS))


def _draft(img: JpegImagePlugin.JpegImageFile, max_side: int) -> None:
    """Ask the JPEG decoder for a reduced scale whose long side stays >= ``max_side``."""
    width, height = img.size
    long_side = max(width, height)
    if long_side < 2 * max_side:
        return
    # Pillow picks the largest scale 1/s with size // s >= the requested size on both
    # sides; requesting the proportional size keeps the long side at least max_side.
    want = (
        max(1, math.ceil(width * max_side / long_side)),
        max(1, math.ceil(height * max_side / long_side)),
    )
    img.draft(img.mode if img.mode in ("RGB", "L") else None, want)


def _exif_upright(img: Image.Image, *, in_place: bool) -> Image.Image:
    """Apply the EXIF orientation, if any; a broken EXIF block is ignored."""
    try:
        orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # noqa: BLE001 - EXIF is optional metadata; damage there is harmless
        return img
    if orientation not in (2, 3, 4, 5, 6, 7, 8):
        return img
    if in_place:
        ImageOps.exif_transpose(img, in_place=True)
        return img
    return ImageOps.exif_transpose(img)


class _ModeError(Exception):
    """An image mode that cannot be turned into RGB."""


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB (see :func:`load_image` for the rules)."""
    mode = img.mode
    if mode == "RGB" and "transparency" not in img.info:
        return img
    if mode in _SIXTEEN_BIT_MODES:
        arr = np.asarray(img).astype(np.float64)
        arr = np.clip(np.rint(arr * (255.0 / 65535.0)), 0, 255).astype(np.uint8)
        return Image.fromarray(arr).convert("RGB")
    if mode == "F":
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        scale = 255.0 if arr.size and arr.min() >= 0.0 and arr.max() <= 1.0 else 1.0
        arr = np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)
        return Image.fromarray(arr).convert("RGB")
    if mode in _ALPHA_MODES or "transparency" in img.info:
        try:
            rgba = img.convert("RGBA")
        except ValueError as e:
            raise _ModeError(f"cannot convert image mode {mode} to RGB") from e
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    try:
        return img.convert("RGB")
    except ValueError as e:
        raise _ModeError(f"cannot convert image mode {mode} to RGB") from e


# --------------------------------------------------------------------------- tensors


def image_to_tensor(img: Image.Image, device: torch.device | str | None = None, *,
                    eight_bit: bool = False) -> torch.Tensor:
    """Return ``img`` as a float32 tensor of shape (1, 3, H, W) with values in [0, 1]; with
    ``eight_bit`` as its uint8 tensor (a quarter of the memory), which :func:`to_float` turns into
    the same floats."""
    if img.mode != "RGB" or "transparency" in img.info:
        img = _to_rgb(img)
    arr = np.array(img, dtype=np.uint8)  # a writable copy, so torch does not warn
    t = torch.from_numpy(arr).permute(2, 0, 1).contiguous()  # reorder the bytes, not the floats
    if device is not None:
        t = t.to(device)
    t = t.unsqueeze(0)
    return t if eight_bit else to_float(t)


def to_float(t: torch.Tensor) -> torch.Tensor:
    """An image tensor as float32 in [0, 1]: uint8 ones divided by 255 (one float copy: an 8192 px
    image is 0.5 GB), float ones as they are."""
    return t if t.is_floating_point() else t.to(torch.float32).div_(255.0)


def tensor_to_image(t: torch.Tensor) -> Image.Image:
    """Turn a (1, 3, H, W) or (3, H, W) tensor into an RGB image.

    Values are clamped to [0, 1] (NaN becomes 0) and rounded to the nearest 8-bit level.
    """
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 3 or t.shape[0] != 3:
        raise ValueError(f"expected a tensor of shape (1, 3, H, W) or (3, H, W), got {tuple(t.shape)}")
    t = t.detach().to("cpu", torch.float32)
    t = torch.nan_to_num(t, nan=0.0).clamp_(0.0, 1.0)
    arr = t.mul_(255.0).round_().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    return Image.fromarray(arr)


# --------------------------------------------------------------------------- resizing


def resize_to_long_side(img: Image.Image, long_side: int) -> Image.Image:
    """Resize ``img`` so its longer side is ``long_side``, keeping the aspect ratio.

    Uses LANCZOS, with ``reducing_gap`` for downscales (fast and nearly identical). Each
    side stays at least 1 pixel. Returns ``img`` itself when it already has that size.
    """
    if long_side < 1:
        raise ValueError(f"long_side must be at least 1, got {long_side}")
    width, height = img.size
    current = max(width, height)
    if current == long_side:
        return img
    scale = long_side / current
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    size = (long_side, size[1]) if width >= height else (size[0], long_side)  # exact long side
    gap = 3.0 if scale < 1.0 else None
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=gap)


def resize_tensor(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize an (N, C, H, W) or (C, H, W) tensor to ``size`` = (height, width).

    Bicubic; antialiased when shrinking either side. The result is clamped to [0, 1].
    """
    height, width = (int(size[0]), int(size[1]))
    if height < 1 or width < 1:
        raise ValueError(f"size must be positive, got {size}")
    squeeze = t.dim() == 3
    if squeeze:
        t = t.unsqueeze(0)
    if t.dim() != 4:
        raise ValueError(f"expected a tensor of shape (N, C, H, W) or (C, H, W), got {tuple(t.shape)}")
    if tuple(t.shape[-2:]) == (height, width):
        out = t
    else:
        shrink = height < t.shape[-2] or width < t.shape[-1]
        out = F.interpolate(t, size=(height, width), mode="bicubic", align_corners=False, antialias=shrink)
        out = out.clamp(0.0, 1.0)
    return out.squeeze(0) if squeeze else out


# --------------------------------------------------------------------------- writing


def output_format(path: str | os.PathLike[str]) -> str:
    """The Pillow format name for ``path``'s extension, e.g. ``"JPEG"`` for ``out.jpg``.

    Raises OutputError when the extension is missing or Pillow cannot write an RGB image
    in that format (checked once per format with a tiny in-memory save).
    """
    ext = Path(path).suffix.lower()
    if not ext:
        raise OutputError(path, "no file extension; add one such as .png or .jpg")
    Image.init()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None or fmt not in Image.SAVE or not _can_write(fmt, "RGB"):
        raise OutputError(path, f"cannot write images as '{ext}'; use e.g. .png, .jpg, .webp or .tif")
    return fmt


@functools.cache
def _can_write(fmt: str, mode: str) -> bool:
    try:
        Image.new(mode, (8, 8)).save(io.BytesIO(), format=fmt, **_DEFAULT_SAVE_KWARGS.get(fmt, {}))
    except Exception:  # noqa: BLE001 - any failure means "not writable"
        return False
    return True


def check_output_path(path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Check that ``path`` can be written, before any work is done; return it as a Path.

    Raises OutputError when ``path`` is a directory, its format cannot be written, its
    directory is missing, not a directory or not writable, or it already exists and
    ``force`` is false.
    """
    p = Path(path)
    if p.is_dir():
        raise OutputError(p, "is a directory")
    output_format(p)
    parent = p.parent
    if not parent.exists():
        raise OutputError(p, f"directory {parent} does not exist")
    if not parent.is_dir():
        raise OutputError(p, f"{parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(p, f"directory {parent} is not writable")
    if (p.exists() or p.is_symlink()) and not force:
        raise OutputError(p, "already exists; pass --force to overwrite")
    return p


def save_image(img: Image.Image, path: str | os.PathLike[str], **save_kwargs: object) -> Path:
    """Write ``img`` to ``path`` atomically and return the path.

    The image goes to a temporary file in the same directory that then replaces ``path``,
    so a crash or error never leaves a half-written file; the temporary file is removed on
    any failure. JPEGs are written at quality 95 unless ``save_kwargs`` says otherwise.
    Modes the format cannot store are converted to RGB (alpha over white). A new file gets
    the usual permissions (0666 less the umask); a replaced file keeps its own.
    """
    target = Path(path)
    fmt = output_format(target)
    kwargs = {**_DEFAULT_SAVE_KWARGS.get(fmt, {}), **save_kwargs}
    if img.mode != "RGB" and not _can_write(fmt, img.mode):
        img = _to_rgb(img)
    return write_atomically(target, lambda handle: img.save(handle, format=fmt, **kwargs))


"""Uploaded images: size-limited, verified as images, stored under names the server chooses.

The bytes a visitor sends are written to ``<tmp folder>/<uuid4 hex>`` and opened with
:func:`stylize.imageio.load_image` (which checks the pixel count from the header before
decoding anything) before the upload gets an id. The client's file name is kept only as a
label; it never becomes part of a path.

Decoding costs memory in proportion to the pixels decoded, whatever the file's size (a 6 KB PNG
can claim 49 million pixels): every decode of the server holds its pixels in one
:class:`DecodeBudget`, so concurrent requests wait for each other instead of adding up, and a
JPEG is verified at a reduced scale (its decoder can skip detail; other formats cannot).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import threading
import uuid
import warnings
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import PIL.Image

from stylize.errors import InputError
from stylize.imageio import load_image

#: Long side at which an upload is verified (JPEGs are decoded at the scale that keeps this much).
VERIFY_SIDE = 512


class DecoderBusyError(Exception):
    """The server is decoding other images and this one waited too long."""


class DecodeBudget:
    """Pixels that the server's image decoders may hold at once; each decode holds its own count."""

    def __init__(self, pixels: int, timeout: float = 60.0) -> None:
        self.pixels = pixels
        self.timeout = timeout
        self._free = pixels
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        pixels = max(1, min(pixels, self.pixels))  # one image larger than the budget still gets it all
        with self._cond:
            if not self._cond.wait_for(lambda: self._free >= pixels, self.timeout):
                raise DecoderBusyError("the server is busy decoding other images; try again in a moment")
            self._free -= pixels
        try:
            yield
        finally:
            with self._cond:
                self._free += pixels
                self._cond.notify_all()

    @property
    def free(self) -> int:
        with self._cond:
            return self._free


def image_size(path: Path) -> tuple[int, int] | None:
    """Width and height from the file's header (nothing decoded), or None when it is not an image."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with PIL.Image.open(path) as image:
                return image.size
    except (OSError, ValueError, PIL.Image.DecompressionBombError, SyntaxError):
        return None


def upright(size: tuple[int, int] | None, decoded: tuple[int, int]) -> tuple[int, int]:
    """The header's ``size``, turned like the ``decoded`` image (an EXIF rotation swaps the sides)."""
    if size is None:
        return decoded
    width, height = size
    turned = decoded[0] != decoded[1] and width != height and (decoded[0] > decoded[1]) != (width > height)
    return (height, width) if turned else (width, height)


def decode_pixels(path: Path, max_side: int | None = None) -> int:
    """Pixels that decoding ``path`` takes, a JPEG at the reduced scale ``load_image(max_side=...)`` picks."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with PIL.Image.open(path) as image:
                width, height, fmt = *image.size, image.format
    except (OSError, ValueError, PIL.Image.DecompressionBombError, SyntaxError):
        return 1
    scale = 1
    if fmt == "JPEG" and max_side:
        while scale < 8 and max(width, height) // (2 * scale) >= max_side:
            scale *= 2
    return math.ceil(width / scale) * math.ceil(height / scale)


class UploadTooLargeError(Exception):
    """The upload is bigger than the server accepts."""


@dataclass(frozen=True)
class Upload:
    id: str
    path: Path
    label: str  # the client's file name, cleaned, for display only
    width: int
    height: int


def clean_label(name: str | None, fallback: str = "image") -> str:
    """A file name reduced to a short, harmless label (letters, digits, ``._-``)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name or "").name).strip("._")
    return stem[:60] or fallback


def parse_id(text: str) -> str | None:
    """The canonical hex of a uuid4 string, or None when ``text`` is not one."""
    try:
        value = uuid.UUID(text)
    except (ValueError, AttributeError, TypeError):
        return None
    return value.hex if value.version == 4 else None


class UploadStore:
    """Uploads of this server run; the oldest are forgotten (and deleted) beyond ``max_count``."""

    def __init__(self, folder: Path, *, max_bytes: int, max_pixels: int, decode: DecodeBudget,
                 max_count: int = 200) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.decode = decode
        self.max_count = max_count
        self._uploads: OrderedDict[str, Upload] = OrderedDict()
        self._lock = threading.Lock()
        folder.mkdir(parents=True, exist_ok=True)

    async def add(self, chunks: AsyncIterator[bytes], filename: str | None) -> Upload:
        """Store an upload read from ``chunks``.

        Raises UploadTooLargeError past ``max_bytes`` and InputError (without the server's path in
        the message) when the data is not an image stylize can use.
        """
        upload_id = uuid.uuid4().hex
        path = self.folder / upload_id
        label = clean_label(filename)
        size = 0
        try:
            with path.open("wb") as handle:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise UploadTooLargeError(f"{label}: over the upload limit of {self.max_bytes / 2**20:g} MiB")
                    handle.write(chunk)
            # Decoding takes a while for a large image: off the event loop.
            width, height = await asyncio.to_thread(self._verify, path, label)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        upload = Upload(upload_id, path, label, width, height)
        with self._lock:
            self._uploads[upload_id] = upload
            while len(self._uploads) > self.max_count:
                _, old = self._uploads.popitem(last=False)
                with contextlib.suppress(OSError):
                    old.path.unlink()
        return upload

    def _verify(self, path: Path, label: str) -> tuple[int, int]:
        """Decode the file through as stylize will (a JPEG at a reduced scale); its size, or InputError."""
        size = image_size(path)
        try:
            with self.decode.hold(decode_pixels(path, VERIFY_SIDE)):
                image = load_image(path, what="image", max_pixels=self.max_pixels, max_side=VERIFY_SIDE)
        except InputError as exc:
            raise InputError(None, f"{label}: {exc.problem}".replace("; raise it with --max-pixels", "")) from None
        with image:
            return upright(size, image.size)

    def get(self, upload_id: str) -> Upload | None:
        key = parse_id(upload_id) if isinstance(upload_id, str) else None
        if key is None:
            return None
        with self._lock:
            return self._uploads.get(key)

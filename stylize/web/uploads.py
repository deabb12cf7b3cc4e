"""Uploaded images: size-limited, verified as images, stored under names the server chooses.

The bytes a visitor sends are written to ``<work dir>/<uuid4 hex>`` and opened with
:func:`stylize.imageio.load_image` (which checks the pixel count from the header before
decoding anything) before the upload gets an id. The client's file name is kept only as a
label; it never becomes part of a path.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from stylize.errors import InputError
from stylize.imageio import load_image


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

    def __init__(self, folder: Path, *, max_bytes: int, max_pixels: int, max_count: int = 200) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
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
        """Decode the file completely as stylize will; its size, or InputError naming ``label``."""
        try:
            image = load_image(path, what="image", max_pixels=self.max_pixels)
        except InputError as exc:
            raise InputError(None, f"{label}: {exc.problem}".replace("; raise it with --max-pixels", "")) from None
        with image:
            return image.size

    def get(self, upload_id: str) -> Upload | None:
        key = parse_id(upload_id) if isinstance(upload_id, str) else None
        if key is None:
            return None
        with self._lock:
            return self._uploads.get(key)

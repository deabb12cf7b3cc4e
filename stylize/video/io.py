"""Reading and writing clips: video files through PyAV (FFmpeg's libraries), or folders of frames.

* :func:`open_clip` checks an input before any work is done (a missing, empty, unreadable or
  non-video file is an :class:`~stylize.errors.InputError` with a one-line message) and returns a
  :class:`Clip` whose :meth:`Clip.frames` decodes one frame at a time (memory stays flat).
* :class:`FrameFolder` holds the finished frames as PNG files, each written atomically as soon as
  it is done; it is the output for a folder target and the resumable work folder for a video one.
* :func:`write_video` muxes finished frames into a video at the input's frame rate, with the
  input's audio stream copied (not re-encoded), atomically.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any, BinaryIO

import numpy as np
import PIL.Image

from stylize.atomic import write_atomically, write_text_atomically
from stylize.errors import InputError, OutputError, StylizeError
from stylize.imageio import DEFAULT_MAX_PIXELS, load_image, save_image

#: Output containers by suffix: (FFmpeg muxer, video encoder, pixel format).
VIDEO_FORMATS = {
    ".mp4": ("mp4", "libx264", "yuv420p"), ".m4v": ("mp4", "libx264", "yuv420p"),
    ".mov": ("mov", "libx264", "yuv420p"), ".mkv": ("matroska", "libx264", "yuv420p"),
    ".webm": ("webm", "libvpx-vp9", "yuv420p"), ".gif": ("gif", "gif", "pal8"),
    ".avi": ("avi", "mpeg4", "yuv420p"),
}
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
DEFAULT_FPS = Fraction(25)
ENCODER_OPTIONS = {"libx264": {"crf": "18", "preset": "medium"}, "libvpx-vp9": {"crf": "30", "b": "0"}}
AUDIO_ENCODERS = {"webm": ("libopus", 48000)}  # when the input's audio codec cannot be copied into the container
EXTRAS = {"av": "av", "cv2": "opencv-python-headless"}  # module -> PyPI package of the video extra


class MissingExtraError(StylizeError):
    """A module of the ``video`` extra is not installed."""


def require(module: str) -> ModuleType:
    """Import a module of the ``video`` extra, or say in one line how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(
            f"stylize video needs {EXTRAS.get(module, module)}, which is not installed: "
            "pip install 'stylize[video]'") from None


def require_extra() -> None:
    """Check that the whole ``video`` extra is installed (before any work is done)."""
    for module in EXTRAS:
        require(module)


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


@dataclass
class Clip:
    """An input clip: a video file or a folder of frames."""

    path: Path
    is_folder: bool
    fps: Fraction
    count: int | None  # frames, when the container says (an estimate from the duration otherwise)
    size: tuple[int, int]  # (width, height) of the frames
    has_audio: bool = False
    files: list[Path] = field(default_factory=list)  # frame files of a folder, in order
    max_pixels: int = DEFAULT_MAX_PIXELS

    def frame_name(self, index: int) -> str:
        """File name of output frame ``index`` (from 0): the input's name for a folder of frames."""
        if self.is_folder:
            return self.files[index].stem + ".png"
        digits = max(6, len(str(self.count or 0)))
        return f"frame_{index + 1:0{digits}d}.png"

    def frames(self) -> Iterator[PIL.Image.Image]:
        """The frames as RGB images, decoded one at a time."""
        if self.is_folder:
            for file in self.files:
                yield load_image(file, what="frame", max_pixels=self.max_pixels)
            return
        av = require("av")
        with _open_container(self.path) as container:
            index = 0
            try:
                for frame in container.decode(video=0):
                    index += 1
                    yield frame.to_image().convert("RGB")
            except av.error.FFmpegError as exc:
                raise InputError(self.path, f"frame {index + 1} cannot be decoded ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).split(":")[0].strip() or exc.__class__.__name__


def _open_container(path: Path) -> Any:
    av = require("av")
    try:
        return av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not a readable video ({_reason(exc)})") from None


def open_clip(path: str | Path, *, fps: float | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> Clip:
    """Check and describe an input clip (decodes its first frame); raises InputError."""
    path = Path(path)
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and p.is_file()),
                       key=lambda p: _natural_key(p.name))
        if not files:
            raise InputError(path, f"no frames in this folder (image files: {', '.join(FRAME_SUFFIXES)})")
        first = load_image(files[0], what="frame", max_pixels=max_pixels)
        return Clip(path, True, Fraction(fps or DEFAULT_FPS).limit_denominator(1001), len(files), first.size,
                    files=files, max_pixels=max_pixels)
    if not path.exists():
        raise InputError(path, "no such file or folder")
    if path.stat().st_size == 0:
        raise InputError(path, "is empty")
    return _probe_video(path, fps, max_pixels)


def _probe_video(path: Path, fps: float | None, max_pixels: int) -> Clip:
    av = require("av")
    with _open_container(path) as container:
        if not container.streams.video:
            raise InputError(path, "has no video stream")
        stream = container.streams.video[0]
        try:
            first = next(container.decode(video=0), None)
        except av.error.FFmpegError as exc:
            raise InputError(path, f"not a readable video ({_reason(exc)})") from None
        if first is None:
            raise InputError(path, "has no frames")
        rate = Fraction(fps) if fps else (stream.average_rate or stream.guessed_rate or DEFAULT_FPS)
        count = stream.frames or None
        if count is None and container.duration:
            count = max(1, round(container.duration / 1_000_000 * float(rate)))
        size = (first.width, first.height)
        if max_pixels and size[0] * size[1] > max_pixels:
            raise InputError(path, f"frames of {size[0]}x{size[1]} pixels are above --max-pixels ({max_pixels})")
        return Clip(path, False, Fraction(rate).limit_denominator(1001), count, size,
                    has_audio=bool(container.streams.audio), max_pixels=max_pixels)


def is_video_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_FORMATS


class FrameFolder:
    """Finished frames as PNG files in a folder, with the run's settings beside them.

    ``manifest.json`` records what the frames were made from; a rerun with other settings is
    refused (or, with ``force``, starts over) so that frames of two runs are never mixed.
    """

    MANIFEST = "stylize-video.json"

    def __init__(self, folder: Path, name: Callable[[int], str], count: int | None) -> None:
        self.folder = folder
        self.name = name
        self.count = count

    def path(self, index: int) -> Path:
        return self.folder / self.name(index)

    def finished(self) -> int:
        """How many frames from the first on are already written (frames are written in order)."""
        done = 0
        while (self.count is None or done < self.count) and self.path(done).is_file():
            done += 1
        return done

    def prepare(self, settings: dict[str, Any], *, force: bool) -> int:
        """Create the folder or check its manifest; returns the number of finished frames."""
        manifest = self.folder / self.MANIFEST
        wanted = json.loads(json.dumps(settings, default=str))
        if self.folder.exists() and not self.folder.is_dir():
            raise OutputError(self.folder, "is not a folder")
        if not self.folder.exists():
            if not self.folder.parent.is_dir():
                raise OutputError(self.folder, f"its folder {self.folder.parent} does not exist")
            try:
                self.folder.mkdir()
            except OSError as exc:
                raise OutputError(self.folder, f"cannot create ({exc.strerror or exc})") from None
        elif manifest.is_file() and not force:
            try:
                previous = json.loads(manifest.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError):
                previous = None
            if previous != wanted:
                raise OutputError(self.folder, "holds frames of a run with other settings; pass --force to "
                                  "start over")
        elif not manifest.is_file() and self.path(0).exists() and not force:
            raise OutputError(self.folder, "already holds frames that stylize did not make; pass --force to "
                              "overwrite them")
        if force:
            self._remove_frames()
        write_text_atomically(manifest, json.dumps(wanted, indent=1, sort_keys=True))
        return self.finished()

    def _remove_frames(self) -> None:
        index = 0
        while self.path(index).is_file():
            self.path(index).unlink()
            index += 1

    def remove(self) -> None:
        """Delete the frames, the manifest and the folder (when nothing else is in it)."""
        self._remove_frames()
        (self.folder / self.MANIFEST).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.folder.rmdir()

    def write(self, index: int, image: PIL.Image.Image) -> Path:
        return save_image(image, self.path(index))

    def read(self, index: int) -> PIL.Image.Image:
        return load_image(self.path(index), what="finished frame")

    def images(self, count: int) -> Iterator[PIL.Image.Image]:
        """The first ``count`` finished frames, read one at a time."""
        for index in range(count):
            yield self.read(index)


def write_video(frames: Iterable[PIL.Image.Image], output: Path, fps: Fraction, *, audio_from: Path | None = None
                ) -> Path:
    """Encode ``frames`` (read one at a time) into ``output`` atomically at ``fps``, with the audio
    stream of the video ``audio_from`` copied (cut at the end of the frames) when it has one."""
    muxer, _, _ = VIDEO_FORMATS[output.suffix.lower()]
    return write_atomically(output, lambda handle: _mux(handle, muxer, iter(frames), output, fps, audio_from))


def _mux(handle: BinaryIO, muxer: str, frames: Iterator[PIL.Image.Image], output: Path, fps: Fraction,
         audio_from: Path | None) -> None:
    av = require("av")
    _, codec, pix_fmt = VIDEO_FORMATS[output.suffix.lower()]
    first = next(frames, None)
    if first is None:
        raise OutputError(output, "no frames to write")
    even = pix_fmt == "yuv420p"  # 4:2:0 chroma needs even sides: drop the last row/column if odd
    width, height = (first.width // 2 * 2, first.height // 2 * 2) if even else first.size
    source = _open_container(audio_from) if audio_from is not None and muxer != "gif" else None
    count = 0
    try:
        with av.open(handle, "w", format=muxer) as out:
            stream = out.add_stream(codec, rate=fps, options=ENCODER_OPTIONS.get(codec, {}))
            stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
            audio = _audio_stream(out, source, muxer) if source and source.streams.audio else None
            for image in itertools.chain([first], frames):
                count += 1
                frame = _video_frame(image.convert("RGB").crop((0, 0, width, height)), pix_fmt, av)
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
            if audio is not None:
                _copy_audio(out, source, audio, count / Fraction(fps))
    except av.error.FFmpegError as exc:
        raise OutputError(output, f"cannot write the video ({_reason(exc)})") from None
    finally:
        if source is not None:
            source.close()


def _video_frame(image: PIL.Image.Image, pix_fmt: str, av: ModuleType) -> Any:
    if pix_fmt != "pal8":
        return av.VideoFrame.from_image(image)
    quantized = image.quantize(256, dither=PIL.Image.Dither.FLOYDSTEINBERG)
    palette = np.zeros((256, 4), np.uint8)
    colors = np.asarray(quantized.getpalette(), np.uint8).reshape(-1, 3)[:256]
    palette[:, 0], palette[: len(colors), 1:] = 255, colors  # ARGB
    return av.VideoFrame.from_ndarray((np.asarray(quantized), palette), format="pal8")


def _audio_stream(out: Any, source: Any, muxer: str) -> tuple[Any, bool]:
    """The output's audio stream: a copy of the input's, or (a codec the container refuses, such
    as AAC in WebM) an encoder for the container's usual codec; and whether it re-encodes."""
    template = source.streams.audio[0]
    try:
        return out.add_stream_from_template(template), False
    except ValueError:
        codec, rate = AUDIO_ENCODERS.get(muxer, ("aac", template.rate))
        return out.add_stream(codec, rate=rate, layout=template.layout.name), True


def _copy_audio(out: Any, source: Any, audio: tuple[Any, bool], seconds: Fraction) -> None:
    """The input's audio up to the end of the written frames: packets copied, or re-encoded."""
    stream, encode = audio
    for packet in source.demux(source.streams.audio[0]):
        if packet.dts is None:
            continue
        if packet.pts is not None and packet.time_base is not None and packet.pts * packet.time_base > seconds:
            break
        if not encode:
            packet.stream = stream
            out.mux(packet)
            continue
        for frame in packet.decode():
            frame.pts = None  # the encoder counts samples at its own rate
            for encoded in stream.encode(frame):
                out.mux(encoded)
    if encode:
        for encoded in stream.encode():
            out.mux(encoded)

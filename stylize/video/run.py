"""The per-frame loop of :func:`video`: resumable, streamed, with a per-frame callback."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch

from stylize.api import ImageSource, Progress, Result, transfer
from stylize.backbone import Backbone
from stylize.errors import InputError, OptionError, OutputError, StopTransfer
from stylize.imageio import resize_to_long_side
from stylize.loss.temporal import temporal_term
from stylize.network import load_network
from stylize.options import Options
from stylize.pyramid import scale_sizes, scale_steps
from stylize.video import flow as flows
from stylize.video.io import VIDEO_FORMATS, Clip, FrameFolder, is_video_path, open_clip, require_extra, write_video

#: Weight of the temporal loss; chosen with bench/bench_video.py (docs/video.md).
DEFAULT_TEMPORAL_WEIGHT = 200.0


@dataclass
class FrameProgress:
    """What the per-frame callback receives before (``event="start"``) and after (``"done"``) each frame."""

    index: int  # the frame, from 1
    count: int | None  # frames of the clip (None when the container does not say)
    seconds: float  # time this frame took (0 at "start")
    elapsed: float  # seconds since this run started
    eta: float | None  # seconds left at the pace of the later frames so far (None until one is done)
    path: Path  # where the frame is written
    result: Result | None  # "done": the frame's transfer result (image, per-step history, stop reason)
    resumed: int = 0  # frames that were already done when this run started
    event: str = "done"


@dataclass
class VideoResult:
    """The outcome of :func:`video`."""

    output: Path  # the video, or the folder of frames
    frames_dir: Path  # where the frames are (removed after a complete video unless keep_frames)
    done: int  # finished frames
    count: int | None
    frame_seconds: list[float] = field(default_factory=list)  # time of each frame made by this run
    interrupted: bool = False
    muxed: bool = False  # whether ``output`` (a video) was written

    @property
    def complete(self) -> bool:
        return self.count is not None and self.done >= self.count


@dataclass
class _Plan:
    clip: Clip
    output: Path
    frames: FrameFolder
    to_video: bool


def _plan(source: str | Path, output: str | Path, *, fps: float | None, force: bool, finish: bool,
          max_pixels: int, frames_limit: int | None) -> _Plan:
    output = Path(output)
    if output.suffix and not is_video_path(output) and not output.is_dir():
        raise OutputError(output, f"give a folder for PNG frames or a video file ({', '.join(VIDEO_FORMATS)})")
    clip = open_clip(source, fps=fps, max_pixels=max_pixels)  # a bad input fails here, before any output
    if frames_limit is not None:
        clip.count = min(frames_limit, clip.count) if clip.count else frames_limit
    if is_video_path(output):
        if output.is_dir():
            raise OutputError(output, "is a folder")
        if output.exists() and not (force or finish):
            raise OutputError(output, "already exists; pass --force to overwrite")
        if not output.parent.is_dir():
            raise OutputError(output, f"directory {output.parent} does not exist")
        folder = output.with_name(f"{output.stem}_frames")
    else:
        folder = output
    return _Plan(clip, output, FrameFolder(folder, clip.frame_name, clip.count), is_video_path(output))


def _describe(value: Any) -> Any:
    """A JSON-able stand-in for an input in the run's manifest (paths as given, images by size)."""
    if isinstance(value, (str, Path)):
        return str(Path(value).resolve())
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    if isinstance(value, PIL.Image.Image):
        return f"image {value.size} {value.tobytes()[:64].hex()}"
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return f"array {tuple(value.shape)} {float(value.sum()):.6g}"
    return value


@dataclass
class _Temporal:
    """How later frames are tied to earlier ones (Ruder et al.): flow quality, weight, frame distances."""

    weight: float
    quality: str
    distances: tuple[int, ...]  # 1 (the previous frame), plus the long-term ones

    def inputs(self, frame: np.ndarray, history: Sequence[tuple[np.ndarray, PIL.Image.Image]]
               ) -> tuple[torch.Tensor | None, list[Any]]:
        """The start image (previous output warped into this frame) and one term per distance.

        Long-term masks (Ruder et al. eq. 5) keep only pixels that no nearer frame already covers."""
        init, terms, covered = None, [], np.zeros(frame.shape, np.float32)
        for j in self.distances:
            if j > len(history):
                break
            before, output = history[-j]
            backward = flows.flow(frame, before, self.quality)
            mask = flows.consistency_mask(backward, flows.flow(before, frame, self.quality))
            warped = flows.warp(np.asarray(output, np.float32) / 255, backward)
            warped = torch.from_numpy(warped).permute(2, 0, 1)[None].contiguous()
            init = warped if init is None else init
            if self.weight > 0:
                long_mask = torch.from_numpy(np.clip(mask - covered, 0, 1))[None, None]
                terms.append(temporal_term(warped, long_mask, self.weight, "temporal" if j == 1 else f"temporal_{j}"))
            covered = covered + mask
        return init, terms


def _frame_loop(plan: _Plan, styles: list[Any], options: dict[str, Any], backbone: Backbone, method: _Temporal,
                done: int, callback: Callable[[Progress], None] | None,
                frame_callback: Callable[[FrameProgress], None] | None, frame_steps: int,
                size: int) -> tuple[int, list[float], bool]:
    """Stylize frames ``done``... in order; returns (finished frames, seconds of each, interrupted)."""
    history: deque[tuple[np.ndarray, PIL.Image.Image]] = deque(maxlen=max(method.distances))
    seconds: list[float] = []
    start = time.perf_counter()
    later = {**options, "steps": frame_steps, "scales": "1"}
    for index, frame in enumerate(plan.clip.frames()):
        if plan.clip.count is not None and index >= plan.clip.count:
            break
        frame = resize_to_long_side(frame, size)
        if index < done:  # resuming: only the last frames' inputs and outputs are needed
            if index >= done - history.maxlen:  # type: ignore[operator]
                history.append((flows.gray(frame), plan.frames.read(index)))
            continue
        began = time.perf_counter()
        report = _reporter(frame_callback, plan, index, done, start, seconds)
        try:
            report("start", None)
            init, terms = method.inputs(flows.gray(frame), history) if history else (None, [])
            # The first frame: a normal coarse-to-fine transfer. The next ones: one scale at the
            # output size, started from the warped previous output, with the temporal terms.
            result = transfer(frame, styles, callback=callback, backbone=backbone, init_image=init,
                              extra_terms=terms, **(later if init is not None else options))
            if result.interrupted:  # an unfinished frame is not written
                return index, seconds, True
            plan.frames.write(index, result.image)
            history.append((flows.gray(frame), result.image))
            seconds.append(time.perf_counter() - began)
            report("done", result)
        except (KeyboardInterrupt, StopTransfer):
            return plan.frames.finished(), seconds, True
    return plan.frames.finished(), seconds, False


def _reporter(frame_callback: Callable[[FrameProgress], None] | None, plan: _Plan, index: int, done: int,
              start: float, seconds: list[float]) -> Callable[[str, Result | None], None]:
    def report(event: str, result: Result | None) -> None:
        if frame_callback is None:
            return
        later = seconds[1:] if len(seconds) > 1 else seconds
        left = plan.clip.count - index - (event == "done") if plan.clip.count is not None else None
        eta = None if left is None or not later else left * float(np.mean(later))
        frame_callback(FrameProgress(index + 1, plan.clip.count, seconds[-1] if event == "done" else 0.0,
                                     time.perf_counter() - start, eta, plan.frames.path(index), result, done, event))

    return report


def video(
    source: str | Path,
    style: ImageSource | Sequence[ImageSource],
    output: str | Path,
    *,
    temporal_weight: float = DEFAULT_TEMPORAL_WEIGHT,
    flow: str = "medium",
    frame_steps: int | None = None,
    long_term: Sequence[int] = (),
    fps: float | None = None,
    frames: int | None = None,
    force: bool = False,
    finish: bool = False,
    keep_frames: bool = False,
    callback: Callable[[Progress], None] | None = None,
    frame_callback: Callable[[FrameProgress], None] | None = None,
    backbone: Backbone | None = None,
    download_progress: Callable[[int, int], None] | None = None,
    **options: Any,
) -> VideoResult:
    """Stylize a clip frame by frame with temporal consistency (Ruder, Dosovitskiy & Brox, 2016).

    Args:
        source: a video file (mp4, mov, webm, gif ...) or a folder of frames.
        style: the artwork(s), as for :func:`stylize.transfer`.
        output: a video file (same frame rate as the input, its audio copied), or a folder for
            PNG frames named like the input's. Frames of a video output are kept in
            ``<stem>_frames`` next to it until the video is written.
        temporal_weight: weight of the temporal loss (0: frame by frame from the warped start).
        flow: optical flow quality, ``fast``, ``medium`` or ``accurate``.
        frame_steps: most steps of each frame after the first, at one scale (default
            :func:`default_frame_steps`: 14 at 256 px, 8 at 512 px with the default ``steps``).
        long_term: further frame distances for long-term terms, e.g. ``(2, 4)``.
        fps: frame rate for a folder of frames (default 25); frames: stylize only the first N.
        force: start over and overwrite; finish: only write the video from the frames done.
        callback: per-step :class:`stylize.Progress` inside each frame; frame_callback: a
            :class:`FrameProgress` after each finished frame (raise StopTransfer to stop).
        **options: any option of :func:`stylize.transfer`; it applies to every frame.

    A rerun with the same settings continues after the last finished frame. Ctrl-C returns
    with ``interrupted`` set, keeping the finished frames.
    """
    require_extra()  # a missing extra is one line, before anything else
    opts = Options.from_kwargs(**options)
    _check(flow, temporal_weight, frame_steps, long_term, frames)
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    if not styles:
        raise OptionError("give at least one style image")
    plan = _plan(source, output, fps=fps, force=force, finish=finish, max_pixels=opts.max_pixels, frames_limit=frames)
    method = _Temporal(temporal_weight, flow, tuple(sorted({1, *long_term})))
    steps = frame_steps or default_frame_steps(opts)
    manifest = {"source": _describe(source), "styles": _describe(styles), "options": _describe(options),
                "temporal_weight": temporal_weight, "flow": flow, "frame_steps": steps, "long_term": method.distances}
    done = plan.frames.prepare(manifest, force=force and not finish)
    result = VideoResult(plan.output, plan.frames.folder, done, plan.clip.count)
    if not finish:
        backbone = backbone if backbone is not None else load_network(opts, progress=download_progress)
        result.done, result.frame_seconds, result.interrupted = _frame_loop(
            plan, styles, options, backbone, method, done, callback, frame_callback, steps, opts.size)
        if not result.interrupted and (result.count is None or result.done < result.count):
            result.count = result.done  # the container's frame count was an estimate
    if plan.to_video and (finish or result.complete):
        if result.done == 0:
            raise InputError(plan.frames.folder, "no finished frames to write")
        write_video(plan.frames.images(result.done), plan.output, plan.clip.fps,
                    audio_from=plan.clip.path if plan.clip.has_audio else None)
        result.muxed = True
        if result.complete and not keep_frames:
            plan.frames.remove()
    return result


#: Later frames get this share of the first frame's work (in steps at the output size), so that with
#: the flows and targets each costs at most about half the first (BENCHMARKS: bench_video.py).
LATER_FRAME_WORK = 0.4


def default_frame_steps(opts: Options) -> int:
    """Steps of each later frame: :data:`LATER_FRAME_WORK` of the first frame's coarse-to-fine work
    counted in output-size steps (a step at half the size costs a quarter). The defaults give 14 at
    256 px (48 + 24 steps at 128 and 256 px), 8 at 512 px (48 + 24 + 12), at least 4 (2048 px and above,
    where the first frame's own schedule is cheap per output pixel)."""
    sizes = scale_sizes(opts.scales, opts.size)
    work = sum(n * (s / sizes[-1]) ** 2 for n, s in zip(scale_steps(opts.steps, sizes), sizes, strict=True))
    return max(4, round(LATER_FRAME_WORK * work))


def _check(flow: str, temporal_weight: float, frame_steps: int | None, long_term: Sequence[int],
           frames: int | None) -> None:
    if flow not in flows.FLOW_QUALITIES:
        raise OptionError(f"--flow: {flow!r} is not one of {', '.join(flows.FLOW_QUALITIES)}")
    if not temporal_weight >= 0:
        raise OptionError("--temporal-weight: must not be negative")
    if frame_steps is not None and (not isinstance(frame_steps, int) or frame_steps < 1):
        raise OptionError(f"--frame-steps: must be a positive whole number, got {frame_steps!r}")
    if any(not isinstance(j, int) or j < 2 for j in long_term):
        raise OptionError("--long-term: frame distances must be whole numbers of at least 2")
    if frames is not None and (not isinstance(frames, int) or frames < 1):
        raise OptionError(f"--frames: must be a positive whole number, got {frames!r}")

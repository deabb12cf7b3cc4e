"""``stylize video IN STYLE [STYLE ...] -o OUT``: a clip with temporal consistency, frame by frame."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tqdm import tqdm

from stylize.cli.common import EXIT_INTERRUPTED, ArgumentParser, add_option_flags, option_values
from stylize.cli.main_command import ProgressBar, _download_bar

EPILOG = """examples:
  stylize video clip.mp4 painting.jpg -o out.mp4 --size 512
  stylize video frames/ painting.jpg -o styled/ --fps 24 --temporal-weight 400 --flow accurate
  stylize video clip.mp4 painting.jpg -o out.mp4 --finish      (write the video from the frames done so far)

The first frame is a normal transfer; each next frame starts from the previous output warped by
optical flow and is held to it where the flow is reliable (Ruder et al. 2016). Frames are written
as they finish (into OUT_frames/ for a video); the same command continues an interrupted run.
Every option of the main command applies to each frame.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="stylize video", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
                            description="Stylize a video or a folder of frames without flicker.")
    parser.add_argument("input", help="a video file (mp4, mov, webm, gif ...) or a folder of frames")
    parser.add_argument("style", nargs="+", help="one or more style images (artworks)")
    parser.add_argument("-o", "--output", required=True,
                        help="a video file (same frame rate, audio copied) or a folder for PNG frames")
    video = parser.add_argument_group("video")
    video.add_argument("--temporal-weight", type=float, default=None, metavar="W",
                       help="weight of the temporal loss: higher is steadier (default 200; 0 = no temporal loss)")
    video.add_argument("--flow", choices=("fast", "medium", "accurate"), default="medium",
                       help="optical flow quality (default medium)")
    video.add_argument("--frame-steps", type=int, metavar="N",
                       help="most steps of each frame after the first, at one scale (default: 0.4 of the first "
                       "frame's work: 14 at 256 px, 8 at 512 px)")
    video.add_argument("--long-term", metavar="J,...", type=_distances, default=(),
                       help="also hold each frame to the frames J back, e.g. 2,4 (long-term consistency)")
    video.add_argument("--fps", type=float, metavar="F", help="frame rate of a folder of frames (default 25)")
    video.add_argument("--frames", type=int, metavar="N", help="stylize only the first N frames")
    video.add_argument("--finish", action="store_true",
                       help="do not stylize more: write the video from the frames finished so far")
    video.add_argument("--keep-frames", action="store_true", help="keep OUT_frames/ after writing the video")
    video.add_argument("--force", action="store_true", help="start over and overwrite the output")
    video.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    add_option_flags(parser, given_only=True)
    return parser


def _distances(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--long-term: {text!r} is not a comma list of frame counts") from None


class FrameBars:
    """A bar over the frames with ETA, and under it the usual per-step bar of the frame being made."""

    def __init__(self, quiet: bool, output: Any) -> None:
        self.quiet, self.output = quiet, output
        self.frames: tqdm | None = None
        self.steps: ProgressBar | None = None

    def step(self, progress: Any) -> None:
        if self.steps is None:
            self.steps = ProgressBar(self.quiet, 0, self.output)
        self.steps(progress)

    def frame(self, progress: Any) -> None:
        self.close_steps()
        if self.quiet:
            return
        if self.frames is None:
            self.frames = tqdm(total=progress.count, initial=progress.resumed, unit="frame", file=sys.stderr,
                               dynamic_ncols=True, desc="frames", position=0,
                               bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} {elapsed}{postfix}")
        eta = f" ETA {tqdm.format_interval(progress.eta)}" if progress.eta is not None else ""
        last = f", last {progress.seconds:.1f} s" if progress.event == "done" else ""
        self.frames.set_postfix_str(f"frame {progress.index}{last}{eta}", refresh=False)
        self.frames.update(progress.index - (progress.event == "start") - self.frames.n)

    def close_steps(self) -> None:
        if self.steps is not None:
            self.steps.close()
            self.steps = None

    def close(self) -> None:
        self.close_steps()
        if self.frames is not None:
            self.frames.close()


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from stylize.video import video
    from stylize.video.run import DEFAULT_TEMPORAL_WEIGHT

    bars = FrameBars(args.quiet, args.output)
    try:
        result = video(
            args.input, args.style, args.output, flow=args.flow, frame_steps=args.frame_steps,
            temporal_weight=DEFAULT_TEMPORAL_WEIGHT if args.temporal_weight is None else args.temporal_weight,
            long_term=args.long_term, fps=args.fps, frames=args.frames, force=args.force, finish=args.finish,
            keep_frames=args.keep_frames, callback=bars.step, frame_callback=bars.frame,
            download_progress=_download_bar(args.quiet), **option_values(args))
    finally:
        bars.close()
    if result.interrupted:
        print(f"stopped after {result.done} frame(s) in {result.frames_dir}; run the same command again to "
              "continue" + (", or add --finish to write the video from them" if result.output != result.frames_dir
                            else ""), file=sys.stderr)
        return EXIT_INTERRUPTED
    what = result.output if result.muxed or result.output == result.frames_dir else result.frames_dir
    seconds = sum(result.frame_seconds)
    print(f"wrote {what} ({result.done} frames; {len(result.frame_seconds)} stylized now in {seconds:.0f} s)")
    return 0

"""``stylize CONTENT STYLE [STYLE ...] -o OUT``: one style transfer with a progress bar."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from stylize.api import Progress, Result, transfer
from stylize.cli.common import EXIT_INTERRUPTED, ArgumentParser, add_option_flags, option_values
from stylize.cli.files import check_log_path, write_log
from stylize.imageio import check_output_path, save_image
from stylize.optimize import STOP_REASONS

EPILOG = """examples:
  stylize photo.jpg painting.jpg -o out.png
  stylize photo.jpg painting.jpg -o big.png --size 1024 --style-weight 30
  stylize photo.jpg a.jpg b.jpg --style-blend 0.7,0.3 -o blend.png
  stylize photo.jpg painting.jpg -o out.png --preserve-color luminance --strength 7 --style-scale 1.5
  stylize photo.jpg sky.jpg ground.jpg --mask regions.png -o out.png   (see: stylize presets)

other commands: stylize weights (list / fetch the VGG weights); stylize presets (list the
--preset values); stylize COMMAND --help
"""


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="stylize",
        description="Repaint a photo in the style of an artwork (Gatys et al. neural style transfer).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("content", help="the photo to repaint")
    parser.add_argument("style", nargs="+", help="one or more style images (artworks)")
    parser.add_argument("-o", "--output", required=True, help="where to write the result (.png, .jpg, .webp ...)")
    parser.add_argument("--force", action="store_true", help="overwrite the output file if it exists")
    parser.add_argument("--log", metavar="FILE", help="write the loss of every step to FILE.csv or FILE.json")
    parser.add_argument("--plot", metavar="PNG", help="draw the loss curves into PNG at the end")
    parser.add_argument("--save-every", type=int, metavar="N", default=0,
                        help="also write the best image so far every N steps (OUT_stepNNNNN.png)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_option_flags(parser, given_only=True)  # only explicit flags reach transfer(), so presets apply
    return parser


class ProgressBar:
    """A tqdm bar over the planned work (pixels x steps, so later, larger scales weigh more)."""

    UNITS = 1000

    def __init__(self, quiet: bool, save_every: int, output: Path) -> None:
        self.quiet = quiet
        self.bar: tqdm | None = None  # drawn at the first step, so that an early error stays one line
        self.save_every = save_every
        self.output = output
        self.steps = 0
        self.restores = 0

    def __call__(self, p: Progress) -> None:
        self.steps += 1
        self.restores += p.event == "restored"
        if self.save_every and self.steps % self.save_every == 0:
            save_image(p.image, self.output.with_name(f"{self.output.stem}_step{self.steps:05d}{self.output.suffix}"))
        if self.quiet:
            return
        if self.bar is None:
            self.bar = tqdm(total=self.UNITS, unit="‰", file=sys.stderr, dynamic_ncols=True,
                            bar_format="{l_bar}{bar}| {elapsed}<{remaining}{postfix}")
        tile = f" tile {p.tile}/{p.num_tiles}" if p.num_tiles else ""
        self.bar.set_description(f"scale {p.scale}/{p.num_scales} {p.size[0]}x{p.size[1]}{tile} step {p.step}", False)
        eta = f" ETA {tqdm.format_interval(p.eta)}" if p.num_tiles and p.eta is not None else ""  # whole run
        self.bar.set_postfix_str(
            f"content {p.losses['content']:.3g} style {p.losses['style']:.3g}"
            + (f" restores {self.restores}" if self.restores else "") + eta, refresh=False)
        self.bar.update(round(p.fraction * self.UNITS) - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _download_bar(quiet: bool):  # noqa: ANN202
    state: dict[str, tqdm] = {}

    def progress(done: int, total: int) -> None:
        if quiet:
            return
        if "bar" not in state:
            state["bar"] = tqdm(total=total or None, unit="B", unit_scale=True, desc="downloading weights",
                                file=sys.stderr)
        state["bar"].update(done - state["bar"].n)
        if total and done >= total:
            state["bar"].close()

    return progress


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    output = check_output_path(args.output, force=args.force)
    if args.log:
        check_log_path(args.log)
    if args.plot:
        check_output_path(args.plot, force=True)
    bar = ProgressBar(args.quiet, args.save_every, output)
    try:
        result = transfer(args.content, args.style, callback=bar,
                          download_progress=_download_bar(args.quiet), **option_values(args))
    finally:
        bar.close()
    save_image(result.image, output)
    print(f"wrote {output} ({result.image.width}x{result.image.height}, {len(result.history)} steps over "
          f"{len(result.stop_reasons)} scale(s), {result.seconds:.0f} s; {STOP_REASONS[result.stop_reason]})")
    _write_extras(args, result)
    return EXIT_INTERRUPTED if result.stop_reason == "interrupted" else 0


def _write_extras(args: argparse.Namespace, result: Result) -> None:
    if args.log:
        write_log(args.log, result.history, result.settings, result.stop_reasons)
        print(f"wrote {args.log}")
    if args.plot:
        from stylize.plot import plot_histories

        name = Path(args.output).stem
        plot_histories({name: result.history}, args.plot, stop_reasons={name: result.stop_reasons},
                       steps={name: result.settings.get("steps")})
        print(f"wrote {args.plot}")

"""Temporal consistency and speed of ``stylize video`` against frame-by-frame stylization.

    flock /tmp/stylize-bench.lock python bench/bench_video.py                    # 3 clips, 48 frames, 256 px
    flock /tmp/stylize-bench.lock python bench/bench_video.py --frames 12 --speed 512
    python bench/bench_video.py --memory 300                                     # RSS over a 300-frame clip

Clips are filmed from ../shared photos by a known camera motion (stylize.video.synthetic), so the
true optical flow is known. Each clip is stylized twice with the real offline VGG-16 and the same
style: frame by frame (every frame a full default transfer from the content) and by
:func:`stylize.video.video` (warm start + temporal loss). For each method the table gives the warp
error (mean absolute difference, 0-255, between a stylized frame and the previous stylized frame
warped by the true flow, over pixels visible in both frames), the style loss of every output frame
(one evaluator for both methods), and seconds per frame. ``--plot`` draws the per-frame warp error,
``--gif`` writes the first clip side by side (frame by frame | temporal) as an animated GIF.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch

from stylize import transfer
from stylize.api import style_long_side
from stylize.backbone import Backbone, load_backbone, tiny_backbone
from stylize.imageio import image_to_tensor, load_image, resize_to_long_side
from stylize.loss import GramLoss
from stylize.options import PAPER_STYLE_LAYERS
from stylize.video import video
from stylize.video.flow import inside, warp
from stylize.video.io import write_video
from stylize.video.synthetic import CameraClip, CameraMotion

IMAGES = Path(__file__).resolve().parents[1] / ".." / "shared" / "images"
CLIPS = [  # photo, camera motion per frame (pan in frame pixels at 256 px, zoom factor)
    ("content/forest_stream.jpg", CameraMotion((1.5, 0.0), 1.004)),
    ("content/street_canal_colorful_houses.jpg", CameraMotion((-1.0, 0.6), 1.0)),
    ("content/coast_golden_gate_fog.jpg", CameraMotion((0.8, -0.4), 0.996)),
]
STYLE = "style/van_gogh_starry_night.jpg"


def make_clip(photo: str, motion: CameraMotion, long_side: int, count: int) -> CameraClip:
    image = load_image(IMAGES / photo)
    height = round(long_side * image.height / image.width / 2) * 2
    scale = long_side / 256  # the motions are given at 256 px
    moved = CameraMotion((motion.pan[0] * scale, motion.pan[1] * scale), motion.zoom)
    return CameraClip(image, (long_side, height), count, moved)


def warp_errors(frames: list[PIL.Image.Image], clip: CameraClip) -> list[float]:
    """Per frame t >= 1: mean |out_t - warp(out_{t-1}, true flow)| (0-255) over pixels seen in both."""
    errors = []
    for t in range(1, len(frames)):
        true = clip.backward_flow(t)
        before = warp(np.asarray(frames[t - 1], np.float32), true)
        diff = np.abs(np.asarray(frames[t], np.float32) - before).mean(-1)
        errors.append(float(diff[inside(true)].mean()))
    return errors


class StyleLoss:
    """The style loss of an image against the style's Gram targets at its size (one evaluator)."""

    def __init__(self, backbone: Backbone, style: PIL.Image.Image, size: tuple[int, int]) -> None:
        self.backbone = backbone
        s = resize_to_long_side(style, style_long_side(style.size, size))
        self.term = GramLoss.from_images(backbone, [image_to_tensor(s)], PAPER_STYLE_LAYERS)

    @torch.no_grad()
    def __call__(self, image: PIL.Image.Image) -> float:
        tensor = image_to_tensor(image)
        return float(self.term(self.backbone(tensor, list(self.term.layers)), tensor))


def frame_by_frame(clip: CameraClip, style: PIL.Image.Image, backbone: Backbone, options: dict[str, Any]
                   ) -> tuple[list[PIL.Image.Image], list[float]]:
    images, seconds = [], []
    for frame in clip.frames():
        start = time.perf_counter()
        images.append(transfer(frame, style, backbone=backbone, size=clip.size[0], **options).image)
        seconds.append(time.perf_counter() - start)
    return images, seconds


def temporal(clip: CameraClip, style: PIL.Image.Image, backbone: Backbone, options: dict[str, Any],
             work: Path, **video_options: Any) -> tuple[list[PIL.Image.Image], list[float]]:
    source, output = work / "in", work / "out"
    source.mkdir()
    for t, frame in enumerate(clip.frames()):
        frame.save(source / f"{t:04d}.png")
    result = video(source, style, output, backbone=backbone, size=clip.size[0], **options, **video_options)
    return [load_image(output / f"{t:04d}.png") for t in range(clip.count)], result.frame_seconds


def side_by_side(left: list[PIL.Image.Image], right: list[PIL.Image.Image], path: Path, fps: float) -> None:
    def sheets() -> Iterator[PIL.Image.Image]:
        for a, b in zip(left, right, strict=True):
            sheet = PIL.Image.new("RGB", (a.width + b.width + 4, a.height), "white")
            sheet.paste(a, (0, 0))
            sheet.paste(b, (a.width + 4, 0))
            yield sheet

    write_video(sheets(), path, Fraction(fps).limit_denominator(1001))


def plot(curves: dict[str, tuple[list[float], list[float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.2), sharey=True, squeeze=False)
    for ax, (name, (fbf, tmp)) in zip(axes[0], curves.items(), strict=True):
        frames = range(2, len(fbf) + 2)
        ax.plot(frames, fbf, label="frame by frame", color="tab:red")
        ax.plot(frames, tmp, label="stylize video (temporal)", color="tab:blue")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("frame")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("warp error (mean |Δ|, 0-255)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def compare(args: argparse.Namespace, backbone: Backbone, style: PIL.Image.Image) -> None:
    options = {"model": "vgg16", "seed": 0}
    video_options = {"temporal_weight": args.temporal_weight, "frame_steps": args.frame_steps, "flow": args.flow}
    print(f"{args.frames} frames at {args.size} px, temporal weight {args.temporal_weight}, flow {args.flow}, "
          f"frame steps {args.frame_steps or 'default'}; warp error 0-255, style loss of the outputs")
    print("| clip | warp error frame-by-frame | temporal | ratio | style loss frame-by-frame | temporal | ratio "
          "| s/frame fbf | temporal first | temporal later (median) | later/first |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    curves, gif = {}, None
    for photo, motion in CLIPS[: args.clips]:
        clip = make_clip(photo, motion, args.size, args.frames)
        evaluate = StyleLoss(backbone, style, clip.size)
        fbf, fbf_s = frame_by_frame(clip, style, backbone, options)
        with tempfile.TemporaryDirectory() as tmp:
            tmp_frames, tmp_s = temporal(clip, style, backbone, options, Path(tmp), **video_options)
        we_f, we_t = warp_errors(fbf, clip), warp_errors(tmp_frames, clip)
        sl_f = statistics.mean(map(evaluate, fbf))
        sl_t = statistics.mean(map(evaluate, tmp_frames))
        later = statistics.median(tmp_s[1:]) if len(tmp_s) > 1 else float("nan")
        name = Path(photo).stem
        print(f"| {name} | {statistics.mean(we_f):.2f} | {statistics.mean(we_t):.2f} | "
              f"{statistics.mean(we_t) / statistics.mean(we_f):.2f} | {sl_f:.4f} | {sl_t:.4f} | {sl_t / sl_f:.2f} | "
              f"{statistics.median(fbf_s):.1f} | {tmp_s[0]:.1f} | {later:.1f} | {later / tmp_s[0]:.2f} |", flush=True)
        curves[name] = (we_f, we_t)
        gif = gif or (fbf, tmp_frames)
    if args.plot:
        plot(curves, args.plot)
        print(f"wrote {args.plot}")
    if args.gif and gif:
        side_by_side(*gif, args.gif, args.fps)
        print(f"wrote {args.gif}")


def speed(args: argparse.Namespace, backbone: Backbone, style: PIL.Image.Image) -> None:
    print("| size | frames | first frame s | later frames s (median) | later/first |")
    print("|---|---|---|---|---|")
    for size in args.speed:
        clip = make_clip(*CLIPS[0], size, args.speed_frames)
        with tempfile.TemporaryDirectory() as tmp:
            _, seconds = temporal(clip, style, backbone, {"model": "vgg16"}, Path(tmp),
                                  temporal_weight=args.temporal_weight, frame_steps=args.frame_steps, flow=args.flow)
        later = statistics.median(seconds[1:])
        print(f"| {clip.size[0]}x{clip.size[1]} | {len(seconds)} | {seconds[0]:.1f} | {later:.1f} | "
              f"{later / seconds[0]:.2f} |", flush=True)


def memory(frames: int) -> None:
    """Peak RSS after 10% and after all frames of a long clip (tiny network, 64 px, 2 steps)."""
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(*CLIPS[0], 96, frames)
        source = Path(tmp) / "clip.mp4"
        write_video(clip.frames(), source, Fraction(25))
        rss = {}

        def note(p: Any) -> None:
            if p.event == "done" and p.index in (frames // 10, frames):
                rss[p.index] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        video(source, "tests/data/style/" + sorted(p.name for p in Path("tests/data/style").iterdir())[0],
              Path(tmp) / "out.mp4", backbone=tiny_backbone("vgg19", seed=0), size=96, steps=4, frame_steps=2,
              frame_callback=note)
    print(f"peak RSS after {frames // 10} frames: {rss[frames // 10]:.0f} MiB; after {frames}: {rss[frames]:.0f} MiB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--temporal-weight", type=float, default=None)
    parser.add_argument("--frame-steps", type=int, default=None)
    parser.add_argument("--flow", default="medium")
    parser.add_argument("--plot", type=Path, help="per-frame warp error plot (PNG)")
    parser.add_argument("--gif", type=Path, help="the first clip side by side as an animated GIF")
    parser.add_argument("--fps", type=float, default=12)
    parser.add_argument("--speed", type=int, nargs="*", default=[], help="also time the temporal method at these sizes")
    parser.add_argument("--speed-frames", type=int, default=6)
    parser.add_argument("--no-compare", action="store_true")
    parser.add_argument("--memory", type=int, default=0, help="only measure RSS over a clip of this many frames")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory:
        memory(args.memory)
        return 0
    if args.temporal_weight is None:
        from stylize.video.run import DEFAULT_TEMPORAL_WEIGHT

        args.temporal_weight = DEFAULT_TEMPORAL_WEIGHT
    backbone = load_backbone("vgg16", layers=[*PAPER_STYLE_LAYERS, "relu4_2"])
    style = load_image(IMAGES / STYLE)
    if not args.no_compare:
        compare(args, backbone, style)
    if args.speed:
        speed(args, backbone, style)
    return 0


if __name__ == "__main__":
    sys.exit(main())

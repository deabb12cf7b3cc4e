"""Speed and quality of stylize's defaults against the PyTorch tutorial algorithm, side by side.

    .venv/bin/python bench/bench_speed.py                 # 4 pairs at 256 and 512 px (long!)
    .venv/bin/python bench/bench_speed.py --quick         # smoke test: 1 pair, 96 px, few steps
    .venv/bin/python bench/bench_speed.py --pairs 2 --sizes 256 --set steps=100 --set scales=1

Every run (one method, one pair, one size) happens in a fresh child process (multiprocessing,
spawn), so its peak memory is its own: ``ru_maxrss`` of the child, read at its end (it includes
torch and the network, ~the same for both). The runs of both methods are interleaved (for each
size and pair: baseline, then stylize) so that both see the same machine load. Both methods get
the same images (prepared once at the run's size) and the same network; the wall time covers
the algorithm only (targets, optimization, output), not loading weights. The baseline runs with
stylize's runtime settings too (OpenMP wait policy, malloc reuse: ``stylize.runtime``), so the
ratio measures the algorithm, not those settings.

Quality is judged by one common measure computed on both 8-bit outputs with the same network:
stylize's normalized losses at the paper's layers (content: relative feature error at relu4_2;
style: mean over relu1_1 .. relu5_1 of the relative Gram error), against the content image and
the style image at the output's size (area-matched, as both methods use it). The tutorial's own
loss (at its conv layers, weighted 1e6 / 1) is reported too.

Outputs go to ``--out`` (default ``bench/results/speed``): every image, a contact sheet per size
(content | style | baseline | stylize), ``results.json`` and ``summary.md`` (the printed tables).
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing
import os
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make `bench` and `stylize` importable
    sys.path.insert(0, str(REPO))

IMAGES = REPO / ".." / "shared" / "images"
PAIRS: tuple[tuple[str, str], ...] = (  # content, style: varied subjects and painting styles
    ("animal_dog.jpg", "van_gogh_starry_night.jpg"),
    ("building_eiffel_tower.jpg", "hokusai_great_wave.jpg"),
    ("street_canal_colorful_houses.jpg", "kandinsky_composition_vii.jpg"),
    ("coast_golden_gate_fog.jpg", "monet_water_lilies_1919.jpg"),
    ("portrait_astronaut.png", "munch_the_scream.jpg"),
    ("sea_boat_sunset.jpg", "turner_shipwreck_of_the_minotaur.jpg"),
    ("forest_stream.jpg", "cox_shepherding_the_flock_watercolor.jpg"),
    ("animal_wood_duck.jpg", "van_gogh_starry_night.jpg"),
)
MEASURE_CONTENT = ("relu4_2",)
MEASURE_STYLE = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
METHODS = ("baseline", "stylize")


# --------------------------------------------------------------------------- child process


def _rss_mib() -> float:
    """Current resident set size of this process (Linux), MiB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _pair_images(pair: tuple[str, str], size: int) -> tuple[Any, Any]:
    """Content at ``size`` long side; style resized so its area matches the content's (as stylize does)."""
    from stylize.imageio import load_image, resize_to_long_side
    from stylize.plan import style_long_side

    content = resize_to_long_side(load_image(IMAGES / "content" / pair[0], max_side=size), size)
    style = load_image(IMAGES / "style" / pair[1])
    return content, resize_to_long_side(style, style_long_side(style.size, content.size))


def _feature_scale(spec: dict[str, Any], backbone: Any) -> float:
    from bench.tutorial_baseline import tutorial_feature_scale

    given = spec.get("feature_scale")
    return tutorial_feature_scale(backbone.convention) if given is None else given


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """One run in this (child) process; returns its measurements."""
    importlib.import_module("stylize")  # first, as in a stylize program: it sets torch's OpenMP wait policy
    import torch

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    from bench.tutorial_baseline import run_tutorial
    from stylize import transfer
    from stylize.backbone import load_backbone
    from stylize.imageio import image_to_tensor, load_image, save_image, tensor_to_image
    from stylize.runtime import run_settings

    backbone = load_backbone(spec["model"], layers=[*MEASURE_CONTENT, *MEASURE_STYLE], allow_download=False)
    if "inputs" in spec:  # prepared by the parent at this size, so that decoding the (large) originals
        content, style = (load_image(p) for p in spec["inputs"])  # does not count in this run's memory
    else:
        content, style = _pair_images(spec["pair"], spec["size"])
    rss_start = _rss_mib()
    out: dict[str, Any] = {**spec, "network": backbone.description, "content_size": list(content.size),
                           "style_size": list(style.size)}
    start = time.perf_counter()
    if spec["method"] == "baseline":
        with run_settings(torch.device("cpu")):  # the engine's runtime settings for the baseline too
            result = run_tutorial(backbone, image_to_tensor(content), image_to_tensor(style),
                                  num_steps=spec["baseline_steps"], feature_scale=_feature_scale(spec, backbone))
        image = tensor_to_image(result.image)
        out.update(evaluations=result.evaluations, own_style=result.style_score, own_content=result.content_score)
    else:
        result = transfer(content, style, backbone=backbone, size=spec["size"], **spec["options"])
        image = result.image
        per_scale = {}
        for row in result.history:
            per_scale.setdefault(row["scale"], []).append(row)
        out.update(
            evaluations=len(result.history), stop_reasons=result.stop_reasons,
            scale_sizes=result.settings["scale_sizes"],
            steps_per_scale=[len(rows) for rows in per_scale.values()],
        )
    out["seconds"] = time.perf_counter() - start
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    out["rss_start_mib"] = rss_start
    out["image"] = str(save_image(image, Path(spec["path"])))
    return out


def run_in_child(spec: dict[str, Any]) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(processes=1, maxtasksperchild=1) as pool:
        return pool.apply(run_one, (spec,))


# --------------------------------------------------------------------------- common measure


def common_measure(outputs: Sequence[dict[str, Any]], model: str, feature_scale: float | None) -> None:
    """Add ``style``, ``content`` (paper layers, normalized) and ``tut_style``, ``tut_content`` to each row."""
    import torch

    from bench.tutorial_baseline import tutorial_scores, tutorial_targets
    from stylize.backbone import load_backbone
    from stylize.imageio import image_to_tensor, load_image
    from stylize.loss import content_targets, style_targets
    from stylize.loss import functional as losses

    backbone = load_backbone(model, layers=[*MEASURE_CONTENT, *MEASURE_STYLE], allow_download=False)
    cache: dict[tuple[Any, ...], Any] = {}
    for row in outputs:
        key = (tuple(row["pair"]), row["size"])
        if key not in cache:
            content, style = _pair_images(row["pair"], row["size"])
            c, s = image_to_tensor(content), image_to_tensor(style)
            cache[key] = (content_targets(backbone, c, MEASURE_CONTENT), style_targets(backbone, [s], MEASURE_STYLE),
                          tutorial_targets(backbone, c, s, feature_scale=_feature_scale(
                              {"feature_scale": feature_scale}, backbone)), c)
        c_t, s_t, tut_t, content_tensor = cache[key]
        images = {"": image_to_tensor(load_image(row["image"])), "photo_": content_tensor}
        with torch.no_grad():
            for prefix, x in images.items():
                feats = backbone(x, [*MEASURE_CONTENT, *MEASURE_STYLE])
                per_layer = losses.style_losses(feats, s_t)
                row[prefix + "style"] = float(losses.weighted_style_loss(per_layer, dict.fromkeys(per_layer, 1.0)))
                row[prefix + "content"] = float(losses.content_loss(feats, c_t))
                tut_style, tut_content = tutorial_scores(backbone, x, tut_t)
                row[prefix + "tut_style"], row[prefix + "tut_content"] = float(tut_style), float(tut_content)


# --------------------------------------------------------------------------- report


def contact_sheet(rows: Sequence[dict[str, Any]], size: int, path: Path, cell: int = 256) -> Path:
    """content | style | baseline | stylize, one row per pair, with time and losses under each output."""
    from PIL import Image, ImageDraw

    from stylize.imageio import load_image, save_image

    pairs = list(dict.fromkeys(tuple(r["pair"]) for r in rows))
    pad, text_h = 6, 34
    sheet = Image.new("RGB", (4 * (cell + pad) + pad, len(pairs) * (cell + text_h + pad) + pad + 18), "white")
    draw = ImageDraw.Draw(sheet)
    for col, title in enumerate(("content", "style", "baseline (tutorial)", "stylize (defaults)")):
        draw.text((pad + col * (cell + pad), 4), title, fill="black")
    for r, pair in enumerate(pairs):
        y = 18 + pad + r * (cell + text_h + pad)
        by_method = {row["method"]: row for row in rows if tuple(row["pair"]) == pair}
        content, style = _pair_images(pair, size)
        cells: list[tuple[Any, str]] = [(content, pair[0]), (style, pair[1])]
        for method in METHODS:
            row = by_method.get(method)
            if row is None:
                cells.append((None, f"{method}: missing"))
                continue
            label = (f"{row['seconds']:.0f}s, {row['evaluations']} evaluations\n"
                     f"style {row['style']:.3f} content {row['content']:.3f}")
            cells.append((load_image(row["image"]), label))
        for col, (img, label) in enumerate(cells):
            x = pad + col * (cell + pad)
            if img is not None:
                thumb = img.copy()
                thumb.thumbnail((cell, cell))
                sheet.paste(thumb, (x + (cell - thumb.width) // 2, y + (cell - thumb.height) // 2))
            draw.multiline_text((x, y + cell + 2), label, fill="black", spacing=2)
    return save_image(sheet, path)


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def tables(rows: Sequence[dict[str, Any]], sizes: Sequence[int]) -> str:
    lines: list[str] = []
    for size in sizes:
        here = [r for r in rows if r["size"] == size]
        pairs = list(dict.fromkeys(tuple(r["pair"]) for r in here))
        lines += [f"### {size} px (long side)", "",
                  "| pair | baseline s | stylize s | speedup | style: photo / baseline / stylize | "
                  "content: baseline / stylize | tutorial loss: baseline / stylize | evaluations: baseline / stylize"
                  " | peak RSS MiB: baseline / stylize (at start) |",
                  "|---|---:|---:|---:|---|---|---|---|---|"]
        speedups, style_ratio, content_ratio, tut_ratio = [], [], [], []
        per_method: dict[str, dict[str, list[float]]] = {m: {"s": [], "style": [], "content": [], "rss": []}
                                                          for m in METHODS}
        for pair in pairs:
            by = {r["method"]: r for r in here if tuple(r["pair"]) == pair}
            if set(by) != set(METHODS):
                continue
            b, s = by["baseline"], by["stylize"]
            for m, r in by.items():
                per_method[m]["s"].append(r["seconds"])
                per_method[m]["style"].append(r["style"])
                per_method[m]["content"].append(r["content"])
                per_method[m]["rss"].append(r["peak_rss_mib"])
            speedups.append(b["seconds"] / s["seconds"])
            style_ratio.append(s["style"] / b["style"])
            content_ratio.append(s["content"] / b["content"])
            tut_b, tut_s = b["tut_style"] + b["tut_content"], s["tut_style"] + s["tut_content"]
            tut_ratio.append(tut_s / tut_b)
            steps = "+".join(str(n) for n in s.get("steps_per_scale", [s["evaluations"]]))
            lines.append(
                f"| {pair[0].rsplit('.', 1)[0]} × {pair[1].rsplit('.', 1)[0]} | {b['seconds']:.1f} | {s['seconds']:.1f}"
                f" | {b['seconds'] / s['seconds']:.1f}x | {b['photo_style']:.3f} / {b['style']:.3f} / {s['style']:.3f}"
                f" | {b['content']:.3f} / {s['content']:.3f} | {tut_b:.4g} / {tut_s:.4g}"
                f" | {b['evaluations']} / {steps} | {b['peak_rss_mib']:.0f} / {s['peak_rss_mib']:.0f}"
                f" ({b['rss_start_mib']:.0f} / {s['rss_start_mib']:.0f}) |"
            )
        pm = per_method
        lines += [
            "",
            f"Medians over {len(speedups)} pairs at {size} px: baseline {_median(pm['baseline']['s']):.1f} s, "
            f"stylize {_median(pm['stylize']['s']):.1f} s, **speedup {_median(speedups):.1f}x** (median of per-pair "
            f"ratios); style loss stylize/baseline **{_median(style_ratio):.2f}** (≤ 1 is better or equal); content "
            f"loss stylize/baseline **{_median(content_ratio):.2f}** (target ≤ 1.5); tutorial loss stylize/baseline "
            f"{_median(tut_ratio):.2f}; peak RSS baseline {_median(pm['baseline']['rss']):.0f} MiB, stylize "
            f"{_median(pm['stylize']['rss']):.0f} MiB.",
            "",
        ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--pairs", type=int, default=4, help=f"how many content/style pairs (1..{len(PAIRS)}), default 4")
    p.add_argument("--sizes", default="256,512", help="long sides, comma separated (default 256,512)")
    p.add_argument("--quick", action="store_true", help="smoke test: 1 pair at 96 px, 20 baseline steps, 10 "
                   "stylize steps per scale")
    p.add_argument("--model", default="vgg16", help="network for both methods and the measure (vgg16; vgg19 only "
                   "where its weights are cached)")
    p.add_argument("--baseline-steps", type=int, default=300, help="the tutorial's num_steps (default 300)")
    p.add_argument("--feature-scale", type=float, default=None, help="baseline: multiply features before its "
                   "losses (default: the tutorial's units, 1/57.6 for Caffe weights; see bench/tutorial_baseline.py)")
    p.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                   help="a stylize option for the stylize runs (repeatable), e.g. --set scales=1")
    p.add_argument("--methods", default=",".join(METHODS), help="which methods to run (default both)")
    p.add_argument("--threads", type=int, default=0, help="torch threads in each run (default: torch's choice)")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "speed", help="output folder")
    args = p.parse_args(argv)
    if args.quick:
        args.pairs, args.sizes, args.baseline_steps = 1, "96", 20
        args.set = ["steps=10", *args.set]
    args.sizes = [int(s) for s in str(args.sizes).split(",") if s.strip()]
    if not 1 <= args.pairs <= len(PAIRS):
        p.error(f"--pairs: 1..{len(PAIRS)}")
    return args


def _parse_value(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    options = {k: _parse_value(v) for k, v in (item.split("=", 1) for item in args.set)}
    options.setdefault("model", args.model)
    options.setdefault("allow_download", False)
    methods = [m for m in args.methods.split(",") if m]
    if args.model == "vgg19":
        from stylize.backbone.weights import available_weights

        if not any(r["arch"] == "vgg19" and r["present"] for r in available_weights()):
            print("VGG-19: not run (its weights are not cached here)")
            return 0
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    print(f"# bench_speed: {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.1f}; stylize options {options}", flush=True)
    rows: list[dict[str, Any]] = []
    from stylize.imageio import save_image

    (args.out / "inputs").mkdir(exist_ok=True)
    for size in args.sizes:
        for pair in PAIRS[: args.pairs]:
            stem = f"{size}_{pair[0].rsplit('.', 1)[0]}"  # the style's size depends on the content's
            inputs = [args.out / "inputs" / f"{stem}.png",
                      args.out / "inputs" / f"{stem}__{pair[1].rsplit('.', 1)[0]}.png"]
            for image, path in zip(_pair_images(pair, size), inputs, strict=True):
                save_image(image, path)  # PNG: lossless, the child sees exactly these pixels
            for method in methods:
                tag = f"{size}_{pair[0].split('.')[0]}__{pair[1].split('.')[0]}_{method}"
                spec = {"method": method, "pair": list(pair), "size": size, "model": args.model,
                        "baseline_steps": args.baseline_steps, "feature_scale": args.feature_scale,
                        "options": options, "threads": args.threads, "path": str(args.out / f"{tag}.png"),
                        "inputs": [str(p) for p in inputs]}
                load = os.getloadavg()[0]
                row = run_in_child(spec)
                row["load_before"] = load
                rows.append(row)
                print(f"{size:5d} {tag:70s} {row['seconds']:8.1f} s {row['evaluations']:4d} evaluations "
                      f"peak {row['peak_rss_mib']:.0f} MiB (load {load:.1f})", flush=True)
    common_measure(rows, args.model, args.feature_scale)
    (args.out / "results.json").write_text(json.dumps(rows, indent=1, default=str))
    text = tables(rows, args.sizes)
    for size in args.sizes:
        here = [r for r in rows if r["size"] == size]
        if here:
            sheet = contact_sheet(here, size, args.out / f"contact_{size}.jpg")
            text += f"\nContact sheet {size} px: {sheet}\n"
    (args.out / "summary.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Quality of stylize's outputs: content kept and style matched, per option set, with peers.

    python bench/bench_quality.py --sizes 256                          # today's defaults, 16 pairs
    python bench/bench_quality.py --sizes 256 --config default \\
        --config "shallow:style_layer_weights=4,4,2,1,0.5" --config "s4:strength=4"
    python bench/bench_quality.py --sizes 256 --pairs 4 --peers neural-style,tutorial
    python bench/bench_quality.py --frontier --sizes 256 --losses gram,wasserstein,sliced
    python bench/bench_quality.py --quick                              # smoke test: 2 pairs, 64 px

(run it as ``flock /tmp/stylize-bench.lock python bench/bench_quality.py ... --threads 2`` on a
shared machine.) The scores are described in ``bench/quality_metrics.py``: SSIM of luminance and
the edge-structure correlation against the photo (content kept), style_gain in Magenta's style
embedding (style matched, by a network stylize does not optimize), and, for reference, the VGG
Gram and sliced-Wasserstein distances to the painting (what stylize itself optimizes).

Pairs: every content photo of ``--images`` (default ``../shared/images``) with two different
paintings, chosen by a fixed rule on the sorted file names (photo i gets paintings 2i and 2i+1,
modulo the number of paintings), so every painting is used at least once and the pairs never
depend on the machine. They are listed first-painting-round first, so ``--pairs 8`` still covers
every photo. Each output is made at ``--sizes`` (long side) through ``stylize.transfer(...)``
with the offline VGG-16 (``model="vgg16"``, one network loaded once per process and given to
every run as ``backbone=``); its wall time is the ``transfer`` call's.

Option sets: ``--config NAME:option=value,option=value`` (repeatable; ``default`` = no options),
parsed with the types of :class:`stylize.options.Options` fields, e.g. ``style_layer_weights=4,4,2,1,0.5``
(a tuple: the following comma-separated pieces without ``=`` belong to it). An option that this
stylize's ``Options`` does not have is an error naming it.

``--frontier`` sweeps ``--strengths`` for each of ``--losses`` (``gram`` = today's only loss; the
others only where ``Options`` has a ``style_loss`` field) and plots median style_gain against
median SSIM, one line per loss, with the peers' points, into ``frontier_<size>.png``.

Peers (``--peers``, on the first ``--peer-pairs`` pairs): ``neural-style`` (the PyPI package
0.5.7 with its defaults, in a subprocess: bench/peers/neural_style_peer.py) and ``tutorial`` (the
PyTorch tutorial's algorithm, bench/tutorial_baseline.py, run in this process on the same network
as bench/bench_speed.py does).

Output in ``--out`` (default ``bench/results/quality``): every image under ``images/``,
``results.json`` (every row and the per-pair references), ``tables.md`` (what is printed) and
``contact_<size>.jpg`` (rows = pairs; columns = photo | painting | each option set | peers).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make `bench` and `stylize` importable
    sys.path.insert(0, str(REPO))

from stylize.cli.common import EXIT_INTERRUPTED, EXIT_USAGE  # noqa: E402

IMAGES = REPO / ".." / "shared" / "images"
MODEL = "vgg16"
CONTENT_LAYER = "relu4_2"
SCORES = ("ssim", "edges", "style_gain", "gram", "sliced_wasserstein", "seconds")
SCORE_TITLES = {"ssim": "SSIM", "edges": "edges", "style_gain": "style_gain", "gram": "Gram",
                "sliced_wasserstein": "SW", "seconds": "s"}
PEERS = ("neural-style", "tutorial")
LOSSES = ("gram", "wasserstein", "sliced")
FORCED = {"model", "size", "allow_download", "weights"}  # set by the benchmark, not by a config


class BenchError(Exception):
    """A bad command line or a missing input: one line, exit status 2."""


@dataclass
class Config:
    """One named option set for stylize.transfer."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    method: str = "stylize"  # or a peer's name
    line: str | None = None  # --frontier: the style loss whose strength sweep this point belongs to


# --------------------------------------------------------------------------- pairs


def choose_pairs(contents: Sequence[str], styles: Sequence[str]) -> list[tuple[str, str]]:
    """Photo i with paintings 2i and 2i+1 (mod len(styles)); the first round of all photos first."""
    contents, styles = sorted(contents), sorted(styles)
    if not contents or len(styles) < 2:
        raise BenchError("need at least one content photo and two paintings")
    rounds = [[(c, styles[(2 * i + k) % len(styles)]) for i, c in enumerate(contents)] for k in (0, 1)]
    return rounds[0] + rounds[1]


def find_pairs(images: Path) -> list[tuple[str, str]]:
    suffixes = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff"}

    def names(kind: str) -> list[str]:
        folder = images / kind
        if not folder.is_dir():
            raise BenchError(f"{folder}: no such folder (give --images DIR with content/ and style/)")
        return [p.name for p in folder.iterdir() if p.suffix.lower() in suffixes]

    return choose_pairs(names("content"), names("style"))


def pair_name(pair: Sequence[str]) -> str:
    return f"{Path(pair[0]).stem}__{Path(pair[1]).stem}"


# --------------------------------------------------------------------------- option sets


def _option_fields() -> dict[str, dataclasses.Field]:
    from stylize.options import Options

    return {f.name: f for f in dataclasses.fields(Options)}


def parse_value(name: str, text: str, annotation: str) -> Any:
    """``text`` as a value of an Options field whose annotation (a string) is ``annotation``."""
    text = text.strip()
    if text.lower() == "none" and "None" in annotation:
        return None
    try:
        if annotation.startswith("tuple[str"):
            return tuple(p.strip() for p in text.split(",") if p.strip())
        if annotation.startswith("tuple[float"):
            return tuple(float(p) for p in text.split(",") if p.strip())
        if annotation.startswith("bool"):
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        if annotation.startswith("int"):
            return int(text)
        if annotation.startswith("float"):
            return float(text)
    except ValueError:
        raise BenchError(f"option {name}: {text!r} is not a valid {annotation}") from None
    return text


def parse_config(text: str) -> Config:
    """``NAME:opt=value,opt=v1,v2`` (or ``default``, or ``opt=value,...`` named by itself)."""
    text = text.strip()
    name, _, body = text.partition(":") if ":" in text else (text, "", "" if "=" not in text else text)
    name = name.strip() or "default"
    pieces: list[list[str]] = []
    for piece in (p for p in body.split(",") if p.strip()):
        if "=" in piece:
            key, value = piece.split("=", 1)
            pieces.append([key.strip().replace("-", "_"), value])
        elif pieces:
            pieces[-1][1] += "," + piece
        else:
            raise BenchError(f"--config {name}: {piece!r} is not option=value")
    fields = _option_fields()
    options: dict[str, Any] = {}
    for key, value in pieces:
        if key not in fields:
            raise BenchError(f"--config {name}: unknown option {key!r}: this stylize's Options has no such "
                             f"field (known: {', '.join(sorted(fields))})")
        if key in FORCED:
            raise BenchError(f"--config {name}: {key} is set by the benchmark (--sizes; the offline VGG-16)")
        options[key] = parse_value(key, value, str(fields[key].type))
    return Config(name, options)


def check_configs(configs: Sequence[Config]) -> None:
    """Validate every option set with stylize's own checks before anything runs."""
    from stylize.api import make_options
    from stylize.errors import StylizeError

    names = [c.name for c in configs]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise BenchError(f"--config: the name {duplicated[0]!r} is given twice")
    for config in configs:
        if config.method != "stylize":
            continue
        try:
            make_options(**config.options, model=MODEL, allow_download=False)
        except StylizeError as exc:
            raise BenchError(f"--config {config.name}: {exc}") from None


def frontier_configs(losses: Sequence[str], strengths: Sequence[float]) -> tuple[list[Config], list[str]]:
    """One config per (loss, strength); losses this stylize lacks are returned as skipped."""
    has_loss = "style_loss" in _option_fields()
    configs, skipped = [], []
    for loss in losses:
        if loss not in LOSSES:
            raise BenchError(f"--losses: {loss!r} is not one of {', '.join(LOSSES)}")
        if loss != "gram" and not has_loss:
            skipped.append(loss)
            continue
        for s in strengths:
            options: dict[str, Any] = {"strength": s}
            if has_loss:
                options["style_loss"] = loss
            configs.append(Config(f"{loss} s{s:g}", options, line=loss))
    return configs, skipped


# --------------------------------------------------------------------------- inputs and scores


@dataclass
class Prepared:
    """A pair at one size: the images every method gets, and the references of every score."""

    pair: tuple[str, str]
    size: int
    photo: Any  # PIL, at the output size
    painting_full: Any  # PIL, as loaded (stylize resizes it itself)
    painting: Any  # PIL, area-matched to the photo (as stylize and the scores use it)
    photo_path: Path
    painting_path: Path
    embed_photo: Any
    embed_painting: Any
    vgg: Any  # quality_metrics.VGGStyleDistances to this painting
    reference: dict[str, float] = field(default_factory=dict)


class Scorer:
    """Scores outputs; keeps the style predictor and the network loaded."""

    def __init__(self, backbone: Any, images: Path, inputs_dir: Path, threads: int) -> None:
        from bench.quality_metrics import StyleEmbedder

        self.backbone, self.images, self.inputs_dir = backbone, images, inputs_dir
        self.embedder = StyleEmbedder(threads=max(threads, 1))
        self._cache: dict[tuple[tuple[str, str], int], Prepared] = {}

    def prepare(self, pair: tuple[str, str], size: int) -> Prepared:
        key = (pair, size)
        if key not in self._cache:
            self._cache[key] = self._prepare(pair, size)
        return self._cache[key]

    def _prepare(self, pair: tuple[str, str], size: int) -> Prepared:
        from bench.quality_metrics import VGGStyleDistances, content_scores
        from stylize.imageio import load_image, resize_to_long_side, save_image
        from stylize.plan import style_long_side

        photo = resize_to_long_side(load_image(self.images / "content" / pair[0], max_side=size), size)
        painting_path = self.images / "style" / pair[1]
        full = load_image(painting_path)
        painting = resize_to_long_side(full, style_long_side(full.size, photo.size))
        photo_path = save_image(photo, self.inputs_dir / f"{size}_{Path(pair[0]).stem}.png")
        prep = Prepared(pair, size, photo, full, painting, photo_path, painting_path,
                        self.embedder.embed(photo), self.embedder.embed(painting), VGGStyleDistances(
                            self.backbone, painting))
        photo_vgg = prep.vgg(photo)
        prep.reference = {"photo_gram": photo_vgg["gram"], "photo_sliced_wasserstein": photo_vgg["sliced_wasserstein"],
                          **{f"painting_{k}": v for k, v in content_scores(painting, photo).items()}}
        return prep

    def score(self, image: Any, prep: Prepared) -> dict[str, float]:
        from bench.quality_metrics import content_scores, style_gain

        if image.size != prep.photo.size:
            image = image.resize(prep.photo.size)
        gain = style_gain(self.embedder.embed(image), prep.embed_photo, prep.embed_painting)
        return {**content_scores(image, prep.photo), "style_gain": gain, **prep.vgg(image)}


# --------------------------------------------------------------------------- runs


def run_stylize(config: Config, prep: Prepared, backbone: Any, steps: int | None) -> tuple[Any, dict[str, Any]]:
    from stylize import transfer

    options = dict(config.options)
    if steps is not None:
        options.setdefault("steps", steps)
    start = time.perf_counter()
    result = transfer(prep.photo, prep.painting_full, backbone=backbone, size=prep.size, model=MODEL,
                      allow_download=False, **options)
    seconds = time.perf_counter() - start
    return result.image, {"seconds": seconds, "steps_run": len(result.history), "stop_reasons": result.stop_reasons}


def run_tutorial_peer(prep: Prepared, backbone: Any, num_steps: int) -> tuple[Any, dict[str, Any]]:
    import torch

    from bench.tutorial_baseline import run_tutorial, tutorial_feature_scale
    from stylize.imageio import image_to_tensor, tensor_to_image
    from stylize.runtime import run_settings

    start = time.perf_counter()
    with run_settings(torch.device("cpu")):
        result = run_tutorial(backbone, image_to_tensor(prep.photo), image_to_tensor(prep.painting),
                              num_steps=num_steps, feature_scale=tutorial_feature_scale(backbone.convention))
    seconds = time.perf_counter() - start
    return tensor_to_image(result.image), {"seconds": seconds, "steps_run": result.evaluations}


def run_neural_style_peer(prep: Prepared, path: Path, args: argparse.Namespace,
                          weights: Path) -> tuple[Any, dict[str, Any]]:
    from bench.peers.neural_style_peer import run_neural_style
    from stylize.imageio import load_image

    run = run_neural_style(prep.photo_path, prep.painting_path, path, weights, prep.size,
                           iterations=args.neural_style_iterations, threads=args.threads, timeout=args.peer_timeout)
    if run.returncode != 0 or not path.is_file():
        raise BenchError(f"neural-style failed on {pair_name(prep.pair)} (exit {run.returncode}): "
                         f"{run.log.strip().splitlines()[-1] if run.log.strip() else 'no output'}")
    info = {"seconds": run.seconds, "steps_run": args.neural_style_iterations or 1000}
    return load_image(path), info


def run_one(config: Config, prep: Prepared, ctx: dict[str, Any]) -> dict[str, Any]:
    """Make one output (stylize or a peer), save it, score it: one row of results.json."""
    from stylize.imageio import save_image

    args, backbone = ctx["args"], ctx["backbone"]
    path = args.out / "images" / str(prep.size) / config.name.replace(" ", "_").replace("/", "_") / (
        pair_name(prep.pair) + ".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]  # the machine's load before the run: wall times are only comparable at equal load
    if config.method == "neural-style":
        image, info = run_neural_style_peer(prep, path, args, ctx["ns_weights"])
    elif config.method == "tutorial":
        image, info = run_tutorial_peer(prep, backbone, args.tutorial_steps)
    else:
        image, info = run_stylize(config, prep, backbone, args.steps)
    save_image(image, path)
    return {"method": config.method, "config": config.name, "options": config.options, "pair": list(prep.pair),
            "size": prep.size, "load_before": load, **info, **ctx["scorer"].score(image, prep),
            "image": str(path.relative_to(args.out))}


# --------------------------------------------------------------------------- report


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarize(rows: Sequence[dict[str, Any]], config: str, size: int,
              pairs: Sequence[Sequence[str]] | None = None) -> dict[str, Any]:
    """Median and min of every score of one config at one size (over ``pairs`` if given)."""
    here = [r for r in rows if r["config"] == config and r["size"] == size
            and (pairs is None or list(r["pair"]) in [list(p) for p in pairs])]
    out: dict[str, Any] = {"config": config, "size": size, "pairs": len(here)}
    for key in SCORES:
        values = [r[key] for r in here]
        out[key] = _median(values)
        out[key + "_min"] = min(values) if values else float("nan")
    return out


def tables(rows: Sequence[dict[str, Any]], configs: Sequence[Config], sizes: Sequence[int]) -> str:
    lines: list[str] = []
    head = " | ".join(f"{SCORE_TITLES[k]} med / min" for k in SCORES)
    for size in sizes:
        lines += [f"### {size} px: medians and minima over the pairs", "", f"| option set | pairs | {head} |",
                  "|---|---:|" + "---|" * len(SCORES)]
        for config in configs:
            s = summarize(rows, config.name, size)
            if s["pairs"]:
                cells = " | ".join(f"{s[k]:.3f} / {s[k + '_min']:.3f}" if k != "seconds"
                                   else f"{s[k]:.1f} / {s[k + '_min']:.1f}" for k in SCORES)
                lines.append(f"| {config.name} | {s['pairs']} | {cells} |")
        lines += ["", f"### {size} px: every pair", "",
                  "| pair | option set | " + " | ".join(SCORE_TITLES[k] for k in SCORES) + " |",
                  "|---|---|" + "---:|" * len(SCORES)]
        for r in sorted((r for r in rows if r["size"] == size), key=lambda r: (pair_name(r["pair"]), r["config"])):
            cells = " | ".join(f"{r[k]:.1f}" if k == "seconds" else f"{r[k]:.3f}" for k in SCORES)
            lines.append(f"| {pair_name(r['pair'])} | {r['config']} | {cells} |")
        lines.append("")
    return "\n".join(lines)


def contact_sheet(rows: Sequence[dict[str, Any]], scorer: Scorer, configs: Sequence[Config], pairs: Sequence[Any],
                  size: int, out: Path, cell: int) -> Path:
    """Rows = pairs; columns = photo | painting | each option set; scores under every output."""
    from PIL import Image, ImageDraw

    from stylize.imageio import load_image, save_image

    pad, text_h, head_h = 4, 30, 16
    cols = 2 + len(configs)
    sheet = Image.new("RGB", (cols * (cell + pad) + pad, head_h + len(pairs) * (cell + text_h + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for c, title in enumerate(["photo", "painting", *(cfg.name for cfg in configs)]):
        draw.text((pad + c * (cell + pad), 2), title[:cell // 6], fill="black")
    for r, pair in enumerate(pairs):
        y = head_h + r * (cell + text_h + pad)
        prep = scorer.prepare(tuple(pair), size)
        cells: list[tuple[Any, str]] = [(prep.photo, Path(pair[0]).stem), (prep.painting, Path(pair[1]).stem)]
        by_config = {row["config"]: row for row in rows if row["size"] == size and list(row["pair"]) == list(pair)}
        for cfg in configs:
            row = by_config.get(cfg.name)
            label = "" if row is None else (f"SSIM {row['ssim']:.2f} gain {row['style_gain']:.2f}\n"
                                            f"edges {row['edges']:.2f} {row['seconds']:.0f}s")
            path = None if row is None else out / row["image"]
            if path is not None and not path.exists():  # a peer row imported with --peers-from: its
                label += "\n(image not kept)"  # images are not kept in the repository
                path = None
            cells.append((None if path is None else load_image(path), label))
        for c, (img, label) in enumerate(cells):
            x = pad + c * (cell + pad)
            if img is not None:
                thumb = img.copy()
                thumb.thumbnail((cell, cell))
                sheet.paste(thumb, (x + (cell - thumb.width) // 2, y + (cell - thumb.height) // 2))
            draw.multiline_text((x, y + cell + 1), label[: 2 * cell // 6], fill="black", spacing=1)
    return save_image(sheet, out / f"contact_{size}.jpg", quality=88)


def frontier_plot(rows: Sequence[dict[str, Any]], configs: Sequence[Config], size: int, path: Path,
                  peer_pairs: Sequence[Any]) -> Path:
    """Median style_gain against median SSIM: one line per loss (all pairs, and dashed on the peers' pairs)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from stylize.atomic import write_atomically

    fig, ax = plt.subplots(figsize=(7.5, 5.5), dpi=110)
    lines: dict[str, list[Config]] = {}
    for cfg in configs:
        if cfg.line is not None:
            lines.setdefault(cfg.line, []).append(cfg)
    for n, (loss, group) in enumerate(lines.items()):
        color = f"C{n}"
        for subset, style in ((None, "-o"), (peer_pairs, "--.")):
            pts = [summarize(rows, c.name, size, subset) for c in group]
            pts = [p for p in pts if p["pairs"]]
            if not pts or (subset is not None and not peer_pairs):
                continue
            label = f"stylize {loss}" + ("" if subset is None else f" (the peers' {len(peer_pairs)} pairs)")
            ax.plot([p["ssim"] for p in pts], [p["style_gain"] for p in pts], style, color=color, label=label,
                    alpha=1 if subset is None else 0.6)
            if subset is None:
                for c, p in zip(group, pts, strict=False):
                    ax.annotate(f"s{c.options['strength']:g} {p['seconds']:.0f}s", (p["ssim"], p["style_gain"]),
                                fontsize=7, xytext=(3, 3), textcoords="offset points")
    for n, cfg in enumerate(c for c in configs if c.line is None):
        p = summarize(rows, cfg.name, size)
        if p["pairs"]:
            marker = "*" if cfg.method != "stylize" else "s"
            ax.plot(p["ssim"], p["style_gain"], marker, markersize=12, color=f"C{len(lines) + n}",
                    label=f"{cfg.name} ({p['pairs']} pairs, {p['seconds']:.0f} s)")
    ax.set_xlabel("SSIM of luminance against the photo (median; content kept →)")
    ax.set_ylabel("style_gain in Magenta's style embedding (median; style →)")
    ax.set_title(f"Frontier at {size} px")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return write_atomically(path, lambda f: f.write(buf.getvalue()))


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    from stylize.cli.common import ArgumentParser

    p = ArgumentParser(prog="bench_quality.py", description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--config", action="append", default=[], metavar="NAME:OPT=VAL,...",
                   help="an option set (repeatable); default: 'default' (today's defaults)")
    p.add_argument("--sizes", default="256,512", help="long sides, comma separated (default 256,512)")
    p.add_argument("--pairs", type=int, default=0, help="use only the first N pairs (default: all)")
    p.add_argument("--images", type=Path, default=IMAGES, help="folder with content/ and style/")
    p.add_argument("--out", type=Path, default=None, help="output folder (default bench/results/quality, with "
                   "--quick bench/results/quality/quick)")
    p.add_argument("--steps", type=int, default=None, help="stylize --steps for every option set that does not set it")
    p.add_argument("--frontier", action="store_true", help="sweep --strengths for each of --losses, plot, add peers")
    p.add_argument("--losses", default="gram", help="style losses for --frontier (default gram)")
    p.add_argument("--strengths", default="2,3,4,5,6,7", help="strengths for --frontier (default 2,3,4,5,6,7)")
    p.add_argument("--peers", default=None, help=f"comma list of {', '.join(PEERS)}, or none (default: both "
                   "with --frontier, none otherwise)")
    p.add_argument("--peer-pairs", type=int, default=3, help="how many of the pairs the peers run on (default 3)")
    p.add_argument("--neural-style-iterations", type=int, default=None, help="neural-style -num_iterations "
                   "(default: its own default, 1000)")
    p.add_argument("--tutorial-steps", type=int, default=300, help="the tutorial's num_steps (default 300)")
    p.add_argument("--peers-from", type=Path, default=None, metavar="DIR", help="take the peers' rows from an "
                   "earlier run's DIR/results.json instead of running them again (pairs and sizes it lacks still run)")
    p.add_argument("--peer-timeout", type=float, default=1800, help="seconds before a neural-style run is killed")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice; use 2 only "
                   "while holding /tmp/stylize-bench.lock)")
    p.add_argument("--cell", type=int, default=256, help="contact sheet thumbnail size (default 256: 256 px "
                   "outputs at full size)")
    p.add_argument("--quick", action="store_true", help="smoke test: 2 pairs at 64 px, 8 steps, peers with 10 "
                   "iterations")
    args = p.parse_args(argv)
    if args.out is None:
        args.out = REPO / "bench" / "results" / "quality" / ("quick" if args.quick else "")
    if args.quick:
        args.pairs, args.sizes, args.peer_pairs = 2, "64", 1
        args.steps = args.steps or 8
        args.neural_style_iterations = args.neural_style_iterations or 10
        args.tutorial_steps = min(args.tutorial_steps, 10)
    try:
        args.sizes = [int(s) for s in str(args.sizes).split(",") if s.strip()]
        args.strengths = [float(s) for s in str(args.strengths).split(",") if s.strip()]
    except ValueError:
        p.error("--sizes and --strengths take comma-separated numbers")
    peers = args.peers if args.peers is not None else (",".join(PEERS) if args.frontier else "none")
    args.peers = [] if peers.strip() in ("", "none") else [x.strip() for x in peers.split(",") if x.strip()]
    bad = [x for x in args.peers if x not in PEERS]
    if bad:
        p.error(f"--peers: {bad[0]!r} is not one of {', '.join(PEERS)}, none")
    return args


def build_configs(args: argparse.Namespace) -> list[Config]:
    configs = [parse_config(text) for text in args.config]
    if args.frontier:
        sweep, skipped = frontier_configs([x.strip() for x in args.losses.split(",") if x.strip()], args.strengths)
        if skipped:
            print(f"# --losses: {', '.join(skipped)} skipped: this stylize's Options has no style_loss", flush=True)
        configs = sweep + configs
    elif not configs:
        configs = [Config("default")]
    configs += [Config(peer, method=peer) for peer in args.peers]
    check_configs(configs)
    return configs


def setup(args: argparse.Namespace, configs: Sequence[Config]) -> dict[str, Any]:
    """Threads, the one network, the scorer and (for neural-style) its weights file."""
    import tempfile

    import torch

    import stylize  # noqa: F401 - first, as in a stylize program: it sets torch's OpenMP policy
    from bench.quality_metrics import STYLE_LAYERS, MetricsUnavailableError
    from stylize.backbone import deepest_layer, load_backbone

    if args.threads:
        torch.set_num_threads(args.threads)
    layers = {CONTENT_LAYER, *STYLE_LAYERS}
    for cfg in configs:
        layers |= set(cfg.options.get("content_layers", ())) | set(cfg.options.get("style_layers", ()))
    backbone = load_backbone(MODEL, layers=[deepest_layer(MODEL, layers)], allow_download=False)
    (args.out / "inputs").mkdir(parents=True, exist_ok=True)
    try:
        scorer = Scorer(backbone, args.images, args.out / "inputs", args.threads)
    except MetricsUnavailableError as exc:
        raise BenchError(str(exc)) from None
    ctx: dict[str, Any] = {"args": args, "backbone": backbone, "scorer": scorer}
    if any(c.method == "neural-style" for c in configs):
        from bench.peers.neural_style_peer import PeerUnavailableError, check_installed, write_weights

        try:
            check_installed()
        except PeerUnavailableError as exc:
            raise BenchError(str(exc)) from None
        ctx["tmp"] = tempfile.TemporaryDirectory(prefix="bench-quality-")
        ctx["ns_weights"] = write_weights(Path(ctx["tmp"].name))
    return ctx


def imported_peer_rows(args: argparse.Namespace, pairs: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """The peers' rows of an earlier run (``--peers-from DIR``), for the pairs and sizes of this one."""
    path = args.peers_from / "results.json"
    try:
        earlier = json.loads(path.read_text())["rows"]
    except (OSError, ValueError, KeyError) as exc:
        raise BenchError(f"{path}: cannot be read as a bench_quality results.json ({exc})") from None
    wanted = {(pair_name(p), size) for p in pairs[: args.peer_pairs] for size in args.sizes}
    rows = []
    for row in earlier:
        if row["method"] in args.peers and (pair_name(row["pair"]), row["size"]) in wanted:
            image = os.path.relpath(args.peers_from / row["image"], args.out)
            rows.append({**row, "image": image, "imported_from": str(path)})
    return rows


def run_all(configs: Sequence[Config], pairs: Sequence[tuple[str, str]], ctx: dict[str, Any],
            rows: list[dict[str, Any]]) -> None:
    args = ctx["args"]
    for size in args.sizes:
        for i, pair in enumerate(pairs):
            prep = ctx["scorer"].prepare(pair, size)
            done = {r["config"] for r in rows if r["size"] == size and list(r["pair"]) == list(pair)}
            for cfg in configs:
                if (cfg.method != "stylize" and i >= args.peer_pairs) or cfg.name in done:
                    continue
                row = run_one(cfg, prep, ctx)
                rows.append(row)
                print(f"{size:5d} {pair_name(pair):60s} {cfg.name:18s} {row['seconds']:7.1f} s  SSIM "
                      f"{row['ssim']:.3f} edges {row['edges']:.3f} gain {row['style_gain']:.3f} "
                      f"Gram {row['gram']:.3f} SW {row['sliced_wasserstein']:.3f}", flush=True)


def report(rows: Sequence[dict[str, Any]], configs: Sequence[Config], pairs: Sequence[tuple[str, str]],
           ctx: dict[str, Any]) -> str:
    from stylize.atomic import write_text_atomically

    args, scorer = ctx["args"], ctx["scorer"]
    references = [{"pair": list(k[0]), "size": k[1], **prep.reference} for k, prep in scorer._cache.items()]
    meta = {"command": sys.argv, "cpus": os.cpu_count(), "threads": args.threads, "pairs": [list(p) for p in pairs],
            "configs": [dataclasses.asdict(c) for c in configs], "network": ctx["backbone"].description}
    write_text_atomically(args.out / "results.json", json.dumps(
        {"meta": meta, "rows": list(rows), "references": references}, indent=1, default=str))
    text = tables(rows, configs, args.sizes)
    done_pairs = [p for p in pairs if any(list(r["pair"]) == list(p) for r in rows)]
    for size in args.sizes:
        if any(r["size"] == size for r in rows):
            sheet = contact_sheet(rows, scorer, configs, done_pairs, size, args.out, args.cell)
            text += f"\nContact sheet {size} px: {sheet.relative_to(args.out)}\n"
            if args.frontier:
                plot = frontier_plot(rows, configs, size, args.out / f"frontier_{size}.png",
                                     done_pairs[: args.peer_pairs] if args.peers else [])
                text += f"Frontier {size} px: {plot.relative_to(args.out)}\n"
    write_text_atomically(args.out / "tables.md", text)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        configs = build_configs(args)
        pairs = find_pairs(args.images)
        pairs = pairs[: args.pairs] if args.pairs > 0 else pairs
        rows = imported_peer_rows(args, pairs) if args.peers_from else []
        ctx = setup(args, configs)
    except BenchError as exc:
        print(f"bench_quality: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    import torch

    print(f"# bench_quality: {len(pairs)} pairs, sizes {args.sizes}, {os.cpu_count()} CPUs, torch "
          f"{torch.get_num_threads()} threads, load {os.getloadavg()[0]:.1f}; option sets "
          + "; ".join(f"{c.name}={c.options}" for c in configs), flush=True)
    status = 0
    try:
        run_all(configs, pairs, ctx, rows)
    except KeyboardInterrupt:
        print("bench_quality: interrupted: reporting the finished runs", file=sys.stderr)
        status = EXIT_INTERRUPTED
    except BenchError as exc:
        print(f"bench_quality: error: {exc}", file=sys.stderr)
        status = EXIT_USAGE
    if rows:
        print(report(rows, configs, pairs, ctx))
    return status


if __name__ == "__main__":
    sys.exit(main())

"""``stylize plot LOG... -o PLOT.png``: loss curves of one or more run logs (``--log`` files)."""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import Any

from stylize.batch.index import INDEX_JSON, index_logs
from stylize.cli.common import ArgumentParser
from stylize.cli.files import read_log
from stylize.errors import InputError, OptionError, OutputError
from stylize.plot import PLOT_FORMATS, plot_histories

EPILOG = """examples:
  stylize photo.jpg painting.jpg -o out.png --log run.json
  stylize plot run.json -o losses.png
  stylize plot a.csv b.csv -o compare.png --layers --linear --names "weight 1,weight 10"
  stylize plot out/index.json -o all.png      (every finished run of a stylize batch or grid folder)

Dashed lines mark where a new (larger) scale starts, triangles the scales that ended early (the
reason comes from JSON logs; for CSV logs it is guessed from the step counts and shown with a "?"),
red dots the steps where the guard restored the best image after a loss spike.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="stylize plot", description="Draw the loss curves of run logs (written with --log) into a picture.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("logs", nargs="+", metavar="LOG", help="run logs (.csv or .json) written by stylize --log, or "
                        "the index.json of a stylize batch or grid folder")
    parser.add_argument("-o", "--output", required=True, metavar="PLOT",
                        help=f"the picture to write ({', '.join('.' + f for f in PLOT_FORMATS)})")
    parser.add_argument("--layers", action="store_true", help="add the style loss of every layer, one panel per log")
    parser.add_argument("--linear", action="store_true", help="linear loss axis (default: logarithmic)")
    parser.add_argument("--title", help="title of the picture (default: the log names)")
    parser.add_argument("--names", metavar="NAME,...", help="legend names of the logs, comma separated "
                        "(default: the file names)")
    parser.add_argument("--force", action="store_true", help="overwrite PLOT if it exists")
    return parser


def check_plot_path(path: str | os.PathLike[str], *, force: bool) -> Path:
    """Refuse, before any work, a plot path that cannot or must not be written."""
    target = Path(path)
    if target.suffix.lower().lstrip(".") not in PLOT_FORMATS:
        raise OutputError(target, f"plots are written as {', '.join('.' + f for f in PLOT_FORMATS)}")
    if target.is_dir():
        raise OutputError(target, "is a directory")
    if not target.parent.is_dir():
        raise OutputError(target, f"directory {target.parent} does not exist")
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise OutputError(target, f"directory {target.parent} is not writable")
    if target.exists() and not force:
        raise OutputError(target, "already exists; pass --force to overwrite")
    return target


def load_run(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], list[str] | None, int | None]:
    """A log's history, and (JSON logs only) its stop reasons and step limit; InputError if unusable."""
    path = Path(path)
    try:
        history = read_log(path)
    except ValueError:
        raise InputError(path, "not a stylize log (a value is not a number)") from None
    except (TypeError, AttributeError, KeyError, IndexError):
        raise InputError(path, "not a stylize log (unexpected layout)") from None
    for row in history:
        if not isinstance(row.get("step"), float) or not isinstance(row.get("total"), float) \
                or not math.isfinite(row["step"]):
            raise InputError(path, "not a stylize log (a row has no step or total)")
    reasons: list[str] | None = None
    steps: int | None = None
    if path.suffix.lower() == ".json":
        payload = json.loads(path.read_text(encoding="utf-8"))
        raw = payload.get("stop_reasons") if isinstance(payload, dict) else None
        if isinstance(raw, list) and all(isinstance(r, str) for r in raw):
            reasons = raw
        settings = payload.get("settings") if isinstance(payload, dict) else None
        if isinstance(settings, dict) and isinstance(settings.get("steps"), int):
            steps = settings["steps"]
    return history, reasons, steps


def expand_logs(paths: list[str]) -> list[str]:
    """Log files as given; an ``index.json`` of ``stylize grid`` or ``stylize batch`` gives its finished runs' logs."""
    out: list[str] = []
    for path in paths:
        if Path(path).name == INDEX_JSON:
            out += [str(log) for log in index_logs(Path(path))]
        else:
            out.append(path)
    return out


def run_names(paths: list[str]) -> list[str]:
    """Legend names: the file names without suffix, with the folder added where two would clash."""
    stems = [Path(p).stem for p in paths]
    names = []
    for path, stem in zip(paths, stems, strict=True):
        name = stem if stems.count(stem) == 1 else f"{Path(path).parent.name or '.'}/{Path(path).name}"
        while name in names:
            name += "'"
        names.append(name)
    return names


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    output = check_plot_path(args.output, force=args.force)
    args.logs = expand_logs(args.logs)
    names = run_names(args.logs)
    if args.names is not None:
        names = [n.strip() for n in args.names.split(",")]
        if len(names) != len(args.logs) or len(set(names)) != len(names) or not all(names):
            raise OptionError(f"--names: give {len(args.logs)} different names, one per log")
    histories, reasons, steps = {}, {}, {}
    for name, path in zip(names, args.logs, strict=True):
        histories[name], reasons[name], steps[name] = load_run(path)
    plot_histories(histories, output, layers=args.layers, log=not args.linear, stop_reasons=reasons, steps=steps,
                   title=args.title)
    total = sum(len(h) for h in histories.values())
    print(f"wrote {output} ({len(histories)} run(s), {total} steps)")
    return 0

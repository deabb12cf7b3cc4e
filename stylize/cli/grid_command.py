"""``stylize grid --content A.jpg --style S.jpg T.jpg --steps 300,1000 -o DIR``: every combination, one sheet.

Writes into DIR each full-size result (``<content>__<style>__<values>__<key>.png``) with its loss log
(same name, ``.json``, for ``stylize plot``), ``index.json``
and ``index.csv`` (one run per line: inputs, swept values, network actually used, time, final
losses, stop reason) and the labelled contact sheet (``sheet.png``). Run it again and the cells
already in the index with their image present are skipped.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tqdm import tqdm

from stylize.batch.index import INDEX_CSV, INDEX_JSON, is_done, prepare_folder, read_index, write_index
from stylize.batch.jobs import parse_option_value
from stylize.cli.batch_command import EXIT_FAILED, add_executor_flags, executor_from_args
from stylize.cli.common import EXIT_INTERRUPTED, ArgumentParser
from stylize.cli.files import write_log
from stylize.errors import OptionError, StylizeError
from stylize.grid import (
    CellResult,
    GridProgress,
    describe_fallbacks,
    fallback_fixable,
    plan_grid,
    run_grid,
)
from stylize.imageio import load_image, output_format, save_image
from stylize.options import GROUP_TITLES, Options, flag
from stylize.sheet import contact_sheet

#: Options whose single value is itself a comma list: several values are separated by ';' (or the
#: flag is repeated).
LIST_OPTIONS = frozenset({"content_layers", "style_layers", "structure_layers", "style_layer_weights", "style_blend",
                          "scales"})
EPILOG = """examples:
  stylize grid --content photo.jpg --style a.jpg b.jpg --content-weight 1,10 -o sweep
  stylize grid --content p1.jpg p2.jpg --style a.jpg --model vgg16,vgg19 --steps 100,300 --size 384 -o models
  stylize grid --content p.jpg --style a.jpg --style-layers "relu1_1,relu2_1;relu3_1,relu4_1" -o layers

Any option of the main command takes a comma list of values to compare (options whose value is
itself a list - --style-layers, --content-layers, --style-layer-weights, --style-blend, --scales -
take several values separated by ';', or the flag repeated). Rows are the content images times
every second swept option (choose them with --rows), columns the style images times the others.
Cells already done (in DIR/index.json, with their image) are skipped; --redo runs them again.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="stylize grid", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Try every combination of photos, artworks and option values; write each result, an index "
                    "and one labelled contact sheet.",
    )
    parser.add_argument("--content", nargs="+", required=True, metavar="IMAGE", help="content images (rows)")
    parser.add_argument("--style", nargs="+", required=True, metavar="IMAGE", help="style images (columns)")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for the results (created)")
    parser.add_argument("--rows", metavar="OPTIONS", help="swept options to lay out along the rows, comma separated "
                        "(e.g. model,steps); the others go to the columns")
    parser.add_argument("--thumb", type=int, default=256, metavar="PX",
                        help="thumbnail size on the sheet (default 256)")
    parser.add_argument("--sheet", default="sheet.png", metavar="NAME",
                        help="file name of the contact sheet in DIR (.png, .jpg, .webp; default sheet.png)")
    parser.add_argument("--redo", action="store_true", help="run every cell again, even those already done")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_executor_flags(parser, default_workers=0)
    groups: dict[str, Any] = {}
    for f in dataclasses.fields(Options):
        if isinstance(f.default, bool):
            parser.add_argument(f"--{flag(f.name)}", dest=f.name, action=argparse.BooleanOptionalAction,
                                default=None, help=f.metadata["help"])
            continue
        group_name = f.metadata.get("group", "main")
        if group_name not in groups:
            groups[group_name] = parser.add_argument_group(f"{GROUP_TITLES.get(group_name, group_name)} "
                                                           "(each takes several values to compare)")
        group = groups[group_name]
        sep = "';'" if f.name in LIST_OPTIONS else "','"
        shown = ",".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
        group.add_argument(f"--{flag(f.name)}", dest=f.name, action="append", metavar="VALUES",
                           help=f"{f.metadata['help']} (default: {shown}; several values: separate with {sep})")
    return parser


def sweep_values(args: argparse.Namespace, argv: list[str]) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """(option -> list of values) in the order the flags were given, and the boolean options set."""
    fields = {f.name: f for f in dataclasses.fields(Options)}
    position = {}
    for i, token in enumerate(argv):
        name = token.split("=", 1)[0].lstrip("-").replace("-", "_")
        if token.startswith("--") and name in fields:
            position.setdefault(name, i)
    sweeps: dict[str, list[Any]] = {}
    fixed: dict[str, Any] = {}
    for name in sorted(fields, key=lambda n: position.get(n, len(argv))):
        raw = getattr(args, name, None)
        if raw is None:
            continue
        if isinstance(raw, bool):
            fixed[name] = raw
            continue
        sep = ";" if name in LIST_OPTIONS else ","
        texts = [part for item in raw for part in item.split(sep) if part.strip()]
        if not texts:
            raise OptionError(f"--{flag(name)}: give a value")
        sweeps[name] = [parse_option_value(name, text) for text in texts]
    return sweeps, fixed


@contextmanager
def _warnings_above() -> Iterator[None]:
    """Print warnings above the progress bar instead of through it."""
    previous = warnings.showwarning

    def show(message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        tqdm.write(f"stylize: warning: {message}", file=sys.stderr)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous


class GridBar:
    """One tqdm bar over the planned work of every cell being run."""

    UNITS = 1000

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: tqdm | None = None  # opened at the first step, once the networks are loaded

    def __call__(self, p: GridProgress) -> None:
        if self.quiet:
            return
        if self.bar is None:
            self.bar = tqdm(total=self.UNITS, unit="‰", file=sys.stderr, dynamic_ncols=True,
                            bar_format="{l_bar}{bar}| {elapsed}<{remaining}{postfix}")
        s = p.step
        self.bar.set_description(f"cell {p.position}/{p.to_run} scale {s.scale}/{s.num_scales} step {s.step}", False)
        self.bar.set_postfix_str(f"{Path(p.cell.content).stem} x {Path(p.cell.style).stem}", refresh=False)
        self.bar.update(round(p.fraction * self.UNITS) - self.bar.n)

    def write(self, text: str) -> None:
        if self.bar is None:
            print(text)
        else:
            tqdm.write(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.thumb < 32:
        raise OptionError("--thumb: must be at least 32 pixels")
    output_format(Path(args.sheet))  # a sheet name we can write
    if Path(args.sheet).name != args.sheet:
        raise OptionError("--sheet: give a file name (it is written into the output folder)")
    sweeps, fixed = sweep_values(args, argv)
    rows = None if args.rows is None else [p.strip().replace("-", "_") for p in args.rows.split(",") if p.strip()]
    grid = plan_grid(args.content, args.style, sweeps, fixed, rows=rows)
    content_thumbs = [load_image(p, what="content image", max_side=args.thumb) for p in grid.contents]
    style_thumbs = [load_image(p, what="style image", max_side=args.thumb) for p in grid.styles]
    folder, created = prepare_folder(args.output)
    entries = read_index(folder)
    present = {cell.key for cell in grid.cells if is_done(entries.get(cell.key), folder)}
    fixable = {key for key in present if fallback_fixable(entries[key])}
    done = set() if args.redo else present - fixable
    todo = len(grid.cells) - len(done)
    print(f"{len(grid.cells)} cells ({grid.shape[0]} rows x {grid.shape[1]} columns): "
          f"{todo} to run, skipped {len(done)} done", flush=True)
    if fixable and not args.redo:
        print(f"{len(fixable)} cell(s) that ran on a substitute network run again: the weights asked for "
              "are available now", flush=True)

    bar = GridBar(args.quiet or todo == 0)

    def on_result(item: CellResult) -> None:
        if item.result.interrupted:  # an image in DIR always means a finished cell
            bar.write(f"interrupted: {item.cell.label()} (not saved; run the command again to resume)")
            return
        write_log(folder / item.cell.log_name, item.result.history, item.result.settings, item.result.stop_reasons)
        save_image(item.result.image, folder / item.cell.name)
        entries[item.cell.key] = item.entry
        write_index(folder, entries, [c.key for c in grid.cells])
        e = item.entry
        bar.write(f"[{len(entries_run) + 1}/{todo}] {item.cell.label()}: {e['arch']}, {e['steps']} steps, "
                  f"{e['seconds']:.0f} s, {e['stop_reason']} -> {folder / item.cell.name}")
        entries_run.append(item)

    entries_run: list[CellResult] = []
    try:
        with _warnings_above():
            run = run_grid(grid, skip=done, callback=bar, on_result=on_result, executor=executor_from_args(args),
                           retries=args.retries)
    except StylizeError:
        if created and not any(folder.iterdir()):
            folder.rmdir()  # leave nothing behind when the first network cannot be loaded
        raise
    finally:
        bar.close()
    if not entries_run and entries:
        write_index(folder, entries, [c.key for c in grid.cells])  # refresh the CSV/order even when nothing ran

    results = {}
    for cell in grid.cells:
        entry = entries.get(cell.key)
        if entry is not None and (folder / cell.name).is_file():
            results[cell.key] = load_image(folder / cell.name, what="result", max_side=args.thumb)
    sheet = contact_sheet(grid, results, entries=entries, content_thumbs=content_thumbs, style_thumbs=style_thumbs,
                          cell=args.thumb)
    sheet_path = save_image(sheet, folder / args.sheet, **({"quality": 85} if output_format(Path(args.sheet)) == "JPEG"
                                                             else {}))
    for line in describe_fallbacks([entries[c.key] for c in grid.cells if c.key in entries]):
        print(f"note: {line}")
    for cell, message in run.failed:
        print(f"failed: {cell.label()}: {message}")
    print(f"ran {len(run.results)} cell(s) in {run.seconds:.0f} s, skipped {len(run.skipped)} done"
          f"{f', {len(run.failed)} failed' if run.failed else ''}; wrote "
          f"{sheet_path} ({sheet.width}x{sheet.height}), {folder / INDEX_JSON}, {folder / INDEX_CSV}")
    return EXIT_INTERRUPTED if run.interrupted else EXIT_FAILED if run.failed else 0

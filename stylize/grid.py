"""Parameter sweeps: every combination of content images, style images and option values.

:func:`plan_grid` lays the combinations out as a grid (rows: content images x the row
parameters; columns: style images x the column parameters) and gives every cell a stable key, a
hash of the two input files and of every option that changes the picture, so a later run can tell
which cells are already done. :func:`run_grid` runs the cells that are not, one after the other,
reporting progress through a callback and each finished cell through another; it prints nothing
and writes no files (the ``stylize grid`` command saves the images, the index and the contact
sheet drawn by :func:`stylize.sheet.contact_sheet`).

    >>> from stylize.grid import plan_grid, run_grid
    >>> grid = plan_grid(["photo.jpg"], ["a.jpg", "b.jpg"], {"content_weight": [1, 10]}, {"size": 256})
    >>> for done in run_grid(grid).results:
    ...     done.result.image.save(done.cell.name)
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stylize.api import Progress, Result, make_options, transfer
from stylize.backbone import Backbone
from stylize.backbone.weights import available_weights
from stylize.errors import OptionError
from stylize.network import BackboneFactory, NetworkCache
from stylize.options import Options, flag
from stylize.runs import (
    cell_key,
    file_digest,
    format_value,
    index_entry,
    network_key,
    planned_work,
    slug,
)

if TYPE_CHECKING:
    from stylize.batch.executors import Executor



@dataclass(frozen=True)
class Cell:
    """One combination: a content image, a style image and the options of the run."""

    index: int  # position in :attr:`Grid.cells` (row-major)
    row: int
    col: int
    content: str
    style: str
    params: dict[str, Any]  # the swept options of this cell (field name -> value), in sweep order
    options: dict[str, Any]  # every option given to transfer (fixed and swept)
    key: str  # stable hash of the input files and the options that matter
    name: str  # file name of the full-size result

    @property
    def log_name(self) -> str:
        """File name of the run's loss log (JSON, for ``stylize plot``)."""
        return str(Path(self.name).with_suffix(".json"))

    def label(self) -> str:
        """``photo x painting, content-weight 10, model vgg19``."""
        parts = [f"{Path(self.content).stem} x {Path(self.style).stem}"]
        parts += [f"{flag(k)} {format_value(v)}" for k, v in self.params.items()]
        return ", ".join(parts)


@dataclass(frozen=True)
class Axis:
    """One row or column of the grid: an image and the values of the parameters on that axis."""

    image: int  # index into Grid.contents (rows) or Grid.styles (columns)
    params: dict[str, Any]


@dataclass
class Grid:
    """The planned sweep (see :func:`plan_grid`)."""

    contents: list[str]
    styles: list[str]
    sweeps: dict[str, list[Any]]  # options with two or more values, in the order given
    fixed: dict[str, Any]  # options with one value
    row_params: list[str]
    col_params: list[str]
    rows: list[Axis]
    cols: list[Axis]
    cells: list[Cell]

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.rows), len(self.cols)

    def cell(self, row: int, col: int) -> Cell:
        return self.cells[row * len(self.cols) + col]


@dataclass
class CellResult:
    """A finished cell: the run's :class:`~stylize.Result` and its index entry."""

    cell: Cell
    result: Result
    entry: dict[str, Any]


@dataclass
class GridProgress:
    """What the progress callback of :func:`run_grid` receives after every optimizer step."""

    cell: Cell
    position: int  # 1-based number of this cell among the cells being run
    to_run: int  # cells being run (finished cells skipped)
    skipped: int
    step: Progress  # the progress of the run inside this cell
    fraction: float  # share of the planned work of all cells being run, 0..1
    elapsed: float  # seconds since run_grid started
    eta: float | None  # seconds left if every scale of every cell ran all its steps


@dataclass
class GridRun:
    """What :func:`run_grid` returns."""

    results: list[CellResult] = field(default_factory=list)
    skipped: list[Cell] = field(default_factory=list)
    interrupted: bool = False  # a run was stopped (Ctrl-C or StopTransfer); later cells were not run
    failed: list[tuple[Cell, str]] = field(default_factory=list)  # cells that failed, with their one-line error
    seconds: float = 0.0


def _dedupe(values: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if value not in out:
            out.append(value)
    return out


def plan_grid(
    contents: Sequence[str | os.PathLike[str]],
    styles: Sequence[str | os.PathLike[str]],
    sweeps: Mapping[str, Sequence[Any]] | None = None,
    fixed: Mapping[str, Any] | None = None,
    *,
    rows: Sequence[str] | None = None,
) -> Grid:
    """Lay out every combination of ``contents`` x ``styles`` x the values in ``sweeps``.

    Args:
        contents, styles: image files (each style is its own column; they are not blended).
        sweeps: option name (a field of :class:`stylize.Options`) -> the values to try. An option
            with a single value counts as fixed.
        fixed: options shared by every cell.
        rows: the swept options shown along the rows (after the content image); the others go to
            the columns. Default: the first swept option goes to the columns, the second to the
            rows, and so on alternately.

    Raises:
        OptionError: an unknown option, a bad value (checked for every combination up front).
        InputError: a missing or unreadable image file.
    """
    if not contents:
        raise OptionError("--content: give at least one content image")
    if not styles:
        raise OptionError("--style: give at least one style image")
    names = {f.name for f in dataclasses.fields(Options)}
    fixed = dict(fixed or {})
    swept: dict[str, list[Any]] = {}
    for name, values in (sweeps or {}).items():
        if name not in names:
            raise OptionError(f"unknown option {name!r}")
        values = _dedupe(list(values))
        if not values:
            raise OptionError(f"--{flag(name)}: give at least one value")
        if len(values) == 1:
            fixed[name] = values[0]
        else:
            swept[name] = values
            fixed.pop(name, None)
    unknown = sorted(set(fixed) - names)
    if unknown:
        raise OptionError(f"unknown option {unknown[0]!r}")
    if rows is None:
        row_params = [name for i, name in enumerate(swept) if i % 2 == 1]
    else:
        bad = [name for name in rows if name not in swept]
        if bad:
            raise OptionError(f"--rows: {flag(bad[0])!r} is not an option with several values here")
        row_params = [name for name in swept if name in rows]
    col_params = [name for name in swept if name not in row_params]

    content_list = _dedupe([str(c) for c in contents])
    style_list = _dedupe([str(s) for s in styles])
    digests = {path: file_digest(path, "content image") for path in content_list}
    digests.update({path: file_digest(path, "style image") for path in style_list if path not in digests})

    def axis(images: list[str], params: list[str]) -> list[Axis]:
        combos = itertools.product(range(len(images)), *(swept[p] for p in params))
        return [Axis(image=c[0], params=dict(zip(params, c[1:], strict=True))) for c in combos]

    row_axes, col_axes = axis(content_list, row_params), axis(style_list, col_params)
    cells = []
    for r, row in enumerate(row_axes):
        for c, col in enumerate(col_axes):
            params = {name: {**row.params, **col.params}[name] for name in swept}
            options = {**fixed, **params}
            validated = make_options(**options)
            content, style = content_list[row.image], style_list[col.image]
            key = cell_key(digests[content], digests[style], validated)
            values = "_".join(slug(f"{flag(k)}-{format_value(v)}", 30) for k, v in params.items())
            stem = f"{slug(Path(content).stem, 24)}__{slug(Path(style).stem, 24)}"
            name = f"{stem}__{values + '__' if values else ''}{key[:8]}.png"
            cells.append(Cell(index=len(cells), row=r, col=c, content=content, style=style, params=params,
                              options=options, key=key, name=name))
    return Grid(contents=content_list, styles=style_list, sweeps=swept, fixed=fixed, row_params=row_params,
                col_params=col_params, rows=row_axes, cols=col_axes, cells=cells)


def default_backbone_factory(download_progress: Callable[[int, int], None] | None = None) -> BackboneFactory:
    """Load the real network for some options (weights resolved as by :func:`stylize.transfer`)."""
    return NetworkCache(max_entries=4, progress=download_progress)


def _load_networks(cells: Sequence[Cell], factory: BackboneFactory) -> dict[tuple[Any, ...], Backbone]:
    """One network per (model, weights, convention, pooling), cut after the deepest layer any cell needs."""
    layers: dict[tuple[Any, ...], dict[str, None]] = {}
    first: dict[tuple[Any, ...], Options] = {}
    for cell in cells:
        opts = make_options(**cell.options)
        key = network_key(opts)
        first.setdefault(key, opts)
        layers.setdefault(key, {}).update(dict.fromkeys(opts.network_layers))
    networks = {}
    for key, opts in first.items():
        every = tuple(layers[key])
        networks[key] = factory(dataclasses.replace(opts, style_layers=every))
    return networks


def run_grid(
    grid: Grid,
    *,
    skip: Collection[str] = (),
    backbone: Backbone | None = None,
    backbone_factory: BackboneFactory | None = None,
    callback: Callable[[GridProgress], None] | None = None,
    on_result: Callable[[CellResult], None] | None = None,
    download_progress: Callable[[int, int], None] | None = None,
    executor: Executor | None = None,
    retries: int = 0,
) -> GridRun:
    """Run the cells of ``grid`` whose key is not in ``skip`` (in order, on one executor).

    Args:
        skip: keys of cells already done (they are reported in ``GridRun.skipped``).
        backbone: one ready network for every cell (tests: :func:`stylize.backbone.tiny_backbone`).
        backbone_factory: ``factory(options) -> Backbone``, called once per distinct network
            (model, weights, convention, pooling) before the first cell runs, so a model that
            cannot be loaded fails at once. Default: the real VGG weights.
        callback: a :class:`GridProgress` after every step; raising :class:`stylize.StopTransfer`
            from it stops the current cell (its best image is kept) and the grid.
        on_result: called with each finished cell as soon as it is done (save it there).
        download_progress: ``(done, total)`` bytes while weights are downloaded.
        executor: where the cells run (:mod:`stylize.batch.executors`: worker processes, Ray);
            default: this process, with the networks loaded up front and shared by the cells.
        retries: runs again a cell whose worker died (see :func:`stylize.batch.run_batch`).

    A cell whose run was interrupted is reported through ``on_result`` (its result says so) and
    ends the grid with ``interrupted`` set; a cell that fails (a corrupt image) is recorded in
    ``GridRun.failed`` and the grid goes on.
    """
    from stylize.batch.executors import InlineExecutor
    from stylize.batch.jobs import Job
    from stylize.batch.run import run_batch

    start = time.perf_counter()
    todo = [cell for cell in grid.cells if cell.key not in skip]
    run = GridRun(skipped=[cell for cell in grid.cells if cell.key in skip])
    if executor is None:
        networks: dict[tuple[Any, ...], Backbone] = {}
        if backbone is None and todo:
            networks = _load_networks(todo, backbone_factory or default_backbone_factory(download_progress))
        executor = InlineExecutor(backbone=backbone, networks=networks, transfer_fn=transfer)
    cells = {cell.key: cell for cell in todo}
    position = {cell.key: i for i, cell in enumerate(todo, start=1)}
    jobs = [Job(index=c.index, content=c.content, style=c.style, options=c.options, key=c.key, name=c.name,
                params=c.params) for c in todo]

    def on_step(p: Any) -> None:
        if callback is not None:
            callback(GridProgress(cell=cells[p.job.key], position=position[p.job.key], to_run=len(todo),
                                  skipped=len(run.skipped), step=p.step, fraction=p.fraction, elapsed=p.elapsed,
                                  eta=p.eta))

    for done in run_batch(jobs, executor=executor, retries=retries, callback=on_step):
        cell = cells[done.job.key]
        if done.result is None:
            if done.status == "failed":
                run.failed.append((cell, done.error or "failed"))
            run.interrupted = run.interrupted or done.status == "interrupted"
            continue
        item = CellResult(cell=cell, result=done.result, entry=index_entry(cell, done.result))
        run.results.append(item)
        if on_result is not None:
            on_result(item)
        run.interrupted = run.interrupted or done.result.interrupted
    run.seconds = time.perf_counter() - start
    return run


def fallback_fixable(entry: Mapping[str, Any]) -> bool:
    """True for a finished cell that ran as another network than asked for (VGG-16 for VGG-19, when
    its weights were missing) whose own weights are in the cache now: it is worth running again."""
    model, arch = entry.get("model"), entry.get("arch")
    if not model or not arch or model == arch:
        return False
    return any(row["arch"] == model and row["present"] for row in available_weights())


def describe_fallbacks(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per requested model that ran as another architecture (missing weights)."""
    seen: dict[tuple[str, str], int] = {}
    for entry in entries:
        model, arch = entry.get("model"), entry.get("arch")
        if model and arch and model != arch:
            seen[(model, arch)] = seen.get((model, arch), 0) + 1
    return [f"--model {model} ran as {arch} in {n} cell(s): its weights were not found "
            f"(get them with `stylize weights fetch {model}`)" for (model, arch), n in seen.items()]


__all__ = ["Axis", "Cell", "CellResult", "Grid", "GridProgress", "GridRun", "cell_key", "default_backbone_factory",
           "describe_fallbacks", "fallback_fixable", "format_value", "index_entry", "plan_grid", "planned_work",
           "run_grid"]

"""Batch jobs: where they come from (files, folders, globs, a manifest), validated before any work.

A :class:`Job` is one style transfer of a batch: a content image, a style image, its options, a
stable key (a hash of both images' bytes and of every option that changes the picture, the same
key as a grid cell's) and a deterministic output name ``content__style__KEY8.png``. Every job is
checked here (files readable, options valid) so that a bad batch fails before anything runs.
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from stylize.api import make_options
from stylize.errors import InputError, OptionError
from stylize.options import Options, flag, option_kinds
from stylize.runs import cell_key, file_digest, format_value

#: Files taken from a folder (and from a glob): the image formats stylize reads.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"})
#: Output formats of ``--format`` (the file suffix of each result).
FORMATS = ("png", "jpg", "webp", "tif")
#: Manifest columns that are not options.
JOB_COLUMNS = ("content", "style", "output")
GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Job:
    """One transfer of a batch (field names shared with :class:`stylize.grid.Cell`)."""

    index: int  # position in the batch
    content: str
    style: str
    options: dict[str, Any]  # every option given to transfer
    key: str  # stable hash of the input files and the options that matter
    name: str  # file name of the result inside the output folder
    params: dict[str, Any] = field(default_factory=dict)  # per-job options (manifest columns; grid: swept values)
    line: int | None = None  # manifest line

    @property
    def log_name(self) -> str:
        """File name of the job's loss log (JSON, for ``stylize plot``)."""
        return str(PurePath(self.name).with_suffix(".json"))

    def label(self) -> str:
        parts = [f"{Path(self.content).stem} x {Path(self.style).stem}"]
        parts += [f"{flag(k)} {format_value(v)}" for k, v in self.params.items()]
        return ", ".join(parts)


def expand_images(paths: Iterable[str | os.PathLike[str]], what: str) -> list[str]:
    """Files as given; a folder gives its images (sorted by name, not recursive); a pattern with
    ``*``, ``?`` or ``[`` gives the image files it matches (``**`` recurses). Duplicates are dropped."""
    out: dict[str, None] = {}
    for raw in paths:
        text = os.fspath(raw)
        path = Path(text)
        if path.is_dir():
            found = sorted(str(p) for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise InputError(path, f"{what}s: no image files in this folder")
        elif not path.exists() and GLOB_CHARS & set(text):
            found = sorted(p for p in glob.glob(text, recursive=True)
                           if Path(p).suffix.lower() in IMAGE_SUFFIXES and Path(p).is_file())
            if not found:
                raise InputError(path, f"{what}s: no image file matches this pattern")
        else:
            found = [text]
        out.update(dict.fromkeys(found))
    return list(out)


def output_name(content: str, style: str, key: str, fmt: str) -> str:
    """``content-stem__style-stem__KEY8.fmt``: deterministic, so a rerun finds its results."""
    def stem(path: str) -> str:  # the file's stem, with anything but letters, digits, "_", "-" and "." as "-"
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(path).stem).strip("-.")[:40] or "x"

    return f"{stem(content)}__{stem(style)}__{key[:8]}.{fmt}"


class _Digests:
    """File digests computed once per path (a style used by 100 jobs is read once)."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], str] = {}

    def __call__(self, path: str, what: str) -> str:
        if (path, what) not in self.seen:
            self.seen[(path, what)] = file_digest(path, what)
        return self.seen[(path, what)]


def make_job(index: int, content: str, style: str, options: Mapping[str, Any], *, fmt: str = "png",
             params: Mapping[str, Any] | None = None, output: str | None = None, line: int | None = None,
             digests: _Digests | None = None) -> Job:
    """A validated job (OptionError for a bad option, InputError for an unreadable file)."""
    digests = digests or _Digests()
    validated = make_options(**options)
    key = cell_key(digests(content, "content image"), digests(style, "style image"), validated)
    name = output or output_name(content, style, key, fmt)
    return Job(index=index, content=content, style=style, options=dict(options), key=key, name=name,
               params=dict(params or {}), line=line)


def plan_jobs(contents: Sequence[str | os.PathLike[str]], styles: Sequence[str | os.PathLike[str]],
              options: Mapping[str, Any] | None = None, *, pairs: bool = False, fmt: str = "png") -> list[Job]:
    """Every content x every style (or, with ``pairs``, the i-th content with the i-th style).

    ``contents`` and ``styles`` may name files, folders and glob patterns (:func:`expand_images`).
    """
    check_format(fmt)
    content_list = expand_images(contents, "content image")
    style_list = expand_images(styles, "style image")
    if not content_list:
        raise OptionError("--content: give at least one content image")
    if not style_list:
        raise OptionError("--style: give at least one style image")
    if pairs:
        if len(content_list) != len(style_list):
            raise OptionError(f"--pairs: {len(content_list)} content images but {len(style_list)} style images")
        combos = list(zip(content_list, style_list, strict=True))
    else:
        combos = [(c, s) for c in content_list for s in style_list]
    digests = _Digests()
    jobs = [make_job(i, c, s, options or {}, fmt=fmt, digests=digests) for i, (c, s) in enumerate(combos)]
    return dedupe_jobs(jobs)


def dedupe_jobs(jobs: Iterable[Job]) -> list[Job]:
    """Drop repeated jobs (same key and output); refuse two different jobs writing one output name."""
    by_name: dict[str, Job] = {}
    out: list[Job] = []
    for job in jobs:
        other = by_name.get(job.name)
        if other is not None:
            if other.key == job.key:
                continue
            where = f"line {job.line}: " if job.line else ""
            raise OptionError(f"{where}two different jobs would write {job.name} ({other.label()}; {job.label()})")
        by_name[job.name] = job
        out.append(dataclasses.replace(job, index=len(out)))
    return out


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise OptionError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    return fmt


# --------------------------------------------------------------------------- option values from text


def parse_option_value(name: str, text: str) -> Any:
    """One option value written as text (the command line, a CSV cell), typed like its field."""
    return option_kinds()[name].parse(text)


# --------------------------------------------------------------------------- manifests


def _manifest_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) of a CSV (header line first) or JSON Lines manifest (.jsonl, .ndjson, .json)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(path, "no such manifest") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read the manifest ({getattr(exc, 'strerror', None) or exc})") from None
    rows: list[tuple[int, dict[str, Any]]] = []
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise InputError(path, f"line {number}: not JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise InputError(path, f"line {number}: each line must be a JSON object")
            rows.append((number, row))
        return rows
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if not header:
        raise InputError(path, "empty manifest (the first line names the columns: content,style,...)")
    header = [h.strip() for h in header]
    for number, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue
        if len(values) > len(header):
            raise InputError(path, f"line {number}: {len(values)} values for {len(header)} columns")
        rows.append((number, {h: v for h, v in zip(header, values, strict=False) if v.strip()}))
    return rows


def _manifest_path(value: Any, base: Path, manifest: Path, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(manifest, f"{where}: give a file name")
    path = Path(value.strip())
    return str(path if path.is_absolute() else base / path)


def _row_options(manifest: Path, number: int, row: Mapping[str, Any]) -> dict[str, Any]:
    fields = {f.name for f in dataclasses.fields(Options)}
    options: dict[str, Any] = {}
    for column, value in row.items():
        if column in JOB_COLUMNS:
            continue
        name = str(column).strip().lstrip("-").replace("-", "_")
        if name not in fields:
            raise InputError(manifest, f"line {number}, column {column!r}: not an option of stylize")
        try:
            if isinstance(value, str):
                value = parse_option_value(name, value)
            elif isinstance(value, list):
                value = tuple(value)
        except OptionError as exc:
            raise InputError(manifest, f"line {number}, column {column!r}: {exc}") from None
        options[name] = value
    return options


def _check_output(value: Any, manifest: Path, where: str) -> str:
    name = PurePath(str(value).strip())
    if not str(value).strip() or name.is_absolute() or ".." in name.parts:
        raise InputError(manifest, f"{where}: give a file name inside the output folder")
    check_format(name.suffix.lower().lstrip(".").replace("jpeg", "jpg").replace("tiff", "tif"))
    return str(name)


def read_manifest(path: str | os.PathLike[str], options: Mapping[str, Any] | None = None,
                  *, fmt: str = "png") -> list[Job]:
    """The jobs of a manifest: a CSV with a header line, or JSON Lines, with the columns
    ``content``, ``style``, optionally ``output`` (a file name in the output folder) and any option
    (``strength``, ``size``, ``preserve_color`` ...; dashes or underscores). Relative image paths
    are relative to the manifest's folder. A column's value overrides ``options`` for its job.

    Raises InputError naming the manifest, the line and the column of the first problem.
    """
    manifest = Path(path)
    base = manifest.parent
    digests = _Digests()
    jobs: list[Job] = []
    for number, row in _manifest_rows(manifest):
        for column in ("content", "style"):
            if column not in row:
                raise InputError(manifest, f"line {number}: no {column!r} column")
        content = _manifest_path(row["content"], base, manifest, f"line {number}, column 'content'")
        style = _manifest_path(row["style"], base, manifest, f"line {number}, column 'style'")
        output = row.get("output")
        if output is not None:
            output = _check_output(output, manifest, f"line {number}, column 'output'")
        own = _row_options(manifest, number, row)
        try:
            jobs.append(make_job(len(jobs), content, style, {**(options or {}), **own}, fmt=fmt, params=own,
                                 output=output, line=number, digests=digests))
        except OptionError as exc:
            column = next((c for c in row if f"--{flag(str(c).strip().lstrip('-').replace('-', '_'))}" in str(exc)),
                          None)
            where = f"line {number}, column {column!r}" if column else f"line {number}"
            raise InputError(manifest, f"{where}: {exc}") from None
        except InputError as exc:
            column = "content" if exc.path is not None and str(exc.path) == content else "style"
            raise InputError(manifest, f"line {number}, column {column!r}: {exc}") from None
    if not jobs:
        raise InputError(manifest, "no jobs in the manifest")
    return dedupe_jobs(jobs)


__all__ = ["FORMATS", "IMAGE_SUFFIXES", "Job", "check_format", "dedupe_jobs", "expand_images", "make_job",
           "output_name", "parse_option_value", "plan_jobs", "read_manifest"]

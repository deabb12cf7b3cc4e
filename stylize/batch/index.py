"""The output folder's ``index.json`` and ``index.csv``: shared by ``stylize grid`` and ``stylize batch``.

One record per run (see :meth:`stylize.batch.JobResult.entry` and :func:`stylize.grid.index_entry`):
inputs, per-job options, network actually used, seconds, stop reason, final losses, status, error.
``index.json`` is ``{"stylize_grid": 1, "kind": "grid"|"batch", "runs": [...]}``; ``stylize plot
DIR/index.json`` draws the loss logs it lists. A run counts as done (and is skipped next time)
when its record says so and its image is in the folder.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from stylize.atomic import write_text_atomically
from stylize.errors import InputError, OutputError

INDEX_JSON = "index.json"
INDEX_CSV = "index.csv"
INDEX_VERSION = 1
CSV_FIRST = ["key", "file", "content", "style"]
CSV_LAST = ["status", "model", "arch", "width", "height", "steps", "seconds", "stop_reason", "loss_total",
            "loss_content", "loss_style", "network", "attempts", "worker", "error", "finished"]


def prepare_folder(path: str | os.PathLike[str]) -> tuple[Path, bool]:
    """The output folder, created when missing (its parent must exist); and whether it was created."""
    folder = Path(path)
    created = not folder.exists()
    if folder.exists() and not folder.is_dir():
        raise OutputError(folder, "is not a folder")
    if not folder.exists():
        if not folder.parent.is_dir():
            raise OutputError(folder, f"its parent folder {folder.parent} does not exist")
        try:
            folder.mkdir()
        except OSError as exc:
            raise OutputError(folder, f"cannot create ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(folder, "is not writable")
    return folder, created


def read_index(folder: Path) -> dict[str, dict[str, Any]]:
    """The records of DIR/index.json by key ({} when there is none)."""
    path = folder / INDEX_JSON
    if not path.exists():
        return {}
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        runs = payload["runs"]
        entries = {str(run["key"]): run for run in runs if isinstance(run, dict)}
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise InputError(path, "not a stylize grid index; move it away or choose another folder") from None
    return entries


def is_done(entry: dict[str, Any] | None, folder: Path) -> bool:
    """A finished run whose image is still there (grid records before batch have no status: done)."""
    return entry is not None and entry.get("status", "done") == "done" and (folder / str(entry["file"])).is_file()


def compact(entry: Mapping[str, Any]) -> str:
    """A record as one line of JSON: how a long batch keeps its records (a few hundred bytes each, not
    the several kilobytes of a dict of dicts), so the driver's memory stays flat."""
    return json.dumps(entry, separators=(",", ":"), default=str)


def write_index(folder: Path, entries: Mapping[str, Mapping[str, Any] | str], order: Iterable[str] = (),
                kind: str = "grid") -> None:
    """index.json (the keys in ``order`` first, then every other run in DIR) and index.csv.

    ``entries`` maps keys to records, as dicts or as :func:`compact` JSON text.
    """
    keys = [key for key in order if key in entries]
    seen = set(keys)
    keys += [key for key in entries if key not in seen]
    texts = (e if isinstance(e, str) else compact(e) for e in (entries[key] for key in keys))
    header = json.dumps({"stylize_grid": INDEX_VERSION, "kind": kind})[:-1]
    write_text_atomically(folder / INDEX_JSON, header + ', "runs": [\n' + ",\n".join(texts) + "\n]}\n")
    params: dict[str, None] = {}
    for key in keys:
        params.update(dict.fromkeys(_record(entries[key]).get("params", {})))
    buffer = io.StringIO()
    columns = list(dict.fromkeys([*CSV_FIRST, *params, *CSV_LAST]))
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for key in keys:
        run = _record(entries[key])
        values = run.get("params", {})
        writer.writerow({**{k: _csv_value(v) for k, v in run.items() if k != "params"},
                         **{k: _csv_value(v) for k, v in values.items()}})
    write_text_atomically(folder / INDEX_CSV, buffer.getvalue())


def _record(entry: Mapping[str, Any] | str) -> Mapping[str, Any]:
    return json.loads(entry) if isinstance(entry, str) else entry


def index_logs(path: Path) -> list[Path]:
    """The loss logs of the finished runs an index lists (for ``stylize plot DIR/index.json``)."""
    entries = read_index(path.parent) if path.name == INDEX_JSON else None
    if entries is None:
        raise InputError(path, f"an index is named {INDEX_JSON}")
    logs = [path.parent / str(e["log"]) for e in entries.values()
            if e.get("status", "done") == "done" and e.get("log") and (path.parent / str(e["log"])).is_file()]
    if not logs:
        raise InputError(path, "lists no finished run with its loss log")
    return logs


def _csv_value(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    return "" if value is None else value


__all__ = ["INDEX_CSV", "INDEX_JSON", "compact", "index_logs", "is_done", "prepare_folder", "read_index", "write_index"]

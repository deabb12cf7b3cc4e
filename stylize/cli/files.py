"""Writing run logs (CSV or JSON) atomically; reading them back for plots."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from stylize.atomic import write_text_atomically
from stylize.errors import InputError, OutputError

LOG_FORMATS = (".csv", ".json")
FIRST_COLUMNS = ["step", "seconds", "total", "content", "style"]


def check_log_path(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in LOG_FORMATS:
        raise OutputError(path, "log files must end in .csv or .json")
    if not path.parent.exists() or not path.parent.is_dir():
        raise OutputError(path, "its folder does not exist")
    if path.is_dir():
        raise OutputError(path, "is a directory")
    return path


def write_atomic(path: str | Path, data: str) -> Path:
    """Write text to ``path`` atomically (:func:`stylize.atomic.write_text_atomically`)."""
    return write_text_atomically(path, data)


def log_columns(history: list[dict[str, Any]]) -> list[str]:
    """step, seconds, total, content, style, one column per style layer, then the rest."""
    keys: dict[str, None] = {}
    for row in history:
        keys.update(dict.fromkeys(row))
    layers = [k for k in keys if k.startswith("style_")]
    rest = [k for k in keys if k not in FIRST_COLUMNS and k not in layers]
    return [*FIRST_COLUMNS, *layers, *rest]


def write_log(path: str | Path, history: list[dict[str, Any]], settings: dict[str, Any],
              stop_reasons: list[str]) -> Path:
    path = Path(path)
    if path.suffix.lower() == ".json":
        payload = {"settings": settings, "stop_reasons": stop_reasons, "history": history}
        return write_atomic(path, json.dumps(payload, indent=1, default=str))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=log_columns(history), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(history)
    return write_atomic(path, buffer.getvalue())


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a CSV or JSON log as dicts of floats (and the ``event`` string)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such log file")
    try:
        if path.suffix.lower() == ".json":
            rows = json.loads(path.read_text(encoding="utf-8"))["history"]
        else:
            with path.open(encoding="utf-8", newline="") as handle:
                rows = list(csv.DictReader(handle))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not a stylize log ({exc.__class__.__name__})") from None
    if not rows or "total" not in rows[0]:
        raise InputError(path, "not a stylize log (no 'total' column)")
    out = []
    for row in rows:
        parsed: dict[str, Any] = {}
        for key, value in row.items():
            if key == "event":
                parsed[key] = value or ""
            elif value not in (None, ""):
                try:
                    parsed[key] = float(value)
                except (TypeError, ValueError):
                    raise InputError(path, f"not a stylize log (column {key!r} holds {value!r})") from None
        out.append(parsed)
    return out

"""What grids and batches share: a run's stable key, its planned work and its index record.

A run here is anything with ``content``, ``style`` (paths), ``options`` (keywords of
:func:`stylize.transfer`), ``params`` (the values that vary between runs), ``key``, ``name`` and
``log_name``: a :class:`stylize.grid.Cell` or a :class:`stylize.batch.Job`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import PIL.Image

from stylize import plan
from stylize.api import Result, make_options
from stylize.errors import InputError
from stylize.options import Options, flag


class RunSpec(Protocol):
    content: str
    style: str
    options: dict[str, Any]
    params: dict[str, Any]
    key: str
    name: str

    @property
    def log_name(self) -> str: ...


#: Options that do not change the picture (or only by rounding): left out of a cell's key.
UNKEYED_OPTIONS = frozenset({"device", "max_pixels", "allow_download"})
#: Options that may name a file whose content changes the picture.
FILE_OPTIONS = ("mask", "init", "weights")

def format_value(value: Any) -> str:
    """An option value as written on the command line (``10``, ``0.5``, ``relu1_1,relu2_1``)."""
    if value is None:
        return "default"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)):
        return ",".join(format_value(v) for v in value)
    return str(value)


def file_digest(path: str, what: str) -> str:
    try:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
    except FileNotFoundError:
        raise InputError(path, f"{what}: no such file") from None
    except IsADirectoryError:
        raise InputError(path, f"{what}: is a directory") from None
    except OSError as exc:
        raise InputError(path, f"{what}: cannot read ({exc.strerror or exc})") from None


def slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-.")[:limit] or "x"


def _option_files(options: Options) -> dict[str, str]:
    """Digests of the files named by options (a mask, an init image, a weights file): their content counts."""
    files = {}
    for name in FILE_OPTIONS:
        value = getattr(options, name, None)
        if isinstance(value, str) and not (name == "init" and value in ("content", "noise")) and Path(value).is_file():
            files[name] = file_digest(value, f"--{flag(name)}")
    return files


def cell_key(content_digest: str, style_digest: str, options: Options) -> str:
    """The stable key of a run: a hash of both images and every option that changes the picture
    (for options naming a file, also of the file's content)."""
    keyed = {k: v for k, v in dataclasses.asdict(options).items() if k not in UNKEYED_OPTIONS}
    text = json.dumps({"content": content_digest, "style": style_digest, "options": keyed,
                       "files": _option_files(options)}, sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def planned_work(cell: RunSpec) -> float:
    """The planned cost of a cell in pixel-steps, from the run plan (tiles included), for progress
    and ETA; a content image whose size cannot be read counts as square."""
    opts = make_options(**cell.options)
    try:
        with PIL.Image.open(cell.content) as image:
            size = image.size[::-1] if image.getexif().get(0x0112, 1) > 4 else image.size  # EXIF: turned 90°
    except (OSError, ValueError, PIL.Image.DecompressionBombError):
        size = (opts.size, opts.size)
    return plan.planned_work(opts, size)


def index_entry(cell: RunSpec, result: Result) -> dict[str, Any]:
    """The record of a finished cell: inputs, swept values, network actually used, time, losses, stop reason."""
    last_scale = result.history[-1]["scale"] if result.history else 0
    rows = [row for row in result.history if row["scale"] == last_scale]
    best = min(rows, key=lambda row: row["total"]) if rows else {}
    return {
        "key": cell.key,
        "file": cell.name,
        "log": cell.log_name,
        "content": cell.content,
        "style": cell.style,
        "params": {flag(k): v for k, v in cell.params.items()},
        "model": result.settings.get("model"),
        "arch": result.settings.get("arch"),
        "network": result.settings.get("network"),
        "width": result.image.width,
        "height": result.image.height,
        "steps": len(result.history),
        "seconds": round(result.seconds, 2),
        "stop_reason": result.stop_reason,
        "stop_reasons": list(result.stop_reasons),
        "loss_total": best.get("total"),
        "loss_content": best.get("content"),
        "loss_style": best.get("style"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": result.settings,
    }


def network_key(opts: Options) -> tuple[Any, ...]:
    return opts.model, opts.weights, opts.weights_convention, opts.pooling




__all__ = ["FILE_OPTIONS", "UNKEYED_OPTIONS", "RunSpec", "cell_key", "file_digest", "format_value", "index_entry",
           "network_key", "planned_work", "slug"]

"""The options form of the web page, generated from the :class:`stylize.Options` dataclass.

Like the command line, the page is built from the fields' names, types, defaults, help texts and
choices, so a new option appears on the page without any change here. :func:`form_fields`
describes the fields for ``GET /api/options``; :func:`parse_options` turns what the page sends
back into keyword arguments for :func:`stylize.transfer`, refusing anything the page does not
offer.

Some options are the server's business, not the visitor's: where to compute, input limits,
downloads, and anything that names a file on the server (``--weights FILE``, ``--mask MASK.png``).
Those are never accepted from a client. Numbers, choices, switches and lists of numbers appear
by themselves; a free-text option could be a path, so it is offered only once it is listed in
:data:`FREE_TEXT_OPTIONS`. An option whose metavar offers words besides a file
(``content|noise|FILE``) is offered with just the words; a metavar like ``0-10`` gives a slider.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any

from stylize.api import make_options
from stylize.errors import OptionError
from stylize.options import Options, flag, option_kind

#: Options the server decides (device, limits, downloads); never taken from a client.
SERVER_OPTIONS = frozenset({"device", "max_pixels", "allow_download", "weights", "weights_convention"})

#: Free-text options known not to be paths (others are not offered: they might name a file).
FREE_TEXT_OPTIONS = frozenset({"scales", "content_layers", "style_layers", "structure_layers"})

#: Shown first, outside "More options", with the fields of the "control" group between them.
BASIC_FIRST = ("size",)
BASIC_LAST = ("steps", "model")

GROUP_TITLES = {"main": "Size and schedule", "control": "Artistic control", "loss": "Losses",
                "model": "Network", "optimizer": "Optimizer", "input": "Input"}

LABELS = {"size": "Size (long side, px)", "steps": "Steps per scale", "tv_weight": "Smoothness (TV weight)",
          "lr": "Learning rate", "preserve_color": "Keep the photo's colours",
          "style_scale": "Style scale (brush size)", "tol": "Early-stop tolerance", "window": "Early-stop window",
          "init": "Start from", "structure_weight": "Structure (keep the photo's layout)"}


@dataclass(frozen=True)
class FormLimits:
    """Server-side caps on what a visitor may ask for."""

    max_size: int = 2048
    max_steps: int = 2000  # also caps --tile-steps and --window


#: (least, most) value of each numeric option; a string names a field of FormLimits. Options not
#: listed get DEFAULT_RANGE, so a new numeric option is bounded too.
RANGES: dict[str, tuple[float, float | str]] = {
    "size": (16, "max_size"), "steps": (1, "max_steps"), "tile_steps": (0, "max_steps"),
    "window": (1, "max_steps"), "seed": (0, 2**32 - 1), "max_memory": (0.05, 1024),
    "tile_size": (0, 8192), "tile_overlap": (0, 1024), "tol": (0, 1), "lr": (1e-6, 1000),
    "style_scale": (0.05, 10),
}
DEFAULT_RANGE = (0, 1e6)


def _bound(value: float | str, limits: FormLimits) -> float:
    return float(getattr(limits, value)) if isinstance(value, str) else value


def _show(number: float) -> str:
    try:
        value = float(number)
    except OverflowError:
        return "a huger number"
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:g}"


def _names_file(metavar: str | None) -> bool:
    """Whether a metavar says the option takes a file (``FILE``, ``PATH``, ``MASK.png`` ...)."""
    return bool(metavar) and bool(re.search(r"FILE|PATH|DIR|\.[A-Za-z]{2,4}\b", metavar))


def _range(metavar: str | None) -> tuple[float, float] | None:
    """``0-10`` -> (0, 10)."""
    found = re.fullmatch(r"(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)", metavar or "")
    return (float(found.group(1)), float(found.group(2))) if found else None


def _word_choices(metavar: str | None) -> tuple[str, ...] | None:
    """``content|noise|FILE`` -> ("content", "noise"); None when the option takes a file only."""
    if not metavar or "FILE" not in metavar or "|" not in metavar:
        return None
    words = tuple(part for part in metavar.split("|") if part and part.upper() != part)
    return words or None


@dataclass(frozen=True)
class FormField:
    name: str
    kind: str  # choice, bool, int, float, text, strings, floats, ints
    optional: bool
    default: Any
    choices: tuple[str, ...] | None
    label: str
    help: str
    group: str
    basic: bool
    minimum: float | None = None
    maximum: float | None = None
    slider: bool = False  # a range with both ends given

    def as_json(self) -> dict[str, Any]:
        default = list(self.default) if isinstance(self.default, tuple) else self.default
        return {"name": self.name, "flag": f"--{flag(self.name)}", "kind": self.kind, "optional": self.optional,
                "default": default, "choices": list(self.choices) if self.choices else None, "label": self.label,
                "help": self.help, "group": self.group, "group_title": GROUP_TITLES.get(self.group, self.group),
                "basic": self.basic, "min": self.minimum, "max": self.maximum, "slider": self.slider}


def form_fields(limits: FormLimits = FormLimits()) -> list[FormField]:
    """The options a visitor may set, basic ones first, then in the dataclass's order."""
    fields = []
    for f in dataclasses.fields(Options):
        meta = f.metadata
        metavar = meta.get("metavar")
        if f.name in SERVER_OPTIONS:
            continue
        choices = meta.get("choices")
        if _names_file(metavar):
            choices = _word_choices(metavar)
            if choices is None:
                continue  # a path on the server: not for visitors
        shared = option_kind(f)  # the one table of option kinds (stylize.options)
        kind, optional = ("choice" if choices else shared.kind), shared.optional
        if kind in ("text", "strings") and f.name not in FREE_TEXT_OPTIONS:
            continue
        group = meta.get("group", "main")
        basic = f.name in BASIC_FIRST or f.name in BASIC_LAST or group == "control"
        minimum = maximum = None
        slider = False
        if kind in ("int", "float", "ints", "floats"):
            low, high = RANGES.get(f.name, DEFAULT_RANGE)
            minimum, maximum = _bound(low, limits), _bound(high, limits)
            if kind in ("int", "float") and (span := _range(metavar)) is not None:
                (minimum, maximum), slider = span, True
        fields.append(FormField(
            name=f.name, kind=kind, optional=optional, default=f.default, choices=choices,
            label=LABELS.get(f.name, f.name.replace("_", " ").capitalize()), help=meta.get("help", ""),
            group=group, basic=basic, minimum=minimum, maximum=maximum, slider=slider,
        ))

    def rank(fld: FormField) -> tuple[int, int]:
        if fld.name in BASIC_FIRST:
            return (0, BASIC_FIRST.index(fld.name))
        if fld.name in BASIC_LAST:
            return (2, BASIC_LAST.index(fld.name))
        return (1 if fld.basic else 3, 0)

    return sorted(fields, key=rank)


def _number(field: FormField, value: Any, kind: type) -> int | float:
    name = f"--{flag(field.name)}"
    if isinstance(value, bool):
        raise OptionError(f"{name}: expected a number, got {value!r}")
    if isinstance(value, str):
        try:
            value = kind(value.strip())
        except ValueError:
            raise OptionError(f"{name}: {value!r} is not a {'whole ' if kind is int else ''}number") from None
    if kind is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            raise OptionError(f"{name}: must be a whole number, got {value!r}")
        return value
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise OptionError(f"{name}: must be a finite number, got {value!r}")
    return float(value)


def _in_range(field: FormField, number: float) -> float:
    name = f"--{flag(field.name)}"
    if field.minimum is not None and number < field.minimum:
        raise OptionError(f"{name}: must be at least {_show(field.minimum)}, got {_show(number)}")
    if field.maximum is not None and number > field.maximum:
        raise OptionError(f"{name}: must be at most {_show(field.maximum)} here, got {_show(number)}")
    return number


def _coerce(field: FormField, value: Any) -> Any:
    name = f"--{flag(field.name)}"
    if value is None or (isinstance(value, str) and not value.strip() and field.kind != "text"):
        if field.optional:
            return None
        raise OptionError(f"{name}: a value is required")
    if field.kind == "bool":
        if not isinstance(value, bool):
            raise OptionError(f"{name}: expected true or false, got {value!r}")
        return value
    if field.kind in ("int", "float"):
        return _in_range(field, _number(field, value, int if field.kind == "int" else float))
    if field.kind in ("strings", "floats", "ints"):
        parts = value.split(",") if isinstance(value, str) else value
        if not isinstance(parts, (list, tuple)) or len(parts) > 64:
            raise OptionError(f"{name}: expected a comma-separated list")
        items = [p.strip() if isinstance(p, str) else p for p in parts]
        items = [p for p in items if p != ""]
        if field.kind == "strings":
            if not all(isinstance(p, str) and len(p) <= 64 for p in items):
                raise OptionError(f"{name}: expected a comma-separated list of names")
            return tuple(items)
        kind = float if field.kind == "floats" else int
        return tuple(_in_range(field, _number(field, p, kind)) for p in items)
    if not isinstance(value, str) or len(value) > 200:
        raise OptionError(f"{name}: expected a short text")
    if field.choices is not None and value not in field.choices:
        raise OptionError(f"{name}: {value!r} is not one of {', '.join(field.choices)}")
    return value


def parse_options(raw: Any, limits: FormLimits = FormLimits()) -> dict[str, Any]:
    """Validate the options a client sent; return keyword arguments for :func:`stylize.transfer`.

    Raises OptionError (one line naming the option) for an unknown or server-only option, a
    value of the wrong type, a value over the server's limits, or anything
    :meth:`stylize.Options.validate` refuses.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise OptionError("options must be an object of name: value")
    fields = {f.name: f for f in form_fields(limits)}
    values = {}
    for name, value in raw.items():
        field = fields.get(name) if isinstance(name, str) else None
        if field is None:
            raise OptionError(f"option {str(name)[:40]!r} cannot be set here")
        values[name] = _coerce(field, value)
    make_options(**values)  # the library's own checks, with its messages
    return values

"""What every sub-command shares: one-line errors and warnings, exit codes, option flags."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings
from collections.abc import Callable
from typing import Any

from stylize.errors import OptionError, StylizeError
from stylize.options import GROUP_TITLES, OptionKind, Options, flag, option_kinds

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def error(message: str) -> None:
    print(f"stylize: error: {message}", file=sys.stderr)


def _show_warning(message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
    print(f"stylize: warning: {message}", file=sys.stderr)


def run_guarded(command: Callable[[list[str]], int], args: list[str]) -> int:
    """Run a sub-command: StylizeError -> one line and exit 2; Ctrl-C -> exit 130; no tracebacks."""
    previous = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        return command(args)
    except StylizeError as exc:
        error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        error("interrupted")
        return EXIT_INTERRUPTED
    finally:
        warnings.showwarning = previous


class ArgumentParser(argparse.ArgumentParser):
    """argparse with our one-line error format and exit status 2."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"stylize: error: {message} (see {self.prog} --help)\n")


def _argparse_type(kind: OptionKind) -> Callable[[str], Any]:
    """argparse's ``type=`` for an option: the shared parser of :mod:`stylize.options`."""
    if kind.kind in ("choice", "text"):
        return str

    def parse(text: str) -> Any:
        try:
            return kind.parse(text)
        except OptionError as exc:
            raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1]) from None  # argparse names the flag

    return parse


def add_option_flags(parser: argparse.ArgumentParser, exclude: set[str] = frozenset(), *,
                     given_only: bool = False) -> None:
    """Add one flag per :class:`Options` field, grouped, with the field's help and default.

    ``given_only``: flags the user did not give stay out of the parsed namespace, so that
    :func:`option_values` returns only explicit options (a ``--preset`` fills in the rest).
    """
    groups: dict[str, Any] = {}
    kinds = option_kinds()
    for f in dataclasses.fields(Options):
        if f.name in exclude:
            continue
        meta = f.metadata
        group_name = meta.get("group", "main")
        if group_name not in groups:
            groups[group_name] = parser.add_argument_group(GROUP_TITLES.get(group_name, group_name))
        group = groups[group_name]
        name = flag(f.name)
        default = f.default
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        help_text = f"{meta['help']} (default: {shown})"
        if isinstance(default, bool):
            group.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, default=default,
                               help=meta["help"])
            continue
        group.add_argument(
            f"--{name}", dest=f.name, default=argparse.SUPPRESS if given_only else default,
            type=_argparse_type(kinds[f.name]),
            choices=meta.get("choices"), metavar=meta.get("metavar"), help=help_text,
        )


def option_values(namespace: argparse.Namespace, exclude: set[str] = frozenset()) -> dict[str, Any]:
    """The Options fields present in a parsed namespace."""
    return {f.name: getattr(namespace, f.name) for f in dataclasses.fields(Options)
            if f.name not in exclude and hasattr(namespace, f.name)}

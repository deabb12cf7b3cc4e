"""Exceptions raised by stylize.

Every error a user can cause (a bad file, a bad option value) is a :class:`StylizeError`
whose message is one line that names the offending file or option. Front ends print that
line and exit with status 2; they never show a traceback for these.
"""

from __future__ import annotations

from pathlib import Path


class StylizeError(Exception):
    """A problem caused by the user's input, with a one-line explanation."""


class InputError(StylizeError):
    """An input file (image, mask, weights) cannot be used."""

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)


class OutputError(StylizeError):
    """An output path cannot be written."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class OptionError(StylizeError):
    """An option has a value stylize does not accept."""


class WeightsError(InputError):
    """A weights file is missing, unreadable, not a VGG state dict, or fails its hash."""


class StopTransfer(Exception):  # noqa: N818 - it is a control-flow signal, not an error
    """Raise from a progress callback to stop the run early; the best image so far is kept."""

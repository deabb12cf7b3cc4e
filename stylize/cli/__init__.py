"""The ``stylize`` command: a thin front end over :func:`stylize.transfer`.

``stylize CONTENT STYLE [STYLE ...] -o OUT`` runs a transfer; the other sub-commands
(``weights`` ...) are dispatched by their first word.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from stylize.cli.common import run_guarded


def _commands() -> dict[str, Callable[[list[str]], int]]:
    from stylize.cli import main_command, weights_command

    commands: dict[str, Callable[[list[str]], int]] = {"weights": weights_command.main}
    for name, module in (("grid", "grid_command"), ("plot", "plot_command"), ("serve", "serve_command"),
                         ("presets", "presets_command"), ("video", "video_command"), ("batch", "batch_command")):
        try:
            mod = __import__(f"stylize.cli.{module}", fromlist=["main"])
        except ModuleNotFoundError:
            continue
        commands[name] = mod.main
    commands[""] = main_command.main
    return commands


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    commands = _commands()
    command = commands.get(args[0]) if args and not args[0].startswith("-") else None
    if command is not None:
        return run_guarded(command, args[1:])
    return run_guarded(commands[""], args)

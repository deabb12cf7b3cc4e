"""``stylize presets``: list the named presets and the option values each one sets."""

from __future__ import annotations

import argparse
import dataclasses

from stylize.cli.common import ArgumentParser
from stylize.controls import describe_presets, strength_formula
from stylize.options import PAPER_STYLE_LAYERS, Options


def main(argv: list[str]) -> int:
    ArgumentParser(
        prog="stylize presets",
        description="List the presets of --preset. Flags given explicitly override a preset's values.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).parse_args(argv)
    for line in describe_presets(PAPER_STYLE_LAYERS):
        print(line)
    print()
    print(strength_formula({f.name: f.default for f in dataclasses.fields(Options)}))
    return 0

"""The shape of the package: no import cycles, short functions, one table of option kinds.

The layering itself is checked by import-linter (``lint-imports``, contract in pyproject.toml,
run by .ci/run); these tests check what a layers contract does not see.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import grimp
import pytest

from stylize.loss import STYLE_LOSSES
from stylize.options import STYLE_LOSS_KINDS, Options, option_kinds

PACKAGE = Path(__file__).resolve().parents[1] / "stylize"
MAX_FUNCTION_LINES = 80


def test_no_import_cycles_between_modules() -> None:
    graph = grimp.build_graph("stylize")
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if imported != module and graph.chain_exists(importer=imported, imported=module):
                cycles.append(f"{module} <-> {imported}")
    assert not cycles, cycles


def test_no_function_is_longer_than_80_lines() -> None:
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE.parent)}:{node.name} {length}")
    assert not long, long


def test_every_style_loss_kind_has_its_term() -> None:
    assert set(STYLE_LOSSES) == set(STYLE_LOSS_KINDS)


@pytest.mark.parametrize(("name", "text", "value"), [
    ("size", "640", 640), ("style_weight", "2.5", 2.5), ("style_layers", "relu1_1, relu2_1", ("relu1_1", "relu2_1")),
    ("style_layer_weights", "1,2", (1.0, 2.0)), ("lr", "none", None), ("allow_download", "no", False),
    ("model", "vgg16", "vgg16"),
])
def test_one_table_parses_every_option_kind(name: str, text: str, value: object) -> None:
    assert option_kinds()[name].parse(text) == value


def test_option_kinds_cover_every_field() -> None:
    kinds = option_kinds()
    assert list(kinds) == [f.name for f in dataclasses.fields(Options)]
    assert kinds["size"].kind == "int" and kinds["max_memory"].optional and kinds["model"].kind == "choice"
    from stylize.errors import OptionError

    with pytest.raises(OptionError, match="^--size: 'big' is not a whole number"):
        kinds["size"].parse("big")

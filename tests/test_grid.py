"""Parameter grids with the tiny test network: layout, keys, contact sheet, index, resume, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import stylize.grid
import stylize.network
from stylize import StopTransfer
from stylize.backbone import tiny_backbone
from stylize.cli import main as cli_main
from stylize.errors import OptionError, WeightsError
from stylize.grid import plan_grid, run_grid
from stylize.sheet import MISSING, contact_sheet, sheet_layout

FAST = {"size": 32, "steps": 3, "scales": "1"}


@pytest.fixture()
def images(tmp_path: Path) -> dict[str, list[str]]:
    rng = np.random.default_rng(1)
    paths: dict[str, list[str]] = {"content": [], "style": []}
    for kind, count in (("content", 2), ("style", 3)):
        for i in range(count):
            path = tmp_path / f"{kind}{i}.png"
            Image.fromarray(rng.integers(0, 255, (30 + 4 * i, 40, 3), dtype=np.uint8)).save(path)
            paths[kind].append(str(path))
    return paths


# --------------------------------------------------------------------------- planning


def test_plan_lays_out_rows_and_columns(images: dict[str, list[str]]) -> None:
    grid = plan_grid(images["content"], images["style"], {"content_weight": [1, 10], "model": ["vgg16", "vgg19"]},
                     FAST)
    assert grid.col_params == ["content_weight"] and grid.row_params == ["model"]
    assert grid.shape == (2 * 2, 3 * 2) and len(grid.cells) == 24
    cell = grid.cell(3, 5)  # second content, vgg19; third style, content weight 10
    assert (cell.content, cell.style) == (images["content"][1], images["style"][2])
    assert cell.params == {"content_weight": 10, "model": "vgg19"}
    assert cell.options == {**FAST, "content_weight": 10, "model": "vgg19"}
    assert len({c.key for c in grid.cells}) == len({c.name for c in grid.cells}) == 24
    assert "content-weight-10_model-vgg19" in cell.name and cell.name.endswith(f"{cell.key[:8]}.png")

    swapped = plan_grid(images["content"], images["style"], {"content_weight": [1, 10], "model": ["vgg16", "vgg19"]},
                        FAST, rows=["content_weight"])
    assert swapped.row_params == ["content_weight"] and swapped.col_params == ["model"]
    assert {c.key for c in swapped.cells} == {c.key for c in grid.cells}  # same runs, other places


def test_single_values_are_fixed_and_duplicates_collapse(images: dict[str, list[str]]) -> None:
    grid = plan_grid(images["content"][:1], images["style"][:1], {"steps": [3], "content_weight": [1, 1, 2]}, FAST)
    assert grid.sweeps == {"content_weight": [1, 2]}
    assert grid.fixed["steps"] == 3 and grid.shape == (1, 2)
    twice = plan_grid(images["content"][:1] * 2, images["style"][:1] * 2, {}, FAST)
    assert twice.shape == (1, 1)


def test_keys_follow_what_changes_the_picture(images: dict[str, list[str]], tmp_path: Path) -> None:
    def keys(**fixed: object) -> list[str]:
        return [c.key for c in plan_grid(images["content"], images["style"], {}, {**FAST, **fixed}).cells]

    assert keys() == keys()
    assert keys(device="cpu") == keys()  # where it runs does not change the key
    assert keys(style_weight=20.0) != keys()
    copy = tmp_path / "copy.png"
    copy.write_bytes(Path(images["content"][0]).read_bytes())
    moved = plan_grid([str(copy)], images["style"][:1], {}, FAST).cells[0].key
    assert moved == plan_grid(images["content"][:1], images["style"][:1], {}, FAST).cells[0].key  # content, not path
    init = tmp_path / "start.png"
    Image.new("RGB", (40, 30), "red").save(init)
    red = keys(init=str(init))
    Image.new("RGB", (40, 30), "blue").save(init)
    assert keys(init=str(init)) != red  # a file named by an option counts by its content


@pytest.mark.parametrize(("sweeps", "message"), [
    ({"model": ["vgg16", "vgg11"]}, "--model: 'vgg11' is not one of"),
    ({"steps": [3, 0]}, "--steps: must be a positive"),
    ({"colour": [1, 2]}, "unknown option 'colour'"),
])
def test_bad_values_fail_before_anything_runs(images: dict[str, list[str]], sweeps: dict, message: str) -> None:
    with pytest.raises(OptionError, match=message):
        plan_grid(images["content"], images["style"], sweeps, FAST)


# --------------------------------------------------------------------------- contact sheet


def _solid_results(grid: stylize.grid.Grid) -> dict[str, Image.Image]:
    return {c.key: Image.new("RGB", (40, 30), ((37 * c.index) % 256, 200, 255 - c.index)) for c in grid.cells}


def test_sheet_dimensions_follow_the_grid_shape(images: dict[str, list[str]]) -> None:
    sweeps = {"content_weight": [1, 10], "style_weight": [5, 20]}
    small = plan_grid(images["content"][:1], images["style"][:2], sweeps, FAST)
    wide = plan_grid(images["content"][:1], images["style"], sweeps, FAST)  # one more style: 2 more columns
    tall = plan_grid(images["content"], images["style"][:2], sweeps, FAST)  # one more content: 2 more rows
    cell = 64
    sizes = {}
    for name, grid in (("small", small), ("wide", wide), ("tall", tall)):
        sheet = contact_sheet(grid, _solid_results(grid), cell=cell)
        layout = sheet_layout(grid, cell)
        assert sheet.size == (layout.width, layout.height)
        sizes[name] = sheet.size
        for item in grid.cells:  # every result lands in its own box
            x, y = layout.cell_box(item.row, item.col)
            colour = _solid_results(grid)[item.key].getpixel((0, 0))
            assert sheet.getpixel((x + cell // 2, y + cell // 2)) == colour
    pitch_x, pitch_y = sheet_layout(small, cell).pitch_x, sheet_layout(small, cell).pitch_y
    assert sizes["wide"] == (sizes["small"][0] + 2 * pitch_x, sizes["small"][1])
    assert sizes["tall"] == (sizes["small"][0], sizes["small"][1] + 2 * pitch_y)


def test_sheet_shows_missing_cells_grey(images: dict[str, list[str]]) -> None:
    grid = plan_grid(images["content"][:1], images["style"][:2], {}, FAST)
    results = _solid_results(grid)
    del results[grid.cells[1].key]
    sheet = contact_sheet(grid, results, cell=48)
    layout = sheet_layout(grid, 48)
    x, y = layout.cell_box(0, 1)
    assert sheet.getpixel((x + 40, y + 40)) == MISSING


# --------------------------------------------------------------------------- running


def test_run_grid_loads_each_network_once_and_records_the_arch_used(images: dict[str, list[str]]) -> None:
    calls: list[str] = []

    def factory(opts: stylize.Options) -> stylize.backbone.Backbone:
        calls.append(opts.model)
        return tiny_backbone("vgg16")  # as when VGG-19 weights are missing: VGG-16 runs instead

    grid = plan_grid(images["content"][:1], images["style"][:2], {"model": ["vgg16", "vgg19"]}, FAST)
    finished = []
    run = run_grid(grid, backbone_factory=factory, on_result=finished.append)
    assert calls == ["vgg16", "vgg19"]
    assert len(run.results) == len(finished) == 4 and not run.interrupted
    by_model = {(r.entry["model"], r.entry["arch"]) for r in run.results}
    assert by_model == {("vgg16", "vgg16"), ("vgg19", "vgg16")}
    entry = run.results[0].entry
    assert entry["steps"] == 3 and entry["stop_reason"] == "max_steps" and entry["loss_total"] > 0
    assert stylize.grid.describe_fallbacks([r.entry for r in run.results]) == [
        "--model vgg19 ran as vgg16 in 2 cell(s): its weights were not found "
        "(get them with `stylize weights fetch vgg19`)"]


def test_run_grid_skips_done_cells_and_stops_when_asked(images: dict[str, list[str]]) -> None:
    grid = plan_grid(images["content"][:1], images["style"], {}, FAST)
    seen: list[int] = []

    def stop_in_second(p: stylize.grid.GridProgress) -> None:
        seen.append(p.position)
        assert 0 < p.fraction <= 1 and p.skipped == 1 and p.to_run == 2
        if p.position == 2:
            raise StopTransfer

    run = run_grid(grid, skip={grid.cells[0].key}, backbone=tiny_backbone(), callback=stop_in_second)
    assert [c.index for c in run.skipped] == [0]
    assert [r.cell.index for r in run.results] == [1, 2]
    assert run.interrupted and run.results[-1].result.stop_reason == "stopped"
    assert set(seen) == {1, 2}


# --------------------------------------------------------------------------- command line


@pytest.fixture()
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """The real command with the tiny network, counting transfers and network loads."""
    count = {"transfer": 0, "load": 0}
    real_transfer = stylize.grid.transfer

    def transfer(*args: object, **kwargs: object) -> stylize.Result:
        count["transfer"] += 1
        return real_transfer(*args, **kwargs)

    def load_backbone(model: str, **kwargs: object) -> stylize.backbone.Backbone:
        count["load"] += 1
        return tiny_backbone(model)

    monkeypatch.setattr(stylize.grid, "transfer", transfer)
    monkeypatch.setattr(stylize.network, "load_backbone", load_backbone)
    return count


def _grid_args(images: dict[str, list[str]], out: Path) -> list[str]:
    return ["grid", "--content", *images["content"], "--style", *images["style"][:2], "--content-weight", "1,10",
            "--model", "vgg16", "--size", "32", "--steps", "3", "--scales", "1", "--thumb", "48", "-q", "-o", str(out)]


def test_cli_grid_writes_results_index_and_sheet_then_resumes(
        images: dict[str, list[str]], tmp_path: Path, counted: dict[str, int],
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sweep"
    assert cli_main(_grid_args(images, out)) == 0
    first = capsys.readouterr().out
    assert "8 cells (2 rows x 4 columns): 8 to run, skipped 0 done" in first
    assert counted == {"transfer": 8, "load": 1}

    index = json.loads((out / "index.json").read_text())["runs"]
    assert len(index) == 8
    assert sorted({r["params"]["content-weight"] for r in index}) == [1.0, 10.0]
    assert {r["model"] for r in index} == {r["arch"] for r in index} == {"vgg16"}
    assert {Path(r["content"]).name for r in index} == {"content0.png", "content1.png"}
    assert all((out / r["file"]).is_file() and r["seconds"] >= 0 and r["stop_reason"] for r in index)
    logs = [str(out / r["log"]) for r in index[:2]]  # each cell's loss log, ready for `stylize plot`
    assert cli_main(["plot", *logs, "-o", str(tmp_path / "cells.png")]) == 0
    assert (tmp_path / "cells.png").is_file()
    with (out / "index.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 8 and {"content-weight", "arch", "seconds", "loss_total", "stop_reason"} <= set(rows[0])
    grid = plan_grid(images["content"], images["style"][:2], {"content_weight": [1.0, 10.0]},
                     {"model": "vgg16", **FAST})
    with Image.open(out / "sheet.png") as sheet:
        layout = sheet_layout(grid, 48)
        assert sheet.size == (layout.width, layout.height)

    # again: nothing to do
    assert cli_main(_grid_args(images, out)) == 0
    assert "skipped 8 done" in capsys.readouterr().out
    assert counted["transfer"] == 8

    # one result lost: only that cell runs again
    (out / index[3]["file"]).unlink()
    assert cli_main(_grid_args(images, out)) == 0
    assert "1 to run, skipped 7 done" in capsys.readouterr().out
    assert counted["transfer"] == 9
    assert (out / index[3]["file"]).is_file()

    # --redo runs everything
    assert cli_main([*_grid_args(images, out), "--redo"]) == 0
    assert counted["transfer"] == 17


def test_cli_grid_reruns_fallback_cells_once_the_weights_arrive(
        images: dict[str, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    have_vgg19 = {"present": False}
    runs: list[str] = []

    def load_backbone(model: str, **kwargs: object) -> stylize.backbone.Backbone:
        return tiny_backbone(model if have_vgg19["present"] else "vgg16")  # the resolver's fallback

    def transfer(*args: object, **kwargs: object) -> stylize.Result:
        runs.append(str(kwargs["model"]))
        return real_transfer(*args, **kwargs)

    real_transfer = stylize.grid.transfer
    monkeypatch.setattr(stylize.network, "load_backbone", load_backbone)
    monkeypatch.setattr(stylize.grid, "transfer", transfer)
    monkeypatch.setattr(stylize.grid, "available_weights",
                        lambda: [{"arch": "vgg19", "present": have_vgg19["present"]}])
    out = tmp_path / "models"
    args = _grid_args(images, out)
    args[args.index("vgg16")] = "vgg16,vgg19"
    assert cli_main(args) == 0
    runs_first = sorted(runs)
    assert runs_first == ["vgg16"] * 8 + ["vgg19"] * 8
    index = json.loads((out / "index.json").read_text())["runs"]
    assert {(r["model"], r["arch"]) for r in index} == {("vgg16", "vgg16"), ("vgg19", "vgg16")}
    assert "note: --model vgg19 ran as vgg16 in 8 cell(s)" in capsys.readouterr().out

    assert cli_main(args) == 0  # still no VGG-19 weights: nothing to redo
    assert len(runs) == 16
    have_vgg19["present"] = True  # e.g. after `stylize weights fetch vgg19`
    assert cli_main(args) == 0
    assert runs[16:] == ["vgg19"] * 8
    index = json.loads((out / "index.json").read_text())["runs"]
    assert {(r["model"], r["arch"]) for r in index} == {("vgg16", "vgg16"), ("vgg19", "vgg19")}


def test_cli_grid_list_options_take_semicolons(images: dict[str, list[str]], tmp_path: Path,
                                               counted: dict[str, int]) -> None:
    out = tmp_path / "layers"
    args = ["grid", "--content", images["content"][0], "--style", images["style"][0], "--size", "32", "--steps",
            "2", "--scales", "1", "--style-layers", "relu1_1,relu2_1;relu3_1", "-q", "-o", str(out)]
    assert cli_main(args) == 0
    runs = json.loads((out / "index.json").read_text())["runs"]
    assert sorted(tuple(r["params"]["style-layers"]) for r in runs) == [("relu1_1", "relu2_1"), ("relu3_1",)]


def test_cli_grid_bad_model_is_one_line_and_writes_nothing(images: dict[str, list[str]], tmp_path: Path,
                                                           counted: dict[str, int],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bad"
    args = _grid_args(images, out)
    args[args.index("vgg16")] = "vgg16,vgg11"
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert err == "stylize: error: --model: 'vgg11' is not one of vgg16, vgg19\n"
    assert not out.exists() and counted["transfer"] == 0


def test_cli_grid_unloadable_weights_fail_before_the_first_cell(
        images: dict[str, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    def load_backbone(model: str, **kwargs: object) -> stylize.backbone.Backbone:
        if model == "vgg19":
            raise WeightsError(None, "no VGG-19 weights: vgg19-dcbb9e9d.pth is not in the cache")
        return tiny_backbone(model)

    monkeypatch.setattr(stylize.network, "load_backbone", load_backbone)
    out = tmp_path / "noweights"
    args = _grid_args(images, out)
    args[args.index("vgg16")] = "vgg16,vgg19"
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no VGG-19 weights" in err
    assert not out.exists()  # the folder it created is removed again, and no cell ran


def test_cli_grid_refuses_a_foreign_index(images: dict[str, list[str]], tmp_path: Path, counted: dict[str, int],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "used"
    out.mkdir()
    (out / "index.json").write_text("[1, 2, 3]")
    assert cli_main(_grid_args(images, out)) == 2
    assert "index.json: not a stylize grid index" in capsys.readouterr().err
    assert counted["transfer"] == 0

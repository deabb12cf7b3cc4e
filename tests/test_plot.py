"""Loss plots: marks on the figure, atomic PNG output, `stylize plot` on real logs written by `--log`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import stylize.api
import stylize.network
from stylize.backbone import tiny_backbone
from stylize.cli import main as cli_main
from stylize.errors import OutputError
from stylize.plot import EARLY_STOP_LABEL, RESTORED_LABEL, SCALE_LABEL, loss_figure, plot_histories, scale_ends


def _history(scale_steps: tuple[int, ...] = (6, 10), restored: tuple[int, ...] = (4,)) -> list[dict]:
    """A synthetic two-scale history: the first scale stops after 6 steps, the second runs 10."""
    rows, step = [], 0
    for scale, count in enumerate(scale_steps, start=1):
        for s in range(1, count + 1):
            step += 1
            total = 10.0 / step + scale
            rows.append({"step": step, "scale": scale, "scale_step": s, "width": 32 * scale, "height": 24 * scale,
                         "seconds": step * 0.1, "total": total, "content": 0.0 if step == 1 else 0.1 * step,
                         "style": total / 10, "style_relu1_1": 0.5 / step, "style_relu2_1": 0.25 / step,
                         "event": "restored" if step in restored else ""})
    return rows


def _labelled(ax, label: str) -> list:
    return [line for line in ax.get_lines() if line.get_label() == label]


def test_scale_ends_uses_stop_reasons_when_given_and_guesses_otherwise() -> None:
    history = _history()
    known = scale_ends(history, ["converged", "max_steps"])
    assert [(e.step, e.reason, e.inferred) for e in known] == [(6, "converged", False), (16, "max_steps", False)]
    guessed = scale_ends(history)
    assert [(e.step, e.early, e.inferred) for e in guessed] == [(6, True, True), (16, False, True)]
    # with the real step limit known, a scale that ran all 10 steps of a limit of 20 also stopped early
    assert [e.early for e in scale_ends(history, steps=20)] == [True, True]
    # a reason list that does not match the scales is ignored rather than misapplied
    assert all(e.inferred for e in scale_ends(history, ["converged"]))


def test_figure_marks_scale_change_early_stop_and_restore() -> None:
    fig = loss_figure({"run": _history()}, stop_reasons={"run": ["converged", "max_steps"]})
    axes = fig.get_axes()
    assert len(axes) == 3  # total, content, style
    for ax in axes:
        assert ax.get_yscale() == "log"
        scale_lines = _labelled(ax, SCALE_LABEL)
        assert [list(line.get_xdata()) for line in scale_lines] == [[6.5, 6.5]]  # scale 2 starts at step 7
        (early,) = _labelled(ax, EARLY_STOP_LABEL)
        assert list(early.get_xdata()) == [6]
        (restored,) = _labelled(ax, RESTORED_LABEL)
        assert list(restored.get_xdata()) == [4]
    total_curve = axes[0].get_lines()[0]
    assert list(total_curve.get_xdata()) == list(range(1, 17))
    assert any("converged" in t.get_text() for t in axes[0].texts)
    assert any("scale 2 64x48" in t.get_text() for t in axes[0].texts)


def test_figure_without_early_stop_or_restores_has_no_such_marks() -> None:
    fig = loss_figure({"run": _history(scale_steps=(10, 10), restored=())}, log=False)
    for ax in fig.get_axes():
        assert ax.get_yscale() == "linear"
        assert not _labelled(ax, EARLY_STOP_LABEL)
        assert not _labelled(ax, RESTORED_LABEL)


def test_layers_add_one_panel_per_run_with_one_curve_per_layer() -> None:
    fig = loss_figure({"a": _history(), "b": _history(scale_steps=(8,))}, layers=True)
    axes = fig.get_axes()
    assert len(axes) == 5
    layer_labels = [line.get_label() for line in axes[3].get_lines() if not line.get_label().startswith("_")]
    assert layer_labels[:2] == ["relu1_1", "relu2_1"]
    # two runs: the total panel has a curve per run
    assert {"a", "b"} <= {line.get_label() for line in axes[0].get_lines()}


def test_plot_histories_writes_a_png_atomically(tmp_path: Path) -> None:
    out = plot_histories({"run": _history()}, tmp_path / "losses.png")
    with Image.open(out) as img:
        assert img.format == "PNG"
        assert img.width == 900 and img.height > 500
    assert sorted(p.name for p in tmp_path.iterdir()) == ["losses.png"]  # no temporary file left


def test_plot_histories_refuses_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="plots are written as"):
        plot_histories({"run": _history()}, tmp_path / "losses.gif")
    assert not list(tmp_path.iterdir())


def test_empty_history_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="nothing to plot"):
        loss_figure({"run": []})


# --------------------------------------------------------------------------- command line


@pytest.fixture()
def pair(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    content, style = tmp_path / "photo.png", tmp_path / "art.png"
    Image.fromarray(rng.integers(0, 255, (36, 48, 3), dtype=np.uint8)).save(content)
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(style)
    return content, style


@pytest.fixture()
def tiny_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stylize.network, "load_backbone", lambda model, **kwargs: tiny_backbone(model))


def test_plot_from_logs_written_by_the_cli(tmp_path: Path, pair: tuple[Path, Path], tiny_network: None,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    content, style = pair
    common = [str(content), str(style), "--size", "48", "--scales", "2", "--steps", "6", "-q"]
    assert cli_main([*common, "-o", str(tmp_path / "a.png"), "--log", str(tmp_path / "a.json"),
                     "--plot", str(tmp_path / "direct.png")]) == 0
    assert cli_main([*common, "-o", str(tmp_path / "b.png"), "--log", str(tmp_path / "b.csv"),
                     "--content-weight", "5"]) == 0
    log = json.loads((tmp_path / "a.json").read_text())
    assert len(log["stop_reasons"]) == 2 and len(log["history"]) >= 2

    capsys.readouterr()
    plot = tmp_path / "plot.png"
    assert cli_main(["plot", str(tmp_path / "a.json"), str(tmp_path / "b.csv"), "-o", str(plot), "--layers"]) == 0
    assert f"wrote {plot} (2 run(s)" in capsys.readouterr().out
    with Image.open(plot) as img, Image.open(tmp_path / "direct.png") as direct:
        assert img.format == direct.format == "PNG"
        assert img.height > direct.height  # two per-layer panels more
    # an existing plot is not overwritten without --force
    assert cli_main(["plot", str(tmp_path / "a.json"), "-o", str(plot)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert cli_main(["plot", str(tmp_path / "a.json"), "-o", str(plot), "--force", "--linear"]) == 0


@pytest.mark.parametrize(("name", "data", "problem"), [
    ("garbage.csv", "hello\nworld\n", "not a stylize log"),
    ("numbers.csv", "step,total\n1,abc\n", "not a stylize log"),
    ("layout.json", '{"history": {"total": 1}}', "not a stylize log"),
    ("broken.json", '{"history": [', "not a stylize log"),
    ("binary.csv", b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "not a stylize log"),
])
def test_bad_log_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str,
                                     data: str | bytes, problem: str) -> None:
    log = tmp_path / name
    log.write_bytes(data if isinstance(data, bytes) else data.encode())
    assert cli_main(["plot", str(log), "-o", str(tmp_path / "out.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("stylize: error: ") and name in err and problem in err
    assert not (tmp_path / "out.png").exists()


def test_missing_log_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["plot", str(tmp_path / "nope.json"), "-o", str(tmp_path / "out.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.json: no such log file" in err

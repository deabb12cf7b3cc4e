"""The ``stylize`` command: options, outputs, logs, and every bad input of the issue.

Runs ``stylize.cli.main`` in-process with the weights loader replaced by the tiny random
network (seconds), except where the real loader is the point (weights files), plus one run of
the real console script in a subprocess with the real offline VGG-16.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import stylize.api
import stylize.network
from stylize.backbone import Backbone, tiny_backbone
from stylize.backbone.vgg import random_state_dict
from stylize.cli import main
from stylize.cli.files import FIRST_COLUMNS
from stylize.cli.main_command import ProgressBar
from stylize.options import PAPER_STYLE_LAYERS, Options, flag

SmallImage = Callable[[str, int], Image.Image]


@dataclasses.dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    def run(*args: object) -> Run:
        capsys.readouterr()
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse errors and --help
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


@pytest.fixture
def tiny_loader(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """``stylize.network.load_backbone`` -> the tiny random network of the requested model; records calls."""
    calls: list[dict[str, object]] = []

    def load(model: str = "vgg19", *, layers: list[str], **kwargs: object) -> Backbone:
        calls.append({"model": model, "layers": list(layers), **kwargs})
        return tiny_backbone(model, layers=layers, pooling=str(kwargs.get("pooling", "max")))

    monkeypatch.setattr(stylize.network, "load_backbone", load)
    return calls


@pytest.fixture
def files(tmp_path: Path, small_image: SmallImage) -> dict[str, Path]:
    """A content photo (48 px, portrait 3:4) and a style painting (48 px) as files in tmp_path."""
    content = tmp_path / "photo.png"
    style = tmp_path / "painting.jpg"
    small_image("content/animal_dog.jpg", 48).save(content)
    small_image("style/van_gogh_starry_night.jpg", 48).save(style, quality=95)
    return {"content": content, "style": style}


FAST = ("--size", "32", "--steps", "2", "-q")
LOUD = ("--size", "32", "--steps", "2")  # with the progress bar: an error must still be one line


def listing(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*")}


# --------------------------------------------------------------------------- help, output, logs


def test_help_lists_every_option(cli: Callable[..., Run]) -> None:
    run = cli("--help")
    assert run.code == 0
    for field in dataclasses.fields(Options):
        assert f"--{flag(field.name)}" in run.out, field.name
    for extra in ("--output", "--force", "--log", "--save-every", "--quiet"):
        assert extra in run.out
    assert "weights" in run.out  # points at the other commands


def test_version_of_defaults_in_help(cli: Callable[..., Run]) -> None:
    run = cli("--help")
    assert "(default: 512)" in run.out and "relu1_1,relu2_1,relu3_1,relu4_1,relu5_1" in run.out


def test_writes_output_and_says_where(cli: Callable[..., Run], tiny_loader: list, files: dict[str, Path],
                                      tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    run = cli(files["content"], files["style"], "-o", out, *FAST)
    assert run.code == 0, run.err
    assert out.is_file() and Image.open(out).size == (24, 32)
    assert f"wrote {out}" in run.out
    assert run.err == ""  # -q: no bar, and nothing else
    assert tiny_loader[0]["model"] == "vgg19" and "relu5_1" in tiny_loader[0]["layers"]


def test_progress_bar_on_stderr(cli: Callable[..., Run], tiny_loader: list, files: dict[str, Path],
                                tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    run = cli(files["content"], files["style"], "-o", out, "--size", "32", "--steps", "3", "--tol", "0")
    assert run.code == 0
    assert "step 3" in run.err and "content" in run.err and "style" in run.err
    assert "Traceback" not in run.err


def test_options_reach_the_api(cli: Callable[..., Run], tiny_loader: list, files: dict[str, Path],
                               tmp_path: Path) -> None:
    log = tmp_path / "run.json"
    run = cli(files["content"], files["style"], "-o", tmp_path / "o.png", *FAST, "--model", "vgg16",
              "--pooling", "average", "--style-weight", "3.5", "--style-layers", "relu1_1,relu2_1",
              "--style-layer-weights", "1,2", "--optimizer", "adam", "--init", "noise", "--seed", "4",
              "--log", log)
    assert run.code == 0, run.err
    settings = json.loads(log.read_text())["settings"]
    assert settings["arch"] == "vgg16" and settings["pooling"] == "average"
    assert settings["style_weight"] == 3.5 and settings["style_layers"] == ["relu1_1", "relu2_1"]
    assert settings["style_layer_weights"] == [1.0, 2.0] and settings["optimizer"] == "adam"
    assert settings["init"] == "noise" and settings["seed"] == 4
    assert tiny_loader[0]["pooling"] == "average"


def test_csv_log_columns(cli: Callable[..., Run], tiny_loader: list, files: dict[str, Path], tmp_path: Path) -> None:
    log = tmp_path / "x.csv"
    run = cli(files["content"], files["style"], "-o", tmp_path / "o.png", *FAST, "--tol", "0", "--log", log)
    assert run.code == 0, run.err
    assert f"wrote {log}" in run.out
    with log.open(newline="") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    assert header[:5] == ["step", "seconds", "total", "content", "style"] == FIRST_COLUMNS
    assert header[5:8] == [f"style_{k}" for k in PAPER_STYLE_LAYERS[:3]]  # blocks 4, 5 weigh 0 by default
    assert header[8] == "scale"
    assert len(rows) == 1 + 2 and [r[0] for r in rows[1:]] == ["1", "2"]
    assert all(float(r[2]) > 0 for r in rows[1:])


def test_json_log(cli: Callable[..., Run], tiny_loader: list, files: dict[str, Path], tmp_path: Path) -> None:
    log = tmp_path / "x.json"
    run = cli(files["content"], files["style"], "-o", tmp_path / "o.png", *FAST, "--tol", "0", "--log", log)
    assert run.code == 0, run.err
    data = json.loads(log.read_text())
    assert data["stop_reasons"] == ["max_steps"]
    assert [row["step"] for row in data["history"]] == [1, 2]
    assert {"total", "content", "style", "style_relu3_1", "seconds"} <= set(data["history"][0])
    assert data["settings"]["size"] == 32


def test_save_every(cli: Callable[..., Run], tiny_loader: list, files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    run = cli(files["content"], files["style"], "-o", out, "--size", "32", "--steps", "5", "--tol", "0", "-q",
              "--save-every", "2")
    assert run.code == 0, run.err
    saved = sorted(p.name for p in tmp_path.glob("out_step*.png"))
    assert saved == ["out_step00002.png", "out_step00004.png"]
    assert Image.open(tmp_path / saved[0]).size == (24, 32)


def test_existing_output_needs_force(cli: Callable[..., Run], tiny_loader: list, files: dict[str, Path],
                                     tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    Image.new("RGB", (5, 5), (1, 2, 3)).save(out)
    before = out.read_bytes()
    run = cli(files["content"], files["style"], "-o", out, *FAST)
    assert run.code == 2 and out.read_bytes() == before
    assert len(run.err_lines) == 1 and str(out) in run.err and "--force" in run.err
    assert not tiny_loader  # refused before any work
    run = cli(files["content"], files["style"], "-o", out, *FAST, "--force")
    assert run.code == 0 and Image.open(out).size == (24, 32)


def test_interrupt_keeps_best_and_exits_130(cli: Callable[..., Run], tiny_loader: list, files: dict[str, Path],
                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = ProgressBar.__call__

    def interrupt(self: ProgressBar, p: stylize.api.Progress) -> None:
        original(self, p)
        if p.step == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(ProgressBar, "__call__", interrupt)
    out = tmp_path / "out.png"
    run = cli(files["content"], files["style"], "-o", out, "--size", "32", "--steps", "50", "-q")
    assert run.code == 130
    assert out.is_file() and "interrupted" in run.out and "Traceback" not in run.err


# --------------------------------------------------------------------------- bad inputs


def _truncated_jpeg(path: Path) -> Path:
    good = path.with_name("good.jpg")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(good, quality=90)
    data = good.read_bytes()
    good.unlink()
    path.write_bytes(data[: len(data) // 2])
    return path


BAD_CONTENT = {
    "missing": lambda p: p,
    "directory": lambda p: (p.mkdir(), p)[1],
    "empty": lambda p: (p.write_bytes(b""), p)[1],
    "not an image": lambda p: (p.write_text("hello, not a picture\n" * 10), p)[1],
    "truncated jpeg": _truncated_jpeg,
}


@pytest.mark.parametrize("role", ["content", "style"])
@pytest.mark.parametrize("kind", list(BAD_CONTENT))
def test_bad_input_file(cli: Callable[..., Run], tiny_loader: list, files: dict[str, Path], tmp_path: Path,
                        kind: str, role: str) -> None:
    bad = BAD_CONTENT[kind](tmp_path / "bad.jpg")
    args = [bad, files["style"]] if role == "content" else [files["content"], bad]
    _assert_one_line_failure(cli, tmp_path, [*args, "-o", tmp_path / "out.png", *LOUD], str(bad))


def test_decompression_bomb(cli: Callable[..., Run], tiny_loader: list, files: dict[str, Path],
                            tmp_path: Path) -> None:
    run = _assert_one_line_failure(cli, tmp_path, [files["content"], files["style"], "-o", tmp_path / "out.png",
                                                   *LOUD, "--max-pixels", "500"], str(files["content"]))
    assert "500" in run.err and "--max-pixels" in run.err


def test_unwritable_output_parent_is_a_file(cli: Callable[..., Run], tiny_loader: list, files: dict[str, Path],
                                            tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    out = blocker / "out.png"
    _assert_one_line_failure(cli, tmp_path, [files["content"], files["style"], "-o", out, *LOUD], str(out))
    assert not tiny_loader


def test_output_missing_folder(cli: Callable[..., Run], tiny_loader: list, files: dict[str, Path],
                               tmp_path: Path) -> None:
    out = tmp_path / "nowhere" / "out.png"
    _assert_one_line_failure(cli, tmp_path, [files["content"], files["style"], "-o", out, *LOUD], str(out))


def test_output_format_pillow_cannot_write(cli: Callable[..., Run], tiny_loader: list, files: dict[str, Path],
                                           tmp_path: Path) -> None:
    out = tmp_path / "out.xyz"
    run = _assert_one_line_failure(cli, tmp_path, [files["content"], files["style"], "-o", out, *LOUD], str(out))
    assert ".xyz" in run.err
    assert not tiny_loader


@pytest.mark.parametrize(("args", "names"), [
    (["--style-layers", "relu1_1,relu9_1"], ["--style-layers", "relu9_1"]),
    (["--content-layers", "conv4_7"], ["--content-layers", "conv4_7"]),
    (["--model", "vgg16", "--style-layers", "relu3_4"], ["--style-layers", "relu3_4"]),
    (["--device", "tpu"], ["--device", "tpu"]),
    (["--model", "resnet50"], ["--model", "resnet50"]),
    (["--pooling", "min"], ["--pooling"]),
    (["--optimizer", "sgd"], ["--optimizer"]),
    (["--size", "0"], ["--size"]),
    (["--size", "abc"], ["--size"]),
    (["--size", "4"], ["--size"]),
    (["--steps", "-3"], ["--steps"]),
    (["--style-weight", "-1"], ["--style-weight"]),
    (["--scales", "64,32"], ["--scales"]),
    (["--style-layer-weights", "1,x"], ["--style-layer-weights"]),
    (["--style-blend", "1,2"], ["--style-blend"]),
    (["--init", "nothing.png"], ["nothing.png"]),
    (["--log", "run.txt"], ["run.txt"]),
])
def test_bad_option_values(cli: Callable[..., Run], tiny_loader: list, files: dict[str, Path], tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch, args: list[str], names: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    run = _assert_one_line_failure(cli, tmp_path, [files["content"], files["style"], "-o", tmp_path / "out.png",
                                                   *LOUD, *args], names[0])
    for name in names[1:]:
        assert name in run.err


def test_unavailable_device(cli: Callable[..., Run], tiny_loader: list, files: dict[str, Path],
                            tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    _assert_one_line_failure(cli, tmp_path, [files["content"], files["style"], "-o", tmp_path / "out.png",
                                             *LOUD, "--device", "cuda"], "--device")


def test_missing_output_flag(cli: Callable[..., Run], files: dict[str, Path], tmp_path: Path) -> None:
    _assert_one_line_failure(cli, tmp_path, [files["content"], files["style"]], "-o")


def test_weights_file_not_a_vgg_state_dict(cli: Callable[..., Run], files: dict[str, Path], tmp_path: Path) -> None:
    weights = tmp_path / "weights.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, weights)
    run = _assert_one_line_failure(cli, tmp_path, [files["content"], files["style"], "-o", tmp_path / "out.png",
                                                   *LOUD, "--weights", weights], str(weights))
    assert "not a VGG state dict" in run.err


def test_weights_file_not_loadable(cli: Callable[..., Run], files: dict[str, Path], tmp_path: Path) -> None:
    weights = tmp_path / "weights.pth"
    weights.write_text("not a pickle")
    _assert_one_line_failure(cli, tmp_path, [files["content"], files["style"], "-o", tmp_path / "out.png",
                                             *LOUD, "--weights", weights], str(weights))


def test_weights_file_missing(cli: Callable[..., Run], files: dict[str, Path], tmp_path: Path) -> None:
    weights = tmp_path / "vgg19.pth"
    _assert_one_line_failure(cli, tmp_path, [files["content"], files["style"], "-o", tmp_path / "out.png",
                                             *LOUD, "--weights", weights], str(weights))


def test_weights_file_failing_its_hash(cli: Callable[..., Run], files: dict[str, Path], tmp_path: Path) -> None:
    weights = tmp_path / "vgg19-deadbeef.pth"
    torch.save(random_state_dict("vgg19", (64, 4, 4, 4, 4)), weights)
    run = _assert_one_line_failure(cli, tmp_path, [files["content"], files["style"], "-o", tmp_path / "out.png",
                                                   *LOUD, "--weights", weights], str(weights))
    assert "hash" in run.err and "deadbeef" in run.err


def _assert_one_line_failure(cli: Callable[..., Run], directory: Path, args: list[object], names: str) -> Run:
    before = listing(directory)
    run = cli(*args)
    assert run.code == 2, (run.code, run.err)
    assert len(run.err_lines) == 1, run.err
    assert run.err_lines[0].startswith("stylize: error: ")
    assert names in run.err_lines[0], run.err
    assert "Traceback" not in run.err and run.out == ""
    assert listing(directory) == before  # no output (or temporary) file left behind
    return run


# --------------------------------------------------------------------------- accepted inputs


def _png16_rgb(path: Path, width: int, height: int) -> Path:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 65536, (height, width, 3), dtype=np.uint16).astype(">u2")
    rows = b"".join(b"\x00" + pixels[y].tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))
    return path


def _accepted(kind: str, base: Image.Image, directory: Path) -> Path:
    if kind == "grayscale":
        path = directory / "gray.png"
        base.convert("L").save(path)
    elif kind == "palette":
        path = directory / "palette.gif"
        base.convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(path)
    elif kind == "rgba":
        path = directory / "rgba.png"
        rgba = base.convert("RGBA")
        rgba.putalpha(Image.linear_gradient("L").resize(base.size))
        rgba.save(path)
    elif kind == "cmyk":
        path = directory / "cmyk.jpg"
        base.convert("CMYK").save(path, quality=95)
    elif kind == "png16 gray":
        path = directory / "gray16.png"
        arr = (np.asarray(base.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
        Image.fromarray(arr).save(path)
        assert Image.open(path).mode.startswith("I")
    elif kind == "png16 rgb":
        path = _png16_rgb(directory / "rgb16.png", *base.size)
    else:
        raise AssertionError(kind)
    return path


@pytest.mark.parametrize("role", ["content", "style"])
@pytest.mark.parametrize("kind", ["grayscale", "palette", "rgba", "cmyk", "png16 gray", "png16 rgb"])
def test_accepted_inputs(cli: Callable[..., Run], tiny_loader: list, files: dict[str, Path], tmp_path: Path,
                         small_image: SmallImage, kind: str, role: str) -> None:
    odd = _accepted(kind, small_image("content/forest_stream.jpg", 40), tmp_path)
    args = [odd, files["style"]] if role == "content" else [files["content"], odd]
    out = tmp_path / "out.png"
    run = cli(*args, "-o", out, *FAST)
    assert run.code == 0, run.err
    size = Image.open(out).size
    assert size == ((32, 22) if role == "content" else (24, 32))  # the 40 x 27 forest, or the 3:4 dog


def test_exif_rotated_jpeg_output_follows_orientation(cli: Callable[..., Run], tiny_loader: list,
                                                      files: dict[str, Path], tmp_path: Path) -> None:
    stored = Image.new("RGB", (60, 30), (20, 120, 220))  # landscape pixels ...
    stored.paste((250, 250, 0), (0, 0, 10, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # ... shown rotated 90 degrees clockwise: portrait 30 x 60
    path = tmp_path / "rotated.jpg"
    stored.save(path, exif=exif, quality=95)
    out = tmp_path / "out.png"
    run = cli(path, files["style"], "-o", out, "--size", "32", "--steps", "1", "-q", "--style-weight", "0")
    assert run.code == 0, run.err
    image = Image.open(out).convert("RGB")
    assert image.size == (16, 32)
    # the yellow band (left edge of the stored pixels) is at the top after the rotation
    top, bottom = np.asarray(image)[1, 8], np.asarray(image)[-2, 8]
    assert top[0] > 180 and top[2] < 100 and bottom[2] > 150


@pytest.mark.parametrize("size", [(300, 6), (6, 300), (2000, 1500), (7, 7)])
def test_style_of_any_size_or_aspect(cli: Callable[..., Run], tiny_loader: list, files: dict[str, Path],
                                     tmp_path: Path, size: tuple[int, int]) -> None:
    style = tmp_path / "style.png"
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(style)
    out = tmp_path / "out.png"
    run = cli(files["content"], style, "-o", out, *FAST)
    assert run.code == 0, run.err
    assert Image.open(out).size == (24, 32)


def test_several_styles(cli: Callable[..., Run], tiny_loader: list, files: dict[str, Path], tmp_path: Path,
                        small_image: SmallImage) -> None:
    second = tmp_path / "second.png"
    small_image("style/hokusai_great_wave.jpg", 40).save(second)
    out = tmp_path / "out.png"
    log = tmp_path / "log.json"
    run = cli(files["content"], files["style"], second, "-o", out, *FAST, "--style-blend", "0.7,0.3", "--log", log)
    assert run.code == 0, run.err
    settings = json.loads(log.read_text())["settings"]
    assert settings["num_styles"] == 2 and settings["style_blend"] == [0.7, 0.3]


# --------------------------------------------------------------------------- the real console script


def _console_script() -> list[str]:
    script = Path(sys.executable).with_name("stylize")
    return [str(script)] if script.is_file() and os.access(script, os.X_OK) else [sys.executable, "-m", "stylize"]


@pytest.mark.integration
def test_console_script_end_to_end_with_real_weights(offline_weights: Path, files: dict[str, Path],
                                                     tmp_path: Path) -> None:
    out = tmp_path / "result.png"
    log = tmp_path / "log.csv"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    assert env["STYLIZE_OFFLINE"] == "1" and Path(env["TORCH_HOME"]) in offline_weights.parents
    proc = subprocess.run(
        [*_console_script(), str(files["content"]), str(files["style"]), "-o", str(out), "--size", "32",
         "--steps", "2", "--log", str(log)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"wrote {out}" in proc.stdout
    assert Image.open(out).size == (24, 32)
    # VGG-19 was asked for (the default); only the offline VGG-16 exists here, and the user is told
    assert "VGG-16 instead of VGG-19" in proc.stderr
    with log.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 and float(rows[0]["style"]) > 0


@pytest.mark.integration
def test_python_dash_m_bad_input(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "stylize", str(tmp_path / "nope.jpg"), str(tmp_path / "b.jpg"),
                           "-o", str(tmp_path / "o.png")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "nope.jpg" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o.png").exists()




# --------------------------------------------------------------------------- the plan


def test_dry_run_prints_the_plan_and_writes_nothing(cli: Callable[..., Run], tiny_loader: list,
                                                    files: dict[str, Path], tmp_path: Path) -> None:
    before = listing(tmp_path)
    run = cli(files["content"], files["style"], "--dry-run", "--size", "96", "--scales", "24,48,96", "--steps", "8")
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    assert lines[0] == "plan: scale 1/3: 18x24, whole image, at most 8 steps"
    assert "scale 3/3: 72x96, whole image, at most 2 steps" in lines[2]
    assert "pixel-steps" in lines[3] and "on this device" in lines[3]
    assert listing(tmp_path) == before


def test_the_plan_is_shown_before_the_run(cli: Callable[..., Run], tiny_loader: list, files: dict[str, Path],
                                          tmp_path: Path) -> None:
    run = cli(files["content"], files["style"], "-o", tmp_path / "o.png", "--size", "32", "--steps", "2")
    assert run.code == 0, run.err
    assert run.err.startswith("plan: scale 1/1: 24x32, whole image, at most 2 steps")

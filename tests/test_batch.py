"""stylize batch with the tiny network: job sources, manifests, deterministic outputs, resume, failures,
retries, local worker processes (bit for bit equal to this process, network loaded once per worker)."""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import stylize.batch
import stylize.cli.batch_command as batch_command
from stylize.backbone import Backbone, tiny_backbone
from stylize.batch import InlineExecutor, LocalExecutor, plan_jobs, read_manifest, run_batch
from stylize.batch.executors import Task
from stylize.cli import main as cli_main
from stylize.errors import InputError, OptionError
from stylize.grid import plan_grid, run_grid
from stylize.options import Options

FAST = {"size": 40, "steps": 3, "scales": "1"}
CONTENTS = ["animal_dog", "forest_stream", "coast_golden_gate_fog"]
STYLES = ["van_gogh_starry_night", "hokusai_great_wave"]


# --------------------------------------------------------------------------- picklable helpers (workers import them)


def tiny_factory(opts: Options) -> Backbone:
    """The network every worker builds for itself: the seeded tiny VGG."""
    return tiny_backbone("vgg19", seed=0)


class KillOnce:
    """A step hook that ends its worker process (``os._exit``) at step 2 of the first job on ``content``;
    a marker file makes it happen once, whichever process runs the retry. The marker is created
    exclusively (``O_EXCL``): two workers running jobs on ``content`` at once reach step 2 together,
    and with a check-then-write both died now and then (two retries instead of one)."""

    def __init__(self, content: str, marker: Path) -> None:
        self.content, self.marker = content, str(marker)

    def __call__(self, task: Task, progress: object) -> None:
        if Path(task.content).name != self.content or getattr(progress, "step", 0) != 2:
            return
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return  # another process was first
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os._exit(7)


class FailOnce:
    """A step hook that raises (as running out of memory would) in the first attempt of one job."""

    def __init__(self, content: str) -> None:
        self.content = content

    def __call__(self, task: Task, progress: object) -> None:
        if Path(task.content).name == self.content and task.attempt == 0:
            raise MemoryError("not enough memory (simulated)")


@pytest.fixture()
def inputs(tmp_path: Path, small_image: Callable[[str, int], Image.Image]) -> dict[str, Path]:
    return make_inputs(tmp_path, small_image)


def make_inputs(tmp_path: Path, small_image: Callable[[str, int], Image.Image]) -> dict[str, Path]:
    """content/ with three photos (and a text file), style/ with two paintings (48 px), a corrupt PNG."""
    folders = {"content": tmp_path / "in" / "content", "style": tmp_path / "in" / "style"}
    for kind, names in (("content", CONTENTS), ("style", STYLES)):
        folders[kind].mkdir(parents=True)
        for name in names:
            small_image(f"{kind}/{name}.jpg", 48).save(folders[kind] / f"{name}.png")
    (folders["content"] / "notes.txt").write_text("not an image, not a job")
    corrupt = tmp_path / "in" / "corrupt.png"
    data = (folders["content"] / "animal_dog.png").read_bytes()
    corrupt.write_bytes(data[: len(data) // 3])  # a truncated PNG: readable, hashable, but not decodable
    return {**folders, "corrupt": corrupt, "root": tmp_path / "in"}


def _pixels(image: Image.Image) -> bytes:
    return np.asarray(image).tobytes()


# --------------------------------------------------------------------------- jobs


def test_folders_globs_and_files_give_every_combination_or_pairs(inputs: dict[str, Path]) -> None:
    jobs = plan_jobs([inputs["content"]], [inputs["style"]], FAST)
    assert [(Path(j.content).stem, Path(j.style).stem) for j in jobs] == [
        (c, s) for c in sorted(CONTENTS) for s in sorted(STYLES)]  # a folder gives its images, sorted; no .txt
    assert len({j.key for j in jobs}) == len({j.name for j in jobs}) == 6
    job = jobs[0]
    assert job.name == f"animal_dog__hokusai_great_wave__{job.key[:8]}.png" and job.log_name.endswith(".json")
    globbed = plan_jobs([str(inputs["content"] / "[ac]*.png")], [str(inputs["style"] / "van_gogh_starry_night.png")],
                        FAST)
    assert [Path(j.content).stem for j in globbed] == ["animal_dog", "coast_golden_gate_fog"]
    assert [j.name for j in plan_jobs([inputs["content"]], [inputs["style"]], FAST)] == [j.name for j in jobs]
    pairs = plan_jobs(sorted(inputs["content"].glob("*.png"))[:2], sorted(inputs["style"].glob("*.png")), FAST,
                      pairs=True)
    assert [(Path(j.content).stem, Path(j.style).stem) for j in pairs] == [
        ("animal_dog", "hokusai_great_wave"), ("coast_golden_gate_fog", "van_gogh_starry_night")]
    other = plan_jobs([inputs["content"]], [inputs["style"]], {**FAST, "strength": 7})
    assert not {j.name for j in other} & {j.name for j in jobs}  # other options, other files


def test_bad_sources_fail_before_any_work(inputs: dict[str, Path], tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no image files in this folder"):
        plan_jobs([empty], [inputs["style"]], FAST)
    with pytest.raises(InputError, match="no image file matches"):
        plan_jobs([str(inputs["content"] / "*.gif")], [inputs["style"]], FAST)
    with pytest.raises(InputError, match="missing.png: content image: no such file"):
        plan_jobs([inputs["content"] / "missing.png"], [inputs["style"]], FAST)
    with pytest.raises(OptionError, match="--pairs: 3 content images but 2 style images"):
        plan_jobs([inputs["content"]], [inputs["style"]], FAST, pairs=True)
    with pytest.raises(OptionError, match="--size"):
        plan_jobs([inputs["content"]], [inputs["style"]], {**FAST, "size": 0})


def _write_manifest(path: Path, rows: list[dict[str, object]]) -> Path:
    if path.suffix == ".csv":
        columns = list(dict.fromkeys(k for row in rows for k in row))
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
    else:
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_manifest_columns_override_the_command_line(inputs: dict[str, Path], suffix: str) -> None:
    rows = [{"content": "content/animal_dog.png", "style": "style/hokusai_great_wave.png", "strength": 7,
             "preserve-color": "luminance"},
            {"content": "content/forest_stream.png", "style": "style/hokusai_great_wave.png", "output": "wave.jpg",
             "size": 40}]
    jobs = read_manifest(_write_manifest(inputs["root"] / f"jobs{suffix}", rows), FAST)
    assert Path(jobs[0].content) == inputs["content"] / "animal_dog.png"  # relative to the manifest
    assert jobs[0].options == {**FAST, "strength": 7.0, "preserve_color": "luminance"}
    assert jobs[0].params == {"strength": 7.0, "preserve_color": "luminance"}
    assert jobs[1].options["size"] == 40 and jobs[1].name == "wave.jpg" and jobs[1].log_name == "wave.json"
    assert jobs[0].line == 2 if suffix == ".csv" else jobs[0].line == 1


@pytest.mark.parametrize(("row", "message"), [
    ({"content": "content/animal_dog.png", "style": "style/hokusai_great_wave.png", "size": "big"},
     "line 3, column 'size': --size: 'big' is not a whole number"),
    ({"content": "content/animal_dog.png", "style": "style/hokusai_great_wave.png", "size": "-4"},
     "line 3, column 'size': --size: must be a positive whole number"),
    ({"content": "content/animal_dog.png", "style": "style/hokusai_great_wave.png", "colour": "x"},
     "line 3, column 'colour': not an option of stylize"),
    ({"content": "content/nope.png", "style": "style/hokusai_great_wave.png"},
     "line 3, column 'content': .*nope.png: content image: no such file"),
    ({"content": "content/animal_dog.png", "style": "style/hokusai_great_wave.png", "output": "../up.png"},
     "line 3, column 'output': give a file name inside the output folder"),
])
def test_manifest_errors_name_the_line_and_column(inputs: dict[str, Path], row: dict, message: str) -> None:
    good = {"content": "content/forest_stream.png", "style": "style/hokusai_great_wave.png"}
    path = _write_manifest(inputs["root"] / "jobs.csv", [good, row])
    with pytest.raises(InputError, match=message):
        read_manifest(path, FAST)
    broken = inputs["root"] / "jobs.jsonl"
    broken.write_text(json.dumps(good) + "\n{not json\n")
    with pytest.raises(InputError, match="jobs.jsonl: line 2: not JSON"):
        read_manifest(broken, FAST)


# --------------------------------------------------------------------------- running


def test_a_corrupt_image_fails_alone_and_skipped_jobs_come_first(inputs: dict[str, Path]) -> None:
    jobs = plan_jobs([inputs["content"] / "animal_dog.png", inputs["corrupt"], inputs["content"] / "forest_stream.png"],
                     [inputs["style"] / "hokusai_great_wave.png"], FAST)
    steps: list[stylize.batch.BatchProgress] = []
    results = list(stylize.batch(jobs, executor=InlineExecutor(backbone_factory=tiny_factory),
                                 skip={jobs[2].key}, callback=steps.append))
    assert [(r.job.index, r.status) for r in results] == [(2, "skipped"), (0, "done"), (1, "failed")]
    failed = results[2]
    assert failed.error.startswith(f"{inputs['corrupt']}: content image: ") and failed.attempts == 1
    assert max(results[1].result.image.size) == 40 and results[1].worker == "main"
    assert steps and all(0 < s.fraction <= 1 and s.to_run == 2 and s.skipped == 1 for s in steps)
    assert steps[-1].eta is not None and steps[-1].eta >= 0


def test_a_job_that_runs_out_of_memory_is_retried(inputs: dict[str, Path]) -> None:
    jobs = plan_jobs([inputs["content"]], [inputs["style"] / "hokusai_great_wave.png"], FAST)
    hook = FailOnce("forest_stream.png")
    once = {r.job.key: r for r in run_batch(jobs, executor=InlineExecutor(backbone_factory=tiny_factory, hook=hook))}
    failed = [r for r in once.values() if r.status == "failed"]
    assert len(failed) == 1 and failed[0].error == "MemoryError: not enough memory (simulated)"
    again = {r.job.key: r for r in run_batch(jobs, executor=InlineExecutor(backbone_factory=tiny_factory, hook=hook),
                                             retries=1)}
    assert {r.status for r in again.values()} == {"done"}
    assert {Path(r.job.content).stem: r.attempts for r in again.values()} == {
        "animal_dog": 1, "coast_golden_gate_fog": 1, "forest_stream": 2}


def test_local_workers_equal_this_process_bit_for_bit_and_load_once_each(inputs: dict[str, Path],
                                                                         tmp_path: Path) -> None:
    jobs = plan_jobs([inputs["content"], inputs["corrupt"]], [inputs["style"]], FAST)  # 8 jobs, 2 fail
    inline = {r.job.key: r for r in run_batch(jobs, executor=InlineExecutor(backbone_factory=tiny_factory))}
    marker = tmp_path / "killed"
    executor = LocalExecutor(2, backbone_factory=tiny_factory, hook=KillOnce("forest_stream.png", marker))
    assert executor.threads == max(1, stylize.batch.executors.default_cores() // 2)
    local = {r.job.key: r for r in run_batch(jobs, executor=executor, retries=1)}
    assert marker.exists()  # a worker really died in the middle of a job ...
    assert {k: r.status for k, r in local.items()} == {k: r.status for k, r in inline.items()}
    assert sum(r.status == "failed" for r in local.values()) == 2
    for key, result in inline.items():
        if result.status == "done":  # ... and its job ran again elsewhere, with the same pixels
            assert _pixels(local[key].result.image) == _pixels(result.result.image)
            assert local[key].result.history[-1]["total"] == result.result.history[-1]["total"]
    retried = [r for r in local.values() if r.attempts == 2]
    assert len(retried) == 1 and Path(retried[0].job.content).name == "forest_stream.png"
    # one network per worker process: the replacement of the dead worker loaded its own, once
    assert len(executor.network_loads) >= 2 and set(executor.network_loads.values()) == {1}
    assert {r.worker for r in local.values() if r.status == "done"} <= set(executor.network_loads)


def test_the_grid_runs_on_worker_processes_too(inputs: dict[str, Path]) -> None:
    grid = plan_grid([str(inputs["content"] / "animal_dog.png")], [str(p) for p in sorted(inputs["style"].iterdir())],
                     {"content_weight": [1, 10]}, FAST)
    here = run_grid(grid, backbone=tiny_backbone())
    there = run_grid(grid, executor=LocalExecutor(1, backbone_factory=tiny_factory))
    assert sorted(r.cell.index for r in there.results) == list(range(4)) and not there.failed
    by_cell = {r.cell.key: r for r in there.results}
    for item in here.results:
        assert _pixels(by_cell[item.cell.key].result.image) == _pixels(item.result.image)


# --------------------------------------------------------------------------- command line


@pytest.fixture()
def tiny_cli(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """`stylize batch` with the tiny network in every executor it makes; counts the executors."""
    made = {"executors": 0}
    real = batch_command.make_executor

    def make_executor(**kwargs: object) -> stylize.batch.Executor:
        made["executors"] += 1
        return real(**kwargs, backbone_factory=tiny_factory)

    monkeypatch.setattr(batch_command, "make_executor", make_executor)
    monkeypatch.setattr(batch_command, "InlineExecutor", lambda: InlineExecutor(backbone_factory=tiny_factory))
    return made


def _args(inputs: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["batch", "--content", str(inputs["content"]), "--style", str(inputs["style"]), "-o", str(out),
            "--size", "40", "--steps", "3", "--scales", "1", "-q", "--workers", "0", *extra]


def test_cli_batch_writes_results_logs_and_index_then_skips_them(
        inputs: dict[str, Path], tmp_path: Path, tiny_cli: dict[str, int], capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert cli_main(_args(inputs, out)) == 0
    first = capsys.readouterr().out
    assert "6 job(s): 6 to run, skipped 0 done" in first and re.search(r"^done\s+6$", first, re.M)
    runs = json.loads((out / "index.json").read_text())
    assert runs["kind"] == "batch" and len(runs["runs"]) == 6
    for run in runs["runs"]:
        assert run["status"] == "done" and run["error"] is None and run["attempts"] == 1
        assert (out / run["file"]).is_file() and run["stop_reason"] and run["loss_total"] > 0
        assert json.loads((out / run["log"]).read_text())["history"]
        assert run["settings"]["size"] == 40
    with (out / "index.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 and {"status", "error", "seconds", "loss_total", "stop_reason"} <= set(rows[0])
    assert cli_main(["plot", str(out / "index.json"), "-o", str(tmp_path / "all.png")]) == 0
    assert "6 run(s)" in capsys.readouterr().out

    assert cli_main(_args(inputs, out)) == 0
    assert "6 job(s): 0 to run, skipped 6 done" in capsys.readouterr().out
    (out / runs["runs"][4]["file"]).unlink()
    assert cli_main(_args(inputs, out, "--format", "png")) == 0
    assert "1 to run, skipped 5 done" in capsys.readouterr().out
    assert cli_main(_args(inputs, out, "--strength", "6")) == 0  # other options: other jobs
    assert "6 to run, skipped 0 done" in capsys.readouterr().out
    assert len(json.loads((out / "index.json").read_text())["runs"]) == 12


def test_cli_batch_exit_status_says_whether_every_job_succeeded(
        inputs: dict[str, Path], tmp_path: Path, tiny_cli: dict[str, int],
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    args = ["batch", "--content", str(inputs["content"] / "animal_dog.png"), str(inputs["corrupt"]), "--style",
            str(inputs["style"] / "hokusai_great_wave.png"), "-o", str(out), "--size", "40", "--steps", "2",
            "--scales", "1", "-q", "--workers", "0", "--format", "jpg"]
    assert cli_main(args) == 1
    printed = capsys.readouterr().out
    assert "failed: corrupt x hokusai_great_wave: " in printed
    runs = {Path(r["content"]).name: r for r in json.loads((out / "index.json").read_text())["runs"]}
    assert runs["corrupt.png"]["status"] == "failed" and "corrupt.png: content image" in runs["corrupt.png"]["error"]
    assert runs["animal_dog.png"]["file"].endswith(".jpg") and (out / runs["animal_dog.png"]["file"]).is_file()
    assert not (out / runs["corrupt.png"]["file"]).exists()
    inputs["corrupt"].write_bytes((inputs["content"] / "forest_stream.png").read_bytes())  # fixed
    assert cli_main(args) == 0  # the failed job runs again (new bytes, new key); the done one is skipped
    assert "1 to run, skipped 1 done" in capsys.readouterr().out


def test_cli_batch_invalid_input_is_exit_2_before_any_work(
        inputs: dict[str, Path], tmp_path: Path, tiny_cli: dict[str, int],
        capsys: pytest.CaptureFixture[str]) -> None:
    manifest = _write_manifest(inputs["root"] / "jobs.csv", [
        {"content": "content/animal_dog.png", "style": "style/hokusai_great_wave.png", "strength": "11"}])
    out = tmp_path / "out"
    assert cli_main(["batch", "--manifest", str(manifest), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "jobs.csv: line 2, column 'strength': --strength" in err
    assert not out.exists() and tiny_cli["executors"] == 0
    assert cli_main(["batch", "--manifest", str(manifest), "--content", "x.png", "-o", str(out)]) == 2
    assert "not both" in capsys.readouterr().err
    assert cli_main(["batch", "--content", str(inputs["content"]), "-o", str(out)]) == 2
    assert "give --content and --style" in capsys.readouterr().err


def test_cli_batch_ctrl_c_keeps_finished_results_and_the_next_run_resumes(
        inputs: dict[str, Path], tmp_path: Path, tiny_cli: dict[str, int], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    real_save = batch_command.Recorder.save
    saved: list[str] = []

    def save_then_interrupt(self: batch_command.Recorder, item: stylize.batch.JobResult) -> object:
        result = real_save(self, item)
        saved.append(item.job.key)
        if len(saved) == 2:
            raise KeyboardInterrupt  # Ctrl-C right after the second result was written
        return result

    monkeypatch.setattr(batch_command.Recorder, "save", save_then_interrupt)
    assert cli_main(_args(inputs, out, "--workers", "1")) == 130
    runs = json.loads((out / "index.json").read_text())["runs"]
    assert {r["key"] for r in runs} == set(saved) and all((out / r["file"]).is_file() for r in runs)
    assert "interrupted" in capsys.readouterr().err
    monkeypatch.setattr(batch_command.Recorder, "save", real_save)
    assert cli_main(_args(inputs, out)) == 0  # resumed in this process: the index does not care where jobs ran
    printed = capsys.readouterr().out
    assert "6 job(s): 4 to run, skipped 2 done" in printed
    assert re.search(r"^main\s+4\s+1$", printed, re.M)  # worker, jobs, network loads
    assert tiny_cli["executors"] == 1
    assert len(json.loads((out / "index.json").read_text())["runs"]) == 6


def test_cli_batch_an_unwritable_output_fails_its_job_alone(
        inputs: dict[str, Path], tmp_path: Path, tiny_cli: dict[str, int],
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    job = plan_jobs([inputs["content"] / "forest_stream.png"], [inputs["style"] / "hokusai_great_wave.png"], FAST)[0]
    (out / job.name).mkdir()  # something in the way of this one result
    assert cli_main(_args(inputs, out)) == 1
    runs = {r["file"]: r for r in json.loads((out / "index.json").read_text())["runs"]}
    assert runs[job.name]["status"] == "failed" and "cannot write" in runs[job.name]["error"]
    assert sum(r["status"] == "done" for r in runs.values()) == 5
    assert re.search(r"^failed\s+1$", capsys.readouterr().out, re.M)

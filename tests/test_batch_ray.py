"""stylize batch on a real local Ray (2 CPUs, started once for the module), tiny network, tiny images:
the same pixels as this process, a killed worker's job retried, a corrupt image failing alone, and an
interrupted batch resumed. Skipped only when Ray (``pip install 'stylize[ray]'``) is not installed."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

ray = pytest.importorskip("ray")

import test_batch  # noqa: E402 - the picklable helpers and the image fixture, shared with the local tests
from test_batch import FAST, KillOnce, _pixels, make_inputs, tiny_factory  # noqa: E402

import stylize.batch  # noqa: E402
import stylize.cli.batch_command as batch_command  # noqa: E402
from stylize.batch import InlineExecutor, plan_jobs, run_batch  # noqa: E402
from stylize.batch.ray_executor import RayExecutor  # noqa: E402
from stylize.cli import main as cli_main  # noqa: E402


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One local Ray for the module (starting one takes seconds): 2 CPUs, so 2 actors of 1 CPU."""
    ray.cloudpickle.register_pickle_by_value(test_batch)  # Ray workers cannot import the test modules
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        ray.cloudpickle.unregister_pickle_by_value(test_batch)


@pytest.fixture()
def inputs(tmp_path: Path, small_image: Callable[[str, int], Image.Image]) -> dict[str, Path]:
    return make_inputs(tmp_path, small_image)


def test_ray_gives_the_pixels_of_this_process_and_a_corrupt_image_fails_alone(
        local_ray: None, inputs: dict[str, Path]) -> None:
    jobs = plan_jobs([inputs["content"], inputs["corrupt"]], [inputs["style"]], FAST)  # 8 jobs, 2 corrupt
    here = {r.job.key: r for r in run_batch(jobs, executor=InlineExecutor(backbone_factory=tiny_factory))}
    executor = RayExecutor(backbone_factory=tiny_factory)
    steps: list[stylize.batch.BatchProgress] = []
    order = []
    there = {}
    for item in stylize.batch(jobs, executor=executor, callback=steps.append):
        order.append(item.job.key)
        there[item.job.key] = item
    assert executor.slots == 2 and len(order) == len(jobs) == 8
    assert {k: r.status for k, r in there.items()} == {k: r.status for k, r in here.items()}
    failed = [r for r in there.values() if r.status == "failed"]
    assert len(failed) == 2 and all(r.error.startswith(f"{inputs['corrupt']}: content image: ") for r in failed)
    for key, item in here.items():
        if item.status == "done":
            assert _pixels(there[key].result.image) == _pixels(item.result.image)
            assert [r["total"] for r in there[key].result.history] == [r["total"] for r in item.result.history]
    # two actors, each loaded its network once for its share of the 8 jobs; steps streamed to the driver
    assert len(executor.network_loads) == 2 and set(executor.network_loads.values()) == {1}
    assert all(re.fullmatch(r"ray-[12]:pid\d+", w) for w in executor.network_loads)
    assert steps and {s.worker for s in steps} <= set(executor.network_loads)


def test_a_killed_ray_worker_is_retried_and_the_batch_completes(local_ray: None, inputs: dict[str, Path],
                                                                tmp_path: Path) -> None:
    jobs = plan_jobs([inputs["content"]], [inputs["style"] / "hokusai_great_wave.png"], FAST)
    marker = tmp_path / "killed"
    executor = RayExecutor(backbone_factory=tiny_factory, hook=KillOnce("forest_stream.png", marker),
                           shared_storage=True)  # paths, not bytes: the same files on this one machine
    results = {Path(r.job.content).stem: r for r in run_batch(jobs, executor=executor, retries=1)}
    assert marker.exists()  # an actor process really exited in the middle of the job
    assert {k: r.status for k, r in results.items()} == dict.fromkeys(
        ["animal_dog", "coast_golden_gate_fog", "forest_stream"], "done")
    assert results["forest_stream"].attempts == 2 and results["animal_dog"].attempts == 1
    forest = [job for job in jobs if Path(job.content).stem == "forest_stream"]
    without = list(run_batch(forest, executor=RayExecutor(backbone_factory=tiny_factory,
                                                             hook=KillOnce("forest_stream.png", tmp_path / "again"))))
    assert without[0].status == "failed" and "Ray worker died" in without[0].error  # --retries 0: recorded


def test_cli_on_ray_resumes_after_ctrl_c(local_ray: None, inputs: dict[str, Path], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    real_make = batch_command.make_executor
    monkeypatch.setattr(batch_command, "make_executor",
                        lambda **kw: real_make(**kw, backbone_factory=tiny_factory))
    real_save = batch_command.Recorder.save
    saved: list[str] = []

    def save_then_interrupt(self: batch_command.Recorder, item: stylize.batch.JobResult) -> object:
        result = real_save(self, item)
        saved.append(item.job.key)
        if len(saved) == 3:
            raise KeyboardInterrupt
        return result

    monkeypatch.setattr(batch_command.Recorder, "save", save_then_interrupt)
    out = tmp_path / "out"
    args = ["batch", "--content", str(inputs["content"]), "--style", str(inputs["style"]), "-o", str(out), "--size",
            "40", "--steps", "3", "--scales", "1", "-q", "--ray", "auto"]
    assert cli_main(args) == 130
    runs = json.loads((out / "index.json").read_text())["runs"]
    assert len(runs) == 3 and all((out / r["file"]).is_file() and r["status"] == "done" for r in runs)
    assert "Ray" in capsys.readouterr().out
    monkeypatch.setattr(batch_command.Recorder, "save", real_save)
    assert cli_main(args) == 0
    assert "6 job(s): 3 to run, skipped 3 done" in capsys.readouterr().out
    assert len(json.loads((out / "index.json").read_text())["runs"]) == 6

"""``stylize batch``: many transfers into one folder, resumable, on local workers or on Ray.

Jobs are every combination of ``--content`` x ``--style`` (files, folders, globs; ``--pairs``
zips them) or the lines of a ``--manifest`` (CSV or JSON Lines). Each result is written as soon
as it is done, as ``DIR/content__style__KEY8.png`` with its loss log ``.json`` beside it, and
recorded in ``DIR/index.json`` / ``index.csv`` (the grid's format). Run the command again and the
jobs done with the same inputs and options are skipped. Exit status: 0 every job done, 1 some
failed, 2 invalid input (nothing ran), 130 interrupted (finished results are kept).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from stylize.batch.choose import make_executor
from stylize.batch.executors import DEFAULT_WORKERS, Executor, InlineExecutor
from stylize.batch.index import INDEX_CSV, INDEX_JSON, compact, is_done, prepare_folder, read_index, write_index
from stylize.batch.jobs import FORMATS, Job, check_format, plan_jobs, read_manifest
from stylize.batch.ray_executor import import_ray
from stylize.batch.run import BatchProgress, JobResult, run_batch
from stylize.cli.common import EXIT_INTERRUPTED, ArgumentParser, add_option_flags, option_values
from stylize.cli.files import write_log
from stylize.errors import OptionError, OutputError
from stylize.imageio import save_image

EXIT_FAILED = 1
#: Seconds between two rewrites of the index while jobs finish (it is always written at the end).
INDEX_EVERY = 2.0

EPILOG = """examples:
  stylize batch --content holiday/ --style starry.jpg wave.jpg -o out            every photo x every style
  stylize batch --content 'shots/*.jpg' --style a.jpg b.jpg --pairs -o out       shots[i] with style i
  stylize batch --manifest jobs.csv -o out --size 384 --workers 2
  stylize batch --manifest jobs.jsonl -o out --ray auto                          on a Ray cluster

A manifest has the columns content,style[,output] and any option (strength, size,
preserve_color ...); its values override the command line's options for that job; image paths are
relative to the manifest. Jobs already done in DIR (same input files and options) are skipped;
--redo runs them again. A failing job is recorded with its error and the batch goes on; a job
whose worker died runs again up to --retries times. Exit status: 0 all done, 1 some failed, 2
invalid input, 130 interrupted (run the command again to resume). See docs/batch.md.
"""


def add_executor_flags(parser: argparse.ArgumentParser, *, default_workers: int) -> None:
    """--workers, --ray, --shared-storage, --cpus-per-job, --gpus-per-job, --retries (batch and grid)."""
    group = parser.add_argument_group("where the jobs run")
    shown = "this process" if default_workers == 0 else str(default_workers)
    parser.set_defaults(default_workers=default_workers)
    group.add_argument("--workers", type=int, metavar="N",
                       help=f"local worker processes, each with cores/N threads and its own network; 0 runs in "
                            f"this process (default: {shown}); with --ray: the number of Ray actors "
                            f"(default: as many as the cluster's CPUs allow)")
    group.add_argument("--ray", nargs="?", const="auto", metavar="auto|local|ADDRESS",
                       help="run on Ray (pip install 'stylize[ray]'): 'auto' the cluster of `ray start --head` "
                            "or RAY_ADDRESS, 'local' a new one on this machine, or an address such as "
                            "HOST:6379 or ray://HOST:10001")
    group.add_argument("--shared-storage", action="store_true",
                       help="with --ray: every node reads the input paths itself (a shared file system); "
                            "default: the driver sends the image bytes")
    group.add_argument("--cpus-per-job", type=float, default=1, metavar="N",
                       help="with --ray: CPUs (and torch threads) per job (default 1)")
    group.add_argument("--gpus-per-job", type=float, metavar="N",
                       help="with --ray: GPUs per job (default: 1 with --device cuda, else 0)")
    group.add_argument("--retries", type=int, default=1, metavar="N",
                       help="run a job again up to N times when its worker died or ran out of memory (default 1)")


def executor_from_args(args: argparse.Namespace) -> Executor | None:
    """The executor the flags ask for; None for "this process" (the caller's default)."""
    if args.workers is not None and args.workers < 0:
        raise OptionError("--workers: must be 0 or more")
    if args.retries < 0:
        raise OptionError("--retries: must be 0 or more")
    if args.ray is None:
        if args.shared_storage or args.gpus_per_job is not None or args.cpus_per_job != 1:
            raise OptionError("--shared-storage, --cpus-per-job and --gpus-per-job go with --ray")
        workers = args.default_workers if args.workers is None else args.workers
        return None if workers == 0 else make_executor(workers=workers)
    import_ray()  # a one-line error now, before any work, when Ray is not installed
    gpus = args.gpus_per_job
    if gpus is None:
        gpus = 1.0 if getattr(args, "device", None) == "cuda" else 0.0
    return make_executor(workers=args.workers or 0, ray=args.ray, cpus_per_job=args.cpus_per_job,
                         gpus_per_job=gpus, shared_storage=args.shared_storage)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="stylize batch", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Stylize many images into one folder: resumable, fault tolerant, on local worker processes "
                    "or on a Ray cluster.",
    )
    parser.add_argument("--content", nargs="+", metavar="PATH", help="content images: files, folders or globs")
    parser.add_argument("--style", nargs="+", metavar="PATH", help="style images: files, folders or globs")
    parser.add_argument("--pairs", action="store_true", help="the i-th content with the i-th style "
                        "(default: every combination)")
    parser.add_argument("--manifest", metavar="FILE", help="the jobs as CSV or JSON Lines (.jsonl): content,style"
                        "[,output] and any option column")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for the results (created)")
    parser.add_argument("--format", default="png", choices=FORMATS, help="file format of the results (default png)")
    parser.add_argument("--redo", action="store_true", help="run every job again, even those already done")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    add_executor_flags(parser, default_workers=DEFAULT_WORKERS)
    add_option_flags(parser, given_only=True)  # options apply to every job; manifest columns override them
    return parser


def plan_from_args(args: argparse.Namespace) -> list[Job]:
    options = option_values(args)
    check_format(args.format)
    if args.manifest is not None:
        if args.content or args.style or args.pairs:
            raise OptionError("--manifest: give either a manifest or --content/--style, not both")
        return read_manifest(args.manifest, options, fmt=args.format)
    if not args.content or not args.style:
        raise OptionError("give --content and --style (files, folders or globs), or --manifest FILE")
    return plan_jobs(args.content, args.style, options, pairs=args.pairs, fmt=args.format)


class BatchBars:
    """A bar over the jobs (done/failed/skipped, ETA from pixel-steps) and one per running job."""

    def __init__(self, quiet: bool, total: int, skipped: int) -> None:
        self.quiet = quiet
        self.total, self.skipped = total, skipped
        self.counts = {"done": 0, "failed": 0}
        self.eta: float | None = None
        self.bar: tqdm | None = None
        self.jobs: dict[str, tqdm] = {}  # worker -> its bar

    def _main(self) -> tqdm:
        if self.bar is None:
            self.bar = tqdm(total=self.total, unit="job", file=sys.stderr, dynamic_ncols=True, position=0,
                            bar_format="{desc} {bar} {n_fmt}/{total_fmt} {elapsed}{postfix}")
            self._describe()
        return self.bar

    def _describe(self) -> None:
        eta = f" ETA {tqdm.format_interval(self.eta)}" if self.eta is not None else ""
        self._main().set_description_str(f"jobs: done {self.counts['done']} failed {self.counts['failed']} "
                                          f"skipped {self.skipped}", refresh=False)
        self._main().set_postfix_str(eta)

    def __call__(self, p: BatchProgress) -> None:
        if self.quiet:
            return
        self.eta = p.eta
        self._describe()
        bar = self.jobs.get(p.worker)
        if bar is None:
            bar = self.jobs[p.worker] = tqdm(total=1000, file=sys.stderr, dynamic_ncols=True, leave=False,
                                             position=len(self.jobs) + 1,
                                             bar_format="  {desc} {bar} {percentage:3.0f}%")
        s = p.step
        bar.set_description_str(f"{p.worker}: {p.job.label()[:40]} scale {s.scale}/{s.num_scales} step {s.step} "
                                f"style {s.losses.get('style', 0):.3g}", refresh=False)
        bar.update(round(s.fraction * 1000) - bar.n)

    def finished(self, item: JobResult) -> None:
        if item.status in self.counts:
            self.counts[item.status] += 1
        if self.quiet:
            return
        self._main().update(1)
        self._describe()
        bar = self.jobs.get(item.worker)
        if bar is not None:
            bar.reset()
        if item.status == "failed":
            tqdm.write(f"failed: {item.job.label()}: {item.error}", file=sys.stderr)

    def close(self) -> None:
        for bar in self.jobs.values():
            bar.close()
        if self.bar is not None:
            self.bar.close()


class Recorder:
    """Saves each finished job (image, loss log) and keeps the index, rewritten at most every few seconds."""

    def __init__(self, folder: Path, jobs: list[Job], entries: dict[str, dict[str, Any]]) -> None:
        self.folder = folder
        self.order = [job.key for job in jobs]
        self.entries: dict[str, str] = {key: compact(entry) for key, entry in entries.items()}
        self.failed: list[tuple[str, str]] = []  # this run's failed jobs: label, error
        self.written = 0.0
        self.dirty = False

    def save(self, item: JobResult) -> JobResult:
        if item.status == "done" and item.result is not None:
            try:
                write_log(self.folder / item.job.log_name, item.result.history, item.result.settings,
                          item.result.stop_reasons)
                save_image(item.result.image, self.folder / item.job.name)
            except OutputError as exc:  # a full disk, a file in the way: this job failed, the batch goes on
                item = JobResult(item.job, "failed", error=str(exc), attempts=item.attempts, worker=item.worker,
                                 network_loads=item.network_loads)
        if item.status == "failed":
            self.failed.append((item.job.label(), item.error or ""))
        if item.status in ("done", "failed"):
            self.entries[item.job.key] = compact(item.entry())
            self.dirty = True
            self.flush(force=False)
        return item

    def flush(self, *, force: bool = True) -> None:
        if self.dirty and (force or time.monotonic() - self.written >= INDEX_EVERY):
            write_index(self.folder, self.entries, self.order, kind="batch")
            self.written, self.dirty = time.monotonic(), False


def summary(results: dict[str, int], seconds: float, loads: dict[str, int], jobs_by_worker: dict[str, int]) -> str:
    """The final table: jobs by status, time, images per hour, and each worker's jobs and network loads."""
    lines = [f"{'status':<12} {'jobs':>6}"]
    lines += [f"{status:<12} {results.get(status, 0):>6}" for status in ("done", "failed", "skipped",
                                                                          "interrupted")]
    rate = results.get("done", 0) / seconds * 3600 if seconds > 0 else 0.0
    lines.append(f"{'time':<12} {seconds:>6.0f} s ({rate:.0f} images/hour)")
    if jobs_by_worker:
        lines.append(f"{'worker':<20} {'jobs':>6} {'network loads':>14}")
        lines += [f"{worker:<20} {count:>6} {loads.get(worker, 0):>14}"
                  for worker, count in sorted(jobs_by_worker.items())]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    jobs = plan_from_args(args)
    executor = executor_from_args(args) or InlineExecutor()
    folder, _ = prepare_folder(args.output)
    entries = read_index(folder)
    done = set() if args.redo else {job.key for job in jobs if is_done(entries.get(job.key), folder)}
    print(f"{len(jobs)} job(s): {len(jobs) - len(done)} to run, skipped {len(done)} done; on "
          f"{executor.describe()}", flush=True)
    recorder = Recorder(folder, jobs, entries)
    bars = BatchBars(args.quiet or len(done) == len(jobs), len(jobs) - len(done), len(done))
    counts = dict.fromkeys(("done", "failed", "skipped", "interrupted"), 0)
    by_worker: dict[str, int] = {}
    start = time.perf_counter()
    try:
        for item in run_batch(jobs, executor=executor, skip=done, retries=args.retries, callback=bars):
            item = recorder.save(item)
            counts[item.status] += 1
            if item.status != "skipped":
                bars.finished(item)
                by_worker[item.worker] = by_worker.get(item.worker, 0) + 1
    except KeyboardInterrupt:
        counts["interrupted"] = len(jobs) - sum(counts.values())
        raise
    finally:
        bars.close()
        recorder.flush()
        print(summary(counts, time.perf_counter() - start, executor.network_loads, by_worker))
    for label, message in recorder.failed:
        print(f"failed: {label}: {message}")
    print(f"wrote {counts['done']} result(s) to {folder}; {folder / INDEX_JSON}, {folder / INDEX_CSV}")
    if counts["interrupted"]:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if counts["failed"] else 0

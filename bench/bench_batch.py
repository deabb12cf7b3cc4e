"""Batch throughput of the executors side by side, and the driver's memory over many jobs.

    flock /tmp/stylize-bench.lock .venv/bin/python bench/bench_batch.py                 # 16 jobs at 256 px
    flock /tmp/stylize-bench.lock .venv/bin/python bench/bench_batch.py --jobs 8 --executors local1,ray
    .venv/bin/python bench/bench_batch.py --rss 1000 --executors none                 # driver RSS only

Throughput: the same jobs (every content x every style of ``../shared/images``, the first N, with
every default and the real offline VGG-16, ``model="vgg16"``) run on each executor in turn, in one
process: 1 local worker (2 threads), 2 local workers (1 thread each), and Ray started locally with
2 CPUs (2 actors of 1 CPU). The driver saves every result and the index as ``stylize batch`` does.
The wall time runs from starting the executor (worker processes or actors, each loading its network)
to the last result written; Ray's own start (``ray.init``) is timed apart, since a cluster that is
already up does not pay it. Printed: images per hour, seconds per job (median, measured in the
worker), the network loads of each worker, and Ray's overhead over the local executor with the
same parallelism.

Memory (``--rss N``): N tiny jobs (the tiny network, 32 px, 1 step) through 2 local workers, the
driver saving each result and the index; the driver's RSS is sampled every N/10 jobs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make `stylize` importable
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from stylize.backbone import Backbone, tiny_backbone  # noqa: E402
from stylize.batch import LocalExecutor, plan_jobs, run_batch  # noqa: E402
from stylize.batch.executors import Executor  # noqa: E402
from stylize.batch.index import prepare_folder  # noqa: E402
from stylize.cli.batch_command import Recorder  # noqa: E402
from stylize.options import Options  # noqa: E402

IMAGES = REPO / ".." / "shared" / "images"
EXECUTORS = ("local1", "local2", "ray")


def tiny_factory(opts: Options) -> Backbone:
    return tiny_backbone("vgg19", seed=0)


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_executor(name: str, timings: dict[str, float]) -> Executor:
    if name == "local1":
        return LocalExecutor(1)
    if name == "local2":
        return LocalExecutor(2)
    import ray

    from stylize.batch.ray_executor import RayExecutor

    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    timings["ray_init"] = time.perf_counter() - start
    return RayExecutor(cpus_per_job=1)


def run_one(name: str, jobs: list, out: Path) -> dict[str, Any]:
    timings: dict[str, float] = {}
    executor = make_executor(name, timings)
    folder, _ = prepare_folder(out / name)
    recorder = Recorder(folder, jobs, {})
    start = time.perf_counter()
    seconds, statuses, workers = [], [], []
    try:
        for item in run_batch(jobs, executor=executor, retries=1):
            item = recorder.save(item)
            statuses.append(item.status)
            workers.append(item.worker)
            if item.result is not None:
                seconds.append(item.result.seconds)
        recorder.flush()
        wall = time.perf_counter() - start
    finally:
        if name == "ray":
            import ray

            ray.shutdown()
    done = statuses.count("done")
    return {"executor": executor.describe(), "wall": wall, "done": done, "failed": statuses.count("failed"),
            "per_hour": done / wall * 3600, "job_median": statistics.median(seconds) if seconds else float("nan"),
            "loads": dict(executor.network_loads), "jobs_by_worker": {w: workers.count(w) for w in set(workers)},
            **timings}


def throughput(args: argparse.Namespace) -> None:
    contents = sorted(p for p in (IMAGES / "content").iterdir() if p.suffix in (".jpg", ".png"))
    styles = sorted(p for p in (IMAGES / "style").iterdir() if p.suffix in (".jpg", ".png"))
    jobs = plan_jobs(contents[:4], styles[:4], {"size": args.size, "model": "vgg16"})
    jobs = (jobs * (1 + args.jobs // max(1, len(jobs))))[: args.jobs]
    print(f"{len(jobs)} jobs at {args.size} px (defaults, model vgg16) on {os.cpu_count()} CPUs; "
          f"executors: {', '.join(args.executors)}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        for name in args.executors:
            row = run_one(name, jobs, Path(tmp))
            rows.append((name, row))
            print(f"  {name}: {row['wall']:.1f} s, {row['done']} done, {row['failed']} failed, "
                  f"loads {row['loads']}", flush=True)
    print()
    print("| executor | wall s | images/hour | s/job (median, in the worker) | jobs per worker | network loads |")
    print("|---|---|---|---|---|---|")
    for name, row in rows:
        init = f" (+ ray.init {row['ray_init']:.1f} s)" if "ray_init" in row else ""
        print(f"| {name}: {row['executor']} | {row['wall']:.1f}{init} | {row['per_hour']:.0f} | "
              f"{row['job_median']:.1f} | {sorted(row['jobs_by_worker'].values())} | "
              f"{sorted(row['loads'].values())} |")
    walls = dict((name, row["wall"]) for name, row in rows)
    if "ray" in walls:
        for local in ("local2", "local1"):
            if local in walls:
                print(f"Ray's overhead over {local}: {100 * (walls['ray'] / walls[local] - 1):+.1f}% of the wall time")


def memory(count: int) -> None:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="bench-rss-") as tmp:
        folder = Path(tmp)
        side = int(np.ceil(np.sqrt(count)))
        paths = {}
        for kind in ("c", "s"):
            paths[kind] = []
            for i in range(side):
                path = folder / f"{kind}{i:03d}.png"
                Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(path)
                paths[kind].append(path)
        jobs = plan_jobs(paths["c"], paths["s"], {"size": 32, "steps": 1, "scales": "1"})[:count]
        out, _ = prepare_folder(folder / "out")
        recorder = Recorder(out, jobs, {})
        samples = [(0, rss_mib())]
        start = time.perf_counter()
        for n, item in enumerate(run_batch(jobs, executor=LocalExecutor(2, backbone_factory=tiny_factory)), 1):
            recorder.save(item)
            if n % max(1, count // 10) == 0:
                samples.append((n, rss_mib()))
        recorder.flush()
        wall = time.perf_counter() - start
    print(f"{count} tiny jobs in {wall:.0f} s; driver RSS (MiB) after n jobs:")
    print("| jobs | " + " | ".join(str(n) for n, _ in samples) + " |")
    print("|---" * (len(samples) + 1) + "|")
    print("| RSS MiB | " + " | ".join(f"{r:.1f}" for _, r in samples) + " |")
    first = samples[1][1] if len(samples) > 1 else samples[0][1]
    print(f"growth from job {samples[1][0]} to job {samples[-1][0]}: {samples[-1][1] - first:+.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--executors", default=",".join(EXECUTORS),
                        help=f"comma list of {', '.join(EXECUTORS)}, or 'none'")
    parser.add_argument("--rss", type=int, default=0, metavar="N",
                        help="also measure the driver's RSS over N tiny jobs")
    args = parser.parse_args()
    args.executors = [] if args.executors == "none" else [e.strip() for e in args.executors.split(",") if e.strip()]
    if args.executors:
        throughput(args)
    if args.rss:
        memory(args.rss)


if __name__ == "__main__":
    main()

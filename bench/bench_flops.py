"""Achieved GFLOP/s of one forward+backward pass of stylize's network against this machine's sgemm,
and which CPU settings make it faster.

    .venv/bin/python bench/bench_flops.py                 # 256, 512, 1024 px (long; see --cycles)
    .venv/bin/python bench/bench_flops.py --quick         # smoke test: 128 px, 1 cycle
    .venv/bin/python bench/bench_flops.py --compile       # also time torch.compile (slow to compile)

The pass: the offline VGG-16 cut after relu5_1 (what stylize runs with the paper's layers), an
S×S RGB input that requires grad, weights frozen; forward to relu1_1, relu2_1, relu3_1, relu4_1,
relu4_2, relu5_1, then backward from fixed random gradients at those six outputs
(``torch.autograd.backward``), so nothing but the network is timed.

FLOPs counted (analytically): convolutions only, a multiply-add = 2 FLOPs. Forward of a 3×3
convolution: ``2·Cin·Cout·9·H·W``. Backward: the gradient w.r.t. its input only (weights are
frozen, no weight gradients), the same ``2·Cin·Cout·9·H·W``; conv1_1 included (the image needs
its gradient). ReLU, pooling and the input normalization are not counted (< 1 % of the FLOPs but
not of the time: they are memory bound).

Method, for a shared and noisy machine: settings that can be switched inside a process
(memory format, in-place ReLU, bf16 convolutions, threads, oneDNN on/off, malloc reuse) are
measured in one process, **pass by pass in rotating order**, each cycle next to an "engine" pass
(stylize's settings) and an sgemm measurement (best ``torch.mm`` of 1024² and 2048² float32
matrices), so slow drifts of the machine's load hit all of them alike. The tables give medians
over cycles of per-cycle ratios. Settings that must be fixed before torch starts (the OpenMP
wait policy, ``THP_MEM_ALLOC_ENABLE``) need separate processes; those are compared across
processes (ratio of medians), which is noisier.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1")
ENGINE = "engine (stylize)"
UNTOUCHED = "malloc untouched"
IN_PROCESS = (ENGINE, "+ channels_last", "+ in-place ReLU", "+ bf16 convolutions", "+ 1 thread", "+ oneDNN off",
              UNTOUCHED, "stylize objective")
# process name -> (environment of the child, None = unset; which in-process variants it runs)
PROCESSES: dict[str, tuple[dict[str, str | None], tuple[str, ...]]] = {
    "OMP_WAIT_POLICY=PASSIVE (stylize)": ({"OMP_WAIT_POLICY": "PASSIVE", "THP_MEM_ALLOC_ENABLE": None}, IN_PROCESS),
    "OMP_WAIT_POLICY unset (torch default)": ({"OMP_WAIT_POLICY": None, "THP_MEM_ALLOC_ENABLE": None},
                                              (ENGINE, UNTOUCHED)),
    "PASSIVE + THP_MEM_ALLOC_ENABLE=1": ({"OMP_WAIT_POLICY": "PASSIVE", "THP_MEM_ALLOC_ENABLE": "1"},
                                         (ENGINE, UNTOUCHED)),
}
PRIMARY = "OMP_WAIT_POLICY=PASSIVE (stylize)"
LARGE_ONLY = (ENGINE, UNTOUCHED, "stylize objective")  # variants at sizes above --variant-max


def conv_flops(height: int, width: int | None = None) -> tuple[float, float]:
    """(forward, forward+backward) FLOPs of VGG-16's convolutions up to conv5_1 on a height×width input."""
    width = height if width is None else width
    blocks, widths = (2, 2, 3, 3, 1), (64, 128, 256, 512, 512)  # VGG-16 convolutions per block, cut at conv5_1
    total, cin, h, w = 0.0, 3, height, width
    for block, convs in enumerate(blocks):
        for _ in range(convs):
            total += 2 * cin * widths[block] * 9 * h * w
            cin = widths[block]
        h, w = h // 2, w // 2
    return total, 2 * total


def sgemm_gflops(sizes: Sequence[int] = (1024, 2048), repeats: int = 2) -> float:
    """Best GFLOP/s of float32 torch.mm over square sizes."""
    import torch

    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)
        for _ in range(repeats):
            t = time.perf_counter()
            torch.mm(a, b)
            best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


# --------------------------------------------------------------------------- child


def measure(size: int, variants: Sequence[str], cycles: int, use_compile: bool) -> dict[str, Any]:
    """Child: time each variant once per cycle (rotating order) next to an sgemm measurement."""
    import contextlib
    import copy
    import warnings

    warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")  # bf16 switch, harmless
    import torch  # first: the child's environment alone decides torch's OpenMP settings

    from stylize.backbone import load_backbone
    from stylize.loss import content_targets, style_targets
    from stylize.objective import Objective
    from stylize.runtime import run_settings

    cpu = torch.device("cpu")
    backbone = load_backbone("vgg16", layers=LAYERS, allow_download=False)
    channels_last = copy.deepcopy(backbone).to(memory_format=torch.channels_last)
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, size, size, generator=gen)
    with torch.no_grad():
        seeds = {k: torch.randn(v.shape, generator=gen) for k, v in backbone(image, LAYERS).items()}
    objective = Objective.from_targets(backbone, content_targets(backbone, image, ["relu4_2"]),
                          style_targets(backbone, [torch.rand(1, 3, size, size, generator=gen)],
                                        [k for k in LAYERS if k != "relu4_2"]),
                          content_weight=1.0, style_weight=10.0)
    threads = torch.get_num_threads()
    compiled = torch.compile(lambda x: backbone(x, LAYERS)) if use_compile else None

    def network(net: Any, x: torch.Tensor, forward: Callable[..., Any] | None = None) -> None:
        x = x.detach().clone().requires_grad_(True)
        feats = forward(x) if forward is not None else net(x, LAYERS)
        torch.autograd.backward([feats[k] for k in LAYERS], [seeds[k] for k in LAYERS])

    @contextlib.contextmanager
    def relu_inplace() -> Any:
        relus = [m for m in backbone.features.features if isinstance(m, torch.nn.ReLU)]
        for m in relus:
            m.inplace = True
        try:
            yield
        finally:
            for m in relus:
                m.inplace = False

    @contextlib.contextmanager
    def conv_precision(value: str) -> Any:
        before = torch.backends.mkldnn.conv.fp32_precision
        torch.backends.mkldnn.conv.fp32_precision = value
        try:
            yield
        finally:
            torch.backends.mkldnn.conv.fp32_precision = before

    @contextlib.contextmanager
    def num_threads(n: int) -> Any:
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(threads)

    def objective_pass() -> None:
        x = image.detach().clone().requires_grad_(True)
        loss, _ = objective(x)
        loss.backward()

    passes: dict[str, Callable[[], Any]] = {
        ENGINE: lambda: network(backbone, image),
        "+ channels_last": lambda: network(channels_last, image.contiguous(memory_format=torch.channels_last)),
        "+ in-place ReLU": lambda: _within(relu_inplace(), lambda: network(backbone, image)),
        "+ bf16 convolutions": lambda: _within(conv_precision("bf16"), lambda: network(backbone, image)),
        "+ 1 thread": lambda: _within(num_threads(1), lambda: network(backbone, image)),
        "+ oneDNN off": lambda: _within(torch.backends.mkldnn.flags(enabled=False), lambda: network(backbone, image)),
        "stylize objective": objective_pass,
        "+ torch.compile": lambda: network(backbone, image, compiled),
    }
    inside = [v for v in variants if v != UNTOUCHED]
    times: dict[str, list[float]] = {v: [] for v in variants}
    sgemm: list[float] = []
    with run_settings(cpu):
        for v in inside:  # warm-up: oneDNN primitives, compilation
            passes[v]()
    for cycle in range(cycles):
        sgemm.append(sgemm_gflops())
        order = inside[cycle % len(inside):] + inside[: cycle % len(inside)]
        with run_settings(cpu):
            passes[ENGINE]()  # untimed: the heap grows back after the last exit returned it to the kernel
            for v in order:
                t = time.perf_counter()
                passes[v]()
                times[v].append(time.perf_counter() - t)
        if UNTOUCHED in times:
            t = time.perf_counter()
            passes[ENGINE]()  # the same pass, outside stylize.runtime.run_settings
            times[UNTOUCHED].append(time.perf_counter() - t)
    return {"times": times, "sgemm": sgemm, "threads": threads, "load": os.getloadavg()[0]}


def _within(ctx: Any, fn: Callable[[], Any]) -> Any:
    with ctx:
        return fn()


def in_child(fn: Callable[..., Any], *args: Any, env: dict[str, str | None]) -> Any:
    saved = {k: os.environ.get(k) for k in env}
    for k, v in env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(processes=1, maxtasksperchild=1) as pool:
            return pool.apply(fn, args)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --------------------------------------------------------------------------- report


def report(results: dict[tuple[str, int], dict[str, Any]], sizes: Sequence[int]) -> str:
    med = statistics.median
    lines = ["## Achieved GFLOP/s (stylize's settings)", "",
             "| size | GFLOP counted (fwd+bwd) | median s | GFLOP/s | sgemm GFLOP/s (same cycles) | % of sgemm "
             "(median of per-cycle ratios) | best pass GFLOP/s | best sgemm | torch defaults: median s |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for size in sizes:
        r = results.get((PRIMARY, size))
        if r is None:
            continue
        gf = conv_flops(size)[1] / 1e9
        t, s = r["times"][ENGINE], r["sgemm"]
        ratio = med(gf / ti / si for ti, si in zip(t, s, strict=True))
        default = results.get(("OMP_WAIT_POLICY unset (torch default)", size))
        base = f"{med(default['times'][UNTOUCHED]):.2f}" if default else "-"
        lines.append(f"| {size} | {gf:.1f} | {med(t):.2f} | {gf / med(t):.1f} | {med(s):.1f} | {100 * ratio:.0f}% "
                     f"| {gf / min(t):.1f} | {max(s):.1f} | {base} |")
    lines += ["", "## What helps: time of each variant / time of the engine pass of the same cycle (median; "
              "< 1 is faster)", "", "| variant | " + " | ".join(f"{s} px" for s in sizes) + " |",
              "|---|" + "---:|" * len(sizes)]
    names = list(dict.fromkeys(v for (_, _), r in results.items() for v in r["times"]))
    for v in names:
        if v == ENGINE:
            continue
        cells = []
        for size in sizes:
            r = results.get((PRIMARY, size))
            if r is None or v not in r["times"]:
                cells.append("-")
                continue
            cells.append(f"{med(a / b for a, b in zip(r['times'][v], r['times'][ENGINE], strict=True)):.2f}")
        label = "malloc untouched (no large-block reuse)" if v == UNTOUCHED else v
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Across processes (median time / median time of the stylize process's same pass; noisier):", "",
              "| process | pass | " + " | ".join(f"{s} px" for s in sizes) + " |", "|---|---|" + "---:|" * len(sizes)]
    for proc in PROCESSES:
        if proc == PRIMARY:
            continue
        for v in (ENGINE, UNTOUCHED):
            cells = []
            for size in sizes:
                r, ref = results.get((proc, size)), results.get((PRIMARY, size))
                if r is None or ref is None or v not in r["times"]:
                    cells.append("-")
                    continue
                cells.append(f"{med(r['times'][v]) / med(ref['times'][v]):.2f}")
            lines.append(f"| {proc} | {v} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="256,512,1024")
    p.add_argument("--variant-max", type=int, default=512, help="largest size at which every variant and every "
                   "process runs (above it: the stylize process, engine / malloc untouched / objective only)")
    p.add_argument("--cycles", type=int, default=5, help="timed passes per variant (default 5)")
    p.add_argument("--compile", action="store_true", help="also time torch.compile (inductor)")
    p.add_argument("--quick", action="store_true", help="smoke test: 128 px, 1 cycle")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.variant_max, args.cycles = "128", 128, 1
    sizes = [int(s) for s in args.sizes.split(",")]

    import torch

    print(f"# bench_flops: {os.cpu_count()} CPUs, torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}",
          flush=True)
    results: dict[tuple[str, int], dict[str, Any]] = {}
    for size in sizes:
        for proc, (env, variants) in PROCESSES.items():
            if size > args.variant_max:
                if proc != PRIMARY:
                    continue
                variants = LARGE_ONLY
            elif proc == PRIMARY and args.compile:
                variants = (*variants, "+ torch.compile")
            out = in_child(measure, size, variants, args.cycles, args.compile and "+ torch.compile" in variants,
                           env=env)
            results[(proc, size)] = out
            gf = conv_flops(size)[1] / 1e9
            print(f"{size:5d} {proc} ({out['threads']} threads, load {out['load']:.1f}); sgemm "
                  + " ".join(f"{s:.0f}" for s in out["sgemm"]), flush=True)
            for v, ts in out["times"].items():
                print(f"      {v:28s} " + " ".join(f"{t:6.2f}s" for t in ts)
                      + f"   {gf / statistics.median(ts):6.1f} GFLOP/s", flush=True)
    print("\n" + report(results, sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Achieved GFLOP/s of one forward+backward pass of stylize's network against this machine's sgemm.

    .venv/bin/python bench/bench_flops.py                      # 256, 512, 1024 px; all variants at 256/512
    .venv/bin/python bench/bench_flops.py --quick              # smoke test (128 px, 1 round)
    .venv/bin/python bench/bench_flops.py --compile            # also try torch.compile (slow to compile)

The pass: the offline VGG-16 cut after relu5_1 (what stylize runs with the paper's layers),
an S×S RGB input that requires grad, weights frozen; forward to relu1_1, relu2_1, relu3_1,
relu4_1, relu4_2, relu5_1, then backward from fixed random gradients at those six outputs
(``torch.autograd.backward``), so nothing but the network is timed.

FLOPs counted (analytically): convolutions only, a multiply-add = 2 FLOPs. Forward of a 3×3
convolution: ``2·Cin·Cout·9·H·W``. Backward: the gradient w.r.t. its input only (weights are
frozen, no weight gradients), the same ``2·Cin·Cout·9·H·W``; conv1_1 included, since the image
needs its gradient. ReLU, pooling and the normalization are not counted (they are < 1 % of the
FLOPs but not of the time: they are memory bound). ``% sgemm`` compares with the best
``torch.mm`` of square float32 matrices (1024, 2048, 4096) measured in the same round.

Every variant runs in its own child process (spawn) because several settings are process-wide
(environment variables read when torch starts, malloc settings). Variants are interleaved
round by round so all see the same machine load; the tables give medians over all passes
(and the best pass). ``stylize objective`` is one full L-BFGS evaluation of stylize's
objective (network + Gram losses + backward) with the engine's settings, for comparison.
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

# name -> settings of the child. "env": environment of the child (None = unset); stylize sets
# OMP_WAIT_POLICY=PASSIVE when it is imported before torch, which "PASSIVE" here reproduces.
# "engine": stylize.runtime.run_settings (what stylize.transfer applies around its optimizer loop).
PASSIVE = {"OMP_WAIT_POLICY": "PASSIVE"}
DEFAULT = {"OMP_WAIT_POLICY": None}
VARIANTS: dict[str, dict[str, Any]] = {
    "torch defaults": {"env": DEFAULT},
    "engine (stylize)": {"env": PASSIVE, "engine": True},
    "engine, OMP wait policy default": {"env": DEFAULT, "engine": True},
    "engine + channels_last": {"env": PASSIVE, "engine": True, "channels_last": True},
    "engine + 1 thread": {"env": PASSIVE, "engine": True, "threads": 1},
    "engine + mkldnn off": {"env": PASSIVE, "engine": True, "mkldnn": False},
    "engine + in-place ReLU": {"env": PASSIVE, "engine": True, "inplace_relu": True},
    "engine + bf16 convolutions": {"env": PASSIVE, "engine": True, "bf16": True},
    "OMP PASSIVE, malloc untouched": {"env": PASSIVE},
    "OMP PASSIVE + THP_MEM_ALLOC_ENABLE=1": {"env": {**PASSIVE, "THP_MEM_ALLOC_ENABLE": "1"}},
    "stylize objective (engine)": {"env": PASSIVE, "engine": True, "objective": True},
}
COMPILE_VARIANT = {"env": PASSIVE, "engine": True, "compile": True}


def conv_flops(size: int, widths: Sequence[int] = (64, 128, 256, 512, 512)) -> tuple[float, float]:
    """(forward, forward+backward) FLOPs of VGG-16's convolutions up to conv5_1 on a size×size input."""
    blocks = (2, 2, 3, 3, 1)  # VGG-16 convolutions per block, cut after conv5_1
    total, cin, h, w = 0.0, 3, size, size
    for block, convs in enumerate(blocks):
        for _ in range(convs):
            total += 2 * cin * widths[block] * 9 * h * w
            cin = widths[block]
        h, w = h // 2, w // 2
    return total, 2 * total


# --------------------------------------------------------------------------- child


def sgemm_gflops(sizes: Sequence[int] = (1024, 2048, 4096), repeats: int = 3) -> float:
    """Best GFLOP/s of float32 torch.mm over square sizes (one warm-up each)."""
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


def measure(variant: dict[str, Any], size: int, passes: int) -> dict[str, Any]:
    """Child: configure ``variant``, time ``passes`` forward+backward passes at ``size``."""
    import contextlib

    import torch  # first: the child's environment alone decides torch's OpenMP settings

    from stylize.backbone import load_backbone
    from stylize.runtime import run_settings

    if variant.get("threads"):
        torch.set_num_threads(variant["threads"])
    if variant.get("mkldnn") is False:
        torch.backends.mkldnn.enabled = False
    if variant.get("bf16"):
        torch.backends.mkldnn.conv.fp32_precision = "bf16"
    backbone = load_backbone("vgg16", layers=LAYERS, allow_download=False)
    if variant.get("inplace_relu"):
        for module in backbone.features.features:
            if isinstance(module, torch.nn.ReLU):
                module.inplace = True
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, size, size, generator=gen)
    if variant.get("channels_last"):
        backbone = backbone.to(memory_format=torch.channels_last)
        image = image.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        seeds = {k: torch.randn(v.shape, generator=gen) for k, v in backbone(image, LAYERS).items()}

    forward: Callable[[torch.Tensor], dict[str, torch.Tensor]] = lambda x: backbone(x, LAYERS)  # noqa: E731
    if variant.get("compile"):
        forward = torch.compile(forward)
    if variant.get("objective"):
        from stylize.objective import Objective, content_targets, style_targets

        style = torch.rand(1, 3, size, size, generator=gen)
        objective = Objective(backbone, content_targets(backbone, image, ["relu4_2"]),
                              style_targets(backbone, [style], [k for k in LAYERS if k != "relu4_2"]),
                              content_weight=1.0, style_weight=10.0)

        def one_pass() -> None:
            x = image.detach().clone().requires_grad_(True)
            loss, _ = objective(x)
            loss.backward()
    else:

        def one_pass() -> None:
            x = image.detach().clone().requires_grad_(True)
            feats = forward(x)
            torch.autograd.backward([feats[k] for k in LAYERS], [seeds[k] for k in LAYERS])

    settings = run_settings(torch.device("cpu")) if variant.get("engine") else contextlib.nullcontext()
    times = []
    with settings:
        one_pass()  # warm-up (oneDNN primitive creation, compilation)
        for _ in range(passes):
            t = time.perf_counter()
            one_pass()
            times.append(time.perf_counter() - t)
    return {"times": times, "threads": torch.get_num_threads(), "load": os.getloadavg()[0]}


def _child_env(env: dict[str, str | None]) -> dict[str, str | None]:
    """Apply ``env`` (None = unset) to os.environ; return what to restore."""
    saved = {k: os.environ.get(k) for k in env}
    for k, v in env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    return saved


def in_child(fn: Callable[..., Any], *args: Any, env: dict[str, str | None] | None = None) -> Any:
    saved = _child_env(env or {})
    try:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(processes=1, maxtasksperchild=1) as pool:
            return pool.apply(fn, args)
    finally:
        _child_env(saved)


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="256,512,1024")
    p.add_argument("--variant-sizes", default="256,512", help="sizes at which every variant runs (others: "
                   "torch defaults and engine only)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--passes", type=int, default=3, help="timed passes per variant per round")
    p.add_argument("--compile", action="store_true", help="also time torch.compile (inductor; compiles per child)")
    p.add_argument("--only", default="", help="comma list of variant names to run (default all)")
    p.add_argument("--quick", action="store_true", help="smoke test: 128 px, 1 round, 1 pass")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.variant_sizes, args.rounds, args.passes = "128", "128", 1, 1
    sizes = [int(s) for s in args.sizes.split(",")]
    variant_sizes = {int(s) for s in args.variant_sizes.split(",") if s}
    variants = dict(VARIANTS)
    if args.compile:
        variants["engine + torch.compile"] = COMPILE_VARIANT
    if args.only:
        variants = {k: v for k, v in variants.items() if k in args.only.split(",")}

    import torch

    print(f"# bench_flops: {os.cpu_count()} CPUs, torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}",
          flush=True)
    sgemm: list[float] = []
    results: dict[tuple[int, str], list[tuple[float, float]]] = {}  # (size, variant) -> [(seconds, sgemm of round)]
    for rnd in range(args.rounds):
        round_sgemm = in_child(sgemm_gflops)
        sgemm.append(round_sgemm)
        print(f"round {rnd + 1}: sgemm {round_sgemm:.1f} GFLOP/s (load {os.getloadavg()[0]:.1f})", flush=True)
        for size in sizes:
            names = list(variants) if size in variant_sizes else [
                n for n in ("torch defaults", "engine (stylize)", "stylize objective (engine)") if n in variants]
            for name in names:
                variant = variants[name]
                out = in_child(measure, variant, size, args.passes, env=variant["env"])
                results.setdefault((size, name), []).extend((t, round_sgemm) for t in out["times"])
                gf = conv_flops(size)[1] / 1e9
                print(f"  {size:5d} {name:42s} " + " ".join(f"{t:6.2f}s" for t in out["times"])
                      + f"  {gf / statistics.median(out['times']):6.1f} GFLOP/s ({out['threads']} threads, "
                      f"load {out['load']:.1f})", flush=True)

    best_sgemm, med_sgemm = max(sgemm), statistics.median(sgemm)
    lines = [
        f"sgemm (float32 torch.mm, best of 1024/2048/4096 per round): median {med_sgemm:.0f} GFLOP/s, "
        f"best {best_sgemm:.0f} GFLOP/s over {len(sgemm)} rounds.", "",
        "| size | variant | GFLOP counted | median s | GFLOP/s (median) | % of sgemm (median of per-pass ratios) "
        "| best s | GFLOP/s (best) | % of best sgemm |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in sizes:
        gf = conv_flops(size)[1] / 1e9
        for name in variants:
            rows = results.get((size, name))
            if not rows:
                continue
            secs = [t for t, _ in rows]
            ratio = statistics.median(gf / t / s for t, s in rows)
            med, best = statistics.median(secs), min(secs)
            lines.append(f"| {size} | {name} | {gf:.1f} | {med:.3f} | {gf / med:.1f} | {100 * ratio:.0f}% | "
                         f"{best:.3f} | {gf / best:.1f} | {100 * gf / best / best_sgemm:.0f}% |")
    print("\n" + "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

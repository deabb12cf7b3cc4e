"""Peak memory and time of high-resolution runs, each in a fresh child process.

    python bench/bench_memory.py                      # 1024, 2048, 4096 px with the real VGG-16
    python bench/bench_memory.py --sizes 8192         # the same command at 8192 px
    python bench/bench_memory.py --sizes 4096 --shapes vgg19   # VGG-19 shapes, random weights
    python bench/bench_memory.py --probe              # calibrate the whole-image memory model

Every size runs ``python -m stylize CONTENT STYLE -o OUT --size N ...`` (the command a user
types) in its own child process; the parent reads the child's peak resident memory
(``ru_maxrss`` from ``os.wait4``) and wall time, and the child's ``--log`` for the schedule it
chose (which scales were whole, which tiled, how many tiles). The table is printed as Markdown,
one row as soon as each size is done.

``--probe`` measures what :func:`stylize.tiles.step_bytes` models: the peak memory of a few
L-BFGS steps on a whole image (VGG-16 to relu5_1, the default layers) at several pixel counts,
fitted to ``fixed + per_pixel * pixels``, next to the model's prediction.

VGG-19 weights are not available offline here, so the real offline VGG-16 is used (the run's
``--model vgg19`` falls back to it with a warning); VGG-19's extra convolutions are all at 1/16
to 1/256 of the pixels, so its activation count is 613 floats per pixel against VGG-16's 565.
``--shapes vgg19`` measures VGG-19's memory and time anyway, on random weights.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / ".." / "shared" / "images"
GIB = 1 << 30


def _child_rss(cmd: list[str], env: dict[str, str], log: Path) -> tuple[int, float, int]:
    """Run ``cmd``; return (exit status, wall seconds, peak RSS in bytes) of that child alone."""
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    rss = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)  # Linux: KiB
    return proc.returncode, time.perf_counter() - start, rss


def _describe(settings: dict) -> str:
    parts = []
    for row in settings.get("tiling", []):
        size = f"{row['width']}x{row['height']}"
        tile = f"{row.get('tile_width', row.get('tile'))}x{row.get('tile_height', row.get('tile'))}"
        parts.append(f"{size} whole" if not row["tiles"] else f"{size} {row['tiles']} tiles of {tile}")
    return "; ".join(parts)


def run_sizes(args: argparse.Namespace) -> int:
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "STYLIZE_OFFLINE": "1"}
    rows = []
    steps = [] if args.steps is None else ["--steps", str(args.steps)]
    steps += [] if args.tile_steps is None else ["--tile-steps", str(args.tile_steps)]
    print(f"content {args.content}, style {args.style}; {' '.join(steps) or 'every default'}; "
          f"{os.cpu_count()} CPU cores, load {os.getloadavg()[0]:.1f}", flush=True)
    print("| output | schedule | peak RSS | time | plan's estimate | budget |", flush=True)
    print("|---|---|---|---|---|---|", flush=True)
    for size in args.sizes:
        output = out_dir / f"bench_{size}.{args.format}"
        log = out_dir / f"bench_{size}.json"
        cmd = [sys.executable, "-m", "stylize", str(args.content), str(args.style), "-o", str(output), "--force",
               "--size", str(size), *steps, "--log", str(log), "--seed", "0", *args.extra]
        if args.max_memory:
            cmd += ["--max-memory", str(args.max_memory)]
        if args.shapes:  # the same run through the API, on a random-weight network of that shape
            options = {"size": size, "seed": 0, "max_memory": args.max_memory}
            options.update({} if args.steps is None else {"steps": args.steps})
            options.update({} if args.tile_steps is None else {"tile_steps": args.tile_steps})
            cmd = [sys.executable, "-c", SHAPES_CHILD, args.shapes, str(args.content), str(args.style), str(output),
                   str(log), json.dumps(options)]
        status, seconds, rss = _child_rss(cmd, env, out_dir / f"bench_{size}.out")
        if status != 0:
            print(f"| {size} px | failed (exit {status}, see {out_dir / f'bench_{size}.out'}) | | | | |", flush=True)
            rows.append({"size": size, "status": status})
            continue
        settings = json.loads(log.read_text())["settings"]
        final = settings["scale_sizes"][-1]
        row = {"size": size, "output": final, "peak_rss_gib": round(rss / GIB, 2), "seconds": round(seconds),
               "schedule": _describe(settings), "budget_gib": settings.get("memory_budget_gib"),
               "network": settings.get("network"), "estimated_seconds": settings.get("estimated_seconds")}
        rows.append(row)
        estimate = row["estimated_seconds"]
        guess = "-" if estimate is None else f"{estimate / 60:.1f} min ({seconds / estimate - 1:+.0%} measured)"
        print(f"| {final[0]}x{final[1]} | {row['schedule']} | {row['peak_rss_gib']:.2f} GiB | "
              f"{seconds / 60:.1f} min | {guess} | {row['budget_gib']} GiB |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


SHAPES_CHILD = """
import json, sys
from stylize import transfer
from stylize.backbone import Backbone
from stylize.backbone.vgg import VGGFeatures
arch, content, style, output, log, options = sys.argv[1:7]
backbone = Backbone(VGGFeatures(arch, last_layer="relu5_1"), "caffe", f"random-weight {arch} (shapes only)")
result = transfer(content, style, backbone=backbone, **json.loads(options))
result.image.save(output, quality=90)
with open(log, "w") as f:
    json.dump({"settings": result.settings}, f, default=str)
"""

PROBE_CHILD = """
import resource, sys, torch
from stylize.backbone import load_backbone
from stylize.loss import content_targets, style_targets
from stylize.objective import Objective
from stylize.optimize import optimize
from stylize.runtime import run_settings
h, w, steps = map(int, sys.argv[1:4])
layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
backbone = load_backbone("vgg16", layers=[*layers, "relu4_2"])
torch.manual_seed(0)
image, style = torch.rand(1, 3, h, w), torch.rand(1, 3, 256, 256)
objective = Objective.from_targets(backbone, content_targets(backbone, image, ["relu4_2"]),
                                   style_targets(backbone, [style], layers), content_weight=1.0, style_weight=10.0)
with run_settings(torch.device("cpu")):
    optimize(image, objective, steps=steps, tol=0)
"""


def probe(args: argparse.Namespace) -> int:
    from stylize.backbone import Backbone
    from stylize.backbone.vgg import VGGFeatures
    from stylize.tiles import step_bytes

    model = Backbone(VGGFeatures("vgg16", last_layer="relu5_1"), "caffe")
    env = {**os.environ, "STYLIZE_OFFLINE": "1"}
    points = []
    print(f"whole-image L-BFGS, {args.probe_steps} steps, VGG-16 to relu5_1")
    print("| pixels | peak RSS | model (history "
          f"{args.probe_steps}) | seconds per step |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for side in args.probe_sides:
            cmd = [sys.executable, "-c", PROBE_CHILD, str(side), str(side), str(args.probe_steps)]
            status, seconds, rss = _child_rss(cmd, env, Path(tmp) / "probe.out")
            if status != 0:
                print(f"| {side}x{side} | failed: {(Path(tmp) / 'probe.out').read_text()[-300:]} |")
                continue
            points.append((side * side, rss))
            model_bytes = step_bytes(model, side * side, history=args.probe_steps)
            print(f"| {side}x{side} | {rss / GIB:.2f} GiB | {model_bytes / GIB:.2f} GiB | "
                  f"{seconds / args.probe_steps:.1f} (incl. start-up) |", flush=True)
    if len(points) >= 2:
        n = len(points)
        mx = sum(p for p, _ in points) / n
        my = sum(r for _, r in points) / n
        slope = sum((p - mx) * (r - my) for p, r in points) / sum((p - mx) ** 2 for p, _ in points)
        print(f"fit: {my - slope * mx:.3e} bytes + {slope:.0f} bytes per pixel "
              f"(history {args.probe_steps}; the model adds 12 bytes per pixel per extra step of L-BFGS history)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")], default=[1024, 2048, 4096])
    parser.add_argument("--content", default=str(IMAGES / "content" / "sea_boat_sunset.jpg"))
    parser.add_argument("--style", default=str(IMAGES / "style" / "van_gogh_starry_night.jpg"))
    parser.add_argument("--steps", type=int, default=None, help="stylize --steps (default: stylize's own)")
    parser.add_argument("--tile-steps", type=int, default=None,
                        help="stylize --tile-steps (default: stylize's own; the README's old hand-picked "
                             "settings were --steps 10 --tile-steps 3)")
    parser.add_argument("--max-memory", type=float, default=None, help="GiB (default: stylize's own default)")
    parser.add_argument("--out-dir", default=str(Path(tempfile.gettempdir()) / "stylize-bench"))
    parser.add_argument("--format", default="jpg")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--shapes", choices=("vgg16", "vgg19"),
                        help="run through the API on a random-weight network of this shape (memory and time "
                             "do not depend on the weights: VGG-19 shapes where its weights are missing)")
    parser.add_argument("--probe", action="store_true", help="calibrate the whole-image memory model instead")
    parser.add_argument("--probe-sides", type=lambda s: [int(v) for v in s.split(",")], default=[256, 512, 768])
    parser.add_argument("--probe-steps", type=int, default=2)
    parser.add_argument("extra", nargs="*", help="more stylize flags, after --")
    args = parser.parse_args(argv)
    return probe(args) if args.probe else run_sizes(args)


if __name__ == "__main__":
    sys.exit(main())

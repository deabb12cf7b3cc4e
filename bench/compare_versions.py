"""Wall time of the same default transfer in two checkouts of stylize, side by side.

    git worktree add /tmp/old beeb72d
    .venv/bin/python bench/compare_versions.py /tmp/old . --size 512 --reps 3

Each run is ``stylize.transfer(content, style, size=N)`` with every default, in a fresh child
process whose ``sys.path`` starts with the checkout (so the child imports that version), timed
around the transfer only (no import, no start-up). The versions alternate run by run, pair by
pair, so both see the same machine load; the table gives every time, the medians and their ratio.
Both checkouts use this environment's packages and the offline VGG-16.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / ".." / "shared" / "images"
PAIRS = (
    ("building_eiffel_tower.jpg", "van_gogh_starry_night.jpg"),  # 3:2 landscape
    ("animal_dog.jpg", "hokusai_great_wave.jpg"),  # 4:3 portrait: 12% more pixels at the same long side
)
CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
import torch
import stylize
assert stylize.__file__.startswith(sys.argv[1]), stylize.__file__
torch.set_num_threads(int(sys.argv[5]))
start = time.perf_counter()
result = stylize.transfer(sys.argv[2], sys.argv[3], size=int(sys.argv[4]))
print(json.dumps({"seconds": time.perf_counter() - start, "steps": len(result.history)}))
"""


def run_once(checkout: Path, content: Path, style: Path, size: int, threads: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(checkout), str(content), str(style), str(size),
                          str(threads)], capture_output=True, text=True, check=True, timeout=3600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", type=Path, help="the first checkout (e.g. a git worktree of an older commit)")
    parser.add_argument("new", type=Path, help="the second checkout")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=Path, default=IMAGES)
    args = parser.parse_args(argv)
    checkouts = [args.old.resolve(), args.new.resolve()]
    times: dict[tuple[str, int], list[float]] = {}
    for rep in range(args.reps):
        for content, style in PAIRS:
            for index in (0, 1) if rep % 2 == 0 else (1, 0):  # alternate who goes first
                row = run_once(checkouts[index], args.images / "content" / content, args.images / "style" / style,
                               args.size, args.threads)
                times.setdefault((content, index), []).append(row["seconds"])
                print(f"# {checkouts[index]} {content} x {style}: {row['seconds']:.1f} s, {row['steps']} steps",
                      flush=True)
    print(f"\n| pair | {checkouts[0]} | {checkouts[1]} | ratio |\n|---|---|---|---|")
    for content, style in PAIRS:
        old, new = times[(content, 0)], times[(content, 1)]
        cells = [", ".join(f"{t:.1f}" for t in ts) + f" s: median {statistics.median(ts):.1f} s" for ts in (old, new)]
        ratio = statistics.median(new) / statistics.median(old)
        print(f"| {content} x {style} | {cells[0]} | {cells[1]} | {ratio:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

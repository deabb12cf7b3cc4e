"""The console script's entry point: process-wide settings first, then the command line.

It sets ``OMP_WAIT_POLICY=PASSIVE`` (unless already set) before anything imports PyTorch, whose
OpenMP runtime reads it when it loads. Spinning OpenMP threads make every torch thread crawl when
the CPU is shared with other programs, and passive waiting costs microseconds per parallel region
(bench/bench_flops.py, BENCHMARKS.md). The library itself never changes its host's environment:
API users who want the same set the variable before importing torch.
"""

from __future__ import annotations

import os


def main() -> int:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported
    from stylize.cli import main as cli_main

    return cli_main()


__all__ = ["main"]

"""Execution settings that measured faster, applied for the duration of a run.

Only what won in ``bench/bench_flops.py`` (see BENCHMARKS.md) is here:

* CPU, Linux/glibc: **large blocks are reused instead of returned to the kernel.** glibc's
  ``malloc`` serves blocks above its mmap threshold (at most 32 MiB) with fresh ``mmap`` pages
  and unmaps them on ``free``. A VGG activation at 512 px is 64 MiB, so every L-BFGS step mapped
  ~1.7 GB of new pages and took ~440 000 page faults (the kernel zero-fills each 4 KiB page),
  a large share of the step. Inside :func:`run_settings` the mmap and trim thresholds are raised
  so freed blocks are reused; on exit they are set back (to a fixed 32 MiB mmap threshold, where
  glibc's adaptive one settles for programs like this, and the default 128 KiB trim threshold)
  and the free memory is returned to the kernel (``malloc_trim``).
* CUDA: TF32 for matrix products (the Gram matrices; cuDNN convolutions already use TF32 by
  default), restored on exit.

These are process-wide settings: two runs overlapping in threads only make each other slower
when the first one ends, never wrong. The OpenMP wait policy (``OMP_WAIT_POLICY=PASSIVE``) must be
set before torch starts and is therefore set by the console script (``stylize/console.py``).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import platform
from collections.abc import Iterator

import torch

M_TRIM_THRESHOLD = -1  # glibc mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
RUN_THRESHOLD = 1 << 30  # 1 GiB: every activation of a run is reused from the heap
RESTORED_MMAP_THRESHOLD = 32 << 20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit
RESTORED_TRIM_THRESHOLD = 128 << 10  # glibc's default


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


@contextlib.contextmanager
def reuse_large_blocks() -> Iterator[bool]:
    """glibc: keep freed large blocks for reuse while inside; yields whether it could (glibc only)."""
    libc = _glibc()
    if libc is None:
        yield False
        return
    ok = bool(libc.mallopt(M_MMAP_THRESHOLD, RUN_THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD, RUN_THRESHOLD))
    try:
        yield ok
    finally:
        libc.mallopt(M_MMAP_THRESHOLD, RESTORED_MMAP_THRESHOLD)
        libc.mallopt(M_TRIM_THRESHOLD, RESTORED_TRIM_THRESHOLD)
        libc.malloc_trim(0)


def release_free_memory() -> None:
    """Give the heap's free pages back to the OS (glibc ``malloc_trim``; elsewhere nothing).

    Called between tiles: inside :func:`run_settings` freed blocks are kept for reuse, which saves
    page faults within a tile but lets a tiled run's resident memory creep up from tile to tile
    (measured at 4096 px: 5.0 GiB at the first tile, 6.3 GiB at the 12th).
    """
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


@contextlib.contextmanager
def cuda_tf32() -> Iterator[None]:
    """TF32 matrix products on CUDA (Ampere and later), restored on exit."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


@contextlib.contextmanager
def run_settings(device: torch.device) -> Iterator[None]:
    """The settings above that apply to ``device``, for the duration of the ``with`` block."""
    with contextlib.ExitStack() as stack:
        if device.type == "cpu":
            stack.enter_context(reuse_large_blocks())
        elif device.type == "cuda":
            stack.enter_context(cuda_tf32())
        yield


__all__ = ["cuda_tf32", "release_free_memory", "reuse_large_blocks", "run_settings"]

"""stylize.runtime: settings applied around a run, and put back afterwards."""

from __future__ import annotations

import platform

import pytest
import torch

from stylize.runtime import reuse_large_blocks, run_settings


def test_cuda_gets_tf32_matmuls_for_the_run_only() -> None:
    before = torch.get_float32_matmul_precision()
    with run_settings(torch.device("cuda")):  # only flags are set: no GPU needed to test it
        assert torch.get_float32_matmul_precision() == "high"
    assert torch.get_float32_matmul_precision() == before


def test_cpu_keeps_full_precision() -> None:
    before = torch.get_float32_matmul_precision()
    with run_settings(torch.device("cpu")):
        assert torch.get_float32_matmul_precision() == before
        x = torch.randn(64, 64, generator=torch.Generator().manual_seed(0))
        assert torch.equal(x @ x, x @ x)  # plain float32 arithmetic inside


def test_settings_are_restored_when_the_run_fails() -> None:
    before = torch.get_float32_matmul_precision()
    with pytest.raises(RuntimeError), run_settings(torch.device("cuda")):
        raise RuntimeError("boom")
    assert torch.get_float32_matmul_precision() == before


def test_large_block_reuse_on_glibc() -> None:
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    with reuse_large_blocks() as active:
        assert active is glibc
        big = torch.empty(64 << 20, dtype=torch.uint8)  # 64 MiB: above glibc's own mmap threshold
        big.fill_(1)
        assert int(big[-1]) == 1
        del big
    with reuse_large_blocks() as again:  # usable again after it was put back
        assert again is glibc

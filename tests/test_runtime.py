"""stylize.runtime: settings applied around a run, and put back afterwards."""

from __future__ import annotations

import platform
from collections.abc import Iterator
from typing import Any

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


def test_whole_image_targets_reuse_blocks_and_tiled_ones_do_not(monkeypatch: pytest.MonkeyPatch, tiny: Any,
                                                               small_image: Any) -> None:
    """A whole-image scale builds its targets inside the run's allocator settings (faster); a tiled one
    outside them (its chunked passes would pile up in the kept heap blocks: 9.2 GiB at 4096 px)."""
    import contextlib

    import stylize.api as api

    state = {"inside": False}
    seen: list[tuple[bool, bool]] = []  # (tiled, inside the settings) per scale's targets

    @contextlib.contextmanager
    def settings(device: torch.device) -> Iterator[None]:
        state["inside"] = True
        try:
            yield
        finally:
            state["inside"] = False

    real_build = api.build_objective

    def build(*args: Any, **kw: Any) -> Any:
        seen.append((kw["tiled"], state["inside"]))
        return real_build(*args, **kw)

    monkeypatch.setattr(api, "run_settings", settings)
    monkeypatch.setattr(api, "build_objective", build)
    content = small_image("content/forest_stream.jpg", 128)
    style = small_image("style/van_gogh_starry_night.jpg", 64)
    api.transfer(content, style, backbone=tiny, size=128, scales="64,128", steps=2, tile_size=64, tile_overlap=16,
                 tol=0.0)
    assert seen == [(False, True), (True, False)]

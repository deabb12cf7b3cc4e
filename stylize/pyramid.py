"""The coarse-to-fine pyramid: which long sides a run visits and how many steps each may take.

The steps follow the cost: a scale with ``k`` times the long side of the first (``k²`` times its
pixels, so each step costs ``k²`` times as much) gets ``1/k`` of the first scale's steps. The work
of a run then grows with the output's long side, not with its pixels, as in Gatys et al. 2017 and
the multi-resolution scripts of neural-style (1000/500/200/100/50 iterations from 256 to 3620 px):
most steps happen where they are cheap, and the fine scales only refine. At 512 px with the
defaults that is 48, 24 and 12 steps at 128, 256 and 512 px; at 4096 px, 48 ... 3, 2 at 128 ... 2048,
4096 px (the finest scales tiled, with these steps per tile).

One place for the schedule's arithmetic; :mod:`stylize.plan` turns it into a run plan (sizes,
tiles, steps and planned work per scale), and :class:`stylize.Options` validates ``--scales``
with :func:`scale_sizes`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from stylize.errors import OptionError

MAX_SCALES = 8  # a larger number is almost surely a size ("--scales 256" meant "256,512")


def scale_steps(steps: int, long_sides: Sequence[int]) -> list[int]:
    """Most optimizer steps at each scale of ``long_sides``: ``steps`` at the first, and
    ``steps x first / long side`` (rounded up, at least 1) at the others, so each scale's work
    (pixels x steps) grows only with its long side. Doubling the side halves the steps: 512 px with
    the defaults gets 48 at 128 px, 24 at 256, 12 at 512 (see BENCHMARKS.md)."""
    first = long_sides[0] if long_sides else 1
    return [max(1, math.ceil(steps * first / side - 1e-9)) for side in long_sides]


def scale_sizes(spec: str | int, size: int, min_size: int = 128) -> list[int]:
    """Long sides of the coarse-to-fine schedule, ending with ``size``.

    ``"auto"``: halve ``size`` while the result stays >= ``min_size`` (128 px), so every run starts
    small whatever its size (4096 px: 128, 256 ... 4096);
    an integer N: N sizes, each half the next (none below 32 px); a comma list: those sizes.
    """
    text = str(spec).strip()
    if text == "auto":
        sizes = [size]
        while sizes[0] // 2 >= min_size:
            sizes.insert(0, sizes[0] // 2)
        return sizes
    try:
        if "," not in text:
            count = int(text)
            if count < 1:
                raise ValueError
            if count > MAX_SCALES:
                raise OptionError(f"--scales: {count} scales is too many (1 to {MAX_SCALES}); for scales of "
                                  f"given sizes write a list ending with --size, e.g. {count},{size}")
            sizes = [max(32, size // 2**k) for k in reversed(range(count))]
            return sorted(set(sizes))
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise OptionError(f"--scales: {spec!r} is not 'auto', a number, or a comma list of sizes") from None
    if not sizes or any(s < 16 for s in sizes) or sizes != sorted(sizes) or sizes[-1] > size:
        raise OptionError(f"--scales: sizes must increase, be at least 16 and end at most at --size ({size})")
    if sizes[-1] != size:
        sizes.append(size)
    return sizes


def long_side_size(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """(width, height) after scaling ``size`` to ``long_side`` (as stylize.imageio.resize_to_long_side)."""
    width, height = size
    scale = long_side / max(width, height)
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    return (long_side, h) if width >= height else (w, long_side)


__all__ = ["MAX_SCALES", "long_side_size", "scale_sizes", "scale_steps"]

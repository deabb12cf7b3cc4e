"""The coarse-to-fine pyramid: which long sides a run visits and how many steps each may take.

One place for the schedule's arithmetic; :mod:`stylize.plan` turns it into a run plan (sizes,
tiles, steps and planned work per scale), and :class:`stylize.Options` validates ``--scales``
with :func:`scale_sizes`.
"""

from __future__ import annotations

from stylize.errors import OptionError

MAX_SCALES = 8  # a larger number is almost surely a size ("--scales 256" meant "256,512")


def scale_steps(steps: int, count: int) -> list[int]:
    """Most optimizer steps at each of ``count`` scales: ``steps`` at the first, half as many at each
    next one (rounded up, at least 1). 512 px with the defaults: 48 at 128 px, 24 at 256, 12 at 512,
    about 21 full-size steps of work (see BENCHMARKS.md for how this was chosen)."""
    return [max(1, -(-steps // 2**k)) for k in range(count)]


def scale_sizes(spec: str | int, size: int, min_size: int = 128) -> list[int]:
    """Long sides of the coarse-to-fine schedule, ending with ``size``.

    ``"auto"``: halve ``size`` while the result stays >= ``min_size`` (at most 3 scales);
    an integer N: N sizes, each half the next (none below 32 px); a comma list: those sizes.
    """
    text = str(spec).strip()
    if text == "auto":
        sizes = [size]
        while len(sizes) < 3 and sizes[0] // 2 >= min_size:
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

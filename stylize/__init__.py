"""stylize: neural style transfer (Gatys, Ecker & Bethge) that is fast, predictable and controllable.

    >>> import stylize
    >>> result = stylize.transfer("photo.jpg", "painting.jpg", size=512)
    >>> result.image.save("out.png")
"""

import os

# OpenMP threads that spin while they wait make every torch thread crawl when the CPU is shared
# with other programs (bench/bench_flops.py, BENCHMARKS.md). Passive waiting costs a thread wake-up
# per parallel region, microseconds against the milliseconds of each VGG layer. It must be set
# before torch starts, so it applies when stylize is imported first; an explicit value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from stylize.api import Progress, Result, transfer
from stylize.errors import InputError, OptionError, OutputError, StopTransfer, StylizeError, WeightsError
from stylize.options import Options

__version__ = "0.1.0"

__all__ = [
    "InputError", "OptionError", "Options", "OutputError", "Progress", "Result", "StopTransfer",
    "StylizeError", "WeightsError", "transfer",
]

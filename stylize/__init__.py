"""stylize: neural style transfer (Gatys, Ecker & Bethge) that is fast, predictable and controllable.

    >>> import stylize
    >>> result = stylize.transfer("photo.jpg", "painting.jpg", size=512)
    >>> result.image.save("out.png")

The names below are imported on first use, so ``import stylize`` alone loads neither PyTorch nor
the network, and it changes nothing in the process environment. On a CPU shared with other
programs, set ``OMP_WAIT_POLICY=PASSIVE`` before PyTorch is imported (the ``stylize`` command does
this itself, in :mod:`stylize.console`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS = {
    "transfer": "stylize.api", "Progress": "stylize.api", "Result": "stylize.api",
    "Options": "stylize.options", "StopReason": "stylize.optimize",
    "InputError": "stylize.errors", "OptionError": "stylize.errors", "OutputError": "stylize.errors",
    "StopTransfer": "stylize.errors", "StylizeError": "stylize.errors", "WeightsError": "stylize.errors",
}
#: sub-packages that are callable themselves: stylize.batch(jobs, ...), stylize.video(clip, style, ...)
_CALLABLE_PACKAGES = ("batch", "video")

if TYPE_CHECKING:
    from stylize.api import Progress, Result, transfer
    from stylize.errors import InputError, OptionError, OutputError, StopTransfer, StylizeError, WeightsError
    from stylize.optimize import StopReason
    from stylize.options import Options


def __getattr__(name: str) -> Any:
    if name in _CALLABLE_PACKAGES:
        return importlib.import_module(f"stylize.{name}")
    if name not in _EXPORTS:
        raise AttributeError(f"module 'stylize' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS, *_CALLABLE_PACKAGES])


__all__ = [
    "InputError", "OptionError", "Options", "OutputError", "Progress", "Result", "StopReason", "StopTransfer",
    "StylizeError", "WeightsError", "batch", "transfer", "video",
]

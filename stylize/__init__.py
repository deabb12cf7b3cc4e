"""stylize: neural style transfer (Gatys, Ecker & Bethge) that is fast, predictable and controllable.

    >>> import stylize
    >>> result = stylize.transfer("photo.jpg", "painting.jpg", size=512)
    >>> result.image.save("out.png")
"""

from stylize.api import Progress, Result, transfer
from stylize.errors import InputError, OptionError, OutputError, StopTransfer, StylizeError, WeightsError
from stylize.options import Options

__version__ = "0.1.0"

__all__ = [
    "InputError", "OptionError", "Options", "OutputError", "Progress", "Result", "StopTransfer",
    "StylizeError", "WeightsError", "transfer",
]

"""The terms of the objective, one module each (see :class:`stylize.loss.term.Term`).

* :mod:`~stylize.loss.content`: the photo's features (``ContentLoss``; per tile: ``TiledContentLoss``);
* :mod:`~stylize.loss.style`: the painting's statistics, one class per ``--style-loss`` kind;
* :mod:`~stylize.loss.structure`: the photo's self-similarity (``StructureLoss``, ``--structure-weight``);
* :mod:`~stylize.loss.regional`: one style per mask region (``--mask``);
* :mod:`~stylize.loss.penalties`: total variation and the range penalty on the pixels;
* :mod:`~stylize.loss.functional`: the tensor functions they are made of.
"""

from stylize.loss.content import ContentLoss, TiledContentLoss, content_targets
from stylize.loss.penalties import RANGE_WEIGHT, RangePenalty, TotalVariation
from stylize.loss.regional import RegionalStyle
from stylize.loss.structure import StructureLoss
from stylize.loss.style import STYLE_LOSSES, GramLoss, SlicedWassersteinLoss, StyleLoss, WassersteinLoss, style_targets
from stylize.loss.term import Features, Term

__all__ = [
    "RANGE_WEIGHT", "STYLE_LOSSES", "ContentLoss", "Features", "GramLoss", "RangePenalty", "RegionalStyle",
    "SlicedWassersteinLoss", "StructureLoss", "StyleLoss", "Term", "TiledContentLoss", "TotalVariation",
    "WassersteinLoss", "content_targets", "style_targets",
]

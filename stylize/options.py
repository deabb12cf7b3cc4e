"""Every option of a run, in one dataclass.

The command line, the grid's sweeps and the web form are generated from these fields (name,
type, default, help, choices, group) through one table of option kinds (:func:`option_kind`) and
one of group titles (:data:`GROUP_TITLES`), so the front ends and the API cannot drift apart.
:meth:`Options.from_kwargs` builds validated options from keywords (presets and strength resolved);
:meth:`Options.validate` turns bad values into one-line :class:`~stylize.errors.OptionError`
messages naming the option.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stylize.backbone.preprocess import CONVENTIONS
from stylize.backbone.vgg import ARCHITECTURES
from stylize.controls import (
    DEFAULT_PRESET,
    PRESET_NAMES,
    STYLE_SCALE_RANGE,
    check_strength,
    resolve_controls,
)
from stylize.errors import OptionError
from stylize.imageio import DEFAULT_MAX_PIXELS
from stylize.pyramid import scale_sizes

DEVICES = ("auto", "cpu", "cuda", "mps")
OPTIMIZERS = ("lbfgs", "adam")
PRESERVE_COLOR_MODES = ("none", "luminance", "histogram")
#: --style-loss kinds; each is a class in stylize.loss.style (STYLE_LOSSES)
STYLE_LOSS_KINDS = ("gram", "wasserstein", "sliced")
INITS = ("content", "noise")
PAPER_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
PAPER_CONTENT_LAYERS = ("relu4_2",)
#: the default content layer: relu2_2, which keeps the photo's outlines and shading. Beside it the
#: paper's relu4_2 only took photo away at the same style_gain, and it is the one layer that makes
#: a step run conv4_2 (BENCHMARKS.md, "Quality": 512 px SSIM 0.445 -> 0.52 at style_gain 0.78)
DEFAULT_CONTENT_LAYERS = ("relu2_2",)
#: the structure term (stylize.loss.structure): the photo's self-similarity at relu3_1, a style layer
#: that every step computes anyway (BENCHMARKS.md, "Quality": it keeps Van Gogh's stars out of the fog)
DEFAULT_STRUCTURE_LAYERS = ("relu3_1",)
DEFAULT_STRUCTURE_WEIGHT = 4.0


def _opt(default: Any, help: str, *, choices: tuple[str, ...] | None = None, metavar: str | None = None,
         group: str = "main") -> Any:
    meta = {"help": help, "choices": choices, "metavar": metavar, "group": group}
    if isinstance(default, (list, dict)):
        raise TypeError("use tuples for sequence defaults")
    return field(default=default, metadata=meta)


@dataclass
class Options:
    """Settings of one style transfer. Every field is also a command-line flag (``--style-weight``)."""

    # --- output size and schedule
    size: int = _opt(512, "long side of the output in pixels", metavar="PX")
    steps: int = _opt(48, "most optimizer steps at the first (coarsest) scale; a scale k times longer gets 1/k "
                      "of them (its steps cost k² times more), so most steps happen where they are cheap: "
                      "48, 24, 12 at 128, 256, 512 px; a scale ends earlier once the loss stops improving "
                      "(see --tol); --dry-run shows the plan", metavar="N")
    scales: str = _opt("auto", "coarse-to-fine schedule: 'auto' (from 128-255 px, doubling up to --size), a "
                       "number of scales (1 = single scale), or a comma list of long sides ending with --size, "
                       "e.g. 256,512", metavar="SPEC")
    tol: float = _opt(2e-3, "early stop: end a scale when the loss improved by less than this fraction "
                      "over the last --window steps (0 disables)", group="optimizer")
    window: int = _opt(20, "steps over which --tol is measured", group="optimizer")
    # --- losses
    content_weight: float = _opt(1.0, "weight of the content loss", group="loss")
    style_weight: float = _opt(16.0, "weight of the style loss (losses are normalized per layer, so "
                               "the same value works at any size and for every model)", group="loss")
    tv_weight: float = _opt(0.0, "weight of the total-variation smoothness term", group="loss")
    structure_weight: float = _opt(DEFAULT_STRUCTURE_WEIGHT, "weight of the structure term: the photo's "
                                   "self-similarity (which parts look alike, which differ), so that the "
                                   "painting's objects are not painted into the photo's uniform regions; 0 "
                                   "turns it off (whole-image scales only)", group="loss")
    structure_layers: tuple[str, ...] = _opt(DEFAULT_STRUCTURE_LAYERS, "layers of the structure term, comma "
                                             "separated", metavar="LAYERS", group="loss")
    content_layers: tuple[str, ...] = _opt(DEFAULT_CONTENT_LAYERS, "content layers, comma separated",
                                           metavar="LAYERS", group="loss")
    style_layers: tuple[str, ...] = _opt(PAPER_STYLE_LAYERS, "style layers, comma separated",
                                         metavar="LAYERS", group="loss")
    style_layer_weights: tuple[float, ...] | None = _opt(None, "one weight per style layer, comma separated "
                                                         "(default: equal)", metavar="W,...", group="loss")
    style_blend: tuple[float, ...] | None = _opt(None, "with several style images: one blend weight per style, "
                                                 "comma separated (default: equal)", metavar="W,...", group="loss")
    style_loss: str = _opt("gram", "how the painting's style is measured: 'gram' (Gram matrices, the paper), "
                           "'wasserstein' (feature mean and covariance, Gaussian W2) or 'sliced' (sliced "
                           "Wasserstein: whole feature distributions on random projections)",
                           choices=STYLE_LOSS_KINDS, group="loss")
    # --- network
    model: str = _opt("vgg19", "feature network", choices=ARCHITECTURES, group="model")
    weights: str | None = _opt(None, "VGG weights file (state dict); default: cache, download, offline VGG-16",
                               metavar="FILE", group="model")
    weights_convention: str = _opt("auto", "input convention of --weights", choices=("auto", *CONVENTIONS),
                                   group="model")
    pooling: str = _opt("max", "pooling layers of the network", choices=("max", "average"), group="model")
    allow_download: bool = _opt(True, "download official weights when none are cached", group="model")
    # --- optimizer
    optimizer: str = _opt("lbfgs", "optimizer", choices=OPTIMIZERS, group="optimizer")
    lr: float | None = _opt(None, "learning rate (default: 1 for lbfgs, 0.02 for adam)", group="optimizer")
    warm_steps: bool = _opt(True, "start each scale's and tile's L-BFGS with the step size learned before, and "
                            "let no step move a pixel by more than a quarter of the range (off: plain L-BFGS "
                            "with a tiny first step, as stylize 0.1 did)", group="optimizer")
    init: str = _opt("content", "start from the content image, from noise, or from an image file",
                     metavar="content|noise|FILE", group="optimizer")
    seed: int = _opt(0, "random seed: the same seed gives the same image on the CPU", group="optimizer")
    device: str = _opt("auto", "where to compute", choices=DEVICES, group="optimizer")
    # --- input limits
    max_pixels: int = _opt(DEFAULT_MAX_PIXELS, "refuse input images with more pixels than this",
                           metavar="N", group="input")
    # --- high resolution: tiles above a memory budget (stylize.tiles; docs/highres.md)
    max_memory: float | None = _opt(None, "memory budget in GiB: scales whose whole-image step would need more "
                                    "are refined in overlapping tiles (default: a quarter of the RAM, or 0.8 "
                                    "of the free GPU memory)", metavar="GIB", group="high resolution")
    tile_size: int = _opt(0, "tile side in pixels, a multiple of 16: scales with a longer side are tiled "
                          "(0: sized from --max-memory)", metavar="PX", group="high resolution")
    tile_overlap: int = _opt(128, "overlap of neighbouring tiles in pixels, a multiple of 16", metavar="PX",
                             group="high resolution")
    tile_steps: int = _opt(0, "most optimizer steps per tile (0: the tiled scale's own steps)", metavar="N",
                           group="high resolution")
    # --- artistic control (stylize.controls, stylize.color, stylize.regions; docs/controls.md)
    preset: str = _opt(DEFAULT_PRESET, "a named group of settings (list them: stylize presets); flags given "
                       "explicitly override the preset's values", choices=PRESET_NAMES, group="control")
    strength: float | None = _opt(None, "style strength from 0 to 10 on a log scale: 5 = the default weights, "
                                  "+2.5 = ten times the style weight; when given it sets --style-weight",
                                  metavar="0-10", group="control")
    style_scale: float = _opt(1.0, "brush-stroke size: the style image is resized to this many times the "
                              "content's scale (0.5 = finer texture, 2 = larger)", metavar="X", group="control")
    preserve_color: str = _opt("none", "keep the photo's colours: 'luminance' stylizes the brightness only, "
                               "'histogram' first matches the style's colours to the photo's",
                               choices=PRESERVE_COLOR_MODES, group="control")
    mask: str | None = _opt(None, "an image painted with one flat colour per style image; each style paints "
                            "its colour's region (colours are matched to the styles from dark to light)",
                            metavar="MASK.png", group="control")

    @property
    def weighted_style_layers(self) -> tuple[str, ...]:
        """The style layers with a weight above zero: a zero-weight layer is neither computed nor matched."""
        weights = self.style_layer_weights or (1.0,) * len(self.style_layers)
        return tuple(layer for layer, w in zip(self.style_layers, weights, strict=True) if w > 0)

    @property
    def active_structure_layers(self) -> tuple[str, ...]:
        """The structure term's layers, or none when its weight is 0."""
        return self.structure_layers if self.structure_weight > 0 else ()

    @property
    def computed_layers(self) -> tuple[str, ...]:
        """Every layer a step computes: the content layers, the weighted style layers and the structure term's."""
        return tuple(dict.fromkeys([*self.content_layers, *self.weighted_style_layers, *self.active_structure_layers]))

    @property
    def network_layers(self) -> tuple[str, ...]:
        """Every layer the network must have: content, style (zero-weight ones too) and structure layers."""
        return tuple(dict.fromkeys([*self.content_layers, *self.style_layers, *self.active_structure_layers]))

    @classmethod
    def from_kwargs(cls, **options: Any) -> Options:
        """Validated options from keyword values, as the API takes them: unknown names are an
        OptionError, layer lists may be comma strings, presets and ``strength`` are resolved
        (see :mod:`stylize.controls`)."""
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - set(defaults))
        if unknown:
            raise OptionError(f"unknown option {unknown[0]!r}")
        for key in ("content_layers", "style_layers", "structure_layers"):
            if isinstance(options.get(key), str):
                options[key] = tuple(p.strip() for p in options[key].split(",") if p.strip())
        for key in ("style_layer_weights", "style_blend"):
            if options.get(key) is not None:
                options[key] = tuple(float(w) for w in options[key])
        return cls(**resolve_controls(options, defaults)).validate()

    def validate(self) -> Options:
        """Check every value; raise OptionError naming the first bad option. Returns self."""
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            value = getattr(self, f.name)
            if choices and value not in choices:
                raise OptionError(f"--{flag(f.name)}: {value!r} is not one of {', '.join(choices)}")
        positive = {"size": self.size, "steps": self.steps, "window": self.window, "max_pixels": self.max_pixels}
        for name, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise OptionError(f"--{flag(name)}: must be a positive whole number, got {value!r}")
        for name in ("content_weight", "style_weight", "tv_weight", "structure_weight", "tol"):
            if getattr(self, name) < 0:
                raise OptionError(f"--{flag(name)}: must not be negative")
        if self.lr is not None and self.lr <= 0:
            raise OptionError("--lr: must be positive")
        if not self.style_layers:
            raise OptionError("--style-layers: give at least one layer")
        if not self.content_layers:
            raise OptionError("--content-layers: give at least one layer")
        if self.structure_weight > 0 and not self.structure_layers:
            raise OptionError("--structure-layers: give at least one layer, or --structure-weight 0")
        if self.style_layer_weights is not None:
            if len(self.style_layer_weights) != len(self.style_layers):
                raise OptionError(
                    f"--style-layer-weights: {len(self.style_layer_weights)} weights for "
                    f"{len(self.style_layers)} style layers"
                )
            if any(w < 0 for w in self.style_layer_weights) or sum(self.style_layer_weights) <= 0:
                raise OptionError("--style-layer-weights: must be non-negative and not all zero")
        if self.style_blend is not None and (any(w < 0 for w in self.style_blend) or sum(self.style_blend) <= 0):
            raise OptionError("--style-blend: weights must be non-negative and not all zero")
        self._validate_tiles()
        scale_sizes(self.scales, self.size)  # raises on a bad spec
        self._validate_controls()
        return self

    def _validate_controls(self) -> None:
        if self.strength is not None:
            check_strength(self.strength)
        low, high = STYLE_SCALE_RANGE
        scale = self.style_scale
        if not isinstance(scale, (int, float)) or not math.isfinite(scale) or not low <= scale <= high:
            raise OptionError(f"--style-scale: must be from {low:g} to {high:g} (1 = style at the content's scale), "
                              f"got {scale!r}")
        if self.mask is not None and self.style_loss != "gram":
            raise OptionError(f"--mask works with --style-loss gram (regional Gram matrices), not {self.style_loss}")
        if self.mask is not None and self.style_blend is not None:
            raise OptionError("--style-blend cannot be combined with --mask: with a mask each region has its own style")

    def _validate_tiles(self) -> None:
        if self.max_memory is not None and not self.max_memory > 0:
            raise OptionError(f"--max-memory: must be a positive number of GiB, got {self.max_memory!r}")
        for name in ("tile_size", "tile_overlap", "tile_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise OptionError(f"--{flag(name)}: must be a whole number >= 0, got {value!r}")
        for name in ("tile_size", "tile_overlap"):
            if getattr(self, name) % 16:
                raise OptionError(f"--{flag(name)}: must be a multiple of 16 (the network's pooling grid), "
                                  f"got {getattr(self, name)}")
        if self.tile_size and (self.tile_size < 64 or self.tile_overlap > self.tile_size // 2):
            raise OptionError(f"--tile-size: must be at least 64 and at least twice --tile-overlap "
                              f"({self.tile_overlap}), got {self.tile_size}")


def flag(name: str) -> str:
    """Field name -> command-line flag name without dashes (``style_weight`` -> ``style-weight``)."""
    return name.replace("_", "-")


#: option group -> its title in the CLI's help, the grid's help and the web form
GROUP_TITLES = {"main": "size and schedule", "loss": "losses", "model": "network", "optimizer": "optimizer",
                "input": "input", "high resolution": "high resolution", "control": "artistic control"}


@dataclass(frozen=True)
class OptionKind:
    """How one option's values are written as text: ``kind`` (int, float, bool, choice, text,
    floats, strings), whether ``None`` is allowed, and :meth:`parse` for one value."""

    name: str
    kind: str
    optional: bool

    def parse(self, text: str) -> Any:
        """One value from its text (a command-line value, a grid sweep value, a form field)."""
        text = text.strip()
        if self.optional and text.lower() in ("none", "default", ""):
            return None
        try:
            return _PARSERS.get(self.kind, str)(text)
        except ValueError:
            what = {"int": "whole number", "float": "number", "bool": "yes or no (true or false)"}.get(
                self.kind, "comma list of numbers")
            raise OptionError(f"--{flag(self.name)}: {text!r} is not a {what}") from None


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
        raise ValueError(text)
    return lowered in ("1", "true", "yes", "on")


_PARSERS: dict[str, Callable[[str], Any]] = {
    "int": int, "float": float, "bool": _parse_bool,
    "floats": lambda text: tuple(float(p) for p in text.split(",") if p.strip()),
    "strings": lambda text: tuple(p.strip() for p in text.split(",") if p.strip()),
}


def option_kind(f: dataclasses.Field) -> OptionKind:  # type: ignore[type-arg]
    """The :class:`OptionKind` of an :class:`Options` field, from its annotation and choices."""
    text = str(f.type).replace(" ", "")
    optional = text.endswith("|None") or text.startswith("None|")
    base = text.removesuffix("|None").removeprefix("None|")
    if f.metadata.get("choices"):
        kind = "choice"
    elif base.startswith("tuple[float"):
        kind = "floats"
    elif base.startswith("tuple"):
        kind = "strings"
    else:
        kind = base if base in ("bool", "int", "float") else "text"
    return OptionKind(f.name, kind, optional)


def option_kinds() -> dict[str, OptionKind]:
    """Every :class:`Options` field's kind, by field name, in field order."""
    return {f.name: option_kind(f) for f in dataclasses.fields(Options)}

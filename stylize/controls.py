"""One-knob strength and named presets, resolved into plain option values.

Strength
    ``strength`` s (0..10, default 5) sets the ratio of style weight to content weight on a log
    scale: ``style_weight = content_weight x R0 x 10 ** ((s - 5) / 2.5)``, where ``R0`` is the
    ratio of the default weights (10 / 1). Strength 5 is the default transfer; every 2.5 steps
    multiply the style weight by ten (0 -> 1/100, 10 -> 100 x the default ratio).

Precedence (what wins when several things set the same value)
    1. an option given explicitly (a CLI flag, or a keyword of :func:`stylize.transfer`);
    2. the preset's value;
    3. the default of :class:`stylize.Options`.

    ``strength`` is applied after that: when it is set (explicitly or by the preset) it sets
    ``style_weight``. An explicit ``style_weight`` beats a preset's strength. When both
    ``strength`` and ``style_weight`` are given explicitly, strength wins and a warning says
    that ``style_weight`` was ignored.

Presets
    ``fine``: style mostly from the shallow layers and a smaller style scale: small, crisp
    texture. ``balanced``: the defaults. ``bold``: style from the deeper layers, a larger style
    scale and a stronger style: large strokes and shapes. Layer emphasis is given per VGG block
    (1..5), so it applies to whatever ``style_layers`` are chosen.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from stylize.errors import OptionError

STRENGTH_DEFAULT = 5.0
STRENGTH_RANGE = (0.0, 10.0)
STRENGTH_PER_DECADE = 2.5  # strength steps that multiply the style weight by ten
STYLE_SCALE_RANGE = (0.1, 4.0)


def strength_ratio(strength: float, base_ratio: float) -> float:
    """style/content weight ratio for ``strength`` (``base_ratio`` at the default strength)."""
    return base_ratio * 10 ** ((strength - STRENGTH_DEFAULT) / STRENGTH_PER_DECADE)


def ratio_strength(ratio: float, base_ratio: float) -> float:
    """Inverse of :func:`strength_ratio`."""
    return STRENGTH_DEFAULT + STRENGTH_PER_DECADE * math.log10(ratio / base_ratio)


@dataclass(frozen=True)
class Preset:
    """A named group of option values. ``block_weights``: style-layer weight per VGG block 1..5."""

    name: str
    description: str
    values: Mapping[str, Any] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    block_weights: tuple[float, float, float, float, float] | None = None

    def layer_weights(self, layers: tuple[str, ...]) -> tuple[float, ...] | None:
        """One weight per layer name (``relu3_1`` -> block 3's weight)."""
        if self.block_weights is None:
            return None
        return tuple(self.block_weights[_block(name) - 1] for name in layers)


def _block(layer: str) -> int:
    digits = [ch for ch in layer if ch.isdigit()]
    block = int(digits[0]) if digits else 1
    return min(max(block, 1), 5)


#: the default style-layer weights per VGG block: the deep blocks carry the painting's objects (moons,
#: waves, faces), which a photo should not get; the shallow ones its brush work and palette. Blocks 4
#: and 5 at 0 (not computed at all, so a step stops at relu3_1): block 5 at 0 kept more of the photo
#: at the same style_gain and made a step ~15% cheaper; block 4 at 0 (it was 0.5) took Van Gogh's star
#: discs, Monet's lily pads and Turner's sails out of the photos where they were still pasted, kept
#: more of every photo (512 px SSIM median 0.495 -> 0.526) for 0.027 less style_gain, and made a step
#: ~35% cheaper; the larger strokes come from the coarse scales (BENCHMARKS.md, Quality)
BALANCED_BLOCKS = (1.0, 1.0, 1.0, 0.0, 0.0)

PRESETS: tuple[Preset, ...] = (
    Preset("fine", "fine, crisp texture: style from the shallow layers, smaller style scale",
           MappingProxyType({"style_scale": 0.7, "strength": 5.0}), (4.0, 4.0, 2.0, 0.5, 0.25)),
    Preset("balanced", "the defaults: style from blocks 1-3, none from blocks 4-5 (whose large features "
           "paste the painting's objects), style scale 1, strength 5",
           block_weights=BALANCED_BLOCKS),
    Preset("bold", "big strokes and shapes: style from the deeper layers, larger style scale, stronger",
           MappingProxyType({"style_scale": 1.6, "strength": 6.5}), (0.25, 0.5, 1.0, 2.0, 2.0)),
)
PRESET_NAMES: tuple[str, ...] = tuple(p.name for p in PRESETS)
DEFAULT_PRESET = "balanced"


def get_preset(name: str) -> Preset:
    for preset in PRESETS:
        if preset.name == name:
            return preset
    raise OptionError(f"--preset: {name!r} is not one of {', '.join(PRESET_NAMES)} (see: stylize presets)")


def preset_values(name: str, style_layers: tuple[str, ...]) -> dict[str, Any]:
    """The option values a preset sets, for the given style layers."""
    preset = get_preset(name)
    values = dict(preset.values)
    weights = preset.layer_weights(style_layers)
    if weights is not None:
        values["style_layer_weights"] = weights
    return values


def resolve_controls(given: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Explicit option values -> the values to build :class:`stylize.Options` from.

    Fills in the preset's values for options not in ``given`` and turns ``strength`` into
    ``style_weight`` (see the module docstring for precedence). ``None`` for an option whose
    default (in ``defaults``, the Options fields' defaults) is ``None`` counts as not given.
    """
    values = {k: v for k, v in given.items() if not (v is None and defaults.get(k, 0) is None)}
    explicit = set(values)
    preset = values.get("preset", DEFAULT_PRESET)
    layers = tuple(values.get("style_layers", defaults["style_layers"]))
    for key, value in preset_values(preset, layers).items():
        values.setdefault(key, value)
    strength = values.get("strength")
    if strength is None:
        return values
    if "strength" not in explicit and "style_weight" in explicit:
        values["strength"] = None  # an explicit weight beats the preset's strength
        return values
    if "strength" in explicit and "style_weight" in explicit:
        warnings.warn("--strength and --style-weight were both given; --strength sets the style weight, "
                      "--style-weight is ignored", stacklevel=3)
    check_strength(strength)
    base = defaults["style_weight"] / defaults["content_weight"]
    content_weight = values.get("content_weight", defaults["content_weight"])
    values["style_weight"] = (content_weight or 1.0) * strength_ratio(float(strength), base)
    return values


def strength_formula(defaults: Mapping[str, Any]) -> str:
    """The strength mapping in words, with the default weights in ``defaults``."""
    base = defaults["style_weight"] / defaults["content_weight"]
    return (f"--strength S sets --style-weight to (content weight) x {base:g} x 10^((S - {STRENGTH_DEFAULT:g}) / "
            f"{STRENGTH_PER_DECADE:g}); S = {STRENGTH_DEFAULT:g} gives the default weights")


def check_strength(strength: Any) -> None:
    low, high = STRENGTH_RANGE
    if not isinstance(strength, (int, float)) or not math.isfinite(strength) or not low <= strength <= high:
        raise OptionError(f"--strength: must be a number from {low:g} to {high:g}, got {strength!r}")


def describe_presets(style_layers: tuple[str, ...]) -> list[str]:
    """Lines listing every preset and the values it sets for ``style_layers`` (for ``stylize presets``)."""
    lines = []
    for preset in PRESETS:
        mark = " (default)" if preset.name == DEFAULT_PRESET else ""
        lines.append(f"{preset.name}{mark}: {preset.description}")
        values = preset_values(preset.name, style_layers)
        if "style_layer_weights" in values:
            weights = ",".join(f"{w:g}" for w in values.pop("style_layer_weights"))
            lines.append(f"    --style-layer-weights {weights}  (for --style-layers {','.join(style_layers)})")
        lines += [f"    --{k.replace('_', '-')} {v:g}" for k, v in values.items()]
    return lines


__all__ = [
    "DEFAULT_PRESET", "PRESETS", "PRESET_NAMES", "STRENGTH_DEFAULT", "STRENGTH_PER_DECADE", "STRENGTH_RANGE",
    "STYLE_SCALE_RANGE", "Preset", "describe_presets", "get_preset", "preset_values",
    "ratio_strength", "resolve_controls", "strength_formula", "strength_ratio",
]

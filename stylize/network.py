"""The feature network for a run's options: loaded with its weights, checked, and cached.

One way to get a network from :class:`stylize.Options` for every front end: :func:`load_network`
(what :func:`stylize.transfer` does when no ``backbone`` is given) and :class:`NetworkCache`,
which keeps the last few networks loaded (the grid, the web app and batch workers reuse them).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

from stylize.backbone import Backbone, load_backbone
from stylize.backbone.vgg import layer_names
from stylize.errors import OptionError
from stylize.options import Options

#: Makes the feature network for a run's options (tests pass one that returns a tiny network).
BackboneFactory = Callable[[Options], Backbone]


def check_layers(opts: Options, names: Sequence[str], arch: str) -> None:
    """OptionError naming the first content, style or structure layer that ``arch`` (with layers ``names``) lacks."""
    bad = [name for name in opts.network_layers if name not in names]
    if bad:
        kind = "content" if bad[0] in opts.content_layers else "style" if bad[0] in opts.style_layers else "structure"
        raise OptionError(
            f"--{kind}-layers: {bad[0]!r} is not a layer of {arch} (layers are named like conv1_1, relu4_2, pool5)"
        )


def load_network(opts: Options, *, progress: Callable[[int, int], None] | None = None) -> Backbone:
    """The real network of ``opts`` (model, weights, convention, pooling), cut after the deepest
    layer used; its layers are checked before any weights are loaded. ``progress(done, total)``
    reports a first-use download."""
    check_layers(opts, layer_names(opts.model), opts.model)
    return load_backbone(
        opts.model, layers=list(opts.network_layers), weights=opts.weights,
        convention=opts.weights_convention, pooling=opts.pooling, allow_download=opts.allow_download,
        progress=progress,
    )


class NetworkCache:
    """A :data:`BackboneFactory` that keeps the last ``max_entries`` networks (thread-safe)."""

    def __init__(self, max_entries: int = 2, *, progress: Callable[[int, int], None] | None = None) -> None:
        self._entries: OrderedDict[tuple[object, ...], Backbone] = OrderedDict()
        self._max_entries = max_entries
        self._progress = progress
        self._lock = threading.Lock()

    @staticmethod
    def key(opts: Options) -> tuple[object, ...]:
        layers = tuple(sorted(opts.network_layers))
        return (opts.model, opts.weights, opts.weights_convention, opts.pooling, layers, opts.allow_download,
                opts.device)  # transfer() moves the network to its device

    def __call__(self, opts: Options) -> Backbone:
        key = self.key(opts)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            backbone = load_network(opts, progress=self._progress)
            self._entries[key] = backbone
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
            return backbone


__all__ = ["BackboneFactory", "NetworkCache", "check_layers", "load_network"]

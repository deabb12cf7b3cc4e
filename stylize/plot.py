"""Loss curves of one or more runs, drawn with matplotlib (Agg, no display, no pyplot state).

:func:`loss_figure` returns a :class:`matplotlib.figure.Figure`; :func:`plot_histories` saves
one atomically to the path its caller gives (the only file the library writes, and only because
it is asked to).

A history is the ``Result.history`` of :func:`stylize.transfer` (or the rows of a run log read
with :func:`stylize.cli.files.read_log`): one dict per step with ``step``, ``scale``,
``scale_step``, ``width``, ``height``, ``total``, ``content``, ``style``, ``style_<layer>`` and
``event``. The figure marks

* scale changes: a dashed vertical line where each scale after the first begins;
* early stops: a triangle at the last step of every scale that ended before its step limit,
  labelled with the reason (from ``stop_reasons`` when the caller has them, e.g. from a JSON
  log; otherwise inferred: a scale that ran fewer steps than ``steps``, or than the longest
  scale of the run, stopped early);
* guard restores: a red dot at every step whose ``event`` is ``"restored"``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter

from stylize.atomic import write_atomically
from stylize.errors import OutputError

History = Sequence[Mapping[str, Any]]

#: The curves of the main panels, in order.
MAIN_CURVES = ("total", "content", "style")
RESTORED_LABEL = "guard restored the best image"
EARLY_STOP_LABEL = "scale ended early"
SCALE_LABEL = "new scale"
PLOT_FORMATS = ("png", "pdf", "svg", "jpg", "jpeg")

_SHORT_REASON = {"converged": "converged", "diverged": "diverged", "interrupted": "Ctrl-C",
                 "stopped": "stopped", "early": "early stop"}


@dataclass(frozen=True)
class ScaleEnd:
    """The last step of one scale of a run."""

    step: int  # global step (x position)
    scale: int  # 1-based scale index
    scale_steps: int  # steps this scale ran
    reason: str  # a key of stylize.optimize.STOP_REASONS, or "early" when only inferred
    inferred: bool  # True when the reason was guessed from the step counts

    @property
    def early(self) -> bool:
        return self.reason != "max_steps"


def scale_ends(history: History, stop_reasons: Sequence[str] | None = None,
               steps: int | None = None) -> list[ScaleEnd]:
    """Where each scale of ``history`` ended, and why.

    ``stop_reasons`` (one per scale, as in ``Result.stop_reasons``) is used when it has one entry
    per scale found; otherwise a scale counts as stopped early when it ran fewer steps than
    ``steps`` (the step limit, when known) or than the longest scale in the history.
    """
    last: dict[int, Mapping[str, Any]] = {}
    for row in history:
        last[int(row.get("scale", 1))] = row
    if not last:
        return []
    counts = {scale: int(row.get("scale_step", row["step"])) for scale, row in last.items()}
    known = stop_reasons is not None and len(stop_reasons) == len(last)
    limit = steps if steps else max(counts.values())
    ends = []
    for index, (scale, row) in enumerate(sorted(last.items())):
        guess = "early" if counts[scale] < limit else "max_steps"
        reason = str(stop_reasons[index]) if known else guess  # type: ignore[index]
        ends.append(ScaleEnd(step=int(row["step"]), scale=scale, scale_steps=counts[scale], reason=reason,
                             inferred=not known))
    return ends


def _steps(history: History) -> list[int]:
    return [int(row["step"]) for row in history]


def _values(history: History, key: str) -> list[float]:
    return [float(row[key]) if row.get(key) not in (None, "") else float("nan") for row in history]


def _layer_keys(history: History) -> list[str]:
    keys: dict[str, None] = {}
    for row in history:
        keys.update((k, None) for k in row if k.startswith("style_"))
    return list(keys)


def loss_figure(
    histories: Mapping[str, History],
    *,
    layers: bool = False,
    log: bool = True,
    stop_reasons: Mapping[str, Sequence[str] | None] | None = None,
    steps: Mapping[str, int | None] | None = None,
    title: str | None = None,
) -> Figure:
    """Loss curves of the runs in ``histories`` (name -> history), one colour per run.

    Panels: total, content and style loss against the step; with ``layers``, one more panel per
    run with its style loss at every style layer. ``log`` puts the losses on a log scale (zeros,
    such as the content loss of the first step when starting from the photo, are left out).
    ``stop_reasons`` and ``steps`` (name -> value) make the early-stop marks exact; see
    :func:`scale_ends`.
    """
    if not histories or not any(histories.values()):
        raise ValueError("nothing to plot: no history has any step")
    stop_reasons = stop_reasons or {}
    steps = steps or {}
    runs = [(name, list(h)) for name, h in histories.items() if h]
    layer_runs = [(name, h) for name, h in runs if _layer_keys(h)] if layers else []
    panels = len(MAIN_CURVES) + len(layer_runs)
    fig = Figure(figsize=(9.0, 2.3 * panels + 0.8), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
    colors = [f"C{i % 10}" for i in range(len(runs))]
    several = len(runs) > 1

    for ax, key in zip(axes, MAIN_CURVES, strict=False):
        for (name, history), color in zip(runs, colors, strict=True):
            ax.plot(_steps(history), _values(history, key), color=color, linewidth=1.3,
                    label=name if several or key == "total" else None)
        ax.set_ylabel(f"{key} loss")
    for ax, (name, history) in zip(axes[len(MAIN_CURVES):], layer_runs, strict=True):
        for i, key in enumerate(_layer_keys(history)):
            ax.plot(_steps(history), _values(history, key), color=f"C{i % 10}", linewidth=1.1,
                    label=key.removeprefix("style_"))
        ax.set_ylabel("style loss per layer")
        ax.set_title(name, fontsize=9, loc="left")
        ax.legend(fontsize=7, loc="upper right", ncols=min(5, len(_layer_keys(history))))

    layer_axes = dict(zip((name for name, _ in layer_runs), axes[len(MAIN_CURVES):], strict=True))
    for (name, history), color in zip(runs, colors, strict=True):
        _mark_run(axes[:len(MAIN_CURVES)], layer_axes.get(name), history, color, stop_reasons.get(name),
                  steps.get(name))

    for ax in axes:
        if log:
            ax.set_yscale("log", nonpositive="mask")
            ax.yaxis.set_major_formatter(LogFormatter())  # plain numbers (0.6, 2), not 6x10^-1
            ax.yaxis.set_minor_formatter(LogFormatter(minor_thresholds=(2, 0.5)))
        ax.grid(True, which="major", alpha=0.3)
    axes[-1].set_xlabel("step")
    handles, labels = axes[0].get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    longest = max(len(label) for label in unique)
    fig.legend(unique.values(), unique.keys(), fontsize=8, loc="outside lower center",
               ncols=max(1, min(len(unique), 120 // (longest + 6))))
    if title is None:
        title = "loss of " + ", ".join(name for name, _ in runs)
        title = title if len(title) <= 90 else f"loss of {len(runs)} runs"
    fig.suptitle(title, fontsize=11)
    return fig


def _mark_run(axes: Sequence[Any], layer_ax: Any, history: list[Mapping[str, Any]], color: str,
              reasons: Sequence[str] | None, limit: int | None) -> None:
    """Scale lines, early-stop triangles and restore dots of one run on the main panels (and on its
    own per-layer panel: lines only)."""
    by_step = {int(row["step"]): row for row in history}
    sizes = {int(row.get("scale", 1)): (int(row.get("width", 0)), int(row.get("height", 0))) for row in history}
    firsts: dict[int, int] = {}
    for row in history:
        firsts.setdefault(int(row.get("scale", 1)), int(row["step"]))
    early = [end for end in scale_ends(history, reasons, limit) if end.early and end.step in by_step]
    restored = [int(row["step"]) for row in history if row.get("event") == "restored"]
    for ax in [*axes, *([layer_ax] if layer_ax is not None else [])]:
        for _, first in sorted(firsts.items())[1:]:
            ax.axvline(first - 0.5, color="0.45", linestyle="--", linewidth=0.9, label=SCALE_LABEL)
    if layer_ax is not None:
        for x in restored:
            layer_ax.axvline(x, color="red", linestyle=":", linewidth=1.0, label=RESTORED_LABEL)
    for scale, first in sorted(firsts.items())[1:]:
        w, h = sizes[scale]
        text = f"scale {scale}" + (f" {w}x{h}" if w and h else "")
        if any(t.get_text() == text and t.xy[0] == first - 0.5 for t in axes[0].texts):
            continue  # another run already says so
        axes[0].annotate(text, xy=(first - 0.5, 1.0),
                         xycoords=("data", "axes fraction"), xytext=(3, -10), textcoords="offset points",
                         fontsize=7, color="0.3")
    for panel, ax in enumerate(axes):
        key = MAIN_CURVES[panel]
        if early:
            xs = [end.step for end in early]
            ys = [float(by_step[x].get(key, float("nan"))) for x in xs]
            ax.plot(xs, ys, linestyle="none", marker="v", markersize=7, color=color,
                    markeredgecolor="black", label=EARLY_STOP_LABEL)
            if panel == 0:
                for x, y, end in zip(xs, ys, early, strict=True):
                    text = _SHORT_REASON.get(end.reason, end.reason) + ("?" if end.inferred else "")
                    ax.annotate(text, xy=(x, y), xytext=(-3, 8), textcoords="offset points", fontsize=7,
                                ha="right", color="0.2")
        if restored:
            ys = [float(by_step[x].get(key, float("nan"))) for x in restored]
            ax.plot(restored, ys, linestyle="none", marker="o", markersize=5, color="red",
                    markeredgecolor="darkred", label=RESTORED_LABEL)


def plot_histories(
    histories: Mapping[str, History],
    path: str | os.PathLike[str],
    *,
    layers: bool = False,
    log: bool = True,
    stop_reasons: Mapping[str, Sequence[str] | None] | None = None,
    steps: Mapping[str, int | None] | None = None,
    title: str | None = None,
) -> Path:
    """Draw :func:`loss_figure` into ``path`` (PNG, or PDF/SVG/JPEG by suffix), atomically.

    The picture goes to a temporary file in the same folder that then replaces ``path``; on any
    failure nothing is left behind. Raises :class:`~stylize.errors.OutputError` when ``path``
    cannot be written.
    """
    target = Path(path)
    fmt = target.suffix.lower().lstrip(".")
    if fmt not in PLOT_FORMATS:
        raise OutputError(target, f"plots are written as {', '.join('.' + f for f in PLOT_FORMATS)}")
    fig = loss_figure(histories, layers=layers, log=log, stop_reasons=stop_reasons, steps=steps, title=title)
    return write_atomically(target, lambda handle: fig.savefig(handle, format="jpeg" if fmt == "jpg" else fmt, dpi=100))


__all__ = ["EARLY_STOP_LABEL", "RESTORED_LABEL", "SCALE_LABEL", "ScaleEnd", "loss_figure", "plot_histories",
           "scale_ends"]

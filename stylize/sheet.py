"""The contact sheet of a grid: every result as a thumbnail, labelled, in one picture.

Layout (all sizes in pixels; ``cell`` is the thumbnail box)::

    title
                   [style 1]  [style 2]  ...     <- style thumbnails, then their names and the
                   name       name                  column parameter values
                   value      value
    [content] row  [result ]  [result ]
    name      vals caption    caption

Each row starts with its content image and the values of the row parameters; each column with its
style image and the values of the column parameters. Under every result a caption says which
network ran, how many steps, how long, and why it stopped. :func:`sheet_layout` gives the
geometry, so the size of a sheet is known from the grid's shape alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from stylize.grid import Grid, format_value
from stylize.imageio import load_image
from stylize.options import Options, flag

BACKGROUND = (255, 255, 255)
HEADER = (238, 238, 238)
MISSING = (200, 200, 200)
TEXT = (20, 20, 20)
WARN = (170, 0, 0)
RULE = (215, 215, 215)
RULE_STRONG = (150, 150, 150)


@dataclass(frozen=True)
class SheetLayout:
    """Where everything goes on a sheet."""

    cell: int  # thumbnail box (square)
    pad: int
    line: int  # height of a text line
    font_size: int
    title_h: int
    left_w: int  # width of the row headers (content thumbnail + row values)
    label_w: int  # width of the row-values text column
    top_h: int  # height of the column headers (style thumbnail + name + column values)
    rows: int
    cols: int

    @property
    def pitch_x(self) -> int:
        return self.cell + self.pad

    @property
    def pitch_y(self) -> int:
        return self.cell + self.line + self.pad

    @property
    def width(self) -> int:
        return self.pad + self.left_w + self.cols * self.pitch_x

    @property
    def height(self) -> int:
        return self.title_h + self.top_h + self.rows * self.pitch_y + self.pad

    def cell_box(self, row: int, col: int) -> tuple[int, int]:
        """Top-left corner of the thumbnail box of a result."""
        return self.pad + self.left_w + col * self.pitch_x, self.title_h + self.top_h + row * self.pitch_y


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _row_labels(grid: Grid) -> list[list[str]]:
    return [[f"{flag(k)} {format_value(v)}" for k, v in axis.params.items()] for axis in grid.rows]


def _col_labels(grid: Grid) -> list[list[str]]:
    return [[f"{flag(k)} {format_value(v)}" for k, v in axis.params.items()] for axis in grid.cols]


def sheet_layout(grid: Grid, cell: int = 256) -> SheetLayout:
    """The geometry of the sheet of ``grid`` with thumbnails of ``cell`` pixels."""
    if cell < 32:
        raise ValueError("cell must be at least 32 pixels")
    font_size = max(10, cell // 16)
    pad = max(4, cell // 32)
    line = font_size + max(3, font_size // 3)
    font = _font(font_size)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    labels = [text for row in _row_labels(grid) for text in row]
    label_w = (pad + round(max(measure.textlength(t, font=font) for t in labels))) if labels else 0
    label_w = min(label_w, 2 * cell)
    return SheetLayout(
        cell=cell, pad=pad, line=line, font_size=font_size, title_h=2 * line + pad,
        left_w=cell + label_w + pad, label_w=label_w, top_h=cell + (1 + len(grid.col_params)) * line + 2 * pad,
        rows=len(grid.rows), cols=len(grid.cols),
    )


def _fit(img: Image.Image, box: int) -> Image.Image:
    """``img`` scaled (down or up) to fit a ``box`` x ``box`` square, keeping its aspect ratio."""
    scale = min(box / img.width, box / img.height)
    size = (max(1, min(box, round(img.width * scale))), max(1, min(box, round(img.height * scale))))
    return img.convert("RGB").resize(size, Image.Resampling.LANCZOS) if size != img.size else img.convert("RGB")


def _paste_centered(sheet: Image.Image, img: Image.Image, x: int, y: int, box: int) -> None:
    thumb = _fit(img, box)
    sheet.paste(thumb, (x + (box - thumb.width) // 2, y + (box - thumb.height) // 2))


def _clip(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def sheet_title(grid: Grid) -> str:
    """``2 contents x 3 styles x content-weight 1/10; size 192, steps 300`` (options set away from defaults)."""
    defaults = Options()
    parts = [f"{len(grid.contents)} content(s) x {len(grid.styles)} style(s)"]
    parts += [f"{flag(k)} {'/'.join(format_value(v) for v in values)}" for k, values in grid.sweeps.items()]
    fixed = [f"{flag(k)} {format_value(v)}" for k, v in grid.fixed.items()
             if not hasattr(defaults, k) or getattr(defaults, k) != v]
    return " x ".join(parts) + (f"; {', '.join(fixed)}" if fixed else "")


_SHORT_REASONS = {"converged": "converged", "max_steps": "step limit", "interrupted": "Ctrl-C",
                  "stopped": "stopped", "diverged": "diverged"}


def caption(entry: Mapping[str, Any]) -> tuple[str, bool]:
    """The line under a result (``vgg16 · 212 st · 41 s · converged``), and whether it needs attention
    (the network that ran is not the one asked for: ``vgg19->vgg16``)."""
    model, arch = entry.get("model"), entry.get("arch")
    fallback = bool(model and arch and model != arch)
    net = f"{model}->{arch}" if fallback else str(arch or model or "?")
    reason = str(entry.get("stop_reason", ""))
    parts = [net, f"{entry.get('steps', '?')} st", f"{float(entry.get('seconds') or 0):.0f} s",
             _SHORT_REASONS.get(reason, reason)]
    return " · ".join(parts), fallback


def contact_sheet(
    grid: Grid,
    results: Mapping[str, Image.Image],
    *,
    entries: Mapping[str, Mapping[str, Any]] | None = None,
    content_thumbs: Sequence[Image.Image] | None = None,
    style_thumbs: Sequence[Image.Image] | None = None,
    cell: int = 256,
    title: str | None = None,
) -> Image.Image:
    """Draw the sheet of ``grid``.

    Args:
        results: cell key -> result image (any size; cells without one are drawn grey, "not run").
        entries: cell key -> index entry (:func:`stylize.grid.index_entry`) for the captions.
        content_thumbs, style_thumbs: the input images, one per ``grid.contents`` / ``grid.styles``
            (default: loaded from the files).
        cell: the thumbnail box in pixels.
        title: the line at the top (default: :func:`sheet_title`).
    """
    layout = sheet_layout(grid, cell)
    entries = entries or {}
    if content_thumbs is None:
        content_thumbs = [load_image(p, what="content image", max_side=cell) for p in grid.contents]
    if style_thumbs is None:
        style_thumbs = [load_image(p, what="style image", max_side=cell) for p in grid.styles]
    sheet = Image.new("RGB", (layout.width, layout.height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = _font(layout.font_size)
    bold = _font(layout.font_size + 2)
    pad, line = layout.pad, layout.line

    draw.text((pad, pad), _clip(draw, title if title is not None else sheet_title(grid), bold, layout.width - 2 * pad),
              font=bold, fill=TEXT)
    top = layout.title_h
    draw.rectangle((0, top, layout.width, top + layout.top_h - pad // 2), fill=HEADER)
    draw.rectangle((0, top, layout.left_w, layout.height), fill=HEADER)
    for c, (axis, labels) in enumerate(zip(grid.cols, _col_labels(grid), strict=True)):
        x = layout.cell_box(0, c)[0]
        _paste_centered(sheet, style_thumbs[axis.image], x, top + pad, cell)
        y = top + pad + cell + pad // 2
        for text in [Path(grid.styles[axis.image]).stem, *labels]:
            draw.text((x, y), _clip(draw, text, font, cell), font=font, fill=TEXT)
            y += line
    for r, (axis, labels) in enumerate(zip(grid.rows, _row_labels(grid), strict=True)):
        y = layout.cell_box(r, 0)[1]
        _paste_centered(sheet, content_thumbs[axis.image], pad, y, cell)
        draw.text((pad, y + cell + 2), _clip(draw, Path(grid.contents[axis.image]).stem, font, cell), font=font,
                  fill=TEXT)
        for i, text in enumerate(labels):
            draw.text((2 * pad + cell, y + i * line), _clip(draw, text, font, layout.label_w), font=font, fill=TEXT)
    for r in range(1, len(grid.rows)):
        y = layout.cell_box(r, 0)[1] - pad // 2 - 1
        new_image = grid.rows[r].image != grid.rows[r - 1].image
        draw.line((0, y, layout.width, y), fill=RULE_STRONG if new_image else RULE, width=2 if new_image else 1)
    for c in range(1, len(grid.cols)):
        x = layout.cell_box(0, c)[0] - pad // 2 - 1
        new_image = grid.cols[c].image != grid.cols[c - 1].image
        draw.line((x, top, x, layout.height), fill=RULE_STRONG if new_image else RULE, width=2 if new_image else 1)
    small = _font(max(9, layout.font_size - 2))
    for item in grid.cells:
        x, y = layout.cell_box(item.row, item.col)
        image = results.get(item.key)
        if image is None:
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=MISSING)
            draw.text((x + pad, y + pad), "not run", font=font, fill=TEXT)
        else:
            _paste_centered(sheet, image, x, y, cell)
        entry = entries.get(item.key)
        if entry is not None:
            text, warn = caption(entry)
            draw.text((x, y + cell + 2), _clip(draw, text, small, cell), font=small, fill=WARN if warn else TEXT)
    return sheet


__all__ = ["SheetLayout", "caption", "contact_sheet", "sheet_layout", "sheet_title"]

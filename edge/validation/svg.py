"""Inline SVG charts for the HTML report, written by hand (no plotting dependency).

Every chart is one `<svg class="plot" data-plot=NAME>` (inline in HTML, so without an
xmlns URL) styled by presentation attributes only (no `style` attribute, no CSS): it looks
the same in a file opened from disk and in a page served under a CSP that forbids inline
styles. Text is escaped here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

FONT = 'font-family="sans-serif" font-size="11"'
AXIS, GRID, INK = "#444", "#ddd", "#1f4e9c"
GOOD, BAD, BAR_LINE = "#1a7f37", "#c62828", "#d97706"


def _n(x: float) -> str:
    return f"{x:.1f}"


def _open(name: str, title: str, width: int, height: int) -> str:
    return (
        f'<svg class="plot" data-plot="{escape(name)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f'<text x="4" y="14" {FONT} font-weight="bold" fill="#111">{escape(title)}</text>'
    )


def _text(x: float, y: float, text: str, anchor: str = "start", fill: str = "#222") -> str:
    return (
        f'<text x="{_n(x)}" y="{_n(y)}" {FONT} text-anchor="{anchor}" fill="{fill}">'
        f"{escape(text)}</text>"
    )


def _line(x1: float, y1: float, x2: float, y2: float, colour: str, width: float = 1.0) -> str:
    return (
        f'<line x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" stroke="{colour}" '
        f'stroke-width="{width:g}"/>'
    )


def pr_chart(
    name: str,
    title: str,
    recall: Sequence[float],
    precision: Sequence[float],
    operating: tuple[float, float] | None,
) -> str:
    """Precision against recall, both 0..1; `operating`: (recall, precision) marked."""
    w, h, left, top, size = 260, 270, 44, 38, 200
    parts = [_open(name, title, w, h)]
    for k in range(6):
        v = k / 5
        x, y = left + v * size, top + size - v * size
        parts += [_line(x, top, x, top + size, GRID), _line(left, y, left + size, y, GRID)]
        parts += [
            _text(x, top + size + 13, f"{v:.1f}", "middle"),
            _text(left - 4, y + 4, f"{v:.1f}", "end"),
        ]
    parts.append(
        f'<rect x="{left}" y="{top}" width="{size}" height="{size}" fill="none" stroke="{AXIS}"/>'
    )
    points = " ".join(
        f"{_n(left + r * size)},{_n(top + size - max(p, 0.0) * size)}"
        for r, p in zip(recall, precision, strict=True)
    )
    parts.append(f'<polyline points="{points}" fill="none" stroke="{INK}" stroke-width="2"/>')
    if operating is not None:
        r, p = operating
        cx, cy = left + r * size, top + size - p * size
        parts.append(f'<circle cx="{_n(cx)}" cy="{_n(cy)}" r="4" fill="{BAR_LINE}" stroke="#000"/>')
        parts.append(_text(4, 29, f"operating point: recall {r:.2f}, precision {p:.2f}"))
    parts.append(_text(left + size / 2, h - 4, "recall", "middle"))
    parts.append(
        f'<text x="0" y="0" {FONT} text-anchor="middle" fill="#222" '
        f'transform="translate(12 {_n(top + size / 2)}) rotate(-90)">precision</text>'
    )
    return "".join(parts) + "</svg>"


@dataclass(frozen=True)
class IntervalRow:
    """One estimate with its interval, all in 0..1; `note` e.g. '17/18'."""

    label: str
    value: float | None
    low: float | None
    high: float | None
    note: str = ""


def interval_chart(
    name: str, title: str, rows: Sequence[IntervalRow], bar: float | None, higher_is_better: bool
) -> str:
    """Dots with interval whiskers on a 0..1 axis, one row each; `bar` a vertical line, and
    a row whose value misses it drawn in red."""
    label_w, plot_w, note_w, row_h, top = 210, 300, 70, 18, 30
    w, h = label_w + plot_w + note_w, top + row_h * len(rows) + 24
    parts = [_open(name, title, w, h)]
    bottom = top + row_h * len(rows)
    for k in range(6):
        v = k / 5
        x = label_w + v * plot_w
        parts += [_line(x, top - 4, x, bottom, GRID), _text(x, bottom + 13, f"{v:.1f}", "middle")]
    if bar is not None:
        x = label_w + bar * plot_w
        parts.append(_line(x, top - 8, x, bottom, BAR_LINE, 2))
        parts.append(_text(x + 3, top - 6, f"bar {bar:g}", "start", BAR_LINE))
    for i, row in enumerate(rows):
        y = top + row_h * i + row_h / 2
        parts.append(_text(label_w - 6, y + 4, row.label, "end"))
        parts.append(_text(w - 4, y + 4, row.note, "end"))
        if row.value is None:
            parts.append(_text(label_w + 4, y + 4, "no data", "start", "#888"))
            continue
        if row.low is not None and row.high is not None:
            x1, x2 = label_w + row.low * plot_w, label_w + row.high * plot_w
            parts += [
                _line(x1, y, x2, y, AXIS, 1.5),
                _line(x1, y - 4, x1, y + 4, AXIS, 1.5),
                _line(x2, y - 4, x2, y + 4, AXIS, 1.5),
            ]
        failed = bar is not None and (row.value < bar if higher_is_better else row.value > bar)
        colour = BAD if failed else GOOD
        cx = label_w + row.value * plot_w
        parts.append(f'<circle cx="{_n(cx)}" cy="{_n(y)}" r="4" fill="{colour}"/>')
    return "".join(parts) + "</svg>"


def histogram_chart(
    name: str,
    title: str,
    edges: Sequence[float],
    counts: Sequence[int],
    markers: Sequence[tuple[str, float]],
    unit: str,
) -> str:
    """Bars over `edges` (len(counts) + 1), vertical marker lines at the given values."""
    w, h, left, top, plot_w, plot_h = 560, 220, 44, 24, 490, 160
    parts = [_open(name, title, w, h)]
    lo, hi = edges[0], edges[-1] if edges[-1] > edges[0] else edges[0] + 1
    most = max(max(counts, default=0), 1)

    def x_of(v: float) -> float:
        return left + (v - lo) / (hi - lo) * plot_w

    for k in range(5):
        c = most * k / 4
        y = top + plot_h - c / most * plot_h
        parts += [_line(left, y, left + plot_w, y, GRID), _text(left - 4, y + 4, f"{c:.0f}", "end")]
    for i, c in enumerate(counts):
        x1, x2 = x_of(edges[i]), x_of(edges[i + 1])
        bh = c / most * plot_h
        parts.append(
            f'<rect class="bin" x="{_n(x1)}" y="{_n(top + plot_h - bh)}" width="{_n(max(x2 - x1 - 1, 1))}" '
            f'height="{_n(bh)}" fill="{INK}"><title>{edges[i]:.1f}-{edges[i + 1]:.1f} {unit}: '
            f"{c}</title></rect>"
        )
    for k in range(6):
        v = lo + (hi - lo) * k / 5
        parts.append(_text(x_of(v), top + plot_h + 13, f"{v:.0f}", "middle"))
    for i, (label, value) in enumerate(markers):
        x = x_of(value)
        parts.append(_line(x, top, x, top + plot_h, BAR_LINE if i else BAD, 2))
        text = f"{label} {value:.1f} {unit}"
        if x > left + plot_w * 0.75:  # near the right edge: label on the left of the line
            parts.append(_text(x - 3, top + 10 + 12 * i, text, "end"))
        else:
            parts.append(_text(x + 3, top + 10 + 12 * i, text, "start"))
    parts.append(_line(left, top + plot_h, left + plot_w, top + plot_h, AXIS))
    parts.append(_text(left + plot_w / 2, h - 4, unit, "middle"))
    return "".join(parts) + "</svg>"


def _shade(fraction: float) -> str:
    """White to the ink colour."""
    f = min(max(fraction, 0.0), 1.0)
    r, g, b = (round(255 + (c - 255) * f) for c in (0x1F, 0x4E, 0x9C))
    return f"#{r:02x}{g:02x}{b:02x}"


def confusion_chart(
    name: str,
    title: str,
    rows: Sequence[str],
    columns: Sequence[str],
    counts: Sequence[Sequence[int]],
) -> str:
    """A heat map of counts, each cell shaded by its share of its row."""
    cell, left, top = 56, 90, 64
    w, h = left + cell * len(columns) + 10, top + cell * len(rows) + 24
    parts = [_open(name, title, w, h)]
    parts.append(_text(left + cell * len(columns) / 2, 32, "detected as", "middle"))
    for c, label in enumerate(columns):
        parts.append(_text(left + cell * c + cell / 2, top - 8, label, "middle"))
    for r, label in enumerate(rows):
        total = sum(counts[r]) or 1
        y = top + cell * r
        parts.append(_text(left - 6, y + cell / 2 + 4, label, "end"))
        for c, count in enumerate(counts[r]):
            x = left + cell * c
            share = count / total
            parts.append(
                f'<rect class="cell" x="{x}" y="{y}" width="{cell}" height="{cell}" '
                f'fill="{_shade(share)}" stroke="#fff"/>'
            )
            colour = "#fff" if share > 0.5 else "#111"
            parts.append(_text(x + cell / 2, y + cell / 2 + 4, str(count), "middle", colour))
    parts.append(_text(4, h - 6, "rows: ground truth (background: no box)"))
    return "".join(parts) + "</svg>"


@dataclass(frozen=True)
class DrawnBox:
    label: str
    box: tuple[float, float, float, float]  # xyxy image pixels
    colour: str
    dashed: bool = False


def image_with_boxes(
    name: str, uri: str, width: int, height: int, boxes: Sequence[DrawnBox], shown_width: int = 240
) -> str:
    """The image (a data: URI) at `shown_width` pixels with boxes drawn in image pixels."""
    scale = width / shown_width
    shown_h = max(1, round(height / scale))
    parts = [
        f'<svg class="plot thumb" data-plot="{escape(name)}" '
        f'viewBox="0 0 {width} {height}" width="{shown_width}" height="{shown_h}" role="img" '
        f'aria-label="{escape(name)}"><title>{escape(name)}</title>'
        f'<image href="{escape(uri)}" x="0" y="0" width="{width}" height="{height}" '
        'preserveAspectRatio="none"/>'
    ]
    for b in boxes:
        x1, y1, x2, y2 = b.box
        dash = f' stroke-dasharray="{_n(4 * scale)}"' if b.dashed else ""
        parts.append(
            f'<rect x="{_n(x1)}" y="{_n(y1)}" width="{_n(x2 - x1)}" height="{_n(y2 - y1)}" '
            f'fill="none" stroke="{b.colour}" stroke-width="{_n(2 * scale)}"{dash}>'
            f"<title>{escape(b.label)}</title></rect>"
        )
        parts.append(
            f'<text x="{_n(x1)}" y="{_n(max(y1 - 2 * scale, 10 * scale))}" font-family="sans-serif" '
            f'font-size="{_n(10 * scale)}" fill="{b.colour}">{escape(b.label)}</text>'
        )
    return "".join(parts) + "</svg>"

"""Small HTML builders for the reports: escaped text, tables, sections."""

from __future__ import annotations

from html import escape
from typing import Any

SHOWN_IMAGES = 5


def e(value: Any) -> str:
    return escape("" if value is None else str(value))


def num(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def rate(r: dict[str, Any] | None) -> str:
    if r is None or r.get("value") is None:
        return "-"
    return f"{r['value']:.3f} [{r['low']:.3f}, {r['high']:.3f}] ({r['hits']}/{r['total']})"


def table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    """Cells are HTML already (escape what comes from data)."""
    out = [f'<table class="{cls}">' if cls else "<table>", "<thead><tr>"]
    out += [f"<th>{escape(h)}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    return "".join(out) + "</tbody></table>"


def fields(pairs: list[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in pairs)
    return f'<table class="fields">{rows}</table>'


def verdict(passed: bool, what: str) -> str:
    word = "PASSED" if passed else "FAILED"
    return f'<p class="verdict {word.lower()}" id="verdict">{escape(what)}: {word}</p>'


def section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{body}</section>'

"""The report as one self-contained HTML file: tables, inline SVG plots, thumbnails as
data: URIs, and the JSON document itself embedded (so its SHA-256 can be checked again).

    html = render_html(doc)                         # a file: the stylesheet inline
    html = render_html(doc, stylesheet="/api/...")  # a page under a CSP without inline styles
    doc = embedded_document(html)

Renders a regression report (edge-test-report/1) or an acceptance report, which holds one.
No script runs in the page; the embedded JSON is a data block (`type="application/json"`).
"""

from __future__ import annotations

import json
import re
from html import escape
from typing import Any

from edge.errors import BadInputError
from edge.validation.acceptance_html import acceptance_body, is_acceptance
from edge.validation.html_parts import section, verdict
from edge.validation.report_css import REPORT_CSS
from edge.validation.report_sections import test_sections

DATA_ID = "report-data"
HASH_STATEMENT = (
    'SHA-256 of the canonical JSON of the report document without its "sha256" field: keys '
    "sorted, no whitespace (separators ',' and ':'), UTF-8, non-ASCII characters unescaped. "
    f'The document is embedded in this file (the script element with id "{DATA_ID}") and '
    "written beside it as .json; this HTML is a rendering of it, and is not itself hashed."
)
_DATA_BLOCK = re.compile(
    rf'<script type="application/json" id="{DATA_ID}">(.*?)</script>', re.DOTALL
)


def _integrity(doc: dict[str, Any]) -> str:
    return section(
        "Integrity",
        f'<p>Report SHA-256: <code id="report-sha256">{escape(str(doc.get("sha256")))}</code></p>'
        f"<p>{escape(HASH_STATEMENT)}</p>",
        "integrity",
    )


def _data_block(doc: dict[str, Any]) -> str:
    # Escaped so no "</script>" can end the block early; JSON.parse reads it back unchanged.
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    return f'<script type="application/json" id="{DATA_ID}">{text}</script>'


def render_html(doc: dict[str, Any], stylesheet: str | None = None) -> str:
    """The whole page. `stylesheet`: a same-origin URL to link instead of the inline style."""
    if is_acceptance(doc):
        title = f"Acceptance report: {doc['site']}, {doc['model']['id']}"
        body = acceptance_body(doc)
    elif isinstance(doc.get("gate"), dict) and isinstance(doc.get("metrics"), dict):
        title = f"Regression test report: {doc['model']['id']} on {doc['suite']['name']}"
        body = verdict(bool(doc["gate"]["passed"]), "Gate") + test_sections(doc)
    else:
        raise BadInputError(
            f"report: expected an edge test or acceptance report, got {doc.get('format')!r}"
        )
    style = (
        f"<style>{REPORT_CSS}</style>"
        if stylesheet is None
        else f'<link rel="stylesheet" href="{escape(stylesheet)}">'
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'  # no favicon request (a 404 in the console)
        f"<title>{escape(title)}</title>{style}</head><body><main>"
        f"<h1>{escape(title)}</h1>{body}{_integrity(doc)}</main>{_data_block(doc)}</body></html>\n"
    )


def embedded_document(html: str) -> dict[str, Any]:
    """The JSON document a rendered report embeds."""
    found = _DATA_BLOCK.search(html)
    if found is None:
        raise BadInputError(f"report: no embedded document (script id {DATA_ID!r})")
    doc: dict[str, Any] = json.loads(found.group(1))
    return doc

"""The HTML of an acceptance report: site, items, image quality, the test it ran, and the
signature block (report_html.py wraps it in the page)."""

from __future__ import annotations

from typing import Any

from edge.validation.acceptance import is_acceptance
from edge.validation.html_parts import e, fields, section, table, verdict
from edge.validation.report_sections import test_sections

__all__ = ["acceptance_body", "is_acceptance"]


def _items(doc: dict[str, Any]) -> str:
    rows = []
    for item in doc["items"]:
        if item["waived"]:
            result = '<span class="waived">WAIVED</span>'
        elif item["passed"]:
            result = '<span class="ok">passed</span>'
        else:
            result = '<span class="bad">FAILED</span>'
        rows.append([e(item["name"]), result, e(item["detail"])])
    return table(["item", "result", "detail"], rows, "items")


def _quality(doc: dict[str, Any]) -> str:
    quality = doc["image_quality"]
    latest = quality.get("latest")
    if latest is None:
        return f"<p>{e(quality['detail'])}</p>"
    shown = {k: v for k, v in latest.items() if not isinstance(v, dict | list)}
    pairs = [(str(k), e(v)) for k, v in sorted(shown.items())]
    failures = latest.get("failures") or []
    if failures:
        pairs.append(("failures", e("; ".join(str(f) for f in failures))))
    return f"<p>{e(quality['detail'])}</p>" + fields(pairs)


def _signatures(doc: dict[str, Any]) -> str:
    sig = doc["signature"]
    head = fields(
        [
            ("Site", e(sig["site"])),
            ("Operator", e(sig["operator"])),
            ("Date", e(sig["date"])),
            ("Result", "PASSED" if doc["passed"] else "FAILED"),
            ("Report SHA-256", f"<code>{e(doc.get('sha256'))}</code>"),
        ]
    )
    rows = [[e(who), "", "", ""] for who in sig["signatories"]]
    lines = table(["signed for", "name", "signature", "date"], rows, "signatures")
    return (
        head
        + "<p>By signing, each party confirms the results of the report whose SHA-256 is given above.</p>"
        + lines
    )


def acceptance_body(doc: dict[str, Any]) -> str:
    test = doc["test"]
    intro = fields(
        [
            ("Site", e(doc["site"])),
            ("Operator", e(doc["operator"])),
            ("Date", e(doc["created"])),
            (
                "Model",
                f"{e(doc['model']['id'])}<br><code>sha256 {e(doc['model']['sha256'])}</code>",
            ),
            (
                "Suite",
                f"{e(doc['suite']['name'])}<br><code>sha256 {e(doc['suite']['sha256'])}</code>",
            ),
            ("Software", f"{e(doc['software']['name'])} {e(doc['software']['version'])}"),
        ]
    )
    return (
        verdict(bool(doc["passed"]), "Acceptance")
        + section("Acceptance", intro + _items(doc), "acceptance")
        + section("Image quality (test piece)", _quality(doc), "image-quality")
        + test_sections(test)
        + section("Signatures", _signatures(doc), "signatures")
    )

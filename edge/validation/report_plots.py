"""The report document's plots as inline SVG (report_html.py lays them out).

Each function reads the JSON report document (edge/validation/report.py), not live
objects, so a stored report renders the same years later.
"""

from __future__ import annotations

from typing import Any

from edge.validation.svg import (
    BAD,
    GOOD,
    DrawnBox,
    IntervalRow,
    confusion_chart,
    histogram_chart,
    image_with_boxes,
    interval_chart,
    pr_chart,
)

MISSED_TRUTH, RIGHT_DETECTION = "#ffd400", "#00c8ff"


def _xyxy(values: list[float]) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in values)
    return x1, y1, x2, y2


def _evidence(doc: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = doc.get("evidence") or {}
    return found


def pr_curves(doc: dict[str, Any]) -> list[str]:
    """One precision-recall chart per class with ground truth (IoU 0.5, whole suite)."""
    out = []
    for curve in _evidence(doc).get("pr_curves", []):
        op = curve.get("operating_point")
        out.append(
            pr_chart(
                f"pr-{curve['class']}",
                f"{curve['class']} (threshold {curve['threshold']:.2f})",
                curve["recall"],
                [0.0 if p is None else p for p in curve["precision"]],
                None if op is None else (op["recall"], op["precision"]),
            )
        )
    return out


def _row(label: str, r: dict[str, Any] | None) -> IntervalRow:
    if r is None:
        return IntervalRow(label, None, None, None)
    return IntervalRow(label, r["value"], r["low"], r["high"], f"{r['hits']}/{r['total']}")


def _pd_bar(doc: dict[str, Any], name: str) -> float | None:
    bars = ((doc.get("policy") or {}).get("absolute") or {}).get("pd_min") or {}
    bar = bars.get(name, bars.get("default"))
    return None if bar is None else float(bar)


def pd_per_slice(doc: dict[str, Any]) -> list[str]:
    """Per class, Pd of every slice holding that class, with its Wilson interval."""
    bag = doc["metrics"]["bag"]
    conf = bag.get("confidence", 0.95)
    out = []
    for name in bag["classes"]:
        rows = [_row(s["slice"], s["pd"][name]) for s in bag["slices"] if name in s["pd"]]
        if rows:
            out.append(
                interval_chart(
                    f"pd-{name}",
                    f"Pd {name} per slice ({conf:.0%} Wilson interval)",
                    rows,
                    _pd_bar(doc, name),
                    higher_is_better=True,
                )
            )
    return out


def pfa_per_slice(doc: dict[str, Any]) -> str | None:
    bag = doc["metrics"]["bag"]
    rows = [_row(s["slice"], s["pfa"]) for s in bag["slices"] if s.get("pfa") is not None]
    if not rows:
        return None
    bar = ((doc.get("policy") or {}).get("absolute") or {}).get("pfa_max")
    conf = bag.get("confidence", 0.95)
    return interval_chart(
        "pfa",
        f"Pfa per slice ({conf:.0%} Wilson interval)",
        rows,
        bar,
        higher_is_better=False,
    )


def confusion(doc: dict[str, Any]) -> str | None:
    c = _evidence(doc).get("confusion")
    if not c:
        return None
    return confusion_chart(
        "confusion",
        f"Boxes at the operating point, IoU >= {c['iou']}",
        c["rows"],
        c["columns"],
        c["counts"],
    )


def latency(doc: dict[str, Any]) -> str | None:
    hist = _evidence(doc).get("latency_histogram")
    stats = doc["metrics"].get("latency") or {}
    if not hist:
        return None
    markers = [(k, stats[f"{k}_ms"]) for k in ("p50", "p95") if stats.get(f"{k}_ms") is not None]
    bar = ((doc.get("policy") or {}).get("latency") or {}).get("p95_ms_max")
    if bar is not None and bar <= hist["edges_ms"][-1] * 1.5:
        markers.append(("bar", float(bar)))
    return histogram_chart(
        "latency",
        f"detect() time per frame ({stats.get('frames', sum(hist['counts']))} frames)",
        hist["edges_ms"],
        hist["counts"],
        markers,
        "ms",
    )


def gallery(doc: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """(entry, its image with boxes) per worst failure: ground truth dashed (green found,
    yellow missed), detections solid (blue right, red wrong)."""
    out = []
    for k, entry in enumerate(_evidence(doc).get("worst_failures", [])):
        boxes = [
            DrawnBox(
                f"truth {t['class']}",
                _xyxy(t["box"]),
                GOOD if t["found"] else MISSED_TRUTH,
                dashed=True,
            )
            for t in entry["truth"]
        ]
        boxes += [
            DrawnBox(
                f"{d['class']} {d['score']:.2f}",
                _xyxy(d["box"]),
                RIGHT_DETECTION if d["correct"] else BAD,
            )
            for d in entry["detections"]
        ]
        svg = image_with_boxes(
            f"failure-{k + 1}", entry["thumbnail"], entry["width"], entry["height"], boxes
        )
        out.append((entry, svg))
    return out

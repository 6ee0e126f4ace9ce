"""The sections of a regression report's HTML: identity, gate, figures, plots, gallery."""

from __future__ import annotations

from typing import Any

from edge.validation import report_plots
from edge.validation.html_parts import SHOWN_IMAGES, e, fields, num, rate, section, table


def _identity(doc: dict[str, Any]) -> str:
    model, suite, device = doc["model"], doc["suite"], doc["device"]
    baseline = doc.get("baseline")
    pairs: list[tuple[str, Any]] = [
        ("Model", f"{e(model['id'])}<br><code>sha256 {e(model['sha256'])}</code>"),
    ]
    if baseline:
        pairs.append(
            ("Baseline", f"{e(baseline['id'])}<br><code>sha256 {e(baseline['sha256'])}</code>")
        )
    pairs += [
        (
            "Suite",
            f"{e(suite['name'])}, label version {e(suite['label_version'])}: "
            f"{e(suite['images'])} images, {e(suite['threat_bags'])} threat bags, "
            f"{e(suite['clean_bags'])} clean bags<br><code>sha256 {e(suite['sha256'])}</code>",
        ),
        (
            "Device",
            f"{e(device.get('hostname'))}: {e(device.get('processor'))}, "
            f"{e(device.get('cpus'))} CPUs, {e(device.get('platform'))}, onnxruntime "
            f"{e(device.get('onnxruntime'))} ({e(', '.join(device.get('providers') or []))})",
        ),
        ("Software", f"{e(doc['software']['name'])} {e(doc['software']['version'])}"),
        ("Date", e(doc["created"])),
    ]
    if doc.get("run_id"):
        pairs.append(("Run", e(doc["run_id"])))
    return fields(pairs)


def _thresholds(doc: dict[str, Any]) -> str:
    """Each model's thresholds per class, and where they came from (manifest, the device's
    calibration, a file): the bag figures hold at these and no others."""
    rows, notes = [], []
    for role, model in (("model", doc["model"]), ("baseline", doc.get("baseline"))):
        point = model.get("operating_point") if model else None
        if not model or not point:
            continue
        notes.append(f"<p>{e(role)} {e(model['id'])}: {e(point['detail'])}</p>")
        for name, c in point["classes"].items():
            rows.append(
                [e(model["id"]), e(name), num(c["threshold"]), e(c["source"]), num(c["manifest"])]
            )
    if not rows:
        return "<p>Not recorded (a report from an older version).</p>"
    return "".join(notes) + table(
        ["model", "class", "threshold", "source", "manifest's"], rows, "thresholds"
    )


def _gate(doc: dict[str, Any]) -> str:
    gate = doc["gate"]
    checks = table(
        ["check", "result"],
        [
            [
                e(c["name"]),
                f'<span class="{"ok" if c["passed"] else "bad"}">{e(c["summary"])}</span>',
            ]
            for c in gate["checks"]
        ],
    )
    if not gate["failures"]:
        return checks + "<p>No failures.</p>"
    rows = []
    for f in gate["failures"]:
        images = ", ".join(f["images"][:SHOWN_IMAGES])
        more = f["image_count"] - min(f["image_count"], SHOWN_IMAGES)
        rows.append(
            [
                e(f["check"]), e(f["slice"]), e(f["figure"]), num(f["value"]),
                e(f["bar"]), e(f["message"]),
                e(images) + (f" (+{more} more)" if more else ""),
            ]
        )  # fmt: skip
    head = ["check", "slice", "figure", "value", "bar", "why", "images"]
    return checks + table(head, rows, "failures")


def _headline(doc: dict[str, Any]) -> str:
    overall = doc["metrics"]["bag"]["slices"][0]
    summary = doc["metrics"]["summary"]
    rows = [[f"Pd {e(name)}", rate(r)] for name, r in overall["pd"].items()]
    rows.append(["Pfa", rate(overall["pfa"])])
    rows.append(["mAP@0.5 (COCO)", num(summary.get("map50"))])
    p95 = summary.get("p95_ms")
    rows.append(["p95 detect() time", "-" if p95 is None else f"{p95:.1f} ms"])
    return table(["figure", "value [interval] (count)"], rows)


def _box_slices(doc: dict[str, Any]) -> str:
    box = doc["metrics"].get("box")
    if not box:
        return "<p>No box metrics.</p>"
    classes = doc["metrics"]["bag"]["classes"]
    rows = [
        [e(s["slice"]), e(s["images"]), e(s["boxes"]), num(s["map"]), num(s["map50"])]
        + [num(s["ap50"].get(c)) for c in classes]
        for s in box["slices"]
    ]
    return table(
        ["slice", "images", "boxes", "mAP", "mAP@0.5", *[f"AP50 {c}" for c in classes]], rows
    )


def _behaviour(doc: dict[str, Any]) -> str:
    checks = doc["metrics"].get("behaviour") or {}
    if not checks:
        return "<p>No behavioural checks ran.</p>"
    rows = [
        [e(name), e(c.get("ran")), e(c.get("passed")), e(c.get("not_run") or "")]
        for name, c in checks.items()
    ]
    return table(["check", "ran", "passed", "not run because"], rows)


def _gallery(doc: dict[str, Any]) -> str:
    items = report_plots.gallery(doc)
    if not items:
        return "<p>No failures at the operating point.</p>"
    cards = []
    for entry, svg in items:
        reasons = "".join(f"<li>{e(r)}</li>" for r in entry["reasons"])
        cards.append(
            f'<figure class="failure">{svg}<figcaption><code>{e(entry["image"])}</code>'
            f"<ul>{reasons}</ul></figcaption></figure>"
        )
    legend = (
        '<p class="legend">Ground truth dashed: green found, yellow missed. Detections at the '
        "operating point solid: blue right, red wrong (false alarm or wrong class).</p>"
    )
    return legend + '<div class="gallery">' + "".join(cards) + "</div>"


def test_sections(doc: dict[str, Any]) -> str:
    """Every section of a regression report, after its title and verdict."""
    grid = '<div class="plots">{}</div>'
    pfa, conf, lat = (
        report_plots.pfa_per_slice(doc), report_plots.confusion(doc), report_plots.latency(doc),
    )  # fmt: skip
    return "".join(
        [
            section("What was tested", _identity(doc), "identity"),
            section("Thresholds judged at", _thresholds(doc), "thresholds"),
            section("Gate", _gate(doc), "gate"),
            section("Headline figures (bag level, whole suite)", _headline(doc), "headline"),
            section(
                "Precision-recall per class",
                grid.format("".join(report_plots.pr_curves(doc))),
                "pr",
            ),
            section("Pd per slice", grid.format("".join(report_plots.pd_per_slice(doc))), "pd"),
            section("Pfa per slice", pfa or "<p>No clean bags.</p>", "pfa"),
            section("Confusion between classes", conf or "<p>No boxes.</p>", "confusion"),
            section("Latency", lat or "<p>No frames timed.</p>", "latency"),
            section("Worst failures", _gallery(doc), "gallery"),
            section("Box metrics per slice (COCO)", _box_slices(doc), "boxes"),
            section("Behavioural checks", _behaviour(doc), "behaviour"),
        ]
    )

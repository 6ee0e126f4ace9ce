"""The JSON report of a regression test: what ran (model, suite, device, software), every
figure, the gate's decision and the images behind each failure.

Its "evidence" section holds what the HTML report (report_html.py) plots: PR curves, the
class confusion, the latency histogram, the worst failures with small thumbnails.

The document carries its own SHA-256 under "sha256": the hash of its canonical JSON
(sorted keys, no spaces, UTF-8) without that field, so a reader can check that nothing was
changed since it was written (`verify_report`).
"""

from __future__ import annotations

import hashlib
import math
import os
import platform
import sys
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import onnxruntime as ort

from edge.store.records import iso, utc_now
from edge.validation.regression import RegressionTest
from edge.validation.report_evidence import evidence_section
from edge.validation.suite import canonical_json

REPORT_FORMAT = "edge-test-report/1"
HASH_FIELD = "sha256"


def software_version() -> str:
    try:
        return version("edge-xray")
    except PackageNotFoundError:
        return "unknown"


def device_info() -> dict[str, Any]:
    """The machine the figures (latency above all) were measured on."""
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "onnxruntime": ort.__version__,
        "providers": list(ort.get_available_providers()),
    }


def plain(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def report_sha256(doc: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of `doc` without its "sha256" field."""
    body = {k: v for k, v in doc.items() if k != HASH_FIELD}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def verify_report(doc: dict[str, Any]) -> bool:
    return isinstance(doc.get(HASH_FIELD), str) and doc[HASH_FIELD] == report_sha256(doc)


def build_report(test: RegressionTest, created: datetime | None = None) -> dict[str, Any]:
    """The report document, its hash included."""
    suite, outcome = test.suite, test.outcome
    bags = outcome.bags
    baseline = None
    if test.baseline is not None:
        baseline = {**test.baseline.model.as_json(), "reused_candidate_run": test.baseline_reused}
    doc: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "created": iso(created or utc_now()),
        "software": {"name": "edge-xray", "version": software_version()},
        "device": device_info(),
        "model": test.candidate.model.as_json(),
        "baseline": baseline,
        "suite": {
            "name": suite.name,
            "path": str(suite.root),
            "sha256": suite.sha256,
            "label_version": suite.label_version,
            "created": suite.created,
            "datasets": [d.name for d in suite.datasets],
            "images": len(suite.images),
            "bags": bags.bags,
            "threat_bags": bags.threat_bags,
            "clean_bags": bags.clean_bags,
        },
        "policy": suite.policy.model_dump(mode="json"),
        "gate": test.decision.as_json(),
        "metrics": {
            "summary": summary(test),
            "bag": bags.as_json(),
            "box": None if outcome.boxes is None else outcome.boxes.as_json(),
            "comparison": None if outcome.comparison is None else outcome.comparison.as_json(),
            "latency": None if outcome.latency is None else outcome.latency.as_json(),
            "behaviour": {name: c.as_json() for name, c in outcome.behaviour.items()},
        },
        "evidence": evidence_section(test),
        "timing_s": {k: round(v, 3) for k, v in test.timing_s.items()},
    }
    doc = plain(doc)
    doc[HASH_FIELD] = report_sha256(doc)
    return doc


def summary(test: RegressionTest) -> dict[str, Any]:
    """The headline figures: Pd per class and Pfa (whole suite), mAP@0.5, p95 latency."""
    outcome = test.outcome
    overall = outcome.bags.overall
    doc: dict[str, Any] = plain(
        {
            "passed": test.decision.passed,
            "failures": len(test.decision.failures),
            "pd": {c: r.value for c, r in overall.pd.items()},
            "pfa": None if overall.pfa is None else overall.pfa.value,
            "map50": None if outcome.boxes is None else outcome.boxes.map50,
            "p95_ms": None if outcome.latency is None else outcome.latency.p95,
        }
    )
    return doc

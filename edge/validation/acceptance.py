"""Factory and site acceptance: the suite's gates, the latency bar, the image-quality
check, and a signature block, as one signed document.

    doc = acceptance_report(test, quality, site="...", operator="...")
    doc["passed"]

Items, each passed or failed:
- "suite gates": every gate of the suite's policy except non-regression (acceptance judges
  the system as installed, against absolute bars; a baseline is the upgrade gate's
  concern), so the policy is applied with `non_regression.required = false`;
- "latency": p95 detect() time on this device against the policy's `[latency]
  p95_ms_max`; a policy without that bar fails the item (acceptance must show one);
- "image quality": the latest test-piece check (calibration/history.py) must exist, have
  passed and be recent enough. When none was ever recorded the item fails, unless waived
  with a reason (a bench or factory run before the scanner's test piece exists); the
  waiver is printed in the report. A failed or stale check cannot be waived.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from edge.store.records import iso, utc_now
from edge.validation.gates import decide
from edge.validation.regression import RegressionTest
from edge.validation.report import (
    HASH_FIELD,
    build_report,
    device_info,
    report_sha256,
    software_version,
)

ACCEPTANCE_FORMAT = "edge-acceptance-report/1"
SIGNATORIES = ("Vendor representative", "Site representative")
NO_CHECK = "no image-quality check available"


@dataclass(frozen=True)
class ImageQuality:
    """The image-quality item: `latest` the latest test-piece check as recorded."""

    passed: bool
    detail: str
    latest: dict[str, Any] | None = None
    waiver: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "available": self.latest is not None,
            "passed": self.passed,
            "detail": self.detail,
            "latest": self.latest,
            "waiver": self.waiver,
        }


def image_quality(data_dir: Path, max_age_h: float, waiver: str | None) -> ImageQuality:
    """Judge the latest test-piece check in `data_dir` (see the module docstring)."""
    from calibration.history import entries, precondition_problem

    found = entries(data_dir)
    if not found:
        where = f"no test-piece check recorded in {data_dir}"
        if waiver:
            return ImageQuality(True, f"{NO_CHECK} ({where}); waived: {waiver}", None, waiver)
        return ImageQuality(
            False,
            f"{NO_CHECK} ({where}): scan the test piece and run `edge calibrate testpiece`, or "
            "waive with --waive-image-quality REASON",
        )
    latest = found[-1]
    problem = precondition_problem(data_dir, max_age_h)
    if problem is not None:
        return ImageQuality(False, problem, latest)
    return ImageQuality(True, f"test-piece check of {latest['at']} passed", latest)


def acceptance_test(test: RegressionTest) -> RegressionTest:
    """The test as acceptance judges it: the policy's gates without non-regression."""
    policy = test.suite.policy
    nr = policy.non_regression.model_copy(update={"required": False})
    policy = policy.model_copy(update={"non_regression": nr})
    suite = dataclasses.replace(test.suite, policy=policy)
    return dataclasses.replace(test, suite=suite, decision=decide(policy, test.outcome))


def _item(name: str, passed: bool, detail: str, waived: bool = False) -> dict[str, Any]:
    return {"name": name, "passed": passed, "waived": waived, "detail": detail}


def _suite_item(report: dict[str, Any]) -> dict[str, Any]:
    gate = report["gate"]
    failures = [f for f in gate["failures"] if not f["check"].startswith("latency")]
    checks = [c["name"] for c in gate["checks"] if c["name"] != "latency"]
    if not failures:
        return _item("suite gates", True, f"passed: {', '.join(checks)}")
    shown = "; ".join(f"{f['check']} [{f['slice']}] {f['message']}" for f in failures[:5])
    more = f" (+{len(failures) - 5} more)" if len(failures) > 5 else ""
    return _item("suite gates", False, f"{len(failures)} failure(s): {shown}{more}")


def _latency_item(report: dict[str, Any]) -> dict[str, Any]:
    bar = report["policy"]["latency"].get("p95_ms_max")
    stats = report["metrics"].get("latency") or {}
    p95 = stats.get("p95_ms")
    if bar is None:
        return _item(
            "latency",
            False,
            "the suite's policy sets no latency bar ([latency] p95_ms_max): acceptance needs one",
        )
    if p95 is None:
        return _item("latency", False, "no frames were timed")
    measured = (
        f"p95 detect() time {p95:.1f} ms over {stats.get('frames')} frames "
        f"(p50 {stats.get('p50_ms', 0):.1f} ms, max {stats.get('max_ms', 0):.1f} ms)"
    )
    if p95 > bar:
        return _item("latency", False, f"{measured} is above the bar of {bar:g} ms")
    return _item("latency", True, f"{measured}, bar {bar:g} ms")


def acceptance_report(
    test: RegressionTest,
    quality: ImageQuality,
    *,
    site: str,
    operator: str,
    run_id: str | None = None,
    created: datetime | None = None,
) -> dict[str, Any]:
    """The acceptance document, its SHA-256 included (the same canonical-JSON hash as the
    test report's, which it holds whole under "test")."""
    when = created or utc_now()
    judged = acceptance_test(test)
    report = build_report(judged, when)
    items = [
        _suite_item(report),
        _latency_item(report),
        _item("image quality", quality.passed, quality.detail, quality.waiver is not None),
    ]
    doc: dict[str, Any] = {
        "format": ACCEPTANCE_FORMAT,
        "kind": "acceptance",
        "run_id": run_id,
        "created": iso(when),
        "site": site,
        "operator": operator,
        "software": {"name": "edge-xray", "version": software_version()},
        "device": device_info(),
        "model": report["model"],
        "suite": {k: report["suite"][k] for k in ("name", "sha256", "label_version", "images")},
        "passed": all(i["passed"] for i in items),
        "items": items,
        "image_quality": quality.as_json(),
        "signature": {
            "site": site,
            "operator": operator,
            "date": iso(when)[:10],
            "signatories": list(SIGNATORIES),
        },
        "test": report,
    }
    doc[HASH_FIELD] = report_sha256(doc)
    return doc


def is_acceptance(doc: dict[str, Any]) -> bool:
    return doc.get("format") == ACCEPTANCE_FORMAT

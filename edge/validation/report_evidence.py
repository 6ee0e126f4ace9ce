"""The report's "evidence" section: what its plots and gallery are drawn from."""

from __future__ import annotations

from typing import Any

from edge.validation.evidence import (
    confusion,
    ground_truth_boxes,
    latency_histogram,
    pr_curve_json,
    worst_failures,
)
from edge.validation.gallery import gallery
from edge.validation.regression import RegressionTest


def evidence_section(test: RegressionTest) -> dict[str, Any]:
    """PR curves per class (whole suite, IoU 0.5), the class confusion at the operating
    point, the latency histogram and the worst failures with their thumbnails."""
    run = test.candidate
    info = run.model
    truth = ground_truth_boxes(test.suite, info.classes)
    boxes = test.outcome.boxes
    curves = [] if boxes is None else list(boxes.pr_curves)
    pr = [
        doc
        for curve, name, threshold in zip(curves, info.classes, info.thresholds, strict=False)
        if (doc := pr_curve_json(curve, name, threshold)) is not None
    ]
    return {
        "pr_curves": pr,
        "confusion": confusion(run, truth),
        "latency_histogram": latency_histogram(run),
        "worst_failures": gallery(test.suite, run, worst_failures(run, truth), truth),
    }

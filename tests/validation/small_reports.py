"""Real reports of small suites, built in-process (the demo model over a few frames)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge.validation.regression import run_regression
from edge.validation.report import HASH_FIELD, build_report, report_sha256

from .model_variants import DEMO
from .suite_files import make_suite

# Random-noise frames: the demo model misses their guns, so the gallery has failures.
NOISE_POLICY = """
[slices]
report = ["clutter"]
min_samples = 1
[absolute]
pfa_max = 1.0
[absolute.pd_min]
gun = 0.5
[non_regression]
required = false
[latency]
p95_ms_max = 10000.0
[behaviour]
repeat_frames = 0
flip_frames = 0
projection_per_class = 0
"""


def noise_report(root: Path, images: int = 6) -> dict[str, Any]:
    """The report of the demo model on `images` noise frames (a gun box in every other)."""
    suite = make_suite(root / "suite", images=images, policy=NOISE_POLICY)
    doc = build_report(run_regression(DEMO, suite))
    doc["run_id"] = "t-20261127-100000-abcdef"
    doc[HASH_FIELD] = report_sha256(doc)
    return doc

"""What the gate reads: every figure of a test, None where one could not be made."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edge.validation.bag_metrics import BagMetricsResult
from edge.validation.behaviour import BehaviourCheck
from edge.validation.box_slices import BoxMetricsResult
from edge.validation.comparison import ComparisonResult


@dataclass(frozen=True)
class LatencyStats:
    """detect() per frame on this device, ms; `slowest` the slowest frames' refs;
    `inference_s` the session.run time of all frames together, seconds."""

    frames: int
    p50: float
    p95: float
    max: float
    mean: float
    slowest: tuple[str, ...] = ()
    inference_s: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "p50_ms": self.p50,
            "p95_ms": self.p95,
            "max_ms": self.max,
            "mean_ms": self.mean,
            "slowest": list(self.slowest),
            "inference_s": self.inference_s,
        }


@dataclass(frozen=True)
class GateInput:
    """Everything the gate reads. None: that figure could not be made."""

    classes: tuple[str, ...]
    bags: BagMetricsResult
    boxes: BoxMetricsResult | None = None
    comparison: ComparisonResult | None = None
    latency: LatencyStats | None = None
    behaviour: dict[str, BehaviourCheck] = field(default_factory=dict)

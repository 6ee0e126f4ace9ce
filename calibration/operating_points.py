"""Operating points: per-class score thresholds reaching a target bag-level Pd at the lowest
Pfa, with Wilson 95% intervals, and the Pd/Pfa curves they were read from. Pure functions.

The choice is edge/validation/bags.py's `choose_thresholds` (per class, the highest
threshold still reaching the target: raising one class's threshold never adds a false
alarm, so the highest is the one with the lowest Pfa).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from calibration.errors import CalibrationInputError
from edge.validation.bags import BagOutcome, bag_figures, choose_thresholds
from edge.validation.stats import Rate, rate

THRESHOLD_FLOOR = 0.05  # no operating point below this: a detector alarming on noise
CURVE_STEP = 0.01  # curves sampled at 0.00, 0.01, ... 1.00


def check_target(target_pd: float, max_pfa: float | None) -> None:
    """Refuse a target Pd outside (0, 1] or a Pfa bar outside [0, 1] (bad input)."""
    if not (0.0 < target_pd <= 1.0):
        raise CalibrationInputError(
            f"--target-pd: expected a bag-level Pd in (0, 1], e.g. 0.95, got {target_pd:g}"
        )
    if max_pfa is not None and not (0.0 <= max_pfa <= 1.0):
        raise CalibrationInputError(
            f"--max-pfa: expected a false-alarm rate in [0, 1], e.g. 0.1, got {max_pfa:g}"
        )


@dataclass(frozen=True)
class ClassPoint:
    """One class at its chosen threshold: Pd with its Wilson interval, and whether it
    reached the target."""

    name: str
    threshold: float
    pd: Rate
    reached: bool

    def as_json(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "pd": self.pd.as_json(), "reached": self.reached}


@dataclass(frozen=True)
class OperatingPoint:
    target_pd: float
    classes: tuple[ClassPoint, ...]
    pfa: Rate

    @property
    def thresholds(self) -> dict[str, float]:
        return {c.name: c.threshold for c in self.classes}

    @property
    def unreached(self) -> list[str]:
        return [c.name for c in self.classes if not c.reached]

    def as_json(self) -> dict[str, Any]:
        return {
            "target_pd": self.target_pd,
            "thresholds": self.thresholds,
            "classes": {c.name: c.as_json() for c in self.classes},
            "pfa": self.pfa.as_json(),
            "unreached": self.unreached,
        }


def choose_operating_point(
    outcomes: Sequence[BagOutcome], classes: Sequence[str], target_pd: float
) -> OperatingPoint:
    """Per class the highest threshold reaching `target_pd` on these bags (>= the floor).

    A class that cannot reach it (too few of its bags score above the floor) keeps the
    floor, its highest-Pd threshold, and is marked not reached. A class with no threat bags
    is refused: nothing could say what its threshold does.
    """
    figures = bag_figures(outcomes, classes, {"default": THRESHOLD_FLOOR})
    empty = [name for name in classes if figures.pd_counts[name][1] == 0]
    if empty:
        raise CalibrationInputError(
            f"the calibration set has no bags holding {', '.join(empty)}: every class of "
            "the model needs threat bags to set its threshold"
        )
    if figures.pfa_counts[1] == 0:
        raise CalibrationInputError("the calibration set has no clean bags: Pfa cannot be measured")
    thresholds = choose_thresholds(outcomes, classes, target_pd, floor=THRESHOLD_FLOOR)
    chosen = bag_figures(outcomes, classes, thresholds)
    points = []
    for name in classes:
        hits, total = chosen.pd_counts[name]
        # The float comparison of hits / total with the target would miss 19/20 vs 0.95.
        reached = hits >= math.ceil(target_pd * total - 1e-9)
        points.append(ClassPoint(name, thresholds[name], rate(hits, total), reached))
    return OperatingPoint(target_pd, tuple(points), rate(*chosen.pfa_counts))


def curves(
    outcomes: Sequence[BagOutcome], classes: Sequence[str], step: float = CURVE_STEP
) -> dict[str, Any]:
    """Pd and Pfa per class against the threshold, sampled every `step` in [0, 1].

    Pfa of class c: the share of clean bags alarming for c alone (the whole device's Pfa
    at an operating point is in `OperatingPoint.pfa`).
    """
    grid = np.round(np.arange(0.0, 1.0 + step / 2, step), 4)
    clean = np.array([o.max_scores for o in outcomes if not o.true_classes], np.float32)
    out: dict[str, Any] = {"thresholds": grid.tolist(), "classes": {}}
    for c, name in enumerate(classes):
        threat = np.array([o.max_scores[c] for o in outcomes if c in o.true_classes], np.float32)
        pd = (threat[None, :] > grid[:, None]).mean(axis=1) if threat.size else grid * np.nan
        pfa = (clean[None, :, c] > grid[:, None]).mean(axis=1) if clean.size else grid * np.nan
        out["classes"][name] = {
            "pd": [round(float(v), 4) for v in pd],
            "pfa": [round(float(v), 4) for v in pfa],
            "threat_bags": int(threat.size),
        }
    out["clean_bags"] = len(clean)
    return out

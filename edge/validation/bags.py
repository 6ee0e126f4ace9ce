"""Bag-level figures: Pd per threat class and Pfa over clean bags at an operating point.

A bag alarms for class c when any detection of class c scores strictly above the class's
threshold (the detector's own rule). Pd_c is the share of bags holding a class-c threat
that alarm for c; Pfa is the share of clean bags that alarm for any class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class BagOutcome:
    """One bag: the classes truly in it, and its best score per class (length C)."""

    true_classes: frozenset[int]
    max_scores: npt.NDArray[np.float32]


@dataclass(frozen=True)
class BagFigures:
    pd: dict[str, float]
    pd_counts: dict[str, tuple[int, int]]  # (alarmed, threat bags) per class
    pfa: float
    pfa_counts: tuple[int, int]  # (alarmed, clean bags)


def bag_outcome(
    true_classes: Sequence[int],
    class_ids: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float32],
    num_classes: int,
) -> BagOutcome:
    """Summarise one bag's detections (any threshold below the operating point)."""
    best = np.zeros(num_classes, np.float32)
    np.maximum.at(best, class_ids.astype(np.int64), scores.astype(np.float32))
    return BagOutcome(frozenset(int(c) for c in true_classes), best)


def thresholds_vector(
    thresholds: Mapping[str, float], classes: Sequence[str]
) -> npt.NDArray[np.float32]:
    default = float(thresholds.get("default", 0.25))
    return np.array([float(thresholds.get(c, default)) for c in classes], np.float32)


def bag_figures(
    outcomes: Sequence[BagOutcome], classes: Sequence[str], thresholds: Mapping[str, float]
) -> BagFigures:
    """Pd per class and Pfa at the given per-class thresholds (a missing class uses 'default')."""
    thr = thresholds_vector(thresholds, classes)
    pd: dict[str, float] = {}
    pd_counts: dict[str, tuple[int, int]] = {}
    for c, name in enumerate(classes):
        bags = [o for o in outcomes if c in o.true_classes]
        hits = sum(1 for o in bags if o.max_scores[c] > thr[c])
        pd_counts[name] = (hits, len(bags))
        pd[name] = hits / len(bags) if bags else float("nan")
    clean = [o for o in outcomes if not o.true_classes]
    false_alarms = sum(1 for o in clean if bool((o.max_scores > thr).any()))
    pfa = false_alarms / len(clean) if clean else float("nan")
    return BagFigures(pd, pd_counts, pfa, (false_alarms, len(clean)))


def choose_thresholds(
    outcomes: Sequence[BagOutcome], classes: Sequence[str], target_pd: float, floor: float = 0.05
) -> dict[str, float]:
    """Per class, the highest threshold that still reaches `target_pd` on these bags.

    The highest such threshold is the one that adds the fewest false alarms on clean bags.
    """
    chosen: dict[str, float] = {}
    for c, name in enumerate(classes):
        scores = np.sort(
            np.array([o.max_scores[c] for o in outcomes if c in o.true_classes], np.float32)
        )
        if scores.size == 0:
            chosen[name] = floor
            continue
        # Alarm needs score > t: to keep k = ceil(target * n) bags, t sits just below the
        # k-th highest score.
        k = int(np.ceil(target_pd * scores.size))
        kth = float(scores[scores.size - k])
        chosen[name] = round(
            max(floor, float(np.nextafter(np.float32(kth), np.float32(0))) - 1e-4), 4
        )
    return chosen

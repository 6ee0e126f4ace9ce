"""Bag-level Pd per class and Pfa over clean bags, per slice, at a model's operating point.

    metrics = BagMetrics(classes, thresholds, specs)
    metrics.update(truth, max_scores)     # once per bag
    result = metrics.compute()            # BagMetricsResult

A bag alarms for class c when its best class-c score (over its views) is strictly above
the class's threshold, as the detector decides. Pd_c: the share of bags holding a class-c
threat that alarm for c; Pfa: the share of clean bags that alarm for any class. Every rate
carries its count and a Wilson interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.errors import BadInputError
from edge.validation.slices import BagTruth, SliceKey, SliceSpec, index_slices, slice_name
from edge.validation.stats import Rate, rate

FloatArray = npt.NDArray[np.float32]


def alarms(max_scores: FloatArray, thresholds: FloatArray) -> npt.NDArray[np.bool_]:
    """(C,) which classes a bag alarms for: best score strictly above the threshold."""
    alarmed: npt.NDArray[np.bool_] = max_scores > thresholds
    return alarmed


@dataclass(frozen=True)
class SliceFigures:
    """One slice: Pd per class present in it, Pfa when it holds clean bags, and the
    evidence (image refs of missed threat bags per class, of false-alarm clean bags)."""

    key: SliceKey
    spec: str
    pd: dict[str, Rate]
    pfa: Rate | None
    missed: dict[str, tuple[str, ...]]
    false_alarms: tuple[str, ...]

    @property
    def name(self) -> str:
        return slice_name(self.key)

    def as_json(self) -> dict[str, Any]:
        return {
            "slice": self.name,
            "spec": self.spec,
            "key": {dim: value for dim, value in self.key},
            "pd": {c: r.as_json() for c, r in self.pd.items()},
            "pfa": None if self.pfa is None else self.pfa.as_json(),
            "missed": {c: list(refs) for c, refs in self.missed.items()},
            "false_alarms": list(self.false_alarms),
        }


@dataclass(frozen=True)
class BagMetricsResult:
    classes: tuple[str, ...]
    thresholds: tuple[float, ...]
    confidence: float
    bags: int
    threat_bags: int
    clean_bags: int
    slices: tuple[SliceFigures, ...]

    @property
    def overall(self) -> SliceFigures:
        return self.slices[0]

    def find(self, name: str) -> SliceFigures | None:
        return next((s for s in self.slices if s.name == name), None)

    def as_json(self) -> dict[str, Any]:
        return {
            "classes": list(self.classes),
            "thresholds": dict(zip(self.classes, self.thresholds, strict=True)),
            "confidence": self.confidence,
            "bags": self.bags,
            "threat_bags": self.threat_bags,
            "clean_bags": self.clean_bags,
            "slices": [s.as_json() for s in self.slices],
        }


class BagMetrics:
    """Accumulates bags; compute() gives every slice's figures."""

    def __init__(
        self,
        classes: Sequence[str],
        thresholds: Sequence[float],
        specs: Sequence[SliceSpec] = (),
        confidence: float = 0.95,
    ) -> None:
        if len(classes) != len(thresholds):
            raise BadInputError(
                f"thresholds: expected one per class ({len(classes)}), got {len(thresholds)}"
            )
        self.classes = tuple(classes)
        self.thresholds = np.asarray(thresholds, np.float32)
        self.specs = tuple(specs)
        self.confidence = confidence
        self._truths: list[BagTruth] = []
        self._alarms: list[npt.NDArray[np.bool_]] = []

    def update(self, truth: BagTruth, max_scores: FloatArray) -> None:
        """Add one bag: its truth and (C,) best score per class over its views."""
        scores = np.asarray(max_scores, np.float32).reshape(-1)
        if scores.shape != self.thresholds.shape:
            raise BadInputError(
                f"bag {truth.key}: expected {len(self.classes)} scores, got {scores.shape[0]}"
            )
        self._truths.append(truth)
        self._alarms.append(alarms(scores, self.thresholds))

    def reset(self) -> None:
        self._truths, self._alarms = [], []

    def compute(self) -> BagMetricsResult:
        index = index_slices(self._truths, self.specs, self.classes)
        alarmed = np.array(self._alarms, np.bool_).reshape(-1, len(self.classes))
        any_alarm = np.any(alarmed, axis=1)
        figures = []
        for key in index.keys:
            pd: dict[str, Rate] = {}
            missed: dict[str, tuple[str, ...]] = {}
            for c, members in index.pd.get(key, {}).items():
                name = self.classes[c]
                hits = alarmed[list(members), c]
                pd[name] = rate(int(hits.sum()), len(members), self.confidence)
                missed[name] = tuple(
                    ref
                    for m, hit in zip(members, hits, strict=True)
                    if not hit
                    for ref in self._truths[m].images
                )
            pfa: Rate | None = None
            false_alarms: tuple[str, ...] = ()
            if key in index.pfa:
                clean = index.pfa[key]
                flags: npt.NDArray[np.bool_] = any_alarm[list(clean)]
                pfa = rate(int(flags.sum()), len(clean), self.confidence)
                false_alarms = tuple(
                    ref
                    for m, flag in zip(clean, flags, strict=True)
                    if flag
                    for ref in self._truths[m].images
                )
            figures.append(SliceFigures(key, index.spec_of[key], pd, pfa, missed, false_alarms))
        if not figures:  # no bags at all: still an "all" slice, with nothing in it
            figures.append(SliceFigures((), "all", {}, None, {}, ()))
        threat = sum(1 for t in self._truths if t.boxes)
        return BagMetricsResult(
            self.classes,
            tuple(float(t) for t in self.thresholds),
            self.confidence,
            len(self._truths),
            threat,
            len(self._truths) - threat,
            tuple(figures),
        )

"""Two models on the same bags: the change in Pd per class and in Pfa, per slice.

    comparison = PairedComparison(classes, cand_thresholds, base_thresholds, specs)
    comparison.update(truth, candidate_scores, baseline_scores)   # once per bag
    result = comparison.compute()                                 # ComparisonResult

Each model is read at its own operating point. A change is candidate minus baseline, with
a paired bootstrap percentile interval (seeded per slice and figure, so a figure does not
depend on what else is computed) and the exact McNemar test on the discordant bags.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.errors import BadInputError
from edge.validation.bag_metrics import alarms
from edge.validation.slices import BagTruth, SliceKey, SliceSpec, index_slices, slice_name
from edge.validation.stats import mcnemar_exact, paired_bootstrap, stable_seed


@dataclass(frozen=True)
class PairedChange:
    """One figure of one slice. `metric` "pd" (per `class_name`) or "pfa".

    `down`: bags counting 1 for the baseline and 0 for the candidate (a Pd hit lost, a
    false alarm cleared); `up`: the reverse. `worse_images`: the bags that got worse (Pd
    hits lost, or new false alarms).
    """

    key: SliceKey
    spec: str
    metric: str
    class_name: str | None
    total: int
    baseline: float
    candidate: float
    change: float
    low: float
    high: float
    down: int
    up: int
    p_value: float
    worse_images: tuple[str, ...]

    @property
    def slice(self) -> str:
        return slice_name(self.key)

    @property
    def worse(self) -> int:
        """Bags that got worse: Pd hits lost, or new false alarms."""
        return self.down if self.metric == "pd" else self.up

    def as_json(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return None if math.isnan(x) else x

        return {
            "slice": self.slice,
            "spec": self.spec,
            "metric": self.metric,
            "class": self.class_name,
            "total": self.total,
            "baseline": num(self.baseline),
            "candidate": num(self.candidate),
            "change": num(self.change),
            "low": num(self.low),
            "high": num(self.high),
            "down": self.down,
            "up": self.up,
            "p_value": self.p_value,
            "worse_images": list(self.worse_images),
        }


@dataclass(frozen=True)
class ComparisonResult:
    confidence: float
    rounds: int
    seed: int
    changes: tuple[PairedChange, ...]
    missing_classes: tuple[str, ...]  # candidate classes the baseline does not have

    def find(self, slice_text: str, metric: str, class_name: str | None) -> PairedChange | None:
        return next(
            (
                c
                for c in self.changes
                if c.slice == slice_text and c.metric == metric and c.class_name == class_name
            ),
            None,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "confidence": self.confidence,
            "bootstrap_rounds": self.rounds,
            "seed": self.seed,
            "missing_classes": list(self.missing_classes),
            "changes": [c.as_json() for c in self.changes],
        }


class PairedComparison:
    """Accumulates bags scored by both models; compute() gives every slice's changes.

    `baseline_thresholds` are in the candidate's class order; NaN for a class the baseline
    does not have (its changes are left out and the class named in `missing_classes`).
    """

    def __init__(
        self,
        classes: Sequence[str],
        candidate_thresholds: Sequence[float],
        baseline_thresholds: Sequence[float],
        specs: Sequence[SliceSpec] = (),
        *,
        rounds: int = 2000,
        confidence: float = 0.95,
        seed: int = 0,
    ) -> None:
        if not len(classes) == len(candidate_thresholds) == len(baseline_thresholds):
            raise BadInputError("comparison: expected one threshold per class for both models")
        self.classes = tuple(classes)
        self.cand_thr = np.asarray(candidate_thresholds, np.float32)
        self.base_thr = np.asarray(baseline_thresholds, np.float32)
        self.specs = tuple(specs)
        self.rounds, self.confidence, self.seed = rounds, confidence, seed
        self._truths: list[BagTruth] = []
        self._cand: list[npt.NDArray[np.bool_]] = []
        self._base: list[npt.NDArray[np.bool_]] = []

    def update(
        self,
        truth: BagTruth,
        candidate_scores: npt.NDArray[np.float32],
        baseline_scores: npt.NDArray[np.float32],
    ) -> None:
        """Add one bag: (C,) best score per class of each model, candidate class order."""
        n = len(self.classes)
        if np.shape(candidate_scores) != (n,) or np.shape(baseline_scores) != (n,):
            raise BadInputError(f"bag {truth.key}: expected {n} scores from each model")
        self._truths.append(truth)
        self._cand.append(alarms(np.asarray(candidate_scores, np.float32), self.cand_thr))
        known = ~np.isnan(self.base_thr)
        base = np.zeros(n, np.bool_)
        base[known] = alarms(np.asarray(baseline_scores, np.float32), self.base_thr)[known]
        self._base.append(base)

    def compute(self) -> ComparisonResult:
        index = index_slices(self._truths, self.specs, self.classes)
        n = len(self.classes)
        cand = np.array(self._cand, np.bool_).reshape(-1, n)
        base = np.array(self._base, np.bool_).reshape(-1, n)
        missing = tuple(c for c, t in zip(self.classes, self.base_thr, strict=True) if np.isnan(t))
        changes = []
        for key in index.keys:
            spec = index.spec_of[key]
            for c, members in index.pd.get(key, {}).items():
                if self.classes[c] in missing:
                    continue
                rows = list(members)
                changes.append(
                    self._change(
                        key, spec, "pd", self.classes[c], base[rows, c], cand[rows, c], rows
                    )
                )
            if key in index.pfa:
                rows = list(index.pfa[key])
                known = ~np.isnan(self.base_thr)
                base_any = np.asarray(base[rows][:, known].any(axis=1), np.bool_)
                cand_any = np.asarray(cand[rows].any(axis=1), np.bool_)
                changes.append(
                    self._change(
                        key,
                        spec,
                        "pfa",
                        None,
                        base_any,
                        cand_any,
                        rows,
                    )
                )
        return ComparisonResult(self.confidence, self.rounds, self.seed, tuple(changes), missing)

    def _change(
        self,
        key: SliceKey,
        spec: str,
        metric: str,
        class_name: str | None,
        base: npt.NDArray[np.bool_],
        cand: npt.NDArray[np.bool_],
        rows: list[int],
    ) -> PairedChange:
        total = len(rows)
        down_mask, up_mask = base & ~cand, cand & ~base
        down, up = int(down_mask.sum()), int(up_mask.sum())
        name = f"{slice_name(key)}|{metric}|{class_name or ''}"
        low, high = paired_bootstrap(
            down,
            up,
            total,
            rounds=self.rounds,
            confidence=self.confidence,
            seed=stable_seed(self.seed, name),
        )
        worse_mask = down_mask if metric == "pd" else up_mask
        worse_images = tuple(
            ref
            for r, bad in zip(rows, worse_mask, strict=True)
            if bad
            for ref in self._truths[r].images
        )
        b_rate = float(base.mean()) if total else math.nan
        c_rate = float(cand.mean()) if total else math.nan
        return PairedChange(
            key, spec, metric, class_name, total, b_rate, c_rate, c_rate - b_rate,
            low, high, down, up, mcnemar_exact(down, up), worse_images,
        )  # fmt: skip

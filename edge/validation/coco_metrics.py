"""COCO box metrics: the result types, and pycocotools' `summarize` on its arrays."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# pycocotools' Params.setDetParams, value for value (linspace, not arange: see there).
IOU_THRESHOLDS: FloatArray = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1)
RECALL_THRESHOLDS: FloatArray = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1)
MAX_DETS = (1, 10, 100)
AREA_RANGES: tuple[tuple[float, float], ...] = (
    (0**2, 1e5**2),
    (0**2, 32**2),
    (32**2, 96**2),
    (96**2, 1e5**2),
)
AREA_LABELS = ("all", "small", "medium", "large")

# (name, ap?, IoU threshold or None for the mean over all, area label, maxDets)
STAT_SPECS: tuple[tuple[str, bool, float | None, str, int], ...] = (
    ("AP", True, None, "all", 100),
    ("AP50", True, 0.5, "all", 100),
    ("AP75", True, 0.75, "all", 100),
    ("AP_small", True, None, "small", 100),
    ("AP_medium", True, None, "medium", 100),
    ("AP_large", True, None, "large", 100),
    ("AR1", False, None, "all", 1),
    ("AR10", False, None, "all", 10),
    ("AR100", False, None, "all", 100),
    ("AR_small", False, None, "small", 100),
    ("AR_medium", False, None, "medium", 100),
    ("AR_large", False, None, "large", 100),
)
STAT_NAMES = tuple(spec[0] for spec in STAT_SPECS)


def summarize(precision: FloatArray, recall: FloatArray, category: int | None = None) -> FloatArray:
    """The 12 summary figures from precision [T,R,K,A,M] and recall [T,K,A,M]: means over
    entries > -1, -1 when there are none (all categories, or only index `category`)."""
    if category is not None:
        precision = precision[:, :, category : category + 1]
        recall = recall[:, category : category + 1]
    stats = np.zeros(len(STAT_SPECS))
    for i, (_, ap, iou, area, max_dets) in enumerate(STAT_SPECS):
        a = [AREA_LABELS.index(area)]
        m = [MAX_DETS.index(max_dets)]
        s = precision if ap else recall
        if iou is not None:
            s = s[np.where(iou == IOU_THRESHOLDS)[0]]
        s = s[:, :, :, a, m] if ap else s[:, :, a, m]
        valid = s[s > -1]
        stats[i] = -1 if len(valid) == 0 else np.mean(valid)
    return stats


def _frozen(array: FloatArray) -> FloatArray:
    array.setflags(write=False)
    return array


@dataclass(frozen=True)
class ClassMetrics:
    """One category's 12 summary figures (pycocotools' order; -1: no ground truth)."""

    category_id: int
    name: str
    stats: tuple[float, ...]
    gt_count: int  # annotations, crowd boxes included
    crowd_count: int
    detection_count: int  # evaluated: in a known category, within the top 100 per image

    @property
    def ap(self) -> float:
        return self.stats[0]

    @property
    def ap50(self) -> float:
        return self.stats[1]

    @property
    def ap75(self) -> float:
        return self.stats[2]

    @property
    def ar100(self) -> float:
        return self.stats[8]


@dataclass(frozen=True)
class PRCurve:
    """One category at IoU 0.5, all areas, 100 detections per image.

    `precision` (R,) is pycocotools' interpolated precision at `RECALL_THRESHOLDS` (-1 without
    ground truth), `scores` (R,) the score reached there; `raw_recall`, `raw_precision`,
    `raw_scores` (N,) are the curve before interpolation, one point per ranked detection.
    """

    category_id: int
    precision: FloatArray
    scores: FloatArray
    raw_recall: FloatArray
    raw_precision: FloatArray
    raw_scores: FloatArray

    def __post_init__(self) -> None:
        for name in ("precision", "scores", "raw_recall", "raw_precision", "raw_scores"):
            _frozen(getattr(self, name))

    @property
    def recall_thresholds(self) -> FloatArray:
        return RECALL_THRESHOLDS


@dataclass(frozen=True)
class CocoMetrics:
    """What pycocotools' COCOeval computes, arrays in its layout (read-only).

    `precision` [T,R,K,A,M], `scores` [T,R,K,A,M] and `recall` [T,K,A,M] over IoU thresholds,
    recall thresholds, categories (ascending id), area ranges and maxDets; -1 where a
    category has no ground truth in that area range.
    """

    stats: tuple[float, ...]
    per_class: tuple[ClassMetrics, ...]
    precision: FloatArray
    recall: FloatArray
    scores: FloatArray
    pr_curves: tuple[PRCurve, ...]
    category_ids: tuple[int, ...]
    image_count: int
    gt_count: int
    crowd_count: int
    detection_count: int  # as given to update()
    evaluated_detection_count: int

    def __post_init__(self) -> None:
        for name in ("precision", "recall", "scores"):
            _frozen(getattr(self, name))

    @property
    def named_stats(self) -> dict[str, float]:
        return dict(zip(STAT_NAMES, self.stats, strict=True))

    def as_json(self) -> dict[str, Any]:
        """The figures as plain JSON types (`stats` in pycocotools' order)."""
        return {
            "stats": list(self.stats),
            "stat_names": list(STAT_NAMES),
            "per_class": [
                {
                    "category_id": c.category_id,
                    "name": c.name,
                    "ap": c.ap,
                    "ap50": c.ap50,
                    "ap75": c.ap75,
                    "ar100": c.ar100,
                    "stats": list(c.stats),
                    "gt": c.gt_count,
                    "crowd": c.crowd_count,
                    "detections": c.detection_count,
                }
                for c in self.per_class
            ],
            "counts": {
                "images": self.image_count,
                "categories": len(self.category_ids),
                "annotations": self.gt_count,
                "crowd": self.crowd_count,
                "detections": self.detection_count,
                "detections_evaluated": self.evaluated_detection_count,
            },
        }


Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class EvidenceBox:
    """One true positive, false positive, false negative or ignored detection.

    `iou`: the matched IoU for a match; for a false positive its best IoU with a ground
    truth of its class (that one in `annotation_id`/`gt_box`); for a false negative its best
    IoU with a kept detection of its class (that one in `detection`); 0.0 when nothing
    overlaps. `detection` indexes the detections in update() order. Boxes are xywh pixels.
    """

    category_id: int
    iou: float
    detection: int | None = None
    score: float | None = None
    det_box: Box | None = None
    annotation_id: int | None = None
    gt_box: Box | None = None


@dataclass(frozen=True)
class ImageEvidence:
    """One image's outcome at one IoU and score threshold (area 'all', 100 per class)."""

    image_id: int
    true_positives: tuple[EvidenceBox, ...]
    false_positives: tuple[EvidenceBox, ...]
    false_negatives: tuple[EvidenceBox, ...]
    ignored: tuple[EvidenceBox, ...]  # matched to a crowd (ignored) ground truth

"""COCO box metrics of a model run, for the whole suite and per slice, by CocoEvaluator.

The suite's data sets merge into one ground truth (image ids renumbered in suite order,
category id = model class index + 1). An image-dimension slice evaluates its images; a
box-dimension slice (size, occluded, ...) keeps every image and marks the boxes outside
the slice ignored, as COCO's own area ranges do (detections matching them count neither
way). The 'class' dimension adds nothing here: per-class AP is in every result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.validation.coco import CocoCategory, CocoDetections, CocoGroundTruth, CocoImage
from edge.validation.coco_metrics import CocoMetrics, PRCurve
from edge.validation.cocoeval import CocoEvaluator
from edge.validation.runner import ModelRun
from edge.validation.slices import CLASS_DIM, SIZE_DIM, UNKNOWN, SliceSpec, slice_name
from edge.validation.suite import Suite

MAX_EVIDENCE_IMAGES = 50
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class BoxFigures:
    """COCO figures of one slice (-1: nothing to measure, as pycocotools says)."""

    slice: str
    spec: str
    images: int
    boxes: int  # ground-truth boxes in the slice
    map: float
    map50: float
    ap50: dict[str, float]

    def as_json(self) -> dict[str, Any]:
        return {
            "slice": self.slice,
            "spec": self.spec,
            "images": self.images,
            "boxes": self.boxes,
            "map": self.map,
            "map50": self.map50,
            "ap50": self.ap50,
        }


@dataclass(frozen=True)
class BoxMetricsResult:
    stats: tuple[float, ...]  # pycocotools' 12 figures, whole suite
    slices: tuple[BoxFigures, ...]  # "all" first
    images_with_errors: tuple[str, ...]  # missed or false boxes at IoU 0.5, operating point
    pr_curves: tuple[PRCurve, ...] = ()  # whole suite, per class in model order (the report's)

    @property
    def map50(self) -> float:
        return self.stats[1]

    def as_json(self) -> dict[str, Any]:
        return {
            "stats": list(self.stats),
            "map50": self.map50,
            "slices": [s.as_json() for s in self.slices],
            "images_with_errors": list(self.images_with_errors),
        }


@dataclass(frozen=True)
class _Merged:
    gt: CocoGroundTruth
    refs: tuple[str, ...]  # per image, index = image id - 1
    image_attrs: tuple[Mapping[str, str], ...]
    box_attrs: tuple[Mapping[str, str], ...]


def _merge(suite: Suite, classes: Sequence[str]) -> _Merged:
    image_id = {(im.dataset, im.image_id): i + 1 for i, im in enumerate(suite.images)}
    cols: dict[str, list[Any]] = {k: [] for k in ("img", "cat", "box", "area", "crowd", "ign")}
    box_attrs: list[Mapping[str, str]] = []
    for d in suite.datasets:
        gt = d.ground_truth
        names = {c.id: c.name for c in gt.categories}
        for k in range(len(gt)):
            cols["img"].append(image_id[(d.name, int(gt.image_ids[k]))])
            cols["cat"].append(classes.index(names[int(gt.category_ids[k])]) + 1)
            cols["box"].append(gt.boxes[k])
            cols["area"].append(gt.areas[k])
            cols["crowd"].append(gt.iscrowd[k])
            cols["ign"].append(gt.ignore[k])
            box_attrs.append(d.box_attributes[k])
    merged = CocoGroundTruth(
        tuple(CocoImage(i + 1, im.width, im.height, im.ref) for i, im in enumerate(suite.images)),
        tuple(CocoCategory(i + 1, name) for i, name in enumerate(classes)),
        np.arange(1, len(box_attrs) + 1, dtype=np.int64),
        np.array(cols["img"], np.int64),
        np.array(cols["cat"], np.int64),
        np.array(cols["box"], np.float64).reshape(-1, 4),
        np.array(cols["area"], np.float64),
        np.array(cols["crowd"], np.bool_),
        np.array(cols["ign"], np.bool_),
        f"suite {suite.name}",
    )
    refs = tuple(im.ref for im in suite.images)
    return _Merged(merged, refs, tuple(im.attributes for im in suite.images), tuple(box_attrs))


def _detections(run: ModelRun, refs: Sequence[str]) -> CocoDetections:
    ids = list(range(1, len(run.model.classes) + 1))
    return CocoDetections.concatenate(
        [
            CocoDetections.from_detections(i + 1, run.frames[ref].detections, ids)
            for i, ref in enumerate(refs)
        ]
    )


def _subset(merged: _Merged, keep_images: BoolArray, keep_boxes: BoolArray) -> CocoGroundTruth:
    gt = merged.gt
    images = tuple(im for im, keep in zip(gt.images, keep_images, strict=True) if keep)
    rows = keep_images[gt.image_ids - 1]
    ignore = gt.ignore | ~keep_boxes
    return CocoGroundTruth(
        images, gt.categories, gt.ann_ids[rows], gt.image_ids[rows], gt.category_ids[rows],
        gt.boxes[rows], gt.areas[rows], gt.iscrowd[rows], ignore[rows], gt.source,
    )  # fmt: skip


def box_metrics(suite: Suite, run: ModelRun, specs: Sequence[SliceSpec]) -> BoxMetricsResult:
    """Whole-suite COCO figures and those of every slice value of `specs`."""
    classes = run.model.classes
    merged = _merge(suite, classes)
    dt = _detections(run, merged.refs)
    evaluator = CocoEvaluator(merged.gt)
    evaluator.update(dt)
    overall = evaluator.compute()
    floor = min(run.model.thresholds)
    errors = tuple(
        merged.refs[ev.image_id - 1]
        for ev in evaluator.evidence(0.5, floor)
        if ev.false_negatives
        or any(_above(b.score, b.category_id, run) for b in ev.false_positives)
    )
    figures = [_figures("all", "all", merged.gt, overall)]
    box_dims = {SIZE_DIM, *(k for attrs in merged.box_attrs for k in attrs)}
    seen = {"all"}
    for spec in specs:
        dims = tuple(d for d in spec.dims if d != CLASS_DIM)
        name = " x ".join(dims) if dims else "all"
        if name in seen:
            continue
        seen.add(name)
        image_dims = [d for d in dims if d not in box_dims]
        bag_dims = [d for d in dims if d in box_dims]
        image_vals = [tuple(a.get(d, UNKNOWN) for d in image_dims) for a in merged.image_attrs]
        box_vals = [tuple(a.get(d, UNKNOWN) for d in bag_dims) for a in merged.box_attrs]
        if bag_dims:  # the values boxes take, with their images' values
            image_ids = merged.gt.image_ids.tolist()
            combos = {(image_vals[i - 1], bv) for i, bv in zip(image_ids, box_vals, strict=True)}
        else:
            combos = {(iv, ()) for iv in image_vals}
        for iv, bv in sorted(combos):
            keep_images = np.array([v == iv for v in image_vals], np.bool_)
            keep_boxes = np.array([v == bv for v in box_vals], np.bool_)
            gt = _subset(merged, keep_images, keep_boxes)
            sub = CocoEvaluator(gt, honour_ignore_flag=bool(bag_dims))
            sub.update(_filter(dt, keep_images))
            key = tuple(zip(image_dims, iv, strict=True)) + tuple(zip(bag_dims, bv, strict=True))
            figures.append(_figures(slice_name(key), name, gt, sub.compute()))
    return BoxMetricsResult(
        overall.stats, tuple(figures), errors[:MAX_EVIDENCE_IMAGES], overall.pr_curves
    )


def _above(score: float | None, category_id: int, run: ModelRun) -> bool:
    return score is not None and score > run.model.thresholds[category_id - 1]


def _filter(dt: CocoDetections, keep_images: BoolArray) -> CocoDetections:
    rows = keep_images[dt.image_ids - 1]
    return CocoDetections(
        dt.image_ids[rows], dt.category_ids[rows], dt.boxes[rows], dt.scores[rows]
    )


def _figures(name: str, spec: str, gt: CocoGroundTruth, metrics: CocoMetrics) -> BoxFigures:
    counted = ~gt.iscrowd & ~gt.ignore
    ap50 = {c.name: c.ap50 for c in metrics.per_class}
    return BoxFigures(
        name, spec, len(gt.images), int(counted.sum()), metrics.stats[0], metrics.stats[1], ap50
    )

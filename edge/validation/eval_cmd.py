"""`edge eval --gt COCO.json --dt RESULTS.json [--json]`: COCO box metrics (CONTRACT.md 4)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edge.validation.coco import load_detections, load_ground_truth
from edge.validation.coco_metrics import IOU_THRESHOLDS, STAT_SPECS, CocoMetrics
from edge.validation.cocoeval import CocoEvaluator


def add_parser(verbs: Any, common: argparse.ArgumentParser) -> None:
    """Register the `eval` verb on the `edge` sub-parsers."""
    p = verbs.add_parser(
        "eval",
        parents=[common],
        help="COCO box metrics (as pycocotools) of detections made elsewhere",
    )
    p.add_argument("--gt", required=True, type=Path, help="COCO ground-truth JSON file")
    p.add_argument("--dt", required=True, type=Path, help="COCO results JSON file")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate; 0 on success. Bad files raise CocoDataError (exit 2 through the CLI)."""
    gt = load_ground_truth(args.gt)
    evaluator = CocoEvaluator(gt)
    evaluator.update(load_detections(args.dt, gt))
    metrics = evaluator.compute()
    if args.json:
        doc = {"gt": str(args.gt), "dt": str(args.dt), **metrics.as_json()}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        sys.stdout.write(format_report(metrics))
    return 0


def _figure(value: float) -> str:
    return "    -" if value < 0 else f"{value:.3f}"


def format_report(metrics: CocoMetrics) -> str:
    """pycocotools' 12 summary lines, then a per-class table (-: no ground truth)."""
    lines = [
        f"{metrics.image_count} images, {metrics.gt_count} ground-truth boxes "
        f"({metrics.crowd_count} crowd), {len(metrics.category_ids)} categories, "
        f"{metrics.detection_count} detections ({metrics.evaluated_detection_count} evaluated)",
        "",
    ]
    iou_range = f"{IOU_THRESHOLDS[0]:0.2f}:{IOU_THRESHOLDS[-1]:0.2f}"
    for (_, ap, iou, area, max_dets), value in zip(STAT_SPECS, metrics.stats, strict=True):
        title = "Average Precision  (AP)" if ap else "Average Recall     (AR)"
        iou_text = iou_range if iou is None else f"{iou:0.2f}"
        lines.append(
            f" {title} @[ IoU={iou_text:<9} | area={area:>6s} | maxDets={max_dets:>3d} ] "
            f"= {value:0.3f}"
        )
    width = max([5, *(len(c.name) for c in metrics.per_class)])
    lines += ["", f"{'class':<{width}}     AP   AP50   AP75  AR100      GT  detections"]
    for c in metrics.per_class:
        lines.append(
            f"{c.name:<{width}}  {_figure(c.ap)}  {_figure(c.ap50)}  {_figure(c.ap75)}  "
            f"{_figure(c.ar100)}  {c.gt_count:>6}  {c.detection_count:>10}"
        )
    return "\n".join(lines) + "\n"

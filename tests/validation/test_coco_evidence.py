"""Evidence when no detection overlaps any ground truth (no IoU pairs at all)."""

from __future__ import annotations

import numpy as np

from edge.validation.coco import CocoDetections, parse_ground_truth
from edge.validation.cocoeval import CocoEvaluator


def test_evidence_without_any_overlap() -> None:
    gt = parse_ground_truth(
        {
            "images": [{"id": 1, "width": 100, "height": 100}],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100,
                 "iscrowd": 0},
            ],
            "categories": [{"id": 1, "name": "gun"}],
        }
    )  # fmt: skip
    evaluator = CocoEvaluator(gt)
    evaluator.update(
        CocoDetections(
            np.array([1]), np.array([1]), np.array([[50.0, 50, 10, 10]]), np.array([0.9])
        )
    )
    (image,) = evaluator.evidence(0.5, 0.0)
    assert [len(image.false_positives), len(image.false_negatives)] == [1, 1]
    assert image.false_negatives[0].detection is None and image.false_positives[0].iou == 0.0

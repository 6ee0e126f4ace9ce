"""pycocotools as the reference (tests only), and shortcuts from COCO documents to our
evaluator."""

from __future__ import annotations

import contextlib
import copy
import io
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from edge.validation.coco import CocoDetections, parse_ground_truth
from edge.validation.coco_metrics import CocoMetrics
from edge.validation.cocoeval import CocoEvaluator


def reference_eval(doc: dict[str, Any], results: list[dict[str, Any]]) -> COCOeval:
    """pycocotools' evaluate + accumulate + summarize, its printing silenced, on copies
    (it writes into the records)."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy(doc)
        gt.createIndex()
        dt = gt.loadRes(copy.deepcopy(results))
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def detections_from(results: list[dict[str, Any]]) -> CocoDetections:
    """Results records as arrays, unvalidated against a ground truth (undeclared categories
    reach the evaluator, as they reach pycocotools)."""
    return CocoDetections(
        np.array([r["image_id"] for r in results], np.int64),
        np.array([r["category_id"] for r in results], np.int64),
        np.array([r["bbox"] for r in results], np.float64).reshape(-1, 4),
        np.array([r["score"] for r in results], np.float64),
    )


def our_eval(doc: dict[str, Any], results: list[dict[str, Any]], **options: Any) -> CocoMetrics:
    evaluator = CocoEvaluator(parse_ground_truth(doc), **options)
    evaluator.update(detections_from(results))
    return evaluator.compute()


def assert_same_as_pycocotools(ours: CocoMetrics, ref: COCOeval) -> None:
    """All 12 figures and the precision, recall and score arrays within 1e-9."""
    assert len(ours.stats) == 12
    np.testing.assert_allclose(ours.stats, ref.stats, rtol=0, atol=1e-9)
    for name in ("precision", "recall", "scores"):
        theirs = ref.eval[name]
        assert getattr(ours, name).shape == theirs.shape, name
        np.testing.assert_allclose(getattr(ours, name), theirs, rtol=0, atol=1e-9, err_msg=name)

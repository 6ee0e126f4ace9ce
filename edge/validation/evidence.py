"""The report's evidence: PR curves, the confusion between classes, the latency histogram
and the worst failures, from a model run (pure: no image is read here).

Boxes are matched per image at the model's operating point (score above its class
threshold), IoU >= 0.5: first each ground truth to a detection of its own class (highest
score first, best IoU), then what is left across classes. So every ground-truth box lands
in exactly one cell of its row (its own class, another class, or "missed") and every
detection in exactly one cell of its column (a ground truth's class, or "background").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge.frames import Detections
from edge.validation.coco_metrics import RECALL_THRESHOLDS, PRCurve
from edge.validation.runner import ModelRun
from edge.validation.suite import Suite

MATCH_IOU = 0.5
WORST_FAILURES = 8
LATENCY_BINS = 20
RAW_POINTS = 200  # the raw PR curve thinned to about this many points
BACKGROUND, MISSED = "background", "missed"
Box = tuple[float, float, float, float]  # x1, y1, x2, y2 image pixels


@dataclass(frozen=True)
class TruthBox:
    class_id: int
    box: Box


def ground_truth_boxes(suite: Suite, classes: Sequence[str]) -> dict[str, list[TruthBox]]:
    """Per image ref, its counted ground-truth boxes (not crowd, not ignored), xyxy."""
    by_key = {(im.dataset, im.image_id): im.ref for im in suite.images}
    out: dict[str, list[TruthBox]] = {im.ref: [] for im in suite.images}
    for d in suite.datasets:
        gt = d.ground_truth
        names = {c.id: c.name for c in gt.categories}
        for k in range(len(gt)):
            if gt.iscrowd[k] or gt.ignore[k]:
                continue
            x, y, w, h = (float(v) for v in gt.boxes[k])
            ref = by_key[(d.name, int(gt.image_ids[k]))]
            cls = classes.index(names[int(gt.category_ids[k])])
            out[ref].append(TruthBox(cls, (x, y, x + w, y + h)))
    return out


def iou_matrix(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """(N, M) IoU of xyxy boxes a (N, 4) and b (M, 4)."""
    a64, b64 = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a64[:, None, :2], b64[None, :, :2])
    rb = np.minimum(a64[:, None, 2:], b64[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a64[:, 2:] - a64[:, :2], axis=1)
    area_b = np.prod(b64[:, 2:] - b64[:, :2], axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    out: npt.NDArray[np.float64] = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    return out


@dataclass(frozen=True)
class ImageMatch:
    """One image at the operating point: `det_to_gt[i]` the ground truth detection i
    matched (-1: none), `gt_to_det[j]` the reverse."""

    det_to_gt: tuple[int, ...]
    gt_to_det: tuple[int, ...]


def match_image(det: Detections, truth: Sequence[TruthBox]) -> ImageMatch:
    """Same class first, then across classes; each pass greedy by score, best IoU."""
    det_to_gt = [-1] * len(det)
    gt_to_det = [-1] * len(truth)
    if len(det) and truth:
        ious = iou_matrix(det.boxes, np.array([t.box for t in truth], np.float32))
        order = np.argsort(-det.scores, kind="stable")
        for same_class in (True, False):
            for i in order:
                if det_to_gt[i] >= 0:
                    continue
                best, best_iou = -1, MATCH_IOU
                for j, t in enumerate(truth):
                    if gt_to_det[j] >= 0 or (t.class_id == det.class_ids[i]) != same_class:
                        continue
                    if ious[i, j] >= best_iou:
                        best, best_iou = j, float(ious[i, j])
                if best >= 0:
                    det_to_gt[i], gt_to_det[best] = best, int(i)
    return ImageMatch(tuple(det_to_gt), tuple(gt_to_det))


def confusion(run: ModelRun, truth: dict[str, list[TruthBox]]) -> dict[str, object]:
    """Rows: ground-truth class or background; columns: detected class or missed."""
    classes = list(run.model.classes)
    n = len(classes)
    cells = np.zeros((n + 1, n + 1), np.int64)  # [gt or background, det or missed]
    for ref in run.frames:
        det, boxes = run.operating(ref), truth.get(ref, [])
        m = match_image(det, boxes)
        for i, j in enumerate(m.det_to_gt):
            cells[n if j < 0 else boxes[j].class_id, int(det.class_ids[i])] += 1
        for j, i in enumerate(m.gt_to_det):
            if i < 0:
                cells[boxes[j].class_id, n] += 1
    return {
        "rows": [*classes, BACKGROUND],
        "columns": [*classes, MISSED],
        "counts": cells.tolist(),
        "iou": MATCH_IOU,
    }


def pr_curve_json(curve: PRCurve, name: str, threshold: float) -> dict[str, object] | None:
    """pycocotools' interpolated precision at 101 recall points (IoU 0.5), and the
    operating point (recall, precision) at the class threshold; None without ground truth."""
    if not len(curve.precision) or curve.precision[0] < 0:
        return None
    operating = None
    above = np.nonzero(curve.raw_scores > threshold)[0]
    if len(above):
        k = int(above[-1])
        operating = {
            "recall": float(curve.raw_recall[k]),
            "precision": float(curve.raw_precision[k]),
        }
    step = max(1, len(curve.raw_recall) // RAW_POINTS)
    return {
        "class": name,
        "threshold": threshold,
        "recall": [float(r) for r in RECALL_THRESHOLDS],
        "precision": [round(float(p), 6) for p in curve.precision],
        "raw": [
            [round(float(r), 6), round(float(p), 6)]
            for r, p in zip(curve.raw_recall[::step], curve.raw_precision[::step], strict=True)
        ],
        "operating_point": operating,
    }


def latency_histogram(run: ModelRun, bins: int = LATENCY_BINS) -> dict[str, object] | None:
    """detect() time per frame in `bins` equal bins from 0 to the slowest frame, ms."""
    times = np.array([f.latency_ms for f in run.frames.values()], np.float64)
    if not len(times):
        return None
    counts, edges = np.histogram(times, bins=bins, range=(0.0, float(times.max()) or 1.0))
    return {"edges_ms": [round(float(e), 3) for e in edges], "counts": counts.tolist()}


@dataclass(frozen=True)
class Failure:
    """One image's errors at the operating point; `severity` in [0, 1], worst first."""

    ref: str
    severity: float
    reasons: tuple[str, ...]


def _best_same_class(run: ModelRun, ref: str, t: TruthBox) -> float:
    """The best score (above the run's floor) of a box of t's class overlapping t."""
    det = run.frames[ref].detections
    keep = det.class_ids == t.class_id
    if not keep.any():
        return 0.0
    ious = iou_matrix(det.boxes[keep], np.array([t.box], np.float32))[:, 0]
    scores = det.scores[keep][ious >= MATCH_IOU]
    return float(scores.max()) if len(scores) else 0.0


def image_failures(run: ModelRun, ref: str, truth: Sequence[TruthBox]) -> Failure | None:
    """Missed boxes weigh 1 - their best same-class score; false boxes their score."""
    classes = run.model.classes
    det = run.operating(ref)
    m = match_image(det, truth)
    worst, reasons = 0.0, []
    for j, t in enumerate(truth):
        i = m.gt_to_det[j]
        if i >= 0 and det.class_ids[i] == t.class_id:
            continue
        best = _best_same_class(run, ref, t)
        worst = max(worst, 1.0 - best)
        name = classes[t.class_id]
        if i >= 0:
            reasons.append(
                f"{name} detected as {classes[int(det.class_ids[i])]} {float(det.scores[i]):.2f}"
            )
        else:
            reasons.append(f"missed {name} (best {name} score {best:.2f})")
    for i, j in enumerate(m.det_to_gt):
        if j >= 0 and truth[j].class_id == det.class_ids[i]:
            continue
        worst = max(worst, float(det.scores[i]))
        if j < 0:
            reasons.append(
                f"false alarm {classes[int(det.class_ids[i])]} {float(det.scores[i]):.2f}"
            )
    return Failure(ref, worst, tuple(reasons)) if reasons else None


def worst_failures(
    run: ModelRun, truth: dict[str, list[TruthBox]], count: int = WORST_FAILURES
) -> list[Failure]:
    """The `count` images with the most severe errors (ties in suite order)."""
    found = [f for ref in run.frames if (f := image_failures(run, ref, truth.get(ref, [])))]
    found.sort(key=lambda f: -f.severity)
    return found[:count]

"""Per-image evidence for failure galleries: which boxes matched, at one IoU threshold."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from edge.errors import BadInputError
from edge.validation.coco import CocoGroundTruth
from edge.validation.coco_match import area_outside, greedy_match
from edge.validation.coco_metrics import AREA_RANGES, Box, EvidenceBox, ImageEvidence

if TYPE_CHECKING:
    from edge.validation.cocoeval import Problems

IntArray = npt.NDArray[np.intp]


def _best_per_group(group: IntArray, values: npt.NDArray[np.float64], n: int) -> IntArray:
    """(n,) position of the highest value per group id, -1 for empty groups."""
    best = np.full(n, -1, np.intp)
    if not len(group):  # no pairs at all: the sentinel below would index an empty array
        return best
    order = np.lexsort((values, group))
    last = np.flatnonzero(np.append(group[order][1:] != group[order][:-1], True))
    best[group[order][last]] = order[last]
    return best


def image_evidence(
    pb: Problems,
    ground_truth: CocoGroundTruth,
    iou_threshold: float,
    score_threshold: float,
) -> tuple[ImageEvidence, ...]:
    """See CocoEvaluator.evidence."""
    if not 0 < iou_threshold <= 1:
        raise BadInputError(f"IoU threshold: expected 0 < t <= 1, got {iou_threshold}")
    if not math.isfinite(score_threshold):
        raise BadInputError(f"score threshold: expected a finite number, got {score_threshold}")
    all_areas = (AREA_RANGES[0],)
    gt_ignored = pb.gt_ignore | area_outside(ground_truth.areas[pb.gt_source], all_areas)[0]
    det_outside = area_outside(pb.det_box[:, 2] * pb.det_box[:, 3], all_areas)[0]
    match = greedy_match(
        pb.pair_det,
        pb.pair_gt,
        pb.pair_ious,
        pb.det_rank,
        gt_ignored[None, :],
        pb.gt_crowd,
        np.array([iou_threshold]),
    )[0, 0]
    n_det, n_gt = len(pb.det_rank), len(pb.gt_source)
    active = pb.det_score >= score_threshold
    matched = match >= 0
    det_ignored = np.where(matched, np.append(gt_ignored, False)[match], det_outside)
    tp = active & matched & ~det_ignored
    fp = active & ~matched & ~det_ignored
    ignored = active & det_ignored
    found = np.zeros(n_gt, np.bool_)
    found[match[active & matched]] = True
    fn = ~gt_ignored & ~found

    # Pairs come grouped by detection, ground truth ascending within: a sorted key.
    pair_key = pb.pair_det * (n_gt + 1) + pb.pair_gt
    match_pair = np.searchsorted(pair_key, np.arange(n_det) * (n_gt + 1) + match)
    # Without any pair (nothing overlaps) there is nothing to index: no match, no best.
    padded_ious = np.append(pb.pair_ious, 0.0)
    matched_iou = padded_ious[np.minimum(match_pair, len(pair_key))]
    best_for_det = _best_per_group(pb.pair_det, pb.pair_ious, n_det)
    live = np.flatnonzero(active[pb.pair_det])
    best_for_gt = _best_per_group(pb.pair_gt[live], pb.pair_ious[live], n_gt)
    best_for_gt = np.where(best_for_gt >= 0, np.append(live, -1)[best_for_gt], -1)

    cat_ids = np.array([c.id for c in ground_truth.categories], np.int64)
    cat_ids.sort()
    det_cat = cat_ids[pb.det_cat].tolist() if len(cat_ids) else []
    gt_cat = cat_ids[pb.gt_cat].tolist() if len(cat_ids) else []
    det_index = pb.det_source.tolist()
    scores = pb.det_score.tolist()
    det_boxes: list[Box] = [tuple(b) for b in pb.det_box.tolist()]  # type: ignore[misc]
    ann_ids = ground_truth.ann_ids[pb.gt_source].tolist()
    gt_boxes: list[Box] = [tuple(b) for b in ground_truth.boxes[pb.gt_source].tolist()]  # type: ignore[misc]
    ious = pb.pair_ious.tolist()
    pair_det, pair_gt = pb.pair_det.tolist(), pb.pair_gt.tolist()

    def det_item(d: int, g: int | None, iou: float) -> EvidenceBox:
        gt_fields = (None, None) if g is None else (ann_ids[g], gt_boxes[g])
        return EvidenceBox(det_cat[d], iou, det_index[d], scores[d], det_boxes[d], *gt_fields)

    n_img = len(pb.image_ids)
    buckets: list[list[list[EvidenceBox]]] = [[[], [], [], []] for _ in range(n_img)]
    det_image = pb.det_image.tolist()
    for d in np.flatnonzero(tp).tolist():
        buckets[det_image[d]][0].append(det_item(d, int(match[d]), float(matched_iou[d])))
    for d in np.flatnonzero(fp).tolist():
        p = int(best_for_det[d])
        item = det_item(d, pair_gt[p], ious[p]) if p >= 0 else det_item(d, None, 0.0)
        buckets[det_image[d]][1].append(item)
    gt_image = pb.gt_image.tolist()
    for g in np.flatnonzero(fn).tolist():
        p = int(best_for_gt[g])
        item = EvidenceBox(gt_cat[g], 0.0, annotation_id=ann_ids[g], gt_box=gt_boxes[g])
        if p >= 0:
            d = pair_det[p]
            item = replace(
                item, iou=ious[p], detection=det_index[d], score=scores[d], det_box=det_boxes[d]
            )
        buckets[gt_image[g]][2].append(item)
    for d in np.flatnonzero(ignored).tolist():
        g = int(match[d])
        item = det_item(d, g, float(matched_iou[d])) if g >= 0 else det_item(d, None, 0.0)
        buckets[det_image[d]][3].append(item)
    return tuple(
        ImageEvidence(int(image_id), *(tuple(items) for items in bucket))
        for image_id, bucket in zip(pb.image_ids.tolist(), buckets, strict=True)
    )

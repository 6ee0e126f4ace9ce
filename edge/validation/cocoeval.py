"""COCO box evaluation equal to pycocotools' COCOeval (evaluate, accumulate, summarize).

    evaluator = CocoEvaluator(ground_truth)
    evaluator.update(detections)          # any number of times
    metrics = evaluator.compute()         # CocoMetrics
    evidence = evaluator.evidence(0.5, 0.25)

pycocotools' rules, kept on purpose: only `iscrowd` makes a ground truth ignored (its
`_prepare` overwrites the `ignore` field; pass `honour_ignore_flag=True` to use it too);
ground-truth area ranges use the `area` field, detections their box area w * h; at most
the 100 best-scored detections per (image, category) count, ties in input order;
detections of categories the ground truth does not declare are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge.validation.coco import CocoDetections, CocoGroundTruth, CocoReferenceError
from edge.validation.coco_evidence import image_evidence
from edge.validation.coco_match import area_outside, expand_pairs, greedy_match, pair_iou
from edge.validation.coco_metrics import (
    AREA_RANGES,
    IOU_THRESHOLDS,
    MAX_DETS,
    RECALL_THRESHOLDS,
    ClassMetrics,
    CocoMetrics,
    ImageEvidence,
    PRCurve,
    summarize,
)

IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Problems:
    """Detections and ground truths grouped by (image, category), with their IoU pairs.

    Detections (D,) are the kept ones (top 100 per problem), sorted by image, category,
    then rank; ground truths (G,) are sorted by image and category, file order within.
    Pairs (P,) hold every overlapping (detection, ground truth) of a problem.
    """

    image_ids: npt.NDArray[np.int64]  # all ground-truth images, ascending
    det_source: IntArray  # index into the concatenated update() detections
    det_image: IntArray  # index into image_ids
    det_cat: IntArray  # index into the ascending category ids
    det_rank: IntArray
    det_score: FloatArray
    det_box: FloatArray
    gt_source: IntArray  # index into the ground-truth annotation columns
    gt_image: IntArray
    gt_cat: IntArray
    gt_crowd: BoolArray
    gt_ignore: BoolArray  # ignored in every area range (crowd, or honoured `ignore`)
    pair_det: IntArray
    pair_gt: IntArray
    pair_ious: FloatArray


class CocoEvaluator:
    """Accumulates detections for one ground truth; compute() gives pycocotools' figures."""

    def __init__(self, ground_truth: CocoGroundTruth, *, honour_ignore_flag: bool = False) -> None:
        self.ground_truth = ground_truth
        self.honour_ignore_flag = honour_ignore_flag
        self._image_ids = np.unique(np.array([im.id for im in ground_truth.images], np.int64))
        self._category_ids = np.unique(np.array([c.id for c in ground_truth.categories], np.int64))
        for name, ids, declared in (
            ("image_id", ground_truth.image_ids, self._image_ids),
            ("category_id", ground_truth.category_ids, self._category_ids),
        ):
            unknown = np.setdiff1d(ids, declared)
            if len(unknown):
                raise CocoReferenceError(
                    f"{ground_truth.source}: annotations refer to undeclared {name} {unknown[0]}"
                )
        self._parts: list[CocoDetections] = []
        self._problems: Problems | None = None

    def update(self, detections: CocoDetections) -> None:
        """Add detections; their images must be in the ground truth."""
        known = np.isin(detections.image_ids, self._image_ids)
        if not known.all():
            i = int(np.flatnonzero(~known)[0])
            raise CocoReferenceError(
                f"{detections.source}: detection {i}: image_id {detections.image_ids[i]} "
                f"is not in {self.ground_truth.source}"
            )
        self._parts.append(detections)
        self._problems = None

    def reset(self) -> None:
        self._parts = []
        self._problems = None

    @property
    def detections(self) -> CocoDetections:
        """Everything given to update(), in order."""
        return CocoDetections.concatenate(self._parts)

    def _grouped(self) -> Problems:
        if self._problems is None:
            self._problems = self._group()
        return self._problems

    def _group(self) -> Problems:
        gt, dt = self.ground_truth, self.detections
        n_cat = len(self._category_ids)
        # Detections: known categories only, ranked per problem by score, top 100 kept.
        cat = np.searchsorted(self._category_ids, dt.category_ids)
        known = cat < n_cat
        known[known] = self._category_ids[cat[known]] == dt.category_ids[known]
        source = np.flatnonzero(known)
        image = np.searchsorted(self._image_ids, dt.image_ids[source])
        key = image * n_cat + cat[source]
        order = np.lexsort((-dt.scores[source], key))  # stable: ties keep input order
        source, key = source[order], key[order]
        first = np.concatenate(([0], np.flatnonzero(np.diff(key)) + 1))
        lengths = np.diff(np.append(first, len(key)))
        rank = np.arange(len(key)) - np.repeat(first, lengths)
        kept = rank < MAX_DETS[-1]
        source, key, rank = source[kept], key[kept], rank[kept]
        # Ground truths: grouped by problem, annotation order within.
        gt_image = np.searchsorted(self._image_ids, gt.image_ids)
        gt_cat = np.searchsorted(self._category_ids, gt.category_ids)
        gt_key = gt_image * n_cat + gt_cat
        gt_order = np.argsort(gt_key, kind="stable")
        gt_key = gt_key[gt_order]
        crowd = gt.iscrowd[gt_order]
        ignore = crowd | gt.ignore[gt_order] if self.honour_ignore_flag else crowd
        pair_det, pair_gt = expand_pairs(key, gt_key)
        ious = pair_iou(dt.boxes[source][pair_det], gt.boxes[gt_order][pair_gt], crowd[pair_gt])
        overlap = ious > 0
        return Problems(
            image_ids=self._image_ids,
            det_source=source,
            det_image=key // n_cat if n_cat else key,
            det_cat=key % n_cat if n_cat else key,
            det_rank=rank,
            det_score=dt.scores[source],
            det_box=dt.boxes[source],
            gt_source=gt_order,
            gt_image=gt_image[gt_order],
            gt_cat=gt_cat[gt_order],
            gt_crowd=crowd,
            gt_ignore=ignore,
            pair_det=pair_det[overlap],
            pair_gt=pair_gt[overlap],
            pair_ious=ious[overlap],
        )

    def compute(self) -> CocoMetrics:
        """pycocotools' evaluate + accumulate + summarize on everything updated so far."""
        pb = self._grouped()
        gt = self.ground_truth
        n_cat = len(self._category_ids)
        gt_area = gt.areas[pb.gt_source]
        gt_ignored = pb.gt_ignore[None, :] | area_outside(gt_area, AREA_RANGES)
        det_box = pb.det_box
        det_outside = area_outside(det_box[:, 2] * det_box[:, 3], AREA_RANGES)
        match = greedy_match(
            pb.pair_det,
            pb.pair_gt,
            pb.pair_ious,
            pb.det_rank,
            gt_ignored,
            pb.gt_crowd,
            IOU_THRESHOLDS,
        )
        matched = match >= 0
        # The ignore flag of the matched ground truth (column G stands for "no match").
        padded = np.concatenate([gt_ignored, np.zeros((len(AREA_RANGES), 1), np.bool_)], axis=1)
        det_ignored = np.where(
            matched,
            padded[np.arange(len(AREA_RANGES))[:, None, None], match],
            det_outside[:, None, :],
        )
        tps = matched & ~det_ignored
        fps = ~matched & ~det_ignored
        regular = np.stack([np.bincount(pb.gt_cat[~ig], minlength=n_cat) for ig in gt_ignored])
        precision, recall, scores, curves = _accumulate(pb, tps, fps, regular.T, n_cat)
        stats = summarize(precision, recall)
        names = {c.id: c.name for c in gt.categories}
        det_counts = np.bincount(pb.det_cat, minlength=n_cat)
        gt_counts = np.bincount(pb.gt_cat, minlength=n_cat)
        crowd_counts = np.bincount(pb.gt_cat[pb.gt_crowd], minlength=n_cat)
        per_class = tuple(
            ClassMetrics(
                int(cat_id),
                names[int(cat_id)],
                tuple(float(v) for v in summarize(precision, recall, k)),
                int(gt_counts[k]),
                int(crowd_counts[k]),
                int(det_counts[k]),
            )
            for k, cat_id in enumerate(self._category_ids)
        )
        return CocoMetrics(
            stats=tuple(float(v) for v in stats),
            per_class=per_class,
            precision=precision,
            recall=recall,
            scores=scores,
            pr_curves=tuple(
                PRCurve(
                    int(cat_id),
                    precision[0, :, k, 0, -1].copy(),
                    scores[0, :, k, 0, -1].copy(),
                    *curves[k],
                )
                for k, cat_id in enumerate(self._category_ids)
            ),
            category_ids=tuple(int(c) for c in self._category_ids),
            image_count=len(self._image_ids),
            gt_count=len(gt),
            crowd_count=int(gt.iscrowd.sum()),
            detection_count=sum(len(p) for p in self._parts),
            evaluated_detection_count=len(pb.det_source),
        )

    def evidence(
        self, iou_threshold: float = 0.5, score_threshold: float = 0.0
    ) -> tuple[ImageEvidence, ...]:
        """Per image, ascending id: true and false positives, misses and ignored detections
        among detections scoring >= score_threshold, matched as pycocotools does at one IoU
        threshold (area 'all', the 100 best per image and category)."""
        return image_evidence(self._grouped(), self.ground_truth, iou_threshold, score_threshold)


def _accumulate(
    pb: Problems, tps: BoolArray, fps: BoolArray, regular: npt.NDArray[np.int64], n_cat: int
) -> tuple[FloatArray, FloatArray, FloatArray, list[tuple[FloatArray, FloatArray, FloatArray]]]:
    """pycocotools' accumulate: precision, recall, scores arrays and raw PR curves at IoU .5.

    `tps`, `fps` (A, T, D) per kept detection; `regular` (K, A) non-ignored ground truths.
    """
    n_area, n_thr = tps.shape[:2]
    n_rec, n_max = len(RECALL_THRESHOLDS), len(MAX_DETS)
    precision = -np.ones((n_thr, n_rec, n_cat, n_area, n_max))
    recall = -np.ones((n_thr, n_cat, n_area, n_max))
    scores = -np.ones((n_thr, n_rec, n_cat, n_area, n_max))
    empty = np.zeros(0)
    curves = [(empty, empty, empty)] * n_cat
    # Within a category, detections are in pycocotools' concatenation order already:
    # image ascending, then rank.
    by_cat = np.argsort(pb.det_cat, kind="stable")
    bounds = np.searchsorted(pb.det_cat[by_cat], np.arange(n_cat + 1))
    for k in range(n_cat):
        if not regular[k].any():
            continue
        in_cat = by_cat[bounds[k] : bounds[k + 1]]
        for m, max_det in enumerate(MAX_DETS):
            sel = in_cat[pb.det_rank[in_cat] < max_det]
            order = np.argsort(-pb.det_score[sel], kind="mergesort")
            sel = sel[order]
            score_sorted = pb.det_score[sel]
            tp_sum = np.cumsum(tps[:, :, sel], axis=2).astype(float)
            fp_sum = np.cumsum(fps[:, :, sel], axis=2).astype(float)
            nd = len(sel)
            for a in range(n_area):
                npig = int(regular[k, a])
                if npig == 0:
                    continue
                rc = tp_sum[a] / npig
                pr = tp_sum[a] / (fp_sum[a] + tp_sum[a] + np.spacing(1))
                recall[:, k, a, m] = rc[:, -1] if nd else 0
                if a == 0 and m == n_max - 1:
                    curves[k] = (rc[0].copy(), pr[0].copy(), score_sorted)
                envelope = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
                for t in range(n_thr):
                    inds = np.searchsorted(rc[t], RECALL_THRESHOLDS, side="left")
                    inds = inds[inds < nd]
                    precision[t, : len(inds), k, a, m] = envelope[t, inds]
                    precision[t, len(inds) :, k, a, m] = 0
                    scores[t, : len(inds), k, a, m] = score_sorted[inds]
                    scores[t, len(inds) :, k, a, m] = 0
    return precision, recall, scores, curves

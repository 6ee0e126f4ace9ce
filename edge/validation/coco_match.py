"""COCO box matching as pycocotools does it, vectorised over images, classes, area ranges
and IoU thresholds.

Detections are ranked per (image, class) problem by score (stable, so ties keep input
order). pycocotools matches each problem's detections greedily in rank order; detections
of one rank in different problems never compete, so one numpy step handles one rank for
every problem, area range and threshold at once.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def pair_iou(det_xywh: FloatArray, gt_xywh: FloatArray, gt_crowd: BoolArray) -> FloatArray:
    """IoU of each (detection, ground truth) row pair, (P, 4) xywh each -> (P,).

    The arithmetic is pycocotools' (maskApi.c bbIou) step for step, so values are bitwise
    equal and threshold comparisons agree; a crowd box's IoU divides by the detection area.
    """
    dx, dy, dw, dh = det_xywh.T
    gx, gy, gw, gh = gt_xywh.T
    w = np.minimum(dw + dx, gw + gx) - np.maximum(dx, gx)
    h = np.minimum(dh + dy, gh + gy) - np.maximum(dy, gy)
    inter = w * h
    det_area = dw * dh
    union = np.where(gt_crowd, det_area, det_area + gw * gh - inter)
    iou = np.zeros(len(inter))
    np.divide(inter, union, out=iou, where=(w > 0) & (h > 0))
    return iou


def area_outside(areas: FloatArray, ranges: tuple[tuple[float, float], ...]) -> BoolArray:
    """(A, N): areas outside each closed range [lo, hi]."""
    lo = np.array([r[0] for r in ranges], np.float64)[:, None]
    hi = np.array([r[1] for r in ranges], np.float64)[:, None]
    result: BoolArray = (areas[None, :] < lo) | (areas[None, :] > hi)
    return result


def _best(cand: BoolArray, iou: FloatArray, gt: IntArray, starts: IntArray) -> IntArray:
    """Per detection segment and (area, threshold): the candidate with the highest IoU, the
    later ground truth on ties (pycocotools replaces its best on `>=`); -1 if none."""
    val = np.where(cand, iou, -1.0)
    top = np.maximum.reduceat(val, starts, axis=2)
    lengths = np.diff(np.append(starts, val.shape[2]))
    hit = cand & (val == np.repeat(top, lengths, axis=2))
    result: IntArray = np.maximum.reduceat(np.where(hit, gt, -1), starts, axis=2)
    return result


def greedy_match(
    pair_det: IntArray,
    pair_gt: IntArray,
    pair_ious: FloatArray,
    det_rank: IntArray,
    gt_ignored: BoolArray,
    gt_crowd: BoolArray,
    thresholds: FloatArray,
) -> IntArray:
    """pycocotools' evaluateImg matching for every problem: (A, T, D) matched ground truth
    index per area range, threshold and detection, -1 where unmatched.

    Pairs (P,) link detections to ground truths of their own problem; ground-truth indices
    must increase with annotation order within a problem. `det_rank` (D,) is each
    detection's score rank in its problem, `gt_ignored` (A, G) the ignore flag per area
    range, `gt_crowd` (G,) marks boxes that may be matched repeatedly.
    """
    areas, n_gt = gt_ignored.shape
    thr = np.minimum(thresholds, 1 - 1e-10)
    n_thr = len(thr)
    match = np.full((areas, n_thr, len(det_rank)), -1, np.intp)
    # Pairs under every threshold never match and never stop the scan: drop them.
    keep = pair_ious >= thr.min() if n_thr else np.zeros(len(pair_ious), np.bool_)
    det, gt, ious = pair_det[keep], pair_gt[keep], pair_ious[keep]
    if len(det) == 0:
        return match
    order = np.lexsort((gt, det, det_rank[det]))
    det, gt, ious = det[order], gt[order], ious[order]
    ranks = det_rank[det]
    bounds = np.concatenate(([0], np.flatnonzero(np.diff(ranks)) + 1, [len(ranks)]))
    taken = np.zeros((areas, n_thr, n_gt), np.bool_)  # matched already, and not a crowd box
    ignored = gt_ignored[:, None, :]
    area_idx = np.arange(areas)[:, None, None]
    thr_idx = np.arange(n_thr)[None, :, None]
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        d, g, iou = det[lo:hi], gt[lo:hi], ious[lo:hi]
        starts = np.flatnonzero(np.concatenate(([True], d[1:] != d[:-1])))
        cand = ~taken[:, :, g] & (iou[None, :] >= thr[:, None])[None]
        ign = ignored[:, :, g]
        # Ground truths are scanned regular first; a regular match stops the scan before
        # the ignored ones, so those are only a fallback.
        win = _best(cand & ~ign, iou, g, starts)
        win = np.where(win >= 0, win, _best(cand & ign, iou, g, starts))
        match[:, :, d[starts]] = win
        hold = (win >= 0) & ~gt_crowd[win]
        taken[
            np.broadcast_to(area_idx, win.shape)[hold],
            np.broadcast_to(thr_idx, win.shape)[hold],
            win[hold],
        ] = True
    return match


def expand_pairs(
    det_keys: npt.NDArray[np.int64], gt_keys_sorted: npt.NDArray[np.int64]
) -> tuple[IntArray, IntArray]:
    """Every (detection, ground truth) pair sharing a problem key: (P,) index arrays, the
    ground-truth side into `gt_keys_sorted` (ascending, so a problem's boxes are adjacent)."""
    lo = np.searchsorted(gt_keys_sorted, det_keys, side="left")
    counts = np.searchsorted(gt_keys_sorted, det_keys, side="right") - lo
    pair_det = np.repeat(np.arange(len(det_keys)), counts)
    offsets = np.arange(len(pair_det)) - np.repeat(np.cumsum(counts) - counts, counts)
    pair_gt = np.repeat(lo, counts) + offsets
    return pair_det.astype(np.intp), pair_gt.astype(np.intp)

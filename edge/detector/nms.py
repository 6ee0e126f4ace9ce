"""Class-aware greedy non-maximum suppression with ultralytics' semantics, in numpy."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

MAX_DET = 300
MAX_CANDIDATES = 30000
# Candidates are suppressed a block at a time, so IoU matrices stay at most BLOCK x BLOCK.
BLOCK = 512


def pairwise_iou(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """(N, M) IoU of (N, 4) and (M, 4) xyxy boxes; pairs with zero union get 0."""
    ax1, ay1, ax2, ay2 = (a[:, k : k + 1] for k in range(4))
    bx1, by1, bx2, by2 = b.T
    inter: npt.NDArray[np.float32] = np.minimum(ax2, bx2) - np.maximum(ax1, bx1)
    np.maximum(inter, 0.0, out=inter)
    inter_h = np.minimum(ay2, by2) - np.maximum(ay1, by1)
    np.maximum(inter_h, 0.0, out=inter_h)
    inter *= inter_h
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1)
    union -= inter
    # Degenerate boxes get IoU 0, as torchvision's 0/0 = NaN never suppresses.
    union[union <= 0.0] = np.inf
    inter /= union
    return inter


def _suppressing(
    a: npt.NDArray[np.float32],
    a_classes: npt.NDArray[np.int64],
    b: npt.NDArray[np.float32],
    b_classes: npt.NDArray[np.int64],
    iou_threshold: float,
) -> npt.NDArray[np.bool_]:
    """(N, M) True where the boxes share a class and overlap by IoU > iou_threshold.

    The class test does what ultralytics' class_id * max_wh box offset does, without the
    float32 rounding that offsets of ~10^6 pixels bring to the IoU.
    """
    result: npt.NDArray[np.bool_] = (pairwise_iou(a, b) > iou_threshold) & (
        a_classes[:, None] == b_classes[None, :]
    )
    return result


def class_aware_nms(
    boxes: npt.NDArray[np.float32],
    scores: npt.NDArray[np.float32],
    class_ids: npt.NDArray[np.int64],
    iou_threshold: float,
    *,
    max_det: int = MAX_DET,
    max_candidates: int = MAX_CANDIDATES,
) -> npt.NDArray[np.int64]:
    """Indices of the kept boxes, best score first.

    `boxes` (N, 4) xyxy pixels, `scores` (N,), `class_ids` (N,). Callers pass only the
    candidates above their score threshold. The best `max_candidates` by score enter; a box
    is dropped when its IoU with a kept box of the same class is > `iou_threshold`; at most
    `max_det` are kept. Equal scores keep the lower index first.
    """
    order = np.argsort(-scores, kind="stable")[:max_candidates]
    ranked = np.asarray(boxes[order], np.float32)
    classes = class_ids[order]
    keep: list[int] = []
    for start in range(0, ranked.shape[0], BLOCK):
        block, block_classes = ranked[start : start + BLOCK], classes[start : start + BLOCK]
        alive = np.ones(block.shape[0], bool)
        if keep:
            by_kept = _suppressing(block, block_classes, ranked[keep], classes[keep], iou_threshold)
            alive &= ~by_kept.any(axis=1)
        # spared[i, j]: a kept i lets the later j live. Only rows that suppress something need
        # the sequential greedy pass; every other candidate's fate is settled by those rows.
        overlaps = _suppressing(block, block_classes, block, block_classes, iou_threshold)
        spared = ~np.triu(overlaps, k=1)
        for i in np.flatnonzero(~spared.all(axis=1)):
            if alive[i]:
                alive &= spared[i]
        keep.extend((start + np.flatnonzero(alive)).tolist())
        if len(keep) >= max_det:
            break
    return order[keep[:max_det]]

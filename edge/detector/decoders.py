"""Raw graph outputs to Detections, one decoder per manifest `output.format`.

Every decoder returns boxes in model-input pixels (the letterboxed image), xyxy. A
candidate survives only with score strictly greater than its class's threshold; the
dense formats then go through class-aware NMS, end-to-end exports already did it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge.detector.nms import MAX_DET, class_aware_nms
from edge.errors import DetectorError
from edge.frames import Detections


@dataclass(frozen=True)
class DecodeParams:
    """`thresholds`: (C,) float32 score threshold per class; `iou_threshold` for NMS."""

    thresholds: npt.NDArray[np.float32]
    iou_threshold: float
    max_det: int = MAX_DET

    @property
    def num_classes(self) -> int:
        return int(self.thresholds.shape[0])


Decoder = Callable[[Sequence[npt.NDArray[np.generic]], DecodeParams], Detections]


def _single_batch(output: npt.NDArray[np.generic], ndim: int, what: str) -> npt.NDArray[np.float32]:
    """The one image of a batch-of-1 output, as float32, or DetectorError naming the shape."""
    if output.ndim != ndim or output.shape[0] != 1:
        raise DetectorError(f"graph output: expected {what}, got shape {output.shape}")
    return np.asarray(output[0], np.float32)


def _xywh_to_xyxy(xywh: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """(N, 4) centre x, centre y, width, height to (N, 4) x1, y1, x2, y2."""
    half = xywh[:, 2:4] / 2
    return np.concatenate((xywh[:, :2] - half, xywh[:, :2] + half), axis=1)


def _finish(
    boxes: npt.NDArray[np.float32],
    scores: npt.NDArray[np.float32],
    class_ids: npt.NDArray[np.int64],
    params: DecodeParams,
    *,
    nms: bool,
) -> Detections:
    finite = np.isfinite(boxes).all(axis=1)
    if not finite.all():  # a NaN or infinite box can be neither drawn nor reported
        boxes, scores, class_ids = boxes[finite], scores[finite], class_ids[finite]
    if nms:
        keep = class_aware_nms(
            boxes, scores, class_ids, params.iou_threshold, max_det=params.max_det
        )
    else:
        keep = np.argsort(-scores, kind="stable")[: params.max_det]
    return Detections(boxes[keep], scores[keep], class_ids[keep])


def decode_yolov8(outputs: Sequence[npt.NDArray[np.generic]], params: DecodeParams) -> Detections:
    """(1, 4 + C, N): rows cx, cy, w, h, then C class scores (already sigmoid), per anchor.

    Each anchor takes its best class, as ultralytics does without multi-label.
    """
    c = params.num_classes
    raw = _single_batch(outputs[0], 3, f"(1, {4 + c}, N) for yolov8")
    if raw.shape[0] != 4 + c:
        raise DetectorError(
            f"graph output: expected (1, {4 + c}, N) for yolov8, got {outputs[0].shape}"
        )
    class_scores = raw[4:]
    # Cheap pass over all anchors first: a row-wise max, then only survivors get argmax.
    best = class_scores.max(axis=0)
    candidates = np.flatnonzero(best > params.thresholds.min())
    class_ids = class_scores[:, candidates].argmax(axis=0).astype(np.int64)
    scores = best[candidates]
    passed = scores > params.thresholds[class_ids]
    candidates, class_ids, scores = candidates[passed], class_ids[passed], scores[passed]
    boxes = _xywh_to_xyxy(np.ascontiguousarray(raw[:4, candidates].T))
    return _finish(boxes, scores, class_ids, params, nms=True)


def decode_yolov5(outputs: Sequence[npt.NDArray[np.generic]], params: DecodeParams) -> Detections:
    """(1, N, 5 + C): cx, cy, w, h, objectness, then C class scores; score = obj * class."""
    c = params.num_classes
    raw = _single_batch(outputs[0], 3, f"(1, N, {5 + c}) for yolov5")
    if raw.shape[1] != 5 + c:
        raise DetectorError(
            f"graph output: expected (1, N, {5 + c}) for yolov5, got {outputs[0].shape}"
        )
    # Class scores are at most 1, so obj * class > t needs obj > t: filter rows on obj first.
    rows = raw[raw[:, 4] > params.thresholds.min()]
    products = rows[:, 5:] * rows[:, 4:5]
    class_ids = products.argmax(axis=1).astype(np.int64)
    scores = products.max(axis=1)
    passed = scores > params.thresholds[class_ids]
    boxes = _xywh_to_xyxy(rows[passed, :4])
    return _finish(boxes, scores[passed], class_ids[passed], params, nms=True)


def decode_end2end(outputs: Sequence[npt.NDArray[np.generic]], params: DecodeParams) -> Detections:
    """NMS done in the graph: (1, K, 6) rows x1, y1, x2, y2, score, class, or three outputs
    boxes (1, K, 4) xyxy, scores (1, K), labels (1, K). Thresholds still apply."""
    if len(outputs) == 1:
        raw = _single_batch(outputs[0], 3, "(1, K, 6) for end2end")
        if raw.shape[1] != 6:
            raise DetectorError(
                f"graph output: expected (1, K, 6) for end2end, got {outputs[0].shape}"
            )
        boxes, scores, labels = raw[:, :4], raw[:, 4], raw[:, 5]
    elif len(outputs) == 3:
        boxes = _single_batch(outputs[0], 3, "boxes (1, K, 4) for end2end")
        scores = _single_batch(outputs[1], 2, "scores (1, K) for end2end")
        labels = _single_batch(outputs[2], 2, "labels (1, K) for end2end")
        if boxes.shape[1] != 4 or not boxes.shape[0] == scores.shape[0] == labels.shape[0]:
            raise DetectorError(
                "graph outputs: expected boxes (1, K, 4), scores (1, K), labels (1, K), got "
                f"{boxes.shape}, {scores.shape}, {labels.shape}"
            )
    else:
        raise DetectorError(f"graph: expected 1 or 3 outputs for end2end, got {len(outputs)}")
    # Padding rows of fixed-size exports carry score 0 and often label -1: the threshold
    # test drops them before the label range is checked.
    candidates = np.flatnonzero(scores > params.thresholds.min())
    class_ids = labels[candidates].astype(np.int64)
    out_of_range = (class_ids < 0) | (class_ids >= params.num_classes)
    if out_of_range.any():
        raise DetectorError(
            f"graph output: class id {int(class_ids[out_of_range][0])} outside the manifest's "
            f"{params.num_classes} classes"
        )
    passed = scores[candidates] > params.thresholds[class_ids]
    candidates, class_ids = candidates[passed], class_ids[passed]
    return _finish(
        np.ascontiguousarray(boxes[candidates]), scores[candidates], class_ids, params, nms=False
    )


DECODERS: dict[str, Decoder] = {
    "yolov8": decode_yolov8,
    "yolov5": decode_yolov5,
    "end2end": decode_end2end,
}

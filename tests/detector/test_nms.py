from __future__ import annotations

import numpy as np
import pytest

from edge.detector import nms as nms_module
from edge.detector.nms import class_aware_nms


def nms(
    boxes: list[list[float]],
    scores: list[float],
    classes: list[int],
    iou: float = 0.5,
    **kwargs: int,
) -> list[int]:
    return class_aware_nms(
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(scores, np.float32),
        np.asarray(classes, np.int64),
        iou,
        **kwargs,
    ).tolist()


SQUARE = [0, 0, 10, 10]
FAR = [100, 100, 110, 110]


@pytest.mark.parametrize(
    ("boxes", "scores", "classes", "iou", "expected"),
    [
        pytest.param([], [], [], 0.5, [], id="empty"),
        pytest.param([SQUARE], [0.3], [0], 0.5, [0], id="single"),
        pytest.param([SQUARE, FAR], [0.2, 0.9], [0, 0], 0.5, [1, 0], id="best-first"),
        pytest.param([SQUARE] * 4, [0.5, 0.7, 0.6, 0.4], [1] * 4, 0.5, [1], id="all-suppressed"),
        pytest.param([SQUARE, SQUARE], [0.6, 0.6], [0, 0], 0.5, [0], id="tie-lower-index-wins"),
        pytest.param([FAR, SQUARE, FAR], [0.6] * 3, [0] * 3, 0.5, [0, 1], id="tie-order-stable"),
        pytest.param([SQUARE, SQUARE], [0.9, 0.8], [0, 3], 0.5, [0, 1], id="other-class-kept"),
        # IoU of these two is exactly 0.5: suppression needs IoU > threshold.
        pytest.param([SQUARE, [0, 0, 10, 5]], [0.9, 0.8], [0, 0], 0.5, [0, 1], id="iou-equal"),
        pytest.param([SQUARE, [0, 0, 10, 5]], [0.9, 0.8], [0, 0], 0.49, [0], id="iou-above"),
        pytest.param([[5, 5, 5, 5], [5, 5, 5, 5]], [0.9, 0.8], [0, 0], 0.5, [0, 1], id="zero-area"),
    ],
)
def test_nms_cases(
    boxes: list[list[float]],
    scores: list[float],
    classes: list[int],
    iou: float,
    expected: list[int],
) -> None:
    assert nms(boxes, scores, classes, iou) == expected


@pytest.mark.parametrize("block", [512, 7])
def test_max_det_keeps_the_best(block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nms_module, "BLOCK", block)
    n = 500
    boxes = [[20.0 * i, 0, 20.0 * i + 10, 10] for i in range(n)]
    scores = list(np.linspace(0.3, 0.9, n))
    kept = nms(boxes, scores, [0] * n, max_det=300)
    assert kept == list(range(n - 1, n - 301, -1))


def test_max_candidates_limits_what_enters() -> None:
    boxes = [[20.0 * i, 0, 20.0 * i + 10, 10] for i in range(5)]
    assert nms(boxes, [0.1, 0.5, 0.3, 0.9, 0.2], [0] * 5, max_candidates=2) == [3, 1]


def reference_nms(
    boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_thr: float
) -> list[int]:
    """Plain per-class greedy NMS, one pair at a time."""

    def iou(a: np.ndarray, b: np.ndarray) -> float:
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = w * h
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if union > 0 else 0.0

    kept: list[int] = []
    for i in sorted(range(len(scores)), key=lambda k: (-scores[k], k)):
        a = boxes[i].astype(np.float64)
        if all(
            classes[k] != classes[i] or iou(a, boxes[k].astype(np.float64)) <= iou_thr for k in kept
        ):
            kept.append(i)
    return kept


@pytest.mark.parametrize("block", [512, 7])
@pytest.mark.parametrize("seed", range(20))
def test_matches_reference_greedy_nms(
    seed: int, block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A small block makes every case cross block boundaries.
    monkeypatch.setattr(nms_module, "BLOCK", block)
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 120))
    xy = rng.uniform(0, 200, (n, 2))
    wh = rng.uniform(1, 80, (n, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    # Few distinct scores so ties are common.
    scores = rng.choice(np.linspace(0.3, 0.9, 7), n).astype(np.float32)
    classes = rng.integers(0, 3, n).astype(np.int64)
    expected = reference_nms(boxes, scores, classes, 0.45)
    assert class_aware_nms(boxes, scores, classes, 0.45).tolist() == expected

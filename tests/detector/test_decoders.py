from __future__ import annotations

import numpy as np
import pytest

from edge.detector.decoders import DECODERS, DecodeParams
from edge.errors import DetectorError

C = 3  # classes in these tests
PARAMS = DecodeParams(thresholds=np.array([0.25, 0.25, 0.25], np.float32), iou_threshold=0.5)


def yolov8(rows: list[tuple[list[float], list[float]]]) -> list[np.ndarray]:
    """(1, 4 + C, N) from (cx cy w h, class scores) per anchor."""
    data = np.array([box + scores for box, scores in rows], np.float32).reshape(-1, 4 + C)
    return [data.T[None]]


def yolov5(rows: list[tuple[list[float], float, list[float]]]) -> list[np.ndarray]:
    """(1, N, 5 + C) from (cx cy w h, objectness, class scores) per anchor."""
    data = [box + [obj] + scores for box, obj, scores in rows]
    return [np.array(data, np.float32).reshape(1, -1, 5 + C)]


def end2end(rows: list[list[float]]) -> list[np.ndarray]:
    """(1, K, 6) from x1 y1 x2 y2 score class per row."""
    return [np.array(rows, np.float32).reshape(1, -1, 6)]


def end2end3(rows: list[list[float]]) -> list[np.ndarray]:
    """boxes (1, K, 4), scores (1, K), labels (1, K) int64."""
    data = np.array(rows, np.float32).reshape(-1, 6)
    return [data[None, :, :4], data[None, :, 4], data[None, :, 5].astype(np.int64)]


CASES = [
    pytest.param(
        "yolov8",
        yolov8(
            [
                ([50, 60, 20, 40], [0.1, 0.9, 0.2]),
                ([150, 60, 20, 40], [0.25, 0.0, 0.25]),  # equal to threshold: dropped
                ([250, 60, 20, 40], [0.0, 0.0, 0.2500001]),
                ([52, 60, 20, 40], [0.0, 0.8, 0.0]),  # suppressed by the first
                ([52, 60, 20, 40], [0.7, 0.0, 0.0]),  # same place, other class: kept
            ]
        ),
        [[40, 40, 60, 80], [42, 40, 62, 80], [240, 40, 260, 80]],
        [0.9, 0.7, 0.2500001],
        [1, 0, 2],
        id="yolov8",
    ),
    pytest.param(
        "yolov5",
        yolov5(
            [
                ([50, 60, 20, 40], 0.9, [0.1, 1.0, 0.2]),
                ([150, 60, 20, 40], 0.5, [0.9, 0.0, 0.6]),  # 0.45
                ([250, 60, 20, 40], 0.4, [0.0, 0.5, 0.0]),  # 0.2: below threshold
                ([350, 60, 20, 40], 0.2, [1.0, 1.0, 1.0]),  # objectness too low
            ]
        ),
        [[40, 40, 60, 80], [140, 40, 160, 80]],
        [0.9, 0.45],
        [1, 0],
        id="yolov5-obj-times-class",
    ),
    pytest.param(
        "end2end",
        end2end(
            [
                [10, 20, 30, 40, 0.3, 2],
                [10, 20, 30, 40, 0.8, 2],  # overlapping: no NMS for end2end
                [0, 0, 0, 0, 0.25, 1],  # equal to threshold: dropped
                [0, 0, 0, 0, 0.0, -1],  # padding row
            ]
        ),
        [[10, 20, 30, 40], [10, 20, 30, 40]],
        [0.8, 0.3],
        [2, 2],
        id="end2end",
    ),
    pytest.param(
        "end2end",
        end2end3([[10, 20, 30, 40, 0.3, 0], [1, 2, 3, 4, 0.1, 1], [5, 6, 7, 8, 0.6, 1]]),
        [[5, 6, 7, 8], [10, 20, 30, 40]],
        [0.6, 0.3],
        [1, 0],
        id="end2end-three-outputs",
    ),
    pytest.param("yolov8", [np.zeros((1, 4 + C, 0), np.float32)], [], [], [], id="yolov8-empty"),
    pytest.param("yolov5", [np.zeros((1, 0, 5 + C), np.float32)], [], [], [], id="yolov5-empty"),
]


@pytest.mark.parametrize(("fmt", "outputs", "boxes", "scores", "class_ids"), CASES)
def test_decoder_known_boxes(
    fmt: str,
    outputs: list[np.ndarray],
    boxes: list[list[float]],
    scores: list[float],
    class_ids: list[int],
) -> None:
    found = DECODERS[fmt](outputs, PARAMS)
    np.testing.assert_allclose(found.boxes, np.array(boxes, np.float32).reshape(-1, 4))
    np.testing.assert_allclose(found.scores, scores, rtol=1e-6)
    assert found.class_ids.tolist() == class_ids


def test_per_class_thresholds() -> None:
    params = DecodeParams(np.array([0.2, 0.5, 0.25], np.float32), iou_threshold=0.5)
    rows = [
        ([50, 50, 10, 10], [0.22, 0.0, 0.0]),  # gun at 0.22 > 0.2
        ([150, 50, 10, 10], [0.0, 0.45, 0.0]),  # knife at 0.45 <= 0.5
        ([250, 50, 10, 10], [0.0, 0.55, 0.0]),
    ]
    for fmt, outputs in [
        ("yolov8", yolov8(rows)),
        ("yolov5", yolov5([(box, 1.0, s) for box, s in rows])),
        ("end2end", end2end([[0, 0, 1, 1, max(s), int(np.argmax(s))] for _, s in rows])),
    ]:
        found = DECODERS[fmt](outputs, params)
        assert found.class_ids.tolist() == [1, 0], fmt
        np.testing.assert_allclose(found.scores, [0.55, 0.22], rtol=1e-6)


def test_non_finite_box_is_dropped() -> None:
    rows = [([np.nan, 50, 10, 10], [0.9, 0, 0]), ([50, 50, 10, 10], [0.8, 0, 0])]
    found = DECODERS["yolov8"](yolov8(rows), PARAMS)
    np.testing.assert_allclose(found.boxes, [[45, 45, 55, 55]])


def test_max_det_applies_to_end2end() -> None:
    rows = [[i, 0, i + 1, 1, 0.5 + i / 1000, 0] for i in range(400)]
    found = DECODERS["end2end"](end2end(rows), PARAMS)
    assert len(found) == 300
    assert found.scores[0] == pytest.approx(0.899)


@pytest.mark.parametrize(
    ("fmt", "outputs", "message"),
    [
        (
            "yolov8",
            [np.zeros((1, 9, 5), np.float32)],
            "expected (1, 7, N) for yolov8, got (1, 9, 5)",
        ),
        ("yolov8", [np.zeros((2, 7, 5), np.float32)], "got shape (2, 7, 5)"),
        ("yolov5", [np.zeros((1, 5, 7), np.float32)], "expected (1, N, 8) for yolov5"),
        ("end2end", [np.zeros((1, 5, 7), np.float32)], "expected (1, K, 6)"),
        ("end2end", end2end([[0, 0, 1, 1, 0.9, 3]]), "class id 3 outside the manifest's 3"),
        ("end2end", end2end([[0, 0, 1, 1, 0.9, -1]]), "class id -1"),
        ("end2end", end2end3([[0, 0, 1, 1, 0.9, 0]])[:2], "expected 1 or 3 outputs"),
    ],
)
def test_bad_outputs_raise_detector_error(
    fmt: str, outputs: list[np.ndarray], message: str
) -> None:
    with pytest.raises(DetectorError) as info:
        DECODERS[fmt](outputs, PARAMS)
    assert message in info.value.message

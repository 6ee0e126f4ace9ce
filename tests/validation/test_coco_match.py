"""IoU bitwise equal to pycocotools' C code, and the greedy matching rules one by one."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from edge.validation.coco_match import area_outside, expand_pairs, greedy_match, pair_iou


@pytest.mark.parametrize("integer", [False, True])
def test_pair_iou_is_bitwise_pycocotools(integer: bool) -> None:
    rng = np.random.default_rng(7)
    dets = rng.uniform(0, 50, (60, 4))
    gts = rng.uniform(0, 50, (40, 4))
    if integer:
        dets, gts = np.floor(dets), np.floor(gts)
    gts[::7, 2:] = 0  # empty boxes
    crowd = rng.random(40) < 0.3
    theirs = mask_utils.iou(dets.tolist(), gts.tolist(), crowd.astype(np.uint8).tolist())
    d, g = np.meshgrid(np.arange(60), np.arange(40), indexing="ij")
    ours = pair_iou(dets[d.ravel()], gts[g.ravel()], crowd[g.ravel()]).reshape(60, 40)
    assert (ours > 0).sum() > 100
    np.testing.assert_array_equal(ours, theirs)


def test_touching_boxes_do_not_overlap() -> None:
    boxes = np.array([[0.0, 0, 10, 10], [10, 0, 10, 10], [0, 10, 10, 10]])
    first = np.repeat(boxes[:1], 3, axis=0)
    assert pair_iou(first, boxes, np.zeros(3, np.bool_)).tolist() == [1.0, 0.0, 0.0]


def test_expand_pairs_links_each_detection_to_its_problem() -> None:
    det, gt = expand_pairs(np.array([3, 1, 3, 5]), np.array([1, 1, 3, 4]))
    assert list(zip(det.tolist(), gt.tolist(), strict=True)) == [(0, 2), (1, 0), (1, 1), (2, 2)]


def test_area_ranges_are_closed() -> None:
    outside = area_outside(np.array([1023.0, 1024.0, 9216.0, 9217.0]), ((1024, 9216),))
    assert outside.tolist() == [[True, False, False, True]]


def _match(
    ious: list[list[float]],
    ignored: list[bool] | None = None,
    crowd: list[bool] | None = None,
    thresholds: tuple[float, ...] = (0.5,),
) -> list[int]:
    """Match one problem: ious[d][g], detections in rank order -> matched gt per detection."""
    n_det, n_gt = len(ious), len(ious[0])
    d, g = np.meshgrid(np.arange(n_det), np.arange(n_gt), indexing="ij")
    ign = np.array(ignored or [False] * n_gt)[None, :]
    result = greedy_match(
        d.ravel(),
        g.ravel(),
        np.array(ious, np.float64).ravel(),
        np.arange(n_det),
        ign,
        np.array(crowd or [False] * n_gt),
        np.array(thresholds),
    )
    return [int(v) for v in result[0, 0]]


@pytest.mark.parametrize(
    ("ious", "ignored", "crowd", "expected"),
    [
        # the best IoU wins; the later ground truth on a tie (pycocotools replaces on >=)
        ([[0.6, 0.8, 0.7]], None, None, [1]),
        ([[0.7, 0.7]], None, None, [1]),
        # a matched ground truth is taken; the next detection gets the next best
        ([[0.9, 0.6], [0.9, 0.55]], None, None, [0, 1]),
        ([[0.9, 0.4], [0.9, 0.4]], None, None, [0, -1]),
        # exactly at the threshold matches
        ([[0.5]], None, None, [0]),
        # a regular match beats a better ignored one; ignored ones are the fallback
        ([[0.6, 0.95]], [False, True], None, [0]),
        ([[0.3, 0.95]], [False, True], None, [1]),
        # crowd boxes (always ignored) take any number of detections
        ([[0.9], [0.8], [0.7]], [True], [True], [0, 0, 0]),
        # an ignored regular box is taken once
        ([[0.9], [0.8]], [True], [False], [0, -1]),
    ],
)
def test_greedy_rules(
    ious: list[list[float]],
    ignored: list[bool] | None,
    crowd: list[bool] | None,
    expected: list[int],
) -> None:
    assert _match(ious, ignored, crowd) == expected


def test_thresholds_are_matched_independently() -> None:
    ious = [[0.9, 0.8], [0.95, 0.6]]
    d, g = np.meshgrid(np.arange(2), np.arange(2), indexing="ij")
    both = greedy_match(
        d.ravel(),
        g.ravel(),
        np.array(ious).ravel(),
        np.arange(2),
        np.zeros((1, 2), np.bool_),
        np.zeros(2, np.bool_),
        np.array([0.5, 0.75]),
    )
    # Detection 1 falls back to ground truth 1 at IoU 0.5 only.
    assert both[0].tolist() == [[0, 1], [0, -1]]

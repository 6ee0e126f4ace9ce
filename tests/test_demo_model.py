"""The shipped demo model: it finds threats in simulated bags and leaves an empty tray clear."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.config import DEFAULT_MODEL_DIR
from edge.detector import Detector
from edge.frames import Frame
from edge.sim.scene import empty_tray, simulate_bag


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector.load(DEFAULT_MODEL_DIR)


def _iou(a: np.ndarray, b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union)


def test_demo_model_is_committed_and_small() -> None:
    onnx_file = Path(DEFAULT_MODEL_DIR) / "model.onnx"
    assert onnx_file.is_file()
    assert onnx_file.stat().st_size <= 15 * 1024 * 1024


@pytest.mark.parametrize("seed", [101, 202, 303])
def test_finds_the_gun_in_a_bag(detector: Detector, seed: int) -> None:
    bag = simulate_bag(seed, threats=["gun"], occlude=False)
    run = detector.detect(Frame(high=bag.high, low=bag.low))
    names = detector.class_names
    guns = [
        b
        for b, c in zip(run.detections.boxes, run.detections.class_ids, strict=True)
        if names[int(c)] == "gun"
    ]
    truth = bag.annotations[0].box
    assert guns, f"no gun found in bag {seed}; got {run.detections.to_list(names)}"
    assert max(_iou(b, truth) for b in guns) > 0.5


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_empty_tray_stays_clear(detector: Detector, seed: int) -> None:
    tray = empty_tray(seed)
    run = detector.detect(Frame(high=tray.high, low=tray.low))
    assert len(run.detections) == 0, run.detections.to_list(detector.class_names)

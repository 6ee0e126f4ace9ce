"""Preparing a frame on another thread gives the same detections as detect()."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.detector import Detector
from edge.errors import BadInputError
from edge.frames import Frame
from edge.pseudocolor import render_pseudocolor
from edge.sim.scene import simulate_bag

DEMO = Path(__file__).resolve().parents[2] / "models" / "demo-xray-det"


def test_prepared_frames_give_the_same_detections() -> None:
    detector = Detector.load(DEMO)
    bag = simulate_bag(7, threats=["gun"], clutter="low")
    preprocessor = detector.preprocessor()
    for frame in (
        Frame(high=bag.high, low=bag.low),
        Frame(rgb=render_pseudocolor(bag.high, bag.low)),
    ):
        direct = detector.detect(frame).detections
        prepared = detector.prepare(frame, preprocessor)
        assert prepared.frame_hw == bag.high.shape and prepared.preprocess_ms > 0
        run = detector.detect_prepared(prepared)
        assert len(direct) >= 1
        for name in ("boxes", "scores", "class_ids"):
            assert np.array_equal(getattr(run.detections, name), getattr(direct, name))
        assert run.timings_ms["preprocess"] >= prepared.preprocess_ms
    # The tensor is the caller's copy: preparing the next frame does not change it.
    first = detector.prepare(Frame(high=bag.high, low=bag.low), preprocessor)
    kept = first.tensor.copy()
    detector.prepare(Frame(rgb=np.zeros((50, 60, 3), np.uint8)), preprocessor)
    assert np.array_equal(first.tensor, kept)


def test_a_dual_energy_model_needs_both_channels(tiny_model_dir) -> None:  # type: ignore[no-untyped-def]
    def dual(manifest: dict) -> None:  # type: ignore[type-arg]
        manifest["input"].update(representation="dual_energy", scale=None)

    detector = Detector.load(tiny_model_dir(edit=dual))
    high = np.full((40, 50), 30000, np.uint16)
    with pytest.raises(BadInputError, match="needs dual-energy high and low"):
        detector.prepare(Frame(high=high), detector.preprocessor())
    prepared = detector.prepare(Frame(high=high, low=high), detector.preprocessor())
    assert prepared.tensor.shape == (1, 2, 64, 64)

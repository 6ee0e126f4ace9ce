"""Behavioural checks' parts that need no model: threat projection's physics (attenuations
add; removing a projected threat restores the bag), frame picking, IoU."""

from __future__ import annotations

import numpy as np
import pytest

from edge.frames import AIR_LEVEL
from edge.sim.scene import object_attenuation, simulate_bag
from edge.sim.shapes import THREATS
from edge.validation.behaviour import iou, pick, scale_counts, threat_transmission


def attenuation(channel: np.ndarray) -> np.ndarray:
    return -np.log(np.maximum(channel.astype(np.float64), 1.0) / AIR_LEVEL)


@pytest.mark.parametrize("threat", ["gun", "knife", "bottle"])
def test_projection_adds_attenuation_and_removal_restores_the_bag(threat: str) -> None:
    bag = simulate_bag(3_000_001, threats=[], clutter="low")
    h, w = bag.high.shape
    obj = THREATS[threat](np.random.default_rng(1))
    a_high, a_low, box = object_attenuation(obj, w / 2, h / 2, 30.0, h, w)
    x1, y1, x2, y2 = box
    assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
    assert a_high[int(y1) : int(y2), int(x1) : int(x2)].max() > 0.1
    assert a_high[: int(y1) - 3].max() == 0  # nothing outside the object
    t_high, t_low = threat_transmission(a_high), threat_transmission(a_low)
    projected_high, projected_low = scale_counts(bag.high, t_high), scale_counts(bag.low, t_low)
    # Where the beam still gets through, attenuations add (Beer-Lambert).
    visible = (projected_high > 2000) & (bag.high > 2000)
    added = attenuation(projected_high) - attenuation(bag.high)
    expected = -np.log(t_high.astype(np.float64))
    assert np.abs(added - expected)[visible].max() < 2e-3
    assert (attenuation(projected_low) > attenuation(bag.low) - 1e-3)[visible].all()
    restored = scale_counts(projected_high, np.float32(1) / t_high)
    # Away from the threat nothing changed; under it, back to within the rounding of the
    # darkened counts.
    assert np.array_equal(restored[: int(y1) - 3], bag.high[: int(y1) - 3])
    error = np.abs(restored.astype(np.int64) - bag.high.astype(np.int64))
    tolerance = 1 + 0.5 / np.maximum(t_high, 1e-6)
    assert (error <= tolerance)[bag.high > 0].all()


def test_pick_is_seeded_and_keeps_suite_order() -> None:
    items = list(range(100))
    first = pick(items, 7, seed=5)  # type: ignore[arg-type]
    assert first == pick(items, 7, seed=5) == sorted(first)  # type: ignore[arg-type]
    assert first != pick(items, 7, seed=6)  # type: ignore[arg-type]
    assert pick(items[:3], 7, seed=5) == [0, 1, 2]  # type: ignore[arg-type]


def test_iou() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0

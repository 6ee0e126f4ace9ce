"""Paired changes between two models on the same bags: intervals, McNemar, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from edge.errors import BadInputError
from edge.validation.comparison import PairedComparison
from edge.validation.slices import BagTruth, SliceSpec

CLASSES = ("gun", "knife")


def compare(
    pairs: list[tuple[str, bool, bool]], *, seed: int = 0, baseline_thresholds=(0.5, 0.5)
) -> PairedComparison:
    """Gun bags: (clutter, baseline hit, candidate hit); plus four quiet clean bags."""
    c = PairedComparison(
        CLASSES, (0.5, 0.5), baseline_thresholds, [SliceSpec.parse("clutter")], seed=seed
    )
    for i, (clutter, base_hit, cand_hit) in enumerate(pairs):
        t = BagTruth(f"b{i}", (f"b{i}.png",), {"clutter": clutter}, ((0, {}),))
        c.update(t, np.array([0.9 if cand_hit else 0.1, 0], np.float32),
                 np.array([0.9 if base_hit else 0.1, 0], np.float32))  # fmt: skip
    for i in range(4):
        t = BagTruth(f"c{i}", (f"c{i}.png",), {"clutter": "low"})
        c.update(t, np.array([0.0, 0.8 if i == 0 else 0.0], np.float32), np.zeros(2, np.float32))
    return c


def test_changes_per_slice_with_discordant_counts_and_images() -> None:
    pairs = [("high", True, False)] * 10 + [("high", True, True)] * 10 + [("low", False, True)]
    result = compare(pairs).compute()
    high = result.find("clutter=high", "pd", "gun")
    assert high is not None
    assert (high.total, high.down, high.up) == (20, 10, 0)
    assert (high.baseline, high.candidate, high.change) == (1.0, 0.5, -0.5)
    assert high.low <= -0.5 <= high.high < 0
    assert high.p_value == pytest.approx(2 / 1024)
    assert high.worse_images == tuple(f"b{i}.png" for i in range(10))
    low = result.find("clutter=low", "pd", "gun")
    assert low is not None and (low.down, low.up, low.worse_images) == (0, 1, ())
    pfa = result.find("all", "pfa", None)
    assert pfa is not None and (pfa.up, pfa.down, pfa.worse_images) == (1, 0, ("c0.png",))
    assert pfa.change == pytest.approx(0.25)
    assert result.find("clutter=high", "pd", "knife") is None  # no knife bags


def test_seeded_results_are_reproducible_and_independent_of_other_slices() -> None:
    pairs = [("high", True, False)] * 3 + [("high", True, True)] * 9 + [("low", True, True)] * 5
    a = compare(pairs, seed=3).compute()
    b = compare(pairs, seed=3).compute()
    assert a == b
    # Another slice's bags change nothing in this slice's interval (seeded per figure).
    c = compare(pairs + [("medium", False, True)] * 4, seed=3).compute()
    assert c.find("clutter=high", "pd", "gun") == a.find("clutter=high", "pd", "gun")


def test_identical_models_change_nothing() -> None:
    pairs = [("high", True, True)] * 6 + [("low", False, False)] * 6
    changes = [c for c in compare(pairs).compute().changes if c.metric == "pd"]
    assert len(changes) == 3  # all, clutter=high, clutter=low
    for change in changes:
        assert (change.change, change.low, change.high, change.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_a_class_the_baseline_lacks_is_named_not_compared() -> None:
    result = compare([("high", True, True)], baseline_thresholds=(0.5, float("nan"))).compute()
    assert result.missing_classes == ("knife",)
    assert all(c.class_name != "knife" for c in result.changes)


def test_wrong_shapes_are_refused() -> None:
    with pytest.raises(BadInputError):
        PairedComparison(CLASSES, (0.5,), (0.5, 0.5))
    c = PairedComparison(CLASSES, (0.5, 0.5), (0.5, 0.5))
    with pytest.raises(BadInputError, match="2 scores"):
        c.update(BagTruth("x", ("x",), {}), np.zeros(3, np.float32), np.zeros(2, np.float32))

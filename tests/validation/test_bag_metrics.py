"""Bag-level Pd and Pfa per slice at the operating point, with counts and evidence."""

from __future__ import annotations

import numpy as np
import pytest

from edge.errors import BadInputError
from edge.validation.bag_metrics import BagMetrics
from edge.validation.slices import BagTruth, SliceSpec

CLASSES = ("gun", "knife")
THRESHOLDS = (0.5, 0.3)


def truth(key: str, clutter: str, *classes: int) -> BagTruth:
    return BagTruth(key, (f"{key}.png",), {"clutter": clutter}, tuple((c, {}) for c in classes))


CASES = [
    # key, clutter, true classes, best scores (gun, knife)
    ("g1", "low", (0,), (0.9, 0.0)),  # gun hit
    ("g2", "high", (0,), (0.5, 0.0)),  # exactly at the threshold: no alarm (strictly above)
    ("k1", "high", (1,), (0.0, 0.31)),  # knife hit
    ("gk", "high", (0, 1), (0.7, 0.1)),  # gun hit, knife missed
    ("c1", "low", (), (0.0, 0.0)),  # clean, quiet
    ("c2", "high", (), (0.0, 0.35)),  # clean, knife false alarm
    ("c3", "high", (), (0.49, 0.29)),  # clean, just below both
]


@pytest.fixture
def metrics() -> BagMetrics:
    m = BagMetrics(CLASSES, THRESHOLDS, [SliceSpec.parse("clutter")])
    for key, clutter, classes, scores in CASES:
        m.update(truth(key, clutter, *classes), np.array(scores, np.float32))
    return m


def test_overall_pd_and_pfa_with_counts_and_evidence(metrics: BagMetrics) -> None:
    result = metrics.compute()
    assert (result.bags, result.threat_bags, result.clean_bags) == (7, 4, 3)
    overall = result.overall
    assert overall.name == "all"
    assert (overall.pd["gun"].hits, overall.pd["gun"].total) == (2, 3)
    assert (overall.pd["knife"].hits, overall.pd["knife"].total) == (1, 2)
    assert overall.pfa is not None and (overall.pfa.hits, overall.pfa.total) == (1, 3)
    assert overall.missed == {"gun": ("g2.png",), "knife": ("gk.png",)}
    assert overall.false_alarms == ("c2.png",)
    low, high = overall.pd["gun"].low, overall.pd["gun"].high
    assert 0 < low < 2 / 3 < high < 1


def test_per_slice_figures(metrics: BagMetrics) -> None:
    result = metrics.compute()
    high = result.find("clutter=high")
    assert high is not None and high.spec == "clutter"
    assert (high.pd["gun"].hits, high.pd["gun"].total) == (1, 2)
    assert high.pfa is not None and (high.pfa.hits, high.pfa.total) == (1, 2)
    low = result.find("clutter=low")
    assert low is not None and "knife" not in low.pd  # no knife bag there: no figure
    doc = result.as_json()
    assert doc["slices"][0]["pd"]["gun"]["total"] == 3
    assert doc["thresholds"] == {"gun": 0.5, "knife": pytest.approx(0.3)}


def test_no_bags_gives_an_empty_all_slice() -> None:
    result = BagMetrics(CLASSES, THRESHOLDS).compute()
    assert result.overall.name == "all" and result.overall.pd == {} and result.overall.pfa is None
    clean_only = BagMetrics(CLASSES, THRESHOLDS)
    clean_only.update(truth("c", "low"), np.zeros(2, np.float32))
    assert clean_only.compute().overall.pfa is not None


def test_wrong_score_count_is_refused() -> None:
    m = BagMetrics(CLASSES, THRESHOLDS)
    with pytest.raises(BadInputError, match="expected 2 scores"):
        m.update(truth("x", "low", 0), np.zeros(3, np.float32))
    with pytest.raises(BadInputError, match="one per class"):
        BagMetrics(CLASSES, (0.5,))

"""Wilson intervals, the exact McNemar test and the paired bootstrap, against hand-computed
figures."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from edge.errors import BadInputError
from edge.validation.stats import (
    binomial_cdf_half,
    mcnemar_exact,
    paired_bootstrap,
    rate,
    stable_seed,
    wilson_interval,
    z_value,
)

# Newcombe (1998), "Two-sided confidence intervals for the single proportion", table I,
# method 3 (Wilson score, no continuity correction), to 4 decimals; 0/10 and 5/10 by hand:
# z^2 = 3.841459, denominator 1 + z^2/n = 1.3841459, centre (p + z^2/2n) / denominator,
# half-width z sqrt(p(1-p)/n + z^2/4n^2) / denominator.
WILSON_CASES = [
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
    (0, 10, 0.0, 0.2775),  # centre = half = 0.138767
    (5, 10, 0.2366, 0.7634),  # centre 0.5, half 0.263408
    (10, 10, 0.7225, 1.0),
]


@pytest.mark.parametrize(("hits", "total", "low", "high"), WILSON_CASES)
def test_wilson_interval_matches_published_values(
    hits: int, total: int, low: float, high: float
) -> None:
    got = wilson_interval(hits, total)
    assert got == pytest.approx((low, high), abs=6e-5)


def test_wilson_interval_edges_and_refusals() -> None:
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    assert z_value(0.95) == pytest.approx(1.959964, abs=1e-6)
    narrow, wide = wilson_interval(50, 100, 0.8), wilson_interval(50, 100, 0.99)
    assert wide[0] < narrow[0] < 0.5 < narrow[1] < wide[1]
    r = rate(3, 4)
    assert (r.hits, r.total, r.value) == (3, 4, 0.75)
    assert r.as_json()["low"] == pytest.approx(r.low)
    assert rate(0, 0).as_json()["value"] is None
    for hits, total, confidence in [(5, 4, 0.95), (-1, 4, 0.95), (1, 4, 1.0), (1, 4, 0.0)]:
        with pytest.raises(BadInputError):
            wilson_interval(hits, total, confidence)


# p = min(1, 2 * sum_{i <= min(b, c)} C(b + c, i) / 2^(b + c)), worked by hand.
MCNEMAR_CASES = [
    (0, 0, 1.0),  # nothing changed
    (5, 0, 2 * 1 / 32),  # 0.0625: five of five one way is not yet significant at 0.05
    (0, 6, 2 * 1 / 64),  # 0.03125
    (3, 1, 2 * (1 + 4) / 16),  # 0.625
    (10, 2, 2 * (1 + 12 + 66) / 4096),  # 0.0385742...
    (4, 4, 1.0),  # 2 * P(X <= 4 of 8) = 2 * 163/256 > 1
    (1, 0, 1.0),  # 2 * 1/2
]


@pytest.mark.parametrize(("worse", "better", "expected"), MCNEMAR_CASES)
def test_exact_mcnemar_matches_hand_computed_binomial_tails(
    worse: int, better: int, expected: float
) -> None:
    assert mcnemar_exact(worse, better) == pytest.approx(expected, rel=1e-12)
    assert mcnemar_exact(better, worse) == pytest.approx(expected, rel=1e-12)  # two-sided


def test_binomial_tail_is_exact() -> None:
    assert binomial_cdf_half(2, 12) == Fraction(79, 4096)
    assert binomial_cdf_half(-1, 5) == 0 and binomial_cdf_half(5, 5) == 1
    assert sum(binomial_cdf_half(k, 7) - binomial_cdf_half(k - 1, 7) for k in range(8)) == 1
    # Large n stays exact and finite (no float underflow in the sum).
    assert 0 < mcnemar_exact(600, 400) < 1e-9
    with pytest.raises(BadInputError):
        mcnemar_exact(-1, 3)


def test_paired_bootstrap_is_deterministic_for_a_seed() -> None:
    def interval(seed: int, name: str, rounds: int = 2000) -> tuple[float, float]:
        return paired_bootstrap(
            4, 1, 30, rounds=rounds, confidence=0.95, seed=stable_seed(seed, name)
        )

    first = interval(7, "class=gun|pd")
    assert interval(7, "class=gun|pd") == first
    # With few rounds the ends move with the seed (with many they settle on the same bags).
    assert len({interval(seed, "class=gun|pd", rounds=25) for seed in range(6)}) > 1
    low, high = first
    assert low < -3 / 30 < high  # the observed change lies inside its interval
    assert stable_seed(7, "a") == stable_seed(7, "a") != stable_seed(7, "b")


def test_paired_bootstrap_equals_resampling_the_bags() -> None:
    # The multinomial shortcut has the distribution of resampling bag indices: compare the
    # interval with a brute-force index bootstrap (20,000 rounds each).
    diffs = np.array([-1] * 6 + [1] * 2 + [0] * 32)
    rng = np.random.default_rng(1)
    brute = diffs[rng.integers(0, len(diffs), size=(20000, len(diffs)))].mean(axis=1)
    expected = np.quantile(brute, [0.025, 0.975])
    got = paired_bootstrap(6, 2, 40, rounds=20000, confidence=0.95, seed=2)
    assert got == pytest.approx(tuple(expected), abs=0.0126)  # within half a bag of 40


def test_paired_bootstrap_edges() -> None:
    assert paired_bootstrap(0, 0, 25, rounds=500, confidence=0.95, seed=0) == (0.0, 0.0)
    assert all(math.isnan(x) for x in paired_bootstrap(0, 0, 0, rounds=10, confidence=0.9, seed=0))
    assert paired_bootstrap(5, 0, 5, rounds=100, confidence=0.95, seed=0) == (-1.0, -1.0)
    with pytest.raises(BadInputError):
        paired_bootstrap(3, 3, 5, rounds=100, confidence=0.95, seed=0)
    with pytest.raises(BadInputError):
        paired_bootstrap(0, 0, 5, rounds=0, confidence=0.95, seed=0)

"""Small-sample statistics for bag-level rates: Wilson intervals, the exact McNemar test and
a seeded paired bootstrap of the change in a rate. Pure functions, numpy only."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from fractions import Fraction
from statistics import NormalDist

import numpy as np

from edge.errors import BadInputError


def z_value(confidence: float) -> float:
    """The two-sided standard-normal quantile for a confidence level (0.95 -> 1.95996...)."""
    if not 0.0 < confidence < 1.0:
        raise BadInputError(f"confidence: expected 0 < c < 1, got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


@dataclass(frozen=True)
class Rate:
    """`hits` of `total`, its value (NaN when total is 0) and Wilson interval [low, high]."""

    hits: int
    total: int
    value: float
    low: float
    high: float

    def as_json(self) -> dict[str, float | int | None]:
        def finite(x: float) -> float | None:
            return None if math.isnan(x) else x

        return {
            "hits": self.hits,
            "total": self.total,
            "value": finite(self.value),
            "low": finite(self.low),
            "high": finite(self.high),
        }


def wilson_interval(hits: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion; (nan, nan) when total is 0.

    centre = (p + z^2/2n) / (1 + z^2/n), half = z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n).
    """
    if total < 0 or not 0 <= hits <= max(total, 0):
        raise BadInputError(f"rate: expected 0 <= hits <= total, got {hits} of {total}")
    if total == 0:
        return math.nan, math.nan
    z = z_value(confidence)
    p = hits / total
    z2 = z * z
    denom = 1.0 + z2 / total
    centre = (p + z2 / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total)) / denom
    # Exact ends: at p = 0 (or 1) the interval touches 0 (or 1); rounding must not leave a gap.
    low = 0.0 if hits == 0 else max(0.0, centre - half)
    high = 1.0 if hits == total else min(1.0, centre + half)
    return low, high


def rate(hits: int, total: int, confidence: float = 0.95) -> Rate:
    low, high = wilson_interval(hits, total, confidence)
    return Rate(hits, total, hits / total if total else math.nan, low, high)


def binomial_cdf_half(k: int, n: int) -> Fraction:
    """P(X <= k) for X ~ Binomial(n, 1/2), exactly: sum_{i<=k} C(n, i) / 2^n."""
    if n < 0:
        raise BadInputError(f"binomial: expected n >= 0, got {n}")
    if k < 0:
        return Fraction(0)
    if k >= n:
        return Fraction(1)
    return Fraction(sum(math.comb(n, i) for i in range(k + 1)), 2**n)


def mcnemar_exact(worse: int, better: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs.

    `worse`: pairs where only the first (baseline) hit; `better`: only the second. Under
    the null each discordant pair goes either way with probability 1/2, so
    p = min(1, 2 P(X <= min(worse, better))), X ~ Binomial(worse + better, 1/2); 1.0 when
    there are no discordant pairs.
    """
    if worse < 0 or better < 0:
        raise BadInputError(f"McNemar: expected counts >= 0, got {worse} and {better}")
    n = worse + better
    if n == 0:
        return 1.0
    return float(min(Fraction(1), 2 * binomial_cdf_half(min(worse, better), n)))


def stable_seed(seed: int, name: str) -> list[int]:
    """A seed sequence for one named quantity: the same for the same (seed, name) whatever
    else is computed, in whatever order."""
    return [seed & 0xFFFFFFFF, zlib.crc32(name.encode("utf-8"))]


def paired_bootstrap(
    worse: int,
    better: int,
    total: int,
    *,
    rounds: int,
    confidence: float,
    seed: list[int] | int,
) -> tuple[float, float]:
    """Percentile interval of the change in a rate over `total` paired items.

    Each item changes by -1 (`worse`), +1 (`better`) or 0. Resampling the items with
    replacement, the resample's change is (#better - #worse) / total, where the counts are
    multinomial: drawn as such, which is the same distribution as resampling indices and
    costs O(rounds) instead of O(rounds * total). (nan, nan) when total is 0.
    """
    if rounds < 1:
        raise BadInputError(f"bootstrap rounds: expected >= 1, got {rounds}")
    if total < worse + better or min(worse, better) < 0:
        raise BadInputError(
            f"bootstrap: expected worse + better <= total, got {worse} + {better} > {total}"
        )
    if total == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    probs = [worse / total, better / total, (total - worse - better) / total]
    counts = rng.multinomial(total, probs, size=rounds)
    changes = (counts[:, 1] - counts[:, 0]) / total
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(changes, [tail, 1.0 - tail])
    return float(low), float(high)

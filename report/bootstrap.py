"""The percentile bootstrap over a handful of seeds, computed exactly.

With n seeds, a bootstrap resample is a multiset of n draws with replacement: there are C(2n-1, n) of
them (2 seeds: 3; 3 seeds: 10; 5: 126; 10: 92,378), each with the multinomial probability
n! / (prod of c_i!) / n^n, c_i the times seed i is drawn. For the 2-3 seeds a full-size benchmark can
afford, the bootstrap distribution of a statistic is therefore enumerated, not sampled: the same data
always give the same interval, and its coarseness is visible (3 seeds can only produce a few distinct
medians) instead of being dressed up by thousands of random draws. Above EXACT_MAX_SEEDS seeds, seeded
random resamples approximate it, and `Distribution.exact` says so.

The interval is the percentile interval of the (discrete) distribution: its lower and upper
(1 - level) / 2 quantiles, a quantile q being the smallest value whose cumulative probability is >= q.
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from itertools import combinations_with_replacement
from math import factorial, prod
from typing import Callable, Sequence, TypeVar

T = TypeVar("T")
EXACT_MAX_SEEDS = 10
RESAMPLES = 20_000  # only above EXACT_MAX_SEEDS
LEVEL = 0.95
MIN_SEEDS = 2  # one seed resamples to itself: no interval


@dataclass(frozen=True)
class Distribution:
    """A statistic's bootstrap distribution: value -> probability (the probabilities sum to 1)."""

    probabilities: dict[float, float]
    exact: bool

    def quantile(self, q: float) -> float:
        cumulative = 0.0
        for value in sorted(self.probabilities):
            cumulative += self.probabilities[value]
            if cumulative >= q - 1e-12:
                return value
        return max(self.probabilities)

    def interval(self, level: float = LEVEL) -> tuple[float, float]:
        tail = (1 - level) / 2
        return self.quantile(tail), self.quantile(1 - tail)


def resample_weight(counts: Sequence[int], n: int) -> float:
    """Probability of drawing a multiset with these multiplicities in n draws from n items."""
    return factorial(n) / prod(factorial(c) for c in counts) / n ** n


def distribution(items: Sequence[T], statistic: Callable[[list[T]], float]) -> Distribution:
    """The bootstrap distribution of `statistic` over resamples of `items` (exact up to
    EXACT_MAX_SEEDS items, else RESAMPLES seeded draws)."""
    n = len(items)
    if n == 0:
        raise ValueError("a bootstrap needs at least one item")
    out: dict[float, float] = {}
    if n <= EXACT_MAX_SEEDS:
        for combo in combinations_with_replacement(range(n), n):
            value = statistic([items[i] for i in combo])
            out[value] = out.get(value, 0.0) + resample_weight(list(Counter(combo).values()), n)
        return Distribution(out, True)
    rng = random.Random(0)
    for _ in range(RESAMPLES):
        value = statistic([items[rng.randrange(n)] for _ in range(n)])
        out[value] = out.get(value, 0.0) + 1 / RESAMPLES
    return Distribution(out, False)


def ratio_distribution(numerator: Distribution, denominator: Distribution) -> Distribution:
    """numerator / denominator for independent resamples (each cell's seeds resampled on their own)."""
    out: dict[float, float] = {}
    for a, pa in numerator.probabilities.items():
        for b, pb in denominator.probabilities.items():
            out[a / b] = out.get(a / b, 0.0) + pa * pb
    return Distribution(out, numerator.exact and denominator.exact)

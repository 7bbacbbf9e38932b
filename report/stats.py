"""The verdicts' statistical tests, each exact for the handful of seeds a full-size benchmark can afford,
each with its operating characteristics known (tests/test_report_rules.py simulates them).

- `noninferior`: (A), "did the blog's run end at the blog's figure?" The mean of the seeds' final values
  of the blog's own metric must lie within a stated margin of the published figure. With seed-to-seed
  spread sigma and n seeds the mean is ~N(mu, sigma / sqrt(n)), so a faithful reproduction (mu = the
  figure) passes with probability Phi(margin sqrt(n) / sigma) and one a margin worse than the margin
  (mu = figure - 2 margin) with Phi(-margin sqrt(n) / sigma): `pass_rates` gives both by simulation.
- `rank_test`: (B), "is the blog's run faster?" A one-sided exact permutation test of Gehan's
  generalized Wilcoxon statistic on epochs-to-target (Gehan 1965, Biometrika 52:203), which scores each
  pair of seeds +1 / -1 only when their order is known: a seed that never reached the target (censored at
  its budget) is later than a seed that reached it at or before that budget, and unordered against one
  that reached it after. All C(n + m, n) relabellings are enumerated, so p is exact; its smallest value
  is 1 / C(n + m, n) (3 vs 3 seeds: 1/20 = 0.05; 2 vs 2: 1/6, which no 5% test can pass).
- `median_interval`: a distribution-free interval for a median from order statistics (x_(k), x_(n-k+1))
  with coverage 1 - 2 P(Bin(n, 1/2) < k), the largest k reaching LEVEL; with n <= 5 seeds no k does, and
  the interval is the range of the seeds, reported with its true coverage (1 - 2^(1-n): 75% at 3 seeds,
  50% at 2).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import Sequence

import numpy as np

ALPHA = 0.05  # the level of every test a verdict reads
LEVEL = 0.95  # the coverage an interval aims for
SIMULATIONS = 20_000


def noninferior(values: Sequence[float], figure: float, margin: float, mode: str) -> bool:
    """The seeds' mean final value is no worse than `figure` by more than `margin` (max: higher better)."""
    mean = sum(values) / len(values)
    return mean >= figure - margin if mode == "max" else mean <= figure + margin


def pass_rates(figure: float, margin: float, spread: float, mode: str, seeds: int,
               simulations: int = SIMULATIONS, seed: int = 0) -> tuple[float, float]:
    """(share of faithful reproductions that pass, share of clearly worse ones that fail), simulated:
    `seeds` final values drawn from N(figure, spread), then from N(figure -/+ 2 margin, spread)."""
    rng = np.random.default_rng(seed)
    worse = figure - 2 * margin if mode == "max" else figure + 2 * margin
    out = []
    for centre in (figure, worse):
        draws = rng.normal(centre, spread, size=(seeds, simulations))
        # The one rule, applied to every simulated reproduction at once: each seed is a row of draws.
        out.append(float(np.mean(noninferior(list(draws), figure, margin, mode))))
    return out[0], 1.0 - out[1]


def _order(a: tuple[float, bool], b: tuple[float, bool]) -> int:
    """+1 when seed a certainly reached the target after seed b, -1 before, 0 when unknown. A censored
    value c means 'not reached within c epochs': later than any reach at or before c."""
    (va, ca), (vb, cb) = a, b
    if not ca and not cb:
        return (va > vb) - (va < vb)
    if ca and not cb:
        return 1 if vb <= va else 0
    if cb and not ca:
        return -1 if va <= vb else 0
    return 0


@dataclass(frozen=True)
class RankTest:
    p: float  # one-sided: the first group reaches the target sooner
    min_p: float  # the smallest p these seed counts can give
    seeds: tuple[int, int]

    @property
    def can_pass(self) -> bool:
        return self.min_p <= ALPHA + 1e-12

    @property
    def passed(self) -> bool:
        return self.p <= ALPHA + 1e-12


def rank_test(faster: Sequence[tuple[float, bool]], slower: Sequence[tuple[float, bool]]) -> RankTest:
    """Exact one-sided Gehan permutation test that `faster`'s (epochs, censored) pairs come earlier."""
    pooled = list(faster) + list(slower)
    n, total = len(faster), len(pooled)
    # Each seed's score: how many seeds it certainly precedes minus how many certainly precede it.
    scores = [sum(-_order(x, y) for y in pooled) for x in pooled]
    observed = sum(scores[:n])
    subsets = list(combinations(range(total), n))
    hits = sum(1 for s in subsets if sum(scores[i] for i in s) >= observed - 1e-9)
    return RankTest(hits / len(subsets), 1 / math.comb(total, n), (n, total - n))


def fmt_rank_test(t: RankTest) -> str:
    level = f"{ALPHA:.0%}"
    if not t.can_pass:
        return (f"p = {t.p:.3g}, exact rank test ({t.seeds[0]} vs {t.seeds[1]} seeds: its smallest p is "
                f"{t.min_p:.3g} > {level}, too few seeds to resolve)")
    return f"p = {t.p:.3g}, exact rank test ({t.seeds[0]} vs {t.seeds[1]} seeds, smallest p {t.min_p:.3g})"


def _below(k: int, n: int) -> float:
    """P(Bin(n, 1/2) < k)."""
    return sum(math.comb(n, i) for i in range(k)) / 2 ** n


@dataclass(frozen=True)
class MedianInterval:
    low: float
    high: float
    coverage: float  # the probability the interval holds the median (continuous values)
    is_range: bool  # the range of the seeds: no narrower order-statistic interval reaches LEVEL


def median_interval(values: Sequence[float], level: float = LEVEL) -> MedianInterval | None:
    """Order-statistic interval for the median of `values` (a censored seed enters at its budget: the
    interval's end is then a bound). None with fewer than 2 values."""
    n = len(values)
    if n < 2:
        return None
    ordered = sorted(values)
    k = 1
    while k + 1 <= n // 2 and 1 - 2 * _below(k + 1, n) >= level:
        k += 1
    return MedianInterval(ordered[k - 1], ordered[n - k], 1 - 2 * _below(k, n), k == 1)

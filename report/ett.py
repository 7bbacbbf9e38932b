"""Epochs-to-target statistics: per seed, per cell (censoring-aware median) and speed-ups.

Pure functions on plain data (numbers, dicts), so each rule is testable without any record on disk.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from results.targets import Target, epochs_to_target
from results.targets import seed_epochs_to_target as shared_seed_ett

from .bootstrap import MIN_SEEDS, distribution, ratio_distribution
from .stats import MedianInterval, RankTest, median_interval, rank_test

# Up to this many seeds in a cell, the bootstrap's 2.5% and 97.5% quantiles are its extreme seeds (3
# seeds: each resample's median is the smallest seed with probability 7/27 > 2.5%): the "interval" is
# the range, and is labelled so.
RANGE_MAX_SEEDS = 3

@dataclass(frozen=True)
class SeedETT:
    """One seed's epochs-to-target. When `censored`, `value` is the budget it was not reached within."""

    value: int
    censored: bool
    probes: int  # runs behind this seed (1cycle: budgets probed), diverged ones included
    budget: int  # the task's max budget: the bound a miss is censored at
    non_monotone: bool = False  # a 1cycle budget met the target but a larger one did not


def with_target(run: Mapping, target: Target) -> dict:
    """The run's status as if its target were `target`: the outcome recomputed from its metrics rows,
    the way the engine records it (first epoch meeting it; met at the end of the budget)."""
    rows = run.get("metrics") or []
    return {**run, "epochs_to_target": epochs_to_target(rows, target),
            "target_met_at_end": bool(rows) and target.is_met(rows[-1].get(target.metric))}


def _non_monotone(runs: Sequence[Mapping], first_hit: int | None) -> bool:
    if first_hit is None or all(r.get("budget_free") for r in runs):
        return False
    return any(int(r["epochs"]) > first_hit and r.get("status") == "completed"
               and not r.get("target_met_at_end") for r in runs)


def seed_ett(runs: Sequence[Mapping], target: Target | None = None) -> SeedETT:
    """ETT of one seed of one cell, by the shared rule `results.targets.seed_epochs_to_target`
    (budget-free: first epoch at the target in the longest run; 1cycle: smallest budget met at its end;
    a miss censored at the task's max budget). `runs` are status dicts; with `target` they also carry
    `metrics` rows and the outcome is recomputed for that target (the target-sensitivity plot).
    A seed whose runs all diverged is a miss (the shared rule counts completed runs only)."""
    if not runs:
        raise ValueError("seed_ett needs at least one run")
    if target is not None:
        runs = [with_target(r, target) for r in runs]
    max_epochs = max(int(r.get("max_epochs", r["epochs"])) for r in runs)
    try:
        result = shared_seed_ett(runs)
    except ValueError:  # no completed run: each diverged, none reached the target
        return SeedETT(max_epochs, True, len(runs), max_epochs)
    value = result.max_epochs if result.censored else int(result.epochs)
    return SeedETT(value, result.censored, len(runs), result.max_epochs,
                   _non_monotone(runs, result.epochs))


def km_median(values: Sequence[float], censored: Sequence[bool]) -> float | None:
    """Kaplan–Meier median time-to-target: the first time at which the estimated share of seeds that
    have not yet reached the target drops below 0.5; where the curve sits exactly at 0.5, the midpoint
    of that flat stretch — up to the next time a seed reached it, or, when none did, to the last time
    observed (R survival's quantile.survfit, `findq`; the ordinary median's rule: seeds at 4 and 6 give
    5, not the faster seed's 4). None when the curve stays above 0.5 (too many misses). A seed censored
    at t counts as 'still running' up to and including t, as KM prescribes."""
    survival, at_half = 1.0, None
    pairs = list(zip(values, censored))
    for time in sorted({v for v, c in pairs if not c}):
        if at_half is not None:
            return (at_half + time) / 2
        events = sum(1 for v, c in pairs if v == time and not c)
        at_risk_now = sum(1 for v, _ in pairs if v >= time)
        survival *= 1.0 - events / at_risk_now
        if abs(survival - 0.5) <= 1e-12:
            at_half = float(time)
        elif survival < 0.5:
            return float(time)
    return None if at_half is None else (at_half + float(max(values))) / 2


@dataclass(frozen=True)
class CellSummary:
    """Epochs-to-target of one (task, optimizer, schedule) cell over its seeds."""

    median: float | None  # None: undefined (fewer than half the seeds reached); shown "> budget"
    budget: int  # the largest censoring budget, the bound an undefined median is shown against
    low: int
    high: int
    high_censored: bool  # the max is a miss: shown "> high"
    reached: int
    seeds: int
    probes: int

    @property
    def median_or_budget(self) -> float:
        return self.budget if self.median is None else self.median


def summarise_cell(seeds: Sequence[SeedETT]) -> CellSummary:
    values = [s.value for s in seeds]
    flags = [s.censored for s in seeds]
    hit_values = [v for v, c in zip(values, flags) if not c]
    miss_values = [v for v, c in zip(values, flags) if c]
    high = max(values)
    return CellSummary(median=km_median(values, flags), budget=max(s.budget for s in seeds),
                       low=min(hit_values) if hit_values else min(values),
                       high=high, high_censored=high in miss_values,
                       reached=len(hit_values), seeds=len(seeds), probes=sum(s.probes for s in seeds))


@dataclass(frozen=True)
class SpeedUp:
    """Baseline median over cell median (> 1: the cell needs fewer epochs)."""

    ratio: float | None
    low: float | None  # exact bootstrap percentile interval over seeds (report/bootstrap.py); None: < 2 seeds
    high: float | None
    bound: str  # "": estimate; ">=": baseline median censored (lower bound); "<=": cell censored
    seeds: tuple[int, int] = (0, 0)  # (cell, baseline): printed beside the interval
    exact: bool = True  # False: the interval came from random resamples (more than 10 seeds)
    test: RankTest | None = None  # is the cell faster? (report/stats.py: exact, censoring-aware)

    @property
    def is_range(self) -> bool:
        """With <= RANGE_MAX_SEEDS seeds in a cell the interval is the range of the seeds' ratios."""
        return min(self.seeds) <= RANGE_MAX_SEEDS


def censored_median(seeds: Sequence[SeedETT]) -> float:
    median = km_median([s.value for s in seeds], [s.censored for s in seeds])
    # Undefined: the largest censoring budget stands in (a median is never known to exceed it).
    return max(s.value for s in seeds if s.censored) if median is None else median


def pairs(seeds: Sequence[SeedETT]) -> list[tuple[float, bool]]:
    return [(s.value, s.censored) for s in seeds]


def speed_up(cell: Sequence[SeedETT], baseline: Sequence[SeedETT]) -> SpeedUp:
    """Ratio of KM medians with the percentile-bootstrap interval, each cell's seeds resampled on their
    own, computed exactly by enumerating the resamples, and the exact rank test of 'the cell is faster'.
    An undefined median uses its budget, so the ratio becomes a bound, as `bound` says. No interval
    unless both cells have 2 seeds or more."""
    if not cell or not baseline:
        return SpeedUp(None, None, None, "")
    c_med = km_median([s.value for s in cell], [s.censored for s in cell])
    b_med = km_median([s.value for s in baseline], [s.censored for s in baseline])
    seeds = (len(cell), len(baseline))
    test = rank_test(pairs(cell), pairs(baseline))
    if c_med is None and b_med is None:
        return SpeedUp(None, None, None, "", seeds, test=test)
    bound = ">=" if b_med is None else ("<=" if c_med is None else "")
    ratio = censored_median(baseline) / censored_median(cell)
    if min(seeds) < MIN_SEEDS:
        return SpeedUp(ratio, None, None, bound, seeds, test=test)
    dist = ratio_distribution(distribution(baseline, censored_median), distribution(cell, censored_median))
    low, high = dist.interval()
    return SpeedUp(ratio, low, high, bound, seeds, dist.exact, test)


def fmt_epochs(value: float | None, budget: int) -> str:
    if value is None:
        return f"> {budget}"
    return f"{value:g}"


def fmt_cell(summary: CellSummary) -> str:
    """'median [min–max] k/n', e.g. '3 [2–>8] 2/3'; a censored extreme shows as '>budget'."""
    high = f">{summary.high}" if summary.high_censored else f"{summary.high}"
    if summary.reached == 0:
        spread = f"[{high}]"
    elif high == f"{summary.low}":
        spread = f"[{summary.low}]"
    else:
        spread = f"[{summary.low}–{high}]"
    return f"{fmt_epochs(summary.median, summary.budget)} {spread} {summary.reached}/{summary.seeds}"


def fmt_seeds(cell: int, baseline: int) -> str:
    return f"{cell} vs {baseline} seeds"


def fmt_speed_up(s: SpeedUp) -> str:
    """'3.00× [2.00–4.50 range] (3 vs 3 seeds)' (up to 3 seeds a cell the bootstrap interval is the range
    of the seeds' ratios, and says so) or '… [2.10–4.00 95% bootstrap] (5 vs 5 seeds)'; one seed in
    either cell: no interval, and it says so."""
    if s.ratio is None:
        return "—"
    prefix = {">=": "≥ ", "<=": "≤ "}.get(s.bound, "")
    seeds = fmt_seeds(*s.seeds)
    if s.low is None:
        return f"{prefix}{s.ratio:.2f}× ({seeds}: no interval)"
    what = "range" if s.is_range else "95% bootstrap" + ("" if s.exact else ", sampled")
    return f"{prefix}{s.ratio:.2f}× [{s.low:.2f}–{s.high:.2f} {what}] ({seeds})"


def median_ci(seeds: Sequence[SeedETT]) -> MedianInterval | None:
    """Distribution-free order-statistic interval of a cell's median epochs-to-target with its true
    coverage (report/stats.py; up to 5 seeds: the range); a censored seed enters at its budget, so an
    end at a censored value is a bound. None with fewer than 2 seeds."""
    return median_interval([s.value for s in seeds])


def coverage_text(ci: MedianInterval) -> str:
    """'range, 75% coverage' (no narrower interval reaches 95%) or 'interval, 97% coverage'."""
    return f"{'range' if ci.coverage < 0.95 - 1e-9 else 'interval'}, {ci.coverage:.0%} coverage"

"""Budget search for budget-dependent schedules (1cycle): the smallest integer budget B whose run *ends*
at the target, found with as few real runs ("probes") as the search allows.

Monotonicity assumption: if a run with budget B ends at the target, so does every run with a larger
budget (same task, optimizer, schedule shape, seed). Under it a geometric ladder finds a bracket
(last miss, first hit] and a bisection inside it finds B exactly. When it does not hold (seed noise near
the threshold), the answer is still a budget that hits whose bracketing lower probe missed, and every
probe is returned so that a reader can see the non-monotone pairs.

Pure: `reaches(budget) -> bool` is the only effect; the grid wraps a real, cached, resumable run in it
(and its plan a recorded or assumed outcome: runners/grid/job.py DryRunner).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Probe:
    budget: int
    hit: bool
    phase: str  # ladder | bisect


@dataclass(frozen=True)
class SearchResult:
    """`budget` None: censored (not reached even at `max_budget`)."""

    budget: int | None
    max_budget: int
    probes: tuple[Probe, ...]

    @property
    def censored(self) -> bool:
        return self.budget is None


def ladder(max_budget: int, start: int = 1, factor: float = 2.0) -> list[int]:
    """start, start*factor, ... (integers, strictly increasing), always ending at max_budget."""
    if max_budget < 1 or start < 1 or factor <= 1:
        raise ValueError(f"need max_budget >= 1, start >= 1, factor > 1 (got {max_budget}, {start}, "
                         f"{factor})")
    rungs, rung = [], min(start, max_budget)
    while rung < max_budget:
        rungs.append(rung)
        rung = max(rung + 1, math.ceil(rung * factor))
    return rungs + [max_budget]


def search_budget(reaches: Callable[[int], bool], max_budget: int, start: int = 1,
                  factor: float = 2.0) -> SearchResult:
    """Climb the ladder until the first hit, then bisect between the last miss and that hit.

    Probes: the ladder rungs up to the first hit, plus at most ceil(log2(hit - last_miss)) bisection
    probes (< ceil(log2(max_budget)))."""
    probes: list[Probe] = []

    def probe(budget: int, phase: str) -> bool:
        hit = bool(reaches(budget))
        probes.append(Probe(budget, hit, phase))
        return hit

    miss, hit = 0, None  # invariant: `miss` missed (0: nothing below the first rung is known), `hit` hit
    for rung in ladder(max_budget, start, factor):
        if probe(rung, "ladder"):
            hit = rung
            break
        miss = rung
    if hit is None:
        return SearchResult(None, max_budget, tuple(probes))
    floor = max(miss, start - 1)  # budgets below the first rung are never tried
    while hit - floor > 1:
        middle = (floor + hit) // 2
        if probe(middle, "bisect"):
            hit = middle
        else:
            floor = middle
    return SearchResult(hit, max_budget, tuple(probes))


"""What a tuning trial measures: the one definition of its score, shared by the tuner and the report.

Lower is always better (the studies minimise):
- a budget-free schedule (constant, step, NT-ASGD) runs once with stop-at-target; its score is the
  epochs to the validation target. A miss is worse than any hit: max_epochs + 1 + a badness in (0, 1)
  that orders the misses by their final metric (a diverged run is the worst miss);
- 1cycle runs at the tuning budget; its LR depends on that budget, so only the end counts: the score is
  the final validation metric (negated when higher is better).
"""
from __future__ import annotations

import math
from typing import Mapping

from .targets import Target


def trial_suite(suite: str) -> str:
    """The suite a suite's tuning trials are recorded under (runs/<suite>-tuning/): apart from its
    grid's runs, which its report counts."""
    return f"{suite}-tuning"


def badness(final: float | None, target: Target) -> float:
    """In (0, 1], increasing as `final` moves away from the target's good side; 1 for no finite value.
    x / (x + value) is monotone for positive metrics (accuracies, perplexities, losses)."""
    if final is None or not math.isfinite(final) or final < 0:
        return 1.0
    ratio = final / (final + target.value) if final + target.value > 0 else 0.5
    return min(1.0, max(1e-9, 1.0 - ratio if target.mode == "max" else ratio))


def trial_score(status: Mapping, rows: list[Mapping] | None = None) -> float | None:
    """The score of a finished trial run from its status.json (its target is the validation target it
    ran with); None while it runs, when it failed, or when the pruner stopped it."""
    state = status.get("status")
    if state not in ("completed", "diverged"):
        return None
    target = Target.from_mapping(status["target"])
    final = (status.get("final") or {}).get(target.metric)
    if rows and final is None:
        final = rows[-1].get(target.metric)
    if status.get("budget_free"):
        reached = status.get("epochs_to_target") if state == "completed" else None
        if reached is not None:
            return float(reached)
        return float(status["max_epochs"]) + 1.0 + badness(None if state == "diverged" else final, target)
    if state == "diverged" or final is None or not math.isfinite(final):
        return math.inf
    return -float(final) if target.mode == "max" else float(final)


def intermediate_value(row: Mapping, target: Target) -> float | None:
    """What the pruner compares at an epoch: the validation metric, lower better (as the score)."""
    value = row.get(target.metric)
    if value is None or not math.isfinite(value):
        return None
    return -float(value) if target.mode == "max" else float(value)

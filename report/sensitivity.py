"""Target sensitivity: epochs-to-target recomputed from the metrics as the target moves."""
from __future__ import annotations

import numpy as np

from results.targets import Target

from .analysis import Analysis, seed_runs
from .ett import km_median, seed_ett

POINTS = 13


def target_range(analysis: Analysis, task: str, points: int = POINTS) -> list[float]:
    """From an easier value (the lower quartile of the runs' best, or the target if easier still) to the
    best value any run reached, through the task's target: the span where a ranking could change."""
    target = analysis.targets[task]
    runs = analysis.records.runs
    bests = runs.loc[(runs["task"] == task) & (runs["recipe"] == ""), "best_metric"].dropna().astype(float).to_numpy()
    if bests.size == 0:
        return [target.value]
    if target.mode == "max":
        easy, hard = min(target.value, float(np.quantile(bests, 0.25))), float(bests.max())
    else:
        easy, hard = max(target.value, float(np.quantile(bests, 0.75))), float(bests.min())
    values = set(np.linspace(easy, hard, points).round(6).tolist()) | {target.value}
    return sorted(values, reverse=target.mode == "min")  # easy to hard, left to right


def sensitivity(analysis: Analysis, task: str) -> tuple[list[float], dict[str, list[float | None]]]:
    """For each target value, each cell's median epochs-to-target (None: undefined, fewer than half
    the seeds reached). Budget-free runs are recomputed exactly from their epochs; 1cycle probes by
    whether each budget's final metric meets the moved target."""
    base = analysis.targets[task]
    values = target_range(analysis, task)
    runs = analysis.records.runs
    curves: dict[str, list[float | None]] = {}
    for cell in analysis.task_cells(task):
        group = runs[runs["path"].isin({str(p) for p in cell.run_paths})]  # the cell's own (a tuned: its tuned)
        by_seed = seed_runs(group, analysis.records.metrics)
        medians = []
        for value in values:
            moved = Target(base.metric, value, base.mode)
            seeds = [seed_ett(r, moved) for r in by_seed.values()]
            medians.append(km_median([s.value for s in seeds], [s.censored for s in seeds]))
        curves[cell.label] = medians
    return values, curves

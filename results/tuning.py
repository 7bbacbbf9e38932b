"""What a tuning trial measures: the one definition of its score, shared by the tuner and the report.

One quantity for every trial of every study: the validation metric at the end of the tuning budget
(negated when higher is better, so that lower is always better — the studies minimise). Every trial,
whatever its schedule, runs exactly that budget (runners/grid/tuning.py trial_budget: the claim's epochs), never
stopped at the target. For a budget-dependent schedule (1cycle, cosine, WSD) its end is where its LR has
decayed; for a budget-free one (constant, step, NT-ASGD, Schedule-Free's warmup) it is the metric its
schedule reaches in that many epochs — NT-ASGD's and Schedule-Free's evaluation weights, as every
per-epoch metric of theirs. Scoring budget-free trials on epochs-to-target and the others on a metric
would rank two different quantities, and favour whichever is easier to win in every tuned comparison.
A diverged trial, or one with no finite final metric, scores +inf: the worst.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from typing import Callable, Mapping

from . import records
from .layout import TUNING_SUFFIX
from .targets import Target


def trial_suite(suite: str) -> str:
    """The suite a suite's tuning trials are recorded under (runs/<suite>-tuning/): apart from its
    grid's runs, which its report counts."""
    return f"{suite}{TUNING_SUFFIX}"


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
    if state == "diverged" or final is None or not math.isfinite(final):
        return math.inf
    return -float(final) if target.mode == "max" else float(final)


def recorded_score(status: Mapping) -> float | None:
    """A finished trial's score as its status.json holds it: JSON has no infinity, so a scored trial's
    null is +inf (diverged); None for a pruned (or unfinished) trial."""
    if status.get("status") not in ("completed", "diverged"):
        return None
    score = status.get("score")
    return math.inf if score is None else float(score)


def trial_record(results_dir: str | os.PathLike, suite: str, run_id: str | None) -> dict | None:
    """The status of a trial's run when its record vouches for it — there, finished, whole (its metrics
    and config agree with it: records.check_finished) — else None."""
    if not run_id:
        return None
    try:
        status, _ = records.read_run(records.run_dir(results_dir, trial_suite(suite), run_id))
    except records.CorruptRecord:
        return None
    return status if status and status["status"] in records.FINAL_STATUSES else None


def vouched_runs(trials: list, run_id: Callable[[dict], str], results_dir: str | os.PathLike,
                 suite: str) -> tuple[dict, list[dict]]:
    """Which finished trials of an Optuna study their runs vouch for. A COMPLETE or PRUNED trial counts
    when its run is the one the protocol makes for its parameters (`run_id`), and that run's record is
    there, whole (trial_record) and agrees on pruned or not. Returns (run id -> (its first vouched trial,
    its run's status); the parameters of the other finished trials, each run once, in trial order, unless
    its run is vouched for or on its way). Optuna cannot reopen a finished trial: the caller queues these
    again, and the rerun is the same run. Runs, not trials, count: a trial and its rerun are one run."""
    counted, pending, distrusted = {}, set(), []
    for t in trials:  # on their way: running, or queued (a queued trial's parameters are fixed_params)
        params = t.params or t.system_attrs.get("fixed_params") or {}
        if t.state.name in ("RUNNING", "WAITING") and "lr" in params:
            pending.add(run_id(params))
    for t in sorted((t for t in trials if t.state.name in ("COMPLETE", "PRUNED")), key=lambda t: t.number):
        rid = run_id(t.params)
        status = trial_record(results_dir, suite, rid) if t.user_attrs.get("run_id") == rid else None
        if status and (t.state.name == "PRUNED") == (status["status"] == "pruned"):
            counted.setdefault(rid, (t, status))
        elif rid not in pending:
            pending.add(rid)
            distrusted.append((rid, t.params))
    return counted, [params for rid, params in distrusted if rid not in counted]


def intermediate_value(row: Mapping, target: Target) -> float | None:
    """What the pruner compares at an epoch: the validation metric, lower better (as the score)."""
    value = row.get(target.metric)
    if value is None or not math.isfinite(value):
        return None
    return -float(value) if target.mode == "max" else float(value)


@dataclass(frozen=True)
class TuningOutcome:
    """A study's outcome (`grids/<suite>/tuning/<task>__<optimizer>__<schedule>.json`): written by the tuner
    (runners/grid/tuning.py) from the runs that vouch for it, read back by the plan and the report."""

    study: str  # task/optimizer/schedule
    task: str
    optimizer: str
    schedule: str
    lr: float  # the best trial's, which the cell's seeds then run at
    weight_decay: float
    best_trial: int
    best_score: float
    trials: int  # counted trials, pruned ones included
    pruned: int
    cost_epochs: int
    runs: list  # the trial runs it rests on (their run ids)
    space: dict  # parameter -> [low, high]
    budget: int  # every trial's epochs
    seed: int  # the trials' seed
    split: str
    storage: str
    sampler: str
    pruning: bool

    def record(self) -> dict:
        return asdict(self)

    @classmethod
    def from_mapping(cls, data, where) -> TuningOutcome:
        """The outcome in `data` (read from `where`); an older or damaged shape raises one CorruptRecord line."""
        if not isinstance(data, dict):
            raise records.CorruptRecord(f"{where}: not a tuning outcome (a JSON object)")
        missing = [f.name for f in fields(cls) if f.name not in data]
        if missing:
            raise records.CorruptRecord(f"{where}: a tuning outcome without {', '.join(missing)} (an older "
                                        f"version's: rerun the grid to tune again)")
        return cls(**{f.name: data[f.name] for f in fields(cls)})

"""The one definition of reaching a target, shared by the training engine and the report."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping

MODES = ("max", "min")


@dataclass
class Target:
    """A task's success criterion: `metric` must reach `value` from above (min) or below (max).

    Also the schema of every task config's `target` node (suites/base.py:TaskConf), so there is one
    definition of a target. Not frozen: OmegaConf makes a frozen dataclass's node read-only, and
    overrides such as `task.target.value=0.3` must work."""

    metric: str
    value: float
    mode: str = "max"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"target.mode must be one of {MODES}, got {self.mode!r}")

    @classmethod
    def from_mapping(cls, data: Mapping) -> "Target":
        return cls(metric=str(data["metric"]), value=float(data["value"]), mode=str(data.get("mode", "max")))

    def as_dict(self) -> dict:
        return {"metric": self.metric, "value": self.value, "mode": self.mode}

    def on_validation(self) -> "Target":
        """The same target on the held-out validation part (task.split=validation, suites/splits.py): a
        leading `test_` becomes `val_` (test_acc -> val_acc, test_acc_tta -> val_acc_tta); a metric
        already on the validation set (val_ppl) is unchanged. The one mapping from a task's target to
        its tuning target."""
        metric = "val_" + self.metric[len("test_"):] if self.metric.startswith("test_") else self.metric
        return Target(metric=metric, value=self.value, mode=self.mode)

    def is_met(self, value: float | None) -> bool:
        if value is None or not math.isfinite(value):
            return False
        return value >= self.value if self.mode == "max" else value <= self.value


def epochs_to_target(rows: Iterable[Mapping], target: Target) -> int | None:
    """First epoch (1-based, as recorded) whose metric meets the target; None when none does.

    `rows` are per-epoch records (dicts with an `epoch` key and the metric). Rows lacking the metric
    (e.g. an epoch evaluated without it) never count as meeting the target.
    """
    for row in rows:
        if target.is_met(row.get(target.metric)):
            return int(row["epoch"])
    return None


@dataclass(frozen=True)
class SeedResult:
    """Epochs-to-target of one (task, optimizer, schedule, seed): `epochs` None means censored,
    i.e. not reached within `max_epochs`; `probes` counts the runs it took."""

    epochs: int | None
    max_epochs: int
    probes: int

    @property
    def censored(self) -> bool:
        return self.epochs is None


def seed_epochs_to_target(statuses: Iterable[Mapping]) -> SeedResult:
    """Combine the run records (status.json dicts) of one seed of one cell.

    Budget-free schedules (constant, step, NT-ASGD): the LR at epoch e does not depend on the budget,
    so the first epoch meeting the target in the longest run is the answer. Budget-dependent ones
    (1cycle): meeting the target mid-cycle means nothing, so the answer is the smallest budget whose
    run *ends* at the target — assuming a larger budget never hurts (monotonicity), which is what
    lets a bisection find it. Only completed runs count.
    """
    runs = [s for s in statuses if s.get("status") == "completed"]
    if not runs:
        raise ValueError("no completed run for this seed")
    max_epochs = int(max(s.get("max_epochs", s["epochs"]) for s in runs))
    if all(s.get("budget_free") for s in runs):
        longest = max(runs, key=lambda s: s.get("epochs_done", s["epochs"]))
        return SeedResult(longest.get("epochs_to_target"), max_epochs, len(runs))
    hits = [int(s["epochs"]) for s in runs if s.get("target_met_at_end")]
    return SeedResult(min(hits) if hits else None, max_epochs, len(runs))

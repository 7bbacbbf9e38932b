"""The one definition of reaching a target, shared by the training engine and the report."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping

MODES = ("max", "min")


@dataclass(frozen=True)
class Target:
    """A task's success criterion: `metric` must reach `value` from above (min) or below (max)."""

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

    def is_met(self, value: float | None) -> bool:
        if value is None or not math.isfinite(value):
            return False
        return value >= self.value if self.mode == "max" else value <= self.value

    def better(self, a: float, b: float) -> bool:
        """True when `a` is strictly better than `b` for this target's mode."""
        return a > b if self.mode == "max" else a < b


def epochs_to_target(rows: Iterable[Mapping], target: Target) -> int | None:
    """First epoch (1-based, as recorded) whose metric meets the target; None when none does.

    `rows` are per-epoch records (dicts with an `epoch` key and the metric). Rows lacking the metric
    (e.g. an epoch evaluated without it) never count as meeting the target.
    """
    for row in rows:
        if target.is_met(row.get(target.metric)):
            return int(row["epoch"])
    return None

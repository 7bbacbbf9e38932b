"""The grid's own settings (`grid:` in conf/grid.yaml and the suites), typed: never part of a run's
config, so they never change a run id. The grid's config is a run's plus this section (GridConf)."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from hydra.core.override_parser.overrides_parser import OverridesParser

from ..config import RunConf

RECIPE_FIXED = ("optimizer", "schedule")  # a recipe overlay picks these itself
PAIR_KEYS = ("optimizer", "schedule")  # a grid.pairs entry is "optimizer/schedule"
PAIR = re.compile(r"[^/]+/[^/]+")
# Tuning trials run seed TRIAL_SEED_BASE + grid.tuning.seed, a seed no suite sweeps: on the language
# models the validation split is the verdict's, so a cell at the trials' seed would repeat a selected trial.
TRIAL_SEED_BASE = 1000


@dataclass
class TuningSettings:
    """The tuning protocol (runners/grid/tuning.py), the same for every cell of a suite. Grid-only: the tuned
    values enter a run's config, the protocol itself never does."""

    trials: int = 0  # per (task, optimizer, schedule); 0: not tuned, the sourced values (task.lr, task.wd)
    # A 1cycle trial's budget in epochs per task (the claim's own epochs); else this fraction of the max.
    budget: Dict[str, int] = field(default_factory=dict)
    budget_fraction: float = 0.5
    # The sampler's scramble; every trial runs seed TRIAL_SEED_BASE + seed, one no verdict may read.
    seed: int = 0
    # Where the studies live: null -> sqlite:///<results_dir>/tuning/<suite>.db (one machine);
    # "journal" -> <results_dir>/tuning/<suite>.journal (Optuna's file journal, safe on NFS / SLURM);
    # or any database URL (postgresql://..., mysql://...).
    storage: Optional[str] = None
    # Successive halving on the per-epoch validation metric, for budget-free schedules only (a decaying
    # schedule's mid-run metric does not predict its end: runners/grid/tuning.py).
    pruning: bool = False
    min_resource: int = 1  # the first rung, in epochs
    reduction_factor: int = 3  # 1 trial in 3 goes on at each rung

    def problems(self) -> list[str]:
        found = []
        if self.trials < 0:
            found.append(f"grid.tuning.trials must be >= 0, got {self.trials}")
        if self.seed < 0:  # keeps trial seeds in the reserved range
            found.append(f"grid.tuning.seed must be >= 0, got {self.seed}")
        if not 0 < self.budget_fraction <= 1:
            found.append(f"grid.tuning.budget_fraction must be in (0, 1], got {self.budget_fraction}")
        found += [f"grid.tuning.budget[{k}] must be >= 1, got {v}" for k, v in self.budget.items() if v < 1]
        if self.min_resource < 1 or self.reduction_factor < 2:
            found.append("grid.tuning.min_resource must be >= 1 and reduction_factor >= 2")
        return found


@dataclass
class RehearsalSettings:
    """grid.rehearsal: the caps of `rehearsal=true` (grid-only: never in a run's config as such)."""

    data_root: Optional[str] = None  # null: <results_dir>/rehearsal/data (suites.data fake's default)
    epochs: int = 2  # every budget capped at this (2: a staged task's two stages, a resume between epochs)
    batches: int = 2  # training batches an epoch
    batch_size: int = 4  # the training batch capped at this
    trials: int = 2  # tuning trials a study

    def problems(self) -> list[str]:
        return [f"grid.rehearsal.{key} must be >= 1, got {getattr(self, key)}"
                for key in ("epochs", "batches", "batch_size", "trials") if getattr(self, key) < 1]


@dataclass
class GridSettings:
    """Grid-only settings: not part of any run's config, so they never change a run id."""

    # The suite's sweep: key -> values in Hydra sweep syntax ({task: "a,b", seed: "range(2)"}).
    sweep: Dict[str, str] = field(default_factory=dict)
    ladder_start: int = 1  # first budget probed by the search (raised to the task's stage count)
    ladder_factor: float = 2.0
    # Plan's cost estimate: an unknown probe is assumed to hit iff its budget >= this fraction of the max.
    assumed_fraction: float = 0.5
    # Seconds per epoch by task (measured or published), for the plan's GPU-hours; records override it.
    epoch_seconds: Dict[str, float] = field(default_factory=dict)
    # Explicit (optimizer, schedule) pairs, "optimizer/schedule" each: the sweep's product keeps only these
    # (modern: sf_adamw runs with warmup only, not with every schedule). Empty: the full product.
    pairs: List[str] = field(default_factory=list)
    # Per task, "optimizer/schedule" pairs added to its cells, each crossed with the other swept keys
    # (seeds) and tuned like any cell: a baseline only some tasks have (blog: the LMs' ntasgd/reference).
    extra_pairs: Dict[str, List[str]] = field(default_factory=dict)
    # Extra overrides per task, e.g. its own optimizer sweep: {awd_lstm_wt2: ["optimizer=ntasgd,adamw"]}.
    per_task: Dict[str, List[str]] = field(default_factory=dict)
    # Published recipes (conf/recipe/) per task, each an extra cell swept over seeds only and run once
    # at its own budget, as published (budget_search=false).
    recipes: Dict[str, List[str]] = field(default_factory=dict)
    # False: no budget search, one run at the task's budget (a recipe cell: the run as published;
    # stopped at the target when its schedule is budget-free).
    budget_search: bool = True
    # Joblib workers: one CUDA device each (a list of ids); empty on CPU: torch threads split evenly.
    worker_devices: List[str] = field(default_factory=list)
    n_workers: Optional[int] = None  # set by the grid for joblib (CPU thread split)
    # The job: its index into the launch's cells, written by the grid (one file each) before it launches.
    cell: Optional[int] = None
    cells_dir: Optional[str] = None
    # This launch's progress (runners/grid/progress.py): its plan and a file per ended cell.
    progress_dir: Optional[str] = None
    tuning: TuningSettings = field(default_factory=TuningSettings)
    rehearsal: RehearsalSettings = field(default_factory=RehearsalSettings)  # rehearsal=true

    def problems(self) -> list[str]:
        """Values the search or the plan cannot use (messages name the key, `grid.` included)."""
        found = []
        if self.ladder_start < 1:
            found.append(f"grid.ladder_start must be >= 1, got {self.ladder_start}")
        if not (self.ladder_factor > 1 and math.isfinite(self.ladder_factor)):  # else the ladder never climbs
            found.append(f"grid.ladder_factor must be > 1 and finite, got {self.ladder_factor}")
        if not 0 <= self.assumed_fraction <= 1:
            found.append(f"grid.assumed_fraction must be in [0, 1], got {self.assumed_fraction}")
        found += [f"grid.epoch_seconds[{k}] must be > 0, got {v}" for k, v in self.epoch_seconds.items()
                  if not v > 0]
        if self.n_workers is not None and self.n_workers < 1:
            found.append(f"grid.n_workers must be null or >= 1, got {self.n_workers}")
        if self.cell is not None and self.cell < 0:
            found.append(f"grid.cell must be null or >= 0, got {self.cell}")
        return found + self.pair_problems() + self.tuning.problems() + self.rehearsal.problems()

    def swept(self, key: str) -> list[str]:
        """The values of `key` in the suite's sweep and its per-task sweeps."""
        values = sweep_values(f"{key}={self.sweep[key]}")[1] if key in self.sweep else []
        for arg in (a for args in self.per_task.values() for a in args):
            arg_key, arg_values = sweep_values(arg)
            values += arg_values if arg_key == key else []
        return list(dict.fromkeys(values))

    def pair_problems(self) -> list[str]:
        """Each pair is "optimizer/schedule", both among the swept values (else it could never run)."""
        found = [f"grid.extra_pairs[{task}]: {pair!r} is not 'optimizer/schedule'"
                 for task, pairs in self.extra_pairs.items() for pair in pairs if not PAIR.fullmatch(str(pair))]
        for pair in self.pairs:
            if not PAIR.fullmatch(str(pair)):
                found.append(f"grid.pairs: {pair!r} is not 'optimizer/schedule'")
                continue
            for key, value in zip(PAIR_KEYS, str(pair).split("/")):
                swept = self.swept(key)
                if value not in swept:
                    found.append(f"grid.pairs: {pair!r} names {key} {value!r}, which grid.sweep.{key} does "
                                 f"not include ({', '.join(swept) or 'not swept'})")
        return found

    def pair_set(self) -> set[tuple[str, str]]:
        return {tuple(str(p).split("/")) for p in self.pairs}


@dataclass
class GridConf(RunConf):
    grid: GridSettings = field(default_factory=GridSettings)


def sweep_values(override: str) -> tuple[str, list[str]]:
    """'optimizer=a,b' -> ('optimizer', ['a', 'b']); any Hydra sweep syntax, a plain value gives one."""
    parsed = OverridesParser.create().parse_override(override)
    values = ([str(v) for v in parsed.sweep_string_iterator()] if parsed.is_sweep_override()
              else [parsed.get_value_element_as_str()])
    return parsed.get_key_element(), values

"""From counted runs to cells with per-seed epochs-to-target and metrics: the grid's cells (task,
optimizer, schedule) and the published recipes' cells (task, recipe), kept apart — a recipe fixes its
own optimizer, schedule, budget and sometimes its target, so it is never pooled with a grid cell."""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from results.targets import Target

from .ett import CellSummary, SeedETT, SpeedUp, seed_ett, speed_up, summarise_cell
from .load import SuiteRecords
from .tuning import TuningRecords

BASELINE = ("sgd", "reference")  # every cell's speed-up is against its task's SGD + reference cell
CLAIM_CELL = ("adamw", "one_cycle")
OPTIMIZER_ORDER = ("sgd", "adam_l2", "adamw", "amsgrad", "sf_adamw", "lion", "muon")
SCHEDULE_ORDER = ("reference", "one_cycle", "one_cycle_phases", "warmup", "cosine", "wsd")


def _order(names, preferred) -> list[str]:
    names = set(names)
    return [n for n in preferred if n in names] + sorted(names - set(preferred))


@dataclass
class Cell:
    task: str
    optimizer: str
    schedule: str
    seeds: dict[int, SeedETT]
    summary: CellSummary
    run_paths: list[Path]
    full_runs: dict[int, str]  # seed -> run_id of its longest run (metric curves, final/best)
    final: list[float] = field(default_factory=list)
    best: list[float] = field(default_factory=list)
    speed_up: SpeedUp | None = None
    recipe: str = ""  # the published recipe the cell's runs were composed with; "" for a grid cell
    target: Target | None = None  # the cell's runs' target (a recipe may set its own)
    last_rows: dict[int, dict] = field(default_factory=dict)  # seed -> last metrics row of its longest run
    runs: dict[int, list[dict]] = field(default_factory=dict)  # seed -> its runs (status dicts with `metrics`)

    @property
    def key(self) -> str:
        return f"{self.task}/+{self.recipe}" if self.recipe else f"{self.task}/{self.optimizer}/{self.schedule}"

    @property
    def label(self) -> str:
        return f"+recipe={self.recipe}" if self.recipe else f"{self.optimizer} · {self.schedule}"

    def final_values(self, metric: str) -> list[float]:
        """`metric` in the last recorded epoch of each seed's longest run (where it was recorded)."""
        return _finite(self.last_rows.get(seed, {}).get(metric) for seed in self.full_runs)

    def seeds_at(self, target: Target) -> list[SeedETT]:
        """Each seed's epochs-to-target recomputed from its runs' metric rows for `target` (a claim's
        common target, which a recipe's own may differ from)."""
        return [seed_ett(runs, target) for _, runs in sorted(self.runs.items())]


@dataclass
class Analysis:
    records: SuiteRecords
    tasks: list[str]
    targets: dict[str, Target]
    max_epochs: dict[str, int]
    cells: dict[tuple[str, str, str], Cell]  # the grid's
    columns: list[tuple[str, str]]  # (optimizer, schedule) in display order
    recipes: dict[tuple[str, str], Cell] = field(default_factory=dict)  # (task, recipe) -> its cell
    # Grid cells as run tuned: only the runs their tuned cell records name (never an older untuned run).
    tuned: dict[tuple[str, str, str], Cell] = field(default_factory=dict)
    tuning: TuningRecords = field(default_factory=TuningRecords)

    def task_cells(self, task: str) -> list[Cell]:
        return [self.cells[(task, o, s)] for o, s in self.columns if (task, o, s) in self.cells]

    def cell(self, task: str, optimizer: str, schedule: str) -> Cell | None:
        return self.cells.get((task, optimizer, schedule))

    def recipe(self, task: str, recipe: str) -> Cell | None:
        return self.recipes.get((task, recipe))


def seed_runs(group: pd.DataFrame, metrics: dict[str, list[dict]]) -> dict[int, list[dict]]:
    """Runs of one cell by seed, as status-like dicts carrying their metrics rows."""
    by_seed: dict[int, list[dict]] = {}
    group = group.astype(object).where(group.notna(), None)  # NaN (a missing value) -> None, as in status
    for row in group.to_dict("records"):
        by_seed.setdefault(int(row["seed"]), []).append({**row, "metrics": metrics.get(row["run_id"], [])})
    return by_seed


def _finite(values) -> list[float]:
    return [float(v) for v in values if v is not None and v == v]


def _make_cell(key: tuple[str, str, str], group: pd.DataFrame, metrics: dict, recipe: str = "") -> Cell:
    by_seed = seed_runs(group, metrics)
    seeds = {seed: seed_ett(runs) for seed, runs in sorted(by_seed.items())}
    longest = {seed: max(runs, key=lambda r: r["epochs"]) for seed, runs in by_seed.items()}
    first = group.iloc[0]
    return Cell(*key, seeds=seeds, summary=summarise_cell(list(seeds.values())),
                run_paths=sorted(Path(p) for p in group["path"]),
                full_runs={s: r["run_id"] for s, r in sorted(longest.items())},
                final=_finite(r["final_metric"] for r in longest.values()),
                best=_finite(r["best_metric"] for r in longest.values()), recipe=recipe,
                target=Target(first["target_metric"], float(first["target_value"]), first["target_mode"]),
                last_rows={s: (r["metrics"] or [{}])[-1] for s, r in sorted(longest.items())},
                runs=dict(sorted(by_seed.items())))


def _recipe_cells(runs: pd.DataFrame, metrics: dict) -> dict[tuple[str, str], Cell]:
    out = {}
    for (task, recipe), group in runs.groupby(["task", "recipe"], sort=True):
        first = group.iloc[0]
        out[(task, recipe)] = _make_cell((task, first["optimizer"], first["schedule"]), group, metrics, recipe)
    return out


def _tuned_cells(runs: pd.DataFrame, metrics: dict, tuning: TuningRecords) -> dict[tuple[str, str, str], Cell]:
    out = {}
    for key in tuning.tuned_keys():
        ids = tuning.tuned_run_ids(key)
        group = runs[runs["run_id"].isin(ids) & (runs["task"] == key[0]) & (runs["optimizer"] == key[1])
                     & (runs["schedule"] == key[2])]
        if len(group):
            out[key] = _make_cell(key, group, metrics)
    return out


def analyse(records: SuiteRecords) -> Analysis:
    all_runs = records.runs
    runs = all_runs[all_runs["recipe"] == ""]
    cells: dict[tuple[str, str, str], Cell] = {}
    for key, group in runs.groupby(["task", "optimizer", "schedule"], sort=True):
        cells[key] = _make_cell(key, group, records.metrics)
    tuning = records.tuning or TuningRecords()
    tuned = _tuned_cells(runs, records.metrics, tuning)
    cells.update(tuned)  # a tuned cell is its tuned runs, never pooled with an older untuned run's seeds
    for (task, _, _), cell in cells.items():
        base = cells.get((task, *BASELINE))
        if base is not None:
            cell.speed_up = speed_up(list(cell.seeds.values()), list(base.seeds.values()))
    columns = [(o, s) for o in _order(runs["optimizer"], OPTIMIZER_ORDER)
               for s in _order(runs["schedule"], SCHEDULE_ORDER)
               if any(k[1:] == (o, s) for k in cells)]
    # A task's budget: its grid runs' maximum (a task run only as recipes: theirs).
    max_epochs = {**all_runs.groupby("task")["max_epochs"].max().astype(int).to_dict(),
                  **runs.groupby("task")["max_epochs"].max().astype(int).to_dict()} if len(all_runs) else {}
    return Analysis(records, sorted(all_runs["task"].unique()), records.targets(), max_epochs, cells, columns,
                    _recipe_cells(all_runs[all_runs["recipe"] != ""], records.metrics),
                    tuned, tuning)


def mean_std(values: list[float]) -> tuple[float, float] | None:
    if not values:
        return None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0

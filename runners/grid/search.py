"""A cell's search, walked by a runner: `search_cell` runs (or plans) the cell's runs — one at the task's
budget, or the budget search of runners/budget.py — through `runner.run(budget, stop_at_target)`. A grid
job's runner trains (runners/grid/job.py ProbeRunner); the plan's, `DryRunner`, reads records and
assumes the rest. The cell's epochs-to-target is results.targets' one definition over its runs."""
from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig

from results import records
from results.targets import seed_epochs_to_target

from ..budget import search_budget
from ..spec import RunSpec, resolve_run
from .cells import is_budget_free, run_config, searches_budget
from .wsd import branch_epoch, branches


def read_status(path: Path) -> dict | None:
    """The run's status, checked against its files (records.read_run): a broken finished run is
    "corrupt", never cached — `execute` then says what is wrong and the cell fails."""
    try:
        return records.read_run(path)[0]
    except (records.CorruptRecord, OSError, UnicodeDecodeError):  # also a non-UTF-8 file, a directory
        return {"status": "corrupt"}


def rows_in(path: Path) -> int:
    """Whole metrics rows of the run at `path`, 0 when there are none to trust (execute says why)."""
    try:
        return len(records.read_metrics(path / records.METRICS_FILE))
    except (records.CorruptRecord, OSError, UnicodeDecodeError):
        return 0


def cell_spec(cfg: DictConfig) -> RunSpec:
    """The cell's run, resolved once (after any tuning): each probe of its search is a budget of it."""
    run = run_config(cfg)
    if not sys.stderr.isatty():
        run.progress = False  # a job's log is no terminal
    return resolve_run(run)


class DryRunner:
    """The plan's runner: a recorded run's outcome where there is one, else an assumed one — a probe hits
    iff its budget is at least `grid.assumed_fraction` of the maximum — and the epochs left to train."""

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.runs: list[dict] = []
        self.trunk_needed = 0  # a WSD cell: the last trunk epoch its planned branches start from
        self.spec: RunSpec | None = None

    def run(self, budget: int, stop_at_target: bool) -> dict:
        self.spec = self.spec or cell_spec(self.cfg)
        recorded = read_status(self.spec.with_budget(budget, stop_at_target).path)
        if recorded and recorded["status"] in records.FINAL_STATUSES:
            self.runs.append({"budget": budget, "state": "done", "cost": 0, "status_dict": recorded})
            return recorded
        hit = budget >= self.cfg.grid.assumed_fraction * int(self.cfg.task.epochs)
        assumed = {"status": "completed", "epochs": budget, "target_met_at_end": hit,
                   "epochs_to_target": None, "budget_free": is_budget_free(self.cfg)}
        done_epochs = int((recorded or {}).get("epochs_done") or 0)
        if recorded is None and branches(self.cfg) and branch_epoch(self.cfg, budget) > 0:
            done_epochs = branch_epoch(self.cfg, budget)  # from the trunk: only its cooldown is trained
            self.trunk_needed = max(self.trunk_needed, done_epochs)
        self.runs.append({"budget": budget, "state": "resume" if recorded else "todo",
                          "cost": budget - done_epochs, "status_dict": assumed})
        return assumed


def is_tuned(cfg: DictConfig) -> bool:
    """Grid cells are tuned when the suite asks for trials; a recipe cell runs as published."""
    return bool(cfg.grid.tuning.trials) and cfg.get("recipe") is None


def search_cell(cfg: DictConfig, runner) -> int | None:
    """Run (or plan) the cell: the epochs to target, None when not reached."""
    max_epochs = int(cfg.task.epochs)
    if not searches_budget(cfg):
        runner.run(max_epochs, stop_at_target=is_budget_free(cfg))
    else:
        start = max(int(cfg.grid.ladder_start), len(cfg.task.stages), 1)

        def reaches(budget: int) -> bool:
            status = runner.run(budget, stop_at_target=bool(cfg.stop_at_target))
            return status["status"] == "completed" and bool(status.get("target_met_at_end"))

        result = search_budget(reaches, max_epochs, start, float(cfg.grid.ladder_factor))
        for entry, probe in zip(runner.runs, result.probes):
            entry["phase"] = probe.phase
    completed = [r["status_dict"] for r in runner.runs if (r.get("status_dict") or {}).get("status") == "completed"]
    # The shared definition (results.targets) is the answer; the search only chose which runs to make.
    return seed_epochs_to_target(completed).epochs if completed else None

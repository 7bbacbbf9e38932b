"""One grid job = one cell-seed (task, optimizer, schedule, seed): the Hydra task function every launcher
(basic, joblib, submitit) runs, in this process or another one.

Budget-free schedules: one run at the task's maximum budget, stopped at the target. Budget-dependent
ones (1cycle): the budget search of runners/budget.py, each probe a real `execute` with `epochs=B`, which
skips a finished run and resumes an interrupted one (runs are keyed by the hash of their config). The
job never raises: a failed probe is recorded in its run and in the cell record, and the grid goes on.
"""
from __future__ import annotations

import fcntl
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf, open_dict

from results import records
from results.targets import seed_epochs_to_target

from .budget import search_budget
from .config import RunConf, register_configs, resolve_schedule
from .schedules import BUDGET_FREE


@dataclass
class GridSettings:
    """Grid-only settings: not part of any run's config, so they never change a run id."""

    ladder_start: int = 1  # first budget probed by the search (raised to the task's stage count)
    ladder_factor: float = 2.0
    # Plan's cost estimate: an unknown probe is assumed to hit iff its budget >= this fraction of the max.
    assumed_fraction: float = 0.5
    # Seconds per epoch by task (measured or published), for the plan's GPU-hours; records override it.
    epoch_seconds: Dict[str, float] = field(default_factory=dict)
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


@dataclass
class GridConf(RunConf):
    grid: GridSettings = field(default_factory=GridSettings)


def register_grid_configs() -> None:
    register_configs()
    ConfigStore.instance().store(name="grid_schema", node=GridConf)


def run_config(cfg: DictConfig, **changes) -> DictConfig:
    """The run's own config: the grid's without its `grid` section, plus `changes` (e.g. epochs=B)."""
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    with open_dict(out):
        out.pop("grid", None)
        out.pop("hydra", None)
        for key, value in changes.items():
            out[key] = value
    return OmegaConf.merge(cfg_schema_of(cfg), out)


def cfg_schema_of(cfg: DictConfig) -> DictConfig:
    """A RunConf-typed base whose task node keeps the task's own schema (so values type-check)."""
    base = OmegaConf.structured(RunConf)
    with open_dict(base):
        base.task = cfg.task
    return base


def planned_run_dir(cfg: DictConfig) -> Path:
    """Where `execute(cfg)` keeps this run — the same computation (tests check they agree), without
    training or touching a device."""
    config = OmegaConf.to_container(cfg, resolve=True)
    config["schedule"] = resolve_schedule(cfg)
    return records.run_dir(cfg.results_dir, cfg.suite, records.run_id(config))


def is_budget_free(cfg: DictConfig) -> bool:
    return BUDGET_FREE[resolve_schedule(cfg)["kind"]]


def cell_name(cfg: DictConfig) -> str:
    """task/optimizer/schedule/seedN for a grid cell; task/+recipe/seedN for a published recipe's."""
    middle = f"+{cfg.recipe}" if cfg.get("recipe") else f"{cfg.optimizer.name}/{cfg.schedule.name}"
    return f"{cfg.task.name}/{middle}/seed{cfg.seed}"


def searches_budget(cfg: DictConfig) -> bool:
    """Whether the cell's epochs-to-target comes from a budget search (1cycle grid cells) rather than
    one run at the task's budget (budget-free schedules; recipe cells, run as published)."""
    return bool(cfg.grid.budget_search) and not is_budget_free(cfg)


def cell_path(cfg: DictConfig) -> Path:
    """The cell record: keyed by the cell's config with the budget left out (it is what the cell varies)."""
    config = OmegaConf.to_container(run_config(cfg), resolve=True)
    for key in ("epochs", "stop_at_target"):
        config.pop(key, None)
    middle = cfg.recipe if cfg.get("recipe") else f"{cfg.optimizer.name}__{cfg.schedule.name}"
    name = f"{cfg.task.name}__{middle}__s{cfg.seed}__{records.run_id(config)}"
    return Path(cfg.results_dir) / "grids" / cfg.suite / "cells" / f"{name}.json"


class ProbeRunner:
    """Runs (or finds) the run of one budget and remembers what it did."""

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.runs: list[dict] = []

    def run(self, budget: int, stop_at_target: bool) -> dict:
        from .run import execute  # torch and the engine load only in the job

        cfg = run_config(self.cfg, epochs=budget, stop_at_target=stop_at_target)
        if not sys.stderr.isatty():
            cfg.progress = False
        path = planned_run_dir(cfg)
        before = records.read_status(path / records.STATUS_FILE) if path.exists() else None
        action = "cached" if before and before["status"] in records.FINAL_STATUSES else (
            "resumed" if before else "trained")
        entry = {"budget": budget, "run_id": path.name, "action": action}
        self.runs.append(entry)
        if action != "cached":
            try:
                ran = execute(cfg)
                if ran != path:  # planned_run_dir must stay the computation execute makes
                    raise RuntimeError(f"run id drift: planned {path}, execute used {ran}")
            finally:  # also a failed run: its status says why
                status = records.read_status(path / records.STATUS_FILE) if path.exists() else None
                entry.update(status=(status or {}).get("status", "failed"),
                             epochs_done=(status or {}).get("epochs_done"))
        status = records.read_status(path / records.STATUS_FILE)
        entry.update(status=status["status"], epochs_done=status.get("epochs_done"),
                     hit=status["status"] == "completed" and bool(status.get("target_met_at_end")))
        entry["status_dict"] = status
        return status


def search_cell(cfg: DictConfig, runner: ProbeRunner) -> tuple[int | None, list[dict]]:
    """Run the cell; returns (epochs to target or None, probes in order)."""
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
    completed = [r["status_dict"] for r in runner.runs if r.get("status") == "completed"]
    # The shared definition (results.targets) is the answer; the search only chose which runs to make.
    epochs = seed_epochs_to_target(completed).epochs if completed else None
    return epochs, runner.runs


def cell_record(cfg: DictConfig, runs: list[dict], epochs: int | None, error: str | None,
                wall_s: float) -> dict:
    first = runs[0].get("status_dict", {}) if runs else {}
    return {"cell": cell_name(cfg), "task": cfg.task.name, "recipe": cfg.get("recipe"),
            "optimizer": cfg.optimizer.name, "schedule": cfg.schedule.name, "seed": int(cfg.seed),
            "budget_free": is_budget_free(cfg),
            "max_epochs": int(cfg.task.epochs), "lr": first.get("lr"),
            "status": "failed" if error else "ok", "error": error,
            "epochs_to_target": epochs, "censored": error is None and epochs is None,
            "probes": [{k: v for k, v in r.items() if k != "status_dict"} for r in runs],
            "runs_trained": sum(r["action"] != "cached" for r in runs), "wall_s": round(wall_s, 1)}


def describe(record: dict) -> str:
    probes = " ".join(f"{p['budget']}{'+' if p.get('hit') else '-'}" for p in record["probes"])
    if record["error"]:
        outcome = f"FAILED: {record['error']}"
    elif record["censored"]:
        outcome = f"not reached (> {record['max_epochs']})"
    else:
        outcome = f"{record['epochs_to_target']} epochs"
    return (f"[grid] {record['cell']}: {outcome} | probes {probes or '-'} | "
            f"trained {record['runs_trained']}/{len(record['probes'])} | {record['wall_s']:.0f}s")


def run_cell_job(cfg: DictConfig) -> dict:
    """The Hydra task function. Never raises on a run's failure: it is recorded, the grid goes on."""
    started, runner, error, epochs = time.perf_counter(), ProbeRunner(cfg), None, None
    pin_worker(cfg)
    try:
        epochs, _ = search_cell(cfg, runner)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 — OOM, divergence-turned-error, bad data: record, go on
        error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        if os.environ.get("ONECYCLE_GRID_TRACEBACK"):
            traceback.print_exc()
    record = cell_record(cfg, runner.runs, epochs, error, time.perf_counter() - started)
    records.write_json_atomic(cell_path(cfg), record)
    print(describe(record), flush=True)
    return record


class _WorkerSlot:
    """The device slot this worker process holds for its lifetime (joblib reuses worker processes)."""

    lock_file = None
    label = ""


def pin_worker(cfg: DictConfig) -> str:
    """Joblib workers: take a free slot (a lock file per device) and pin CUDA_VISIBLE_DEVICES to it before
    CUDA starts in this process; on CPU, split torch threads among the workers."""
    settings = cfg.grid
    if _WorkerSlot.label or not (settings.worker_devices or settings.n_workers):
        return _WorkerSlot.label
    if not settings.worker_devices:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(settings.n_workers)))
        _WorkerSlot.label = f"cpu threads {torch.get_num_threads()}"
        return _WorkerSlot.label
    lock_dir = Path(cfg.results_dir) / "grids" / ".slots"
    lock_dir.mkdir(parents=True, exist_ok=True)
    while _WorkerSlot.lock_file is None:
        for device in settings.worker_devices:
            handle = open(lock_dir / f"cuda{device}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            _WorkerSlot.lock_file, _WorkerSlot.label = handle, f"cuda {device}"
            os.environ["CUDA_VISIBLE_DEVICES"] = str(device)
            break
        else:
            time.sleep(1.0)  # more workers than devices: wait for one to free up
    return _WorkerSlot.label

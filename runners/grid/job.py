"""One grid job = one cell (task, optimizer, schedule, seed — or a published recipe and seed): the
Hydra task function every launcher (basic, joblib, submitit) runs, in this process or another one.

Budget-free schedules and recipe cells: one run at the task's budget (a budget-free one stopped at the
target). Budget-dependent grid cells (1cycle): the budget search of runners/budget.py, each probe a real
`execute` with `epochs=B`, which skips a finished run and resumes an interrupted one (runs are keyed by
the hash of their config); a WSD cell's probes branch from one stable run (runners/grid/wsd.py). The
plan (`plan=true`) walks the same `search_cell` with a `DryRunner`. The
job never raises: a failed probe is recorded in its run and in the cell record, and the grid goes on.
"""
from __future__ import annotations

import datetime as dt
import os
import sys
import time
import traceback
from pathlib import Path

import filelock
from omegaconf import DictConfig, OmegaConf

from results import records
from results.cell import CellRecord
from results.errors import UserError
from results.layout import Layout
from suites import TASK_SCHEMAS

from ..run import execute
from ..spec import RunSpec
from .cells import cell_name, cell_path, is_budget_free
from .progress import report_progress
from .search import cell_spec, is_tuned, read_status, rows_in, search_cell
from .settings import GridConf
from .tuning import tune, tuned
from .watchdog import watch_parent
from .wsd import Trunk, branch_epoch, branches


def error_line(exc: Exception) -> str:
    """One line for the cell record and the summary. A UserError is kept whole — a missing dataset's
    message ends with how to get it; any other error gives its type and first line."""
    if isinstance(exc, UserError):
        return " ".join(str(exc).split())
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


class ProbeRunner:
    """Runs (or finds) the run of one budget and remembers what it did."""

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.runs: list[dict] = []
        self.trunk: Trunk | None = None  # a WSD cell's, made at its first probe (after any tuning)
        self.spec: RunSpec | None = None

    def run(self, budget: int, stop_at_target: bool) -> dict:
        self.spec = self.spec or cell_spec(self.cfg)
        spec = self.spec.with_budget(budget, stop_at_target)
        path = spec.path
        before = read_status(path)
        action = "cached" if before and before["status"] in records.FINAL_STATUSES else (
            "resumed" if before else "trained")
        entry = {"budget": budget, "run_id": path.name, "action": action, "epochs_trained": 0}
        self.runs.append(entry)
        if action == "cached":
            status = before
        else:
            if branches(self.cfg):
                self.trunk = self.trunk or Trunk(self.cfg)
                if self.trunk.seed(spec, budget):
                    entry.update(action="branched", branched_at=branch_epoch(self.cfg, budget))
            # Rows without a status are moved aside by execute (RunFiles.is_orphaned): none carried over.
            done_before = rows_in(path) if read_status(path) is not None else 0
            try:
                status = execute(spec)
            finally:  # also a failed run: its status says why
                failed = read_status(path) or {}
                entry.update(status=failed.get("status", "failed"), epochs_done=failed.get("epochs_done"),
                             epochs_trained=max(rows_in(path) - done_before, 0))
        entry.update(status=status["status"], epochs_done=status.get("epochs_done"),
                     hit=status["status"] == "completed" and bool(status.get("target_met_at_end")),
                     status_dict=status)
        return status


def cell_record(cfg: DictConfig, runs: list[dict], epochs: int | None, error: str | None,
                started: str, wall_s: float, tuning: dict | None = None, trunk: dict | None = None) -> CellRecord:
    """`trunk`: a WSD cell's stable run (runners/grid/wsd.py); `epochs_trained` counts its epochs too."""
    first = runs[0].get("status_dict", {}) if runs else {}
    return CellRecord(
        cell=cell_name(cfg), task=cfg.task.name, recipe=cfg.get("recipe"), tuned=tuning is not None,
        tuning=tuning, optimizer=cfg.optimizer.name, schedule=cfg.schedule.name, seed=int(cfg.seed),
        budget_free=is_budget_free(cfg), max_epochs=int(cfg.task.epochs), lr=first.get("lr"),
        status="failed" if error else "ok", error=error, epochs_to_target=epochs,
        censored=error is None and epochs is None,
        probes=[{k: v for k, v in r.items() if k != "status_dict"} for r in runs],
        runs_trained=sum(r["action"] != "cached" for r in runs), trunk=trunk,
        epochs_trained=sum(r.get("epochs_trained") or 0 for r in runs) + (trunk or {}).get("epochs_trained", 0),
        started=started, ended=dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
        wall_s=round(wall_s, 1))


def describe(record: CellRecord) -> str:
    probes = " ".join(f"{p['budget']}{'+' if p.get('hit') else '-'}" for p in record.probes)
    if record.error:
        outcome = f"FAILED: {record.error}"
    elif record.censored:
        outcome = f"not reached (> {record.max_epochs})"
    else:
        outcome = f"{record.epochs_to_target} epochs"
    return (f"[grid] {record.cell}: {outcome} | probes {probes or '-'} | "
            f"trained {record.runs_trained}/{len(record.probes)} | {record.wall_s:.0f}s")


# What the launch tells a job in its `grid` section; the rest of the section is the cell's own, as composed
# before launch (a recipe cell's budget_search=false among it).
LAUNCH_KEYS = ("cell", "cells_dir", "progress_dir", "n_workers", "worker_devices")


def load_cell(job_cfg: DictConfig) -> DictConfig:
    """The job's cell, as the grid composed it before launching (typed again by its schemas), with the
    launch's own keys from the job's config."""
    cell = OmegaConf.load(Path(job_cfg.grid.cells_dir) / f"{int(job_cfg.grid.cell)}.yaml")
    schema = OmegaConf.structured(GridConf)
    task_schema = TASK_SCHEMAS.get(str(cell.task.name))
    if task_schema is not None:
        schema.task = OmegaConf.structured(task_schema)
    launch = {key: OmegaConf.to_container(job_cfg.grid)[key] for key in LAUNCH_KEYS}
    return OmegaConf.merge(schema, cell, {"grid": launch})


def run_cell_job(job_cfg: DictConfig) -> dict:
    """The Hydra task function. Never raises on a run's failure: it is recorded, the grid goes on."""
    cfg = load_cell(job_cfg)
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
    clock, runner, error, epochs, tuning = time.perf_counter(), ProbeRunner(cfg), None, None, None
    watch_parent()  # a joblib worker ends with the grid that launched it
    pin_worker(cfg)
    try:
        if is_tuned(cfg):  # the cell group's study first (shared by its seeds), then at its best values
            tuning = tune(cfg)
            runner = ProbeRunner(tuned(cfg, tuning))  # no probe has run yet
        epochs = search_cell(runner.cfg, runner)
        if runner.trunk:
            runner.trunk.release()
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 — OOM, divergence-turned-error, bad data: record, go on
        error = error_line(exc)
        if os.environ.get("ONECYCLE_GRID_TRACEBACK"):
            traceback.print_exc()
    record = cell_record(cfg, runner.runs, epochs, error, started, time.perf_counter() - clock, tuning,
                         runner.trunk.record() if runner.trunk else None)
    try:
        record.write(cell_path(cfg))
    except (OSError, UserError) as exc:  # read-only or full: the summary will find the cell unrecorded
        print(f"[grid] {record.cell}: error: its record {cell_path(cfg)} could not be written "
              f"({getattr(exc, 'strerror', None) or exc})", file=sys.stderr, flush=True)
    print(describe(record), flush=True)
    report_progress(cfg, runner.runs, record)
    return record


class _WorkerSlot:
    """The device slot this worker process holds for its lifetime (joblib reuses worker processes)."""

    lock: filelock.FileLock | None = None
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
    lock_dir = Layout.at(cfg.results_dir).worker_slots()
    lock_dir.mkdir(parents=True, exist_ok=True)
    while _WorkerSlot.lock is None:
        for device in settings.worker_devices:
            lock = filelock.FileLock(lock_dir / f"cuda{device}.lock")
            try:
                lock.acquire(timeout=0)
            except filelock.Timeout:
                continue
            _WorkerSlot.lock, _WorkerSlot.label = lock, f"cuda {device}"
            os.environ["CUDA_VISIBLE_DEVICES"] = str(device)
            break
        else:
            time.sleep(1.0)  # more workers than devices: wait for one to free up
    return _WorkerSlot.label

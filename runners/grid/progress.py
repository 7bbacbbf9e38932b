"""The grid's progress line: cells done of the launch, runs trained, elapsed time and an ETA, printed at
launch and by each job as its cell ends.

Jobs may run in other processes or hosts that share only the results directory, so progress lives on
disk, per launch (a relaunch counts only its own cells): at launch the grid writes `plan.json` (per cell
its task and planned epochs, from plan_cell and, on the first cell of a pending study, the study's;
epoch times; start; workers) into a fresh directory under the launch's cells; each job adds `<i>.json`
when its cell ends, then prints the line from that directory. Progress is bookkeeping: writing or
printing it never fails a cell nor the grid.
"""
from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path

from omegaconf import DictConfig

from results import records
from results.cell import CellRecord

from .plan import epoch_seconds, measured_epoch_seconds, plan_cell, run_epoch_seconds, studies, study_epochs

PLAN_FILE = "plan.json"


def launch_plan(cells: list[DictConfig]) -> dict:
    """What the ETA needs, computed once at launch: per cell its task and planned epochs (its search and
    seed runs, plus a pending study's trials on the study's first cell), and per task its epoch times."""
    tuning = {i: study_epochs(cells[i])[1 if cells[i].grid.tuning.pruning else 0]
              for i in studies(cells).values()}
    configured: dict[str, float | None] = {}
    for cfg in cells:
        configured.setdefault(cfg.task.name, cfg.grid.epoch_seconds.get(cfg.task.name))
    return {"started": time.time(), "workers": int(cells[0].grid.n_workers or 1),
            "cells": [{"task": cfg.task.name, "epochs": plan_cell(cfg)["cost"] + tuning.get(i, 0.0)}
                      for i, cfg in enumerate(cells)],
            "configured": configured,
            "measured": measured_epoch_seconds(cells[0].results_dir, cells[0].suite)}


def start_progress(cells: list[DictConfig], cells_dir: Path) -> list[str]:
    """Write the launch plan into a directory of this launch's own and print the first line (0/N); returns
    the override that points the jobs at it (none when it could not be written: no progress then)."""
    directory = cells_dir / "progress" / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    try:
        records.write_json_atomic(directory / PLAN_FILE, launch_plan(cells))
        print(progress_line(directory), flush=True)
    except Exception as exc:  # noqa: BLE001 — progress is bookkeeping: the grid runs without it
        print(f"[grid] progress: off, the launch plan could not be written ({exc})", file=sys.stderr, flush=True)
        return []
    return [f"grid.progress_dir={directory}"]


def cell_progress(cfg: DictConfig, runs: list[dict], record: CellRecord) -> dict:
    """The job's progress file: its outcome, runs and epochs trained (a resumed run counts whole), wall time,
    and the epoch times of the runs it completed (they join the measured ones)."""
    trained = [r for r in runs if r["action"] != "cached"]
    times = []
    for run in trained:
        try:
            metrics = records.read_metrics(records.run_dir(cfg.results_dir, cfg.suite, run["run_id"])
                                           / records.METRICS_FILE)
        except records.CorruptRecord:  # the cell record says what is wrong with it; no time from it
            continue
        seconds = run_epoch_seconds(run.get("status_dict") or {}, metrics)
        if seconds is not None:
            times.append(seconds)
    return {"cell": record.cell, "task": record.task, "status": record.status,
            "runs_trained": record.runs_trained, "wall_s": record.wall_s,
            "epochs_trained": record.epochs_trained, "epoch_seconds": times}


def report_progress(cfg: DictConfig, runs: list[dict], record: CellRecord) -> None:
    """The job's hook once its cell is recorded: its progress file, then the grid's line. Never raises."""
    if not cfg.grid.progress_dir or cfg.grid.cell is None:
        return
    directory = Path(cfg.grid.progress_dir)
    try:
        records.write_json_atomic(directory / f"{int(cfg.grid.cell)}.json", cell_progress(cfg, runs, record))
        print(progress_line(directory), flush=True)
    except Exception as exc:  # noqa: BLE001 — the cell's own record is written: its result stands
        print(f"[grid] {record.cell}: progress not written to {directory} ({exc})", file=sys.stderr, flush=True)


def read_progress(directory: Path) -> tuple[dict, dict[int, dict]]:
    """The launch plan and the progress files of its cells that have ended, by cell index."""
    plan = json.loads((directory / PLAN_FILE).read_text())
    done = {int(p.stem): json.loads(p.read_text()) for p in directory.glob("*.json") if p.stem.isdigit()}
    return plan, {i: d for i, d in done.items() if i < len(plan["cells"])}


def estimate(plan: dict, done: dict[int, dict]) -> tuple[float | None, list[str], list[str]]:
    """(seconds left, how each task was priced, tasks left unpriced): the cells not ended, their planned
    epochs x their task's seconds per epoch — measured (at launch and by this launch's runs), else
    configured, else this launch's observed wall time per epoch trained — over the workers still busy."""
    measured = {task: list(times) for task, times in plan["measured"].items()}
    for progress in done.values():
        measured.setdefault(progress["task"], []).extend(progress["epoch_seconds"])
    trained = [p for p in done.values() if p["epochs_trained"]]
    observed = (sum(p["wall_s"] for p in trained) / sum(p["epochs_trained"] for p in trained)
                if trained else None)
    by_task: dict[str, float] = {}
    left = [cell for i, cell in enumerate(plan["cells"]) if i not in done]
    for cell in left:
        if cell["epochs"]:
            by_task[cell["task"]] = by_task.get(cell["task"], 0.0) + cell["epochs"]
    total, priced, unpriced = 0.0, [], []
    for task, cost in by_task.items():
        seconds, source = epoch_seconds(task, plan["configured"], measured)
        label = "measured" if source.startswith("measured") else "configured"
        if seconds is None and observed is not None:
            seconds, label = observed, "observed"
        if seconds is None:
            unpriced.append(task)
            continue
        total += cost * seconds
        priced.append(f"{task} {seconds:.1f} s {label}")
    if unpriced and not priced:
        return None, priced, unpriced
    return total / max(1, min(plan["workers"], len(left))), priced, unpriced


def duration(seconds: float) -> str:
    """1h02m, 3m05s, 42s."""
    seconds = round(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def progress_line(directory: Path, now: float | None = None) -> str:
    """`[grid] progress: 12/40 cells (1 failed) | 37 runs trained | 1h02m elapsed | ETA ~2h10m (...)`."""
    plan, done = read_progress(directory)
    failed = sum(p["status"] == "failed" for p in done.values())
    runs = sum(p["runs_trained"] for p in done.values())
    parts = [f"{len(done)}/{len(plan['cells'])} cells" + (f" ({failed} failed)" if failed else ""),
             f"{runs} run{'' if runs == 1 else 's'} trained",
             f"{duration(max(0.0, (time.time() if now is None else now) - plan['started']))} elapsed"]
    if len(done) == len(plan["cells"]):
        parts.append("done")
    else:
        seconds, priced, unpriced = estimate(plan, done)
        workers = f"{plan['workers']} worker{'s' if plan['workers'] > 1 else ''}"
        missing = f"no epoch time for {', '.join(unpriced)}" if unpriced else ""
        if seconds is None:
            parts.append(f"ETA unknown ({missing})")
        else:
            notes = "; ".join(n for n in (workers, f"epoch times: {', '.join(priced)}" if priced else "",
                                          f"excludes {missing}" if missing else "") if n)
            parts.append(f"ETA ~{duration(seconds)} ({notes})")
    return "[grid] progress: " + " | ".join(parts)

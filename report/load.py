"""Read a suite's run records into a tidy table. Records that cannot be trusted are listed, never counted.

Only `results.records` and `results.targets` are used: no torch, so the report builds on any machine.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import pandas as pd

from results.records import CorruptRecord, iter_run_dirs, load_run
from results.targets import Target

from .problems import Problem, fabricated_problem, read_plan
from .tuning import TuningRecords, load_tuning

COUNTED_STATUSES = ("completed", "diverged")  # a diverged run is a real outcome: a miss
REQUIRED_KEYS = ("task", "optimizer", "schedule", "seed", "epochs", "max_epochs", "budget_free", "target")
ENV_KEYS = ("device", "device_name", "torch", "cuda", "git_sha", "host")


@dataclass
class SuiteRecords:
    """Every counted run of a suite (one row each), their metrics rows, and the runs left out."""

    suite: str
    results_dir: Path
    runs: pd.DataFrame
    metrics: dict[str, list[dict]] = field(default_factory=dict)  # run_id -> per-epoch rows
    problems: list[Problem] = field(default_factory=list)
    total_dirs: int = 0
    tuning: TuningRecords | None = None  # the suite's tuning outcomes, trials and cell records
    # A rehearsal (report/rehearsal.py): its runs count, but nothing on its page is a measurement.
    rehearsal: bool = False
    plan: dict | None = None  # grids/<suite>/rehearsal.json, as the rehearsal wrote it
    fabricated: list[Path] = field(default_factory=list)  # run (and trial) dirs that read fabricated data

    def targets(self) -> dict[str, Target]:
        """The target of each task: its grid runs' (every one shares it), else its recipes' first."""
        if self.runs.empty:
            return {}
        first = self.runs.sort_values("recipe", kind="stable").drop_duplicates("task")
        return {row.task: Target(row.target_metric, row.target_value, row.target_mode)
                for row in first.itertuples()}


@dataclass(frozen=True)
class RunRow:
    """One counted run, as the report's tables read it: a column each (`runs` in SuiteRecords)."""

    run_id: str
    path: str
    task: str
    recipe: str  # "" for a grid cell's run
    optimizer: str
    schedule: str
    schedule_kind: str
    seed: int
    epochs: int
    max_epochs: int
    budget_free: bool
    status: str
    epochs_done: int
    epochs_to_target: int | None
    target_met_at_end: bool
    target_metric: str
    target_value: float
    target_mode: str
    final_metric: float | None
    best_metric: float | None
    lr: float | None
    fabricated_data: bool
    profile: dict | None
    env_device: str | None
    env_device_name: str | None
    env_torch: str | None
    env_cuda: str | None
    env_git_sha: str | None
    env_host: str | None
    started: str | None
    ended: str | None

    @classmethod
    def of(cls, status: dict, path: Path) -> RunRow:
        """From a run's status.json (a field of the wrong type raises KeyError, TypeError or ValueError)."""
        target = Target.from_mapping(status["target"])
        env = status.get("environment") or {}
        final, best = status.get("final") or {}, status.get("best") or {}
        return cls(
            run_id=str(status.get("run_id") or path.name), path=str(path), task=str(status["task"]),
            recipe=str(status.get("recipe") or ""), optimizer=str(status["optimizer"]),
            schedule=str(status["schedule"]), schedule_kind=str(status.get("schedule_kind", "")),
            seed=int(status["seed"]), epochs=int(status["epochs"]), max_epochs=int(status["max_epochs"]),
            budget_free=bool(status["budget_free"]), status=status["status"],
            epochs_done=int(status.get("epochs_done") or 0), epochs_to_target=status.get("epochs_to_target"),
            target_met_at_end=bool(status.get("target_met_at_end")), target_metric=target.metric,
            target_value=target.value, target_mode=target.mode, final_metric=final.get(target.metric),
            best_metric=best.get(target.metric), lr=(status.get("lr") or {}).get("value"),
            fabricated_data=status.get("fabricated_data") is True,
            profile=status.get("profile") if isinstance(status.get("profile"), dict) else None,
            **{f"env_{k}": None if env.get(k) is None else str(env.get(k)) for k in ENV_KEYS},
            started=status.get("started"), ended=status.get("ended"))


def _check(status: dict, path: Path) -> Problem | None:
    missing = [k for k in REQUIRED_KEYS if k not in status]
    if missing:
        return Problem(path, "corrupt", f"status.json lacks {', '.join(missing)}")
    state = status["status"]
    if state == "failed":
        return Problem(path, "failed", str(status.get("error") or "failed without an error message"))
    if state not in COUNTED_STATUSES:
        return Problem(path, "incomplete", f"status {state!r} ({status.get('epochs_done', 0)} of "
                                           f"{status['epochs']} epochs recorded)")
    done, budget = int(status.get("epochs_done") or 0), int(status["epochs"])
    if state == "completed" and done < budget and status.get("epochs_to_target") is None:
        return Problem(path, "incomplete", f"completed with {done} of {budget} epochs recorded")
    return None


def _drop_inconsistent_targets(rows: list[dict], problems: list[Problem]) -> list[dict]:
    """The grid runs of a task must share one target, and so must the runs of one recipe (a recipe may
    set its own, e.g. the TTA accuracy); runs with a minority target are listed, not counted."""
    by_task: dict[tuple[str, str], Counter] = {}
    for r in rows:
        key = (r["task"], r["recipe"])
        by_task.setdefault(key, Counter())[(r["target_metric"], r["target_value"], r["target_mode"])] += 1
    kept = []
    for r in rows:
        common = by_task[(r["task"], r["recipe"])].most_common(1)[0][0]
        if (r["target_metric"], r["target_value"], r["target_mode"]) == common:
            kept.append(r)
        else:
            problems.append(Problem(Path(r["path"]), "inconsistent",
                                    f"target {r['target_metric']} {r['target_value']} differs from the "
                                    f"task's {common[0]} {common[1]}"))
    return kept


def load_suite(suite: str, results_dir: str | os.PathLike = "results") -> SuiteRecords:
    rows, metrics, problems, fabricated = [], {}, [], []
    plan, rehearsal = read_plan(results_dir, suite, problems)
    dirs = iter_run_dirs(results_dir, suite)
    for path in dirs:
        try:
            record = load_run(path)
            if record.status.get("fabricated_data") is True:
                fabricated.append(path)
            problem = fabricated_problem(record.status, path, rehearsal) or _check(record.status, path)
            row = None if problem else asdict(RunRow.of(record.status, path))
        except CorruptRecord as exc:
            problem, row = Problem(path, "corrupt", str(exc)), None
        except (KeyError, TypeError, ValueError) as exc:  # a field of the wrong type or shape
            problem, row = Problem(path, "corrupt", f"unreadable field: {type(exc).__name__}: {exc}"), None
        if problem:
            problems.append(problem)
            continue
        rows.append(row)
        metrics[row["run_id"]] = record.metrics
    rows = _drop_inconsistent_targets(rows, problems)
    kept_ids = {r["run_id"] for r in rows}
    runs = pd.DataFrame(rows, columns=[f.name for f in fields(RunRow)])
    tuning = load_tuning(suite, results_dir, rehearsal)
    fabricated += [p.path for p in tuning.problems if p.kind == "fabricated"]
    return SuiteRecords(suite, Path(results_dir), runs,
                        {k: v for k, v in metrics.items() if k in kept_ids}, problems, len(dirs),
                        tuning, rehearsal, plan, fabricated)

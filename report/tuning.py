"""A suite's tuning records, read as recorded: the grid's tuning outcome per cell group
(`grids/<suite>/tuning/<task>__<optimizer>__<schedule>.json`), its trials (ordinary runs under
`runs/<suite>-tuning/`) and its cell records (`grids/<suite>/cells/*.json`, which say whether a cell
ran tuned and which runs it made).

The report never re-selects: the tuned values are the outcome files' and a trial's score is the `score`
its status.json recorded (lower is better). A trial's test metrics are never read, so nothing the test
set says can move what is shown. Records that cannot be trusted are listed, never counted: an outcome
counts only while every trial run it names (`runs`, as runners/grid/tuning.py writes it) is here and
readable, and a study with an outcome shows only the trials that outcome was chosen from (older ones,
e.g. of an earlier protocol, are listed as superseded).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from results.cell import CellRecord
from results.layout import Layout
from results.records import CorruptRecord, iter_run_dirs, load_run
from results.tuning import trial_suite

from .problems import Problem, fabricated_problem, read_object

TRIAL_STATES = ("completed", "diverged", "pruned")  # final; a pruned trial is shown as pruned, never scored
TRIAL_KEYS = ("task", "optimizer", "schedule", "trial")
OUTCOME_KEYS = ("task", "optimizer", "schedule", "lr", "weight_decay")
NOT_TUNED = "not tuned (grid.tuning.trials=0)"

CellKey = tuple[str, str, str]  # (task, optimizer, schedule)


@dataclass
class Trial:
    """One finished trial of a study, as its status.json records it."""

    path: Path
    task: str
    optimizer: str
    schedule: str
    trial: int
    lr: float | None
    weight_decay: float | None
    state: str  # completed | diverged | pruned
    score: float | None  # the recorded score (lower is better); None: not scored
    epochs_done: int
    split: str

    @property
    def key(self) -> CellKey:
        return (self.task, self.optimizer, self.schedule)


@dataclass
class TuningRecords:
    outcomes: dict[CellKey, dict] = field(default_factory=dict)
    trials: list[Trial] = field(default_factory=list)
    cells: list[CellRecord] = field(default_factory=list)  # grid cell records (recipe cells left out)
    problems: list[Problem] = field(default_factory=list)  # trial dirs and files not counted
    trial_dirs: int = 0

    def study(self, key: CellKey) -> list[Trial]:
        return sorted((t for t in self.trials if t.key == key), key=lambda t: t.trial)

    def tuned_run_ids(self, key: CellKey) -> set[str]:
        """The runs the grid made for a cell while tuned (its cell records say so), every seed."""
        return {str(p["run_id"]) for rec in self.cells if rec.tuned and cell_key(rec) == key
                for p in rec.probes if p.get("run_id")}

    def tuned_keys(self) -> list[CellKey]:
        return sorted({cell_key(rec) for rec in self.cells if rec.tuned})

    @property
    def any(self) -> bool:
        return bool(self.outcomes or self.trials or self.tuned_keys())


def cell_key(record: CellRecord) -> CellKey:
    return (record.task, record.optimizer, record.schedule)


def _key(record: dict) -> CellKey:
    return (str(record.get("task")), str(record.get("optimizer")), str(record.get("schedule")))


def _number(value) -> float | None:
    """A recorded float, or None where missing or not a finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _trial(status: dict, path: Path) -> Trial | Problem:
    missing = [k for k in TRIAL_KEYS if k not in status]
    if missing:
        return Problem(path, "corrupt", f"status.json lacks {', '.join(missing)}")
    if not isinstance(status["trial"], int) or isinstance(status["trial"], bool):
        return Problem(path, "corrupt", f"not a trial (trial: {status['trial']!r})")
    state = status["status"]
    if state == "failed":
        return Problem(path, "failed", str(status.get("error") or "failed without an error message"))
    if state not in TRIAL_STATES:
        return Problem(path, "incomplete", f"status {state!r} ({status.get('epochs_done', 0)} epochs recorded)")
    lr = status.get("lr")
    return Trial(path, str(status["task"]), str(status["optimizer"]), str(status["schedule"]),
                 int(status["trial"]), _number(lr.get("value") if isinstance(lr, dict) else lr),
                 _number(status.get("weight_decay")), state,
                 None if state == "pruned" else _number(status.get("score")),
                 int(status.get("epochs_done") or 0), str(status.get("split") or "unknown"))


def load_trials(results_dir: str | os.PathLike, suite: str,
                rehearsal: bool = False) -> tuple[list[Trial], list[Problem], int]:
    """Every trial dir of the suite's tuning: (trials counted, problems, dirs seen). A trial that read
    fabricated data counts only in a rehearsal (report/rehearsal.py)."""
    dirs = iter_run_dirs(results_dir, trial_suite(suite))
    trials, problems = [], []
    for path in dirs:
        try:
            status = load_run(path).status
            found = fabricated_problem(status, path, rehearsal) or _trial(status, path)
        except CorruptRecord as exc:
            found = Problem(path, "corrupt", str(exc))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a field of the wrong shape
            found = Problem(path, "corrupt", f"unreadable field: {type(exc).__name__}: {exc}")
        (problems if isinstance(found, Problem) else trials).append(found)
    return trials, problems, len(dirs)


def _json_files(folder: Path, problems: list[Problem]) -> list[tuple[Path, dict]]:
    paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
    return [(path, data) for path in paths if (data := read_object(path, problems)) is not None]


def read_cells(folder: Path, problems: list[Problem]) -> list[CellRecord]:
    """The grid's cell records; one that cannot be read whole is a problem, never half-counted."""
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            out.append(CellRecord.read(path))
        except CorruptRecord as exc:
            problems.append(Problem(path, "corrupt", str(exc)))
    return out


def load_outcomes(folder: Path, problems: list[Problem]) -> dict[CellKey, dict]:
    outcomes = {}
    for path, data in _json_files(folder, problems):
        missing = [k for k in OUTCOME_KEYS if k not in data]
        if missing:
            problems.append(Problem(path, "corrupt", f"tuning outcome lacks {', '.join(missing)}"))
            continue
        outcomes[_key(data)] = data
    return outcomes


def vouched(outcomes: dict[CellKey, dict], trials: list[Trial], problems: list[Problem],
            folder: Path) -> tuple[dict[CellKey, dict], list[Trial]]:
    """The outcomes whose named trial runs are all here, and the trials they (or no outcome) account
    for; the rest become problems."""
    here = {t.path.name for t in trials}
    kept = {}
    for key, outcome in outcomes.items():
        path = folder / f"{'__'.join(key)}.json"
        runs = outcome.get("runs")
        if not isinstance(runs, list) or not runs:
            problems.append(Problem(path, "untrusted", "tuning outcome names no trial runs (an older protocol)"))
        elif missing := sorted(set(map(str, runs)) - here):
            problems.append(Problem(path, "untrusted", f"tuning outcome's trial runs are not all here: "
                                                       f"{', '.join(missing[:3])}{' …' if len(missing) > 3 else ''}"))
        else:
            kept[key] = outcome
    named = {key: set(map(str, o["runs"])) for key, o in kept.items()}
    counted = []
    for trial in trials:
        if trial.key in named and trial.path.name not in named[trial.key]:
            problems.append(Problem(trial.path, "superseded", "a trial its study's outcome was not chosen from"))
        else:
            counted.append(trial)
    return kept, counted


def load_tuning(suite: str, results_dir: str | os.PathLike = "results", rehearsal: bool = False) -> TuningRecords:
    layout = Layout.at(results_dir)
    trials, problems, dirs = load_trials(results_dir, suite, rehearsal)
    folder = layout.tuning_outcomes(suite)
    outcomes, trials = vouched(load_outcomes(folder, problems), trials, problems, folder)
    cells = [rec for rec in read_cells(layout.cells(suite), problems) if not rec.recipe]
    return TuningRecords(outcomes, trials, cells, problems, dirs)

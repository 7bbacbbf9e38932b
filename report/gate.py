"""Regression gate: compare a suite's cells and verdicts with a committed baseline file.

Baseline format (JSON, `report/baselines/nightly.json`; written by `python -m report baseline ...`):
    {"format": 1, "suite": "nightly",
     "tolerance": {"epochs": 1, "relative": 0.2},
     "cells":    {"<task>/<optimizer>/<schedule>" (a recipe: "<task>/+<recipe>"):
                  {"median": 3.0 | null, "budget": 8, "reached": 3, "seeds": 3}},
     "verdicts": {"<claim id>/<published recipe>" (a twin: "<claim id>"): a verdict of
                  report/claims.py VERDICTS, and, once the suite has tuning records, "tuned/<claim id>"
                  (a twin: "tuned/<claim id>/<twin task>"): one of report/tuned.py TUNED_VERDICTS}}
`median` is the censoring-aware median epochs-to-target (null: undefined, fewer than half reached).

Tolerance: a cell fails when its median worsens by more than max(tolerance.epochs, tolerance.relative ×
baseline median) epochs — by default max(1 epoch, 20%) — or becomes undefined, or disappears. A claim
fails when its verdict drops on its scale (VERDICTS, TUNED_VERDICTS: worst to best, e.g. reproduced >
reaches the figure, faster by less than claimed > reaches the figure, not faster > faster, misses the
figure > not reproduced > not run).
Improvements never fail; a baseline cell with an undefined median cannot regress on epochs.

Rehearsals (report/rehearsal.py: fabricated data, not a measurement) are never compared with a baseline
and never written as one. The gate on a rehearsal reads no baseline and fails only where a cell did not
run: a run or tuning trial not counted (failed, incomplete, corrupt), a cell record that says the cell
failed, a task of the rehearsal plan with no counted run. A real suite holding a run that read
fabricated data cannot be written as a baseline either, and its gate fails on that run (the run is left
out of every number, so the rest is compared as usual).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from results.errors import UserError
from results.records import is_rehearsal

from .analysis import Analysis
from .claims import VERDICTS, claim_rows
from .load import SuiteRecords
from .rehearsal import failed_cells, planned_tasks
from .tuned import TUNED_VERDICTS, tuned_rows

FORMAT = 1
DEFAULT_TOLERANCE = {"epochs": 1.0, "relative": 0.2}


@dataclass
class GateResult:
    failures: list[str]
    checked: int
    notes: list[str]
    checked_what: str = "baseline entries"

    @property
    def ok(self) -> bool:
        return not self.failures


def snapshot(analysis: Analysis, tolerance: dict | None = None) -> dict:
    """The baseline document of the analysed suite as it stands."""
    every = [*analysis.cells.values(), *analysis.recipes.values()]
    cells = {c.key: {"median": c.summary.median, "budget": c.summary.budget, "reached": c.summary.reached,
                     "seeds": c.summary.seeds} for c in every}
    # The tuned verdicts only once the suite has tuning records: an untuned suite's would all read
    # "not tuned", the lowest rank, which can never drop.
    tuned = tuned_rows(analysis) if analysis.tuning.any else []
    verdicts = {r.id: r.verdict for r in [*claim_rows(analysis), *tuned]}
    return {"format": FORMAT, "suite": analysis.records.suite, "tolerance": tolerance or DEFAULT_TOLERANCE,
            "cells": dict(sorted(cells.items())), "verdicts": verdicts}


def refuse_as_baseline(records: SuiteRecords) -> None:
    """Raise (a one-line UserError) for records that must never become a baseline: a rehearsal's, or a
    suite's holding a run that read fabricated data."""
    if records.rehearsal:
        raise UserError(f"suite {records.suite!r} is a rehearsal (fabricated data, not a measurement): its "
                        f"records are never a baseline; write one from a suite run on real data")
    if records.fabricated:
        raise UserError(f"suite {records.suite!r} holds {len(records.fabricated)} run(s) that read fabricated "
                        f"data (first: {records.fabricated[0]}): remove them and rerun on real data before "
                        f"writing a baseline")


def load_baseline(path: Path) -> dict:
    data = json.loads(Path(path).read_text())
    if data.get("format") != FORMAT:
        raise ValueError(f"{path}: baseline format {data.get('format')!r}, expected {FORMAT}")
    if is_rehearsal(str(data.get("suite", ""))):  # written by hand: `baseline` refuses to write one
        raise ValueError(f"{path}: a rehearsal's baseline (suite {data['suite']!r}): fabricated data, "
                         f"never a baseline")
    return data


def verdict_rank(key: str, verdict: str) -> int:
    """Worst (0) to best, on the scale of the verdict's table (as published, or against tuned baselines)."""
    scale = TUNED_VERDICTS if key.startswith("tuned/") else VERDICTS
    return scale.index(verdict) if verdict in scale else -1  # an unknown word ranks below every known one


def allowed_epochs(base_median: float, tolerance: dict) -> float:
    """The largest median that still passes against a baseline median."""
    return base_median + max(float(tolerance["epochs"]), float(tolerance["relative"]) * base_median)


def _check_cell(key: str, base: dict, now: dict | None, tolerance: dict) -> str | None:
    if now is None:
        return f"{key}: in the baseline, no counted run now"
    if base.get("median") is None:
        return None  # the baseline never reached the target: nothing to regress from
    limit = allowed_epochs(float(base["median"]), tolerance)
    if now["median"] is None:
        return (f"{key}: median epochs-to-target now undefined (> {now['budget']}, {now['reached']}/"
                f"{now['seeds']} reached); baseline {base['median']:g}")
    if now["median"] > limit + 1e-9:
        return f"{key}: median epochs-to-target {now['median']:g}, baseline {base['median']:g} (allowed ≤ {limit:g})"
    return None


def check_rehearsal(analysis: Analysis) -> GateResult:
    """A rehearsal's gate: did every cell run? Never a comparison (its numbers measure nothing)."""
    records = analysis.records
    tuning = records.tuning.problems if records.tuning else []
    failures = [f"{p.path.name}: {p.kind}: {p.detail}" for p in [*records.problems, *tuning]
                if p.kind != "superseded"]  # an older trial its study moved past: not a cell that failed
    failures += failed_cells(records.results_dir, records.suite)
    ran = set(records.runs["task"])
    failures += [f"task {task}: in the rehearsal plan, no counted run"
                 for task in sorted(planned_tasks(records)) if task not in ran]
    notes = ["rehearsal (fabricated data, not a measurement): compared with no baseline; checked only that "
             "every cell ran"]
    return GateResult(failures, records.total_dirs, notes, "run records")


def check(analysis: Analysis, baseline: dict) -> GateResult:
    if analysis.records.rehearsal:  # whatever baseline is given: a rehearsal is never compared
        return check_rehearsal(analysis)
    tolerance = {**DEFAULT_TOLERANCE, **(baseline.get("tolerance") or {})}
    current = snapshot(analysis, tolerance)
    failures, notes = [], []
    if fabricated := analysis.records.fabricated:  # left out of every number, but the suite measured less
        failures.append(f"{len(fabricated)} run(s) read fabricated data, not a measurement (left out of every "
                        f"number): {', '.join(p.name for p in fabricated)}")
    for key, base in sorted(baseline.get("cells", {}).items()):
        failure = _check_cell(key, base, current["cells"].get(key), tolerance)
        if failure:
            failures.append(failure)
    for claim, verdict in sorted(baseline.get("verdicts", {}).items()):
        now = current["verdicts"].get(claim, TUNED_VERDICTS[0] if claim.startswith("tuned/") else "not run")
        if verdict_rank(claim, now) < verdict_rank(claim, verdict):
            failures.append(f"claim {claim}: verdict dropped from {verdict!r} to {now!r}")
    if not baseline.get("cells") and not baseline.get("verdicts"):
        notes.append("the baseline holds no cell and no verdict: nothing compared (write one with "
                     "`python -m report baseline suite=... out=...`)")
    new = sorted(set(current["cells"]) - set(baseline.get("cells", {})))
    if new:
        notes.append(f"{len(new)} cell(s) not in the baseline, not checked: {', '.join(new)}")
    return GateResult(failures, len(baseline.get("cells", {})) + len(baseline.get("verdicts", {})), notes)

"""Why a record is not counted (`Problem`), and the rule that the suite's runs (report/load.py) and its
tuning trials (report/tuning.py) share: a record that read fabricated data counts only in a rehearsal,
which the suite's name or its plan (`grids/<suite>/rehearsal.json`) makes it. The rehearsal's page is
report/rehearsal.py's.

Reads records only: no torch.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from results.layout import Layout
from results.records import is_rehearsal

PLAN_FILE = "rehearsal.json"
NOT_MEASURED = "read fabricated data (a rehearsal's): not a measurement, left out of every number"


@dataclass
class Problem:
    """A run directory the report could not count, and why."""

    path: Path
    kind: str  # corrupt | incomplete | failed | inconsistent | fabricated
    detail: str


def read_plan(results_dir: str | os.PathLike, suite: str, problems: list[Problem]) -> tuple[dict | None, bool]:
    """(grids/<suite>/rehearsal.json, whether the suite is a rehearsal): its name says so or the file
    is there. An unreadable file is listed as a problem and the suite stays a rehearsal: the file's
    presence is what says so."""
    path = Layout.at(results_dir).grid(suite) / PLAN_FILE
    if not path.exists():
        return None, is_rehearsal(suite)
    return read_object(path, problems, "rehearsal plan "), True


def read_object(path: Path, problems: list[Problem], what: str = "") -> dict | None:
    """The JSON object in `path`; None, listed as a corrupt record, when it cannot be read as one."""
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        problems.append(Problem(path, "corrupt", f"{what}unreadable: {exc}"))
        return None
    return data


def fabricated_problem(status: dict, path: Path, rehearsal: bool) -> Problem | None:
    """Outside a rehearsal a run that read fabricated data is never counted: its numbers measure nothing,
    and pooled with a real suite's runs they would pass for a measurement."""
    if rehearsal or status.get("fabricated_data") is not True:
        return None
    return Problem(path, "fabricated", NOT_MEASURED)

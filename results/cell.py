"""A grid cell's record (`grids/<suite>/cells/<name>.json`, results/layout.py): the one definition its
writer (runners/grid/job.py) and its readers (the grid's summary and progress, the report's tuning
pages) share. A record that lacks a field, or holds one of the wrong kind, reads as one CorruptRecord
line naming the file and the field — an older version's record fails so, it is never half-read."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from .records import CorruptRecord, write_json_atomic


@dataclass(frozen=True)
class CellRecord:
    cell: str  # task/optimizer/schedule/seedN, or task/+recipe/seedN
    task: str
    recipe: str | None
    tuned: bool
    tuning: dict | None  # the study's outcome the cell ran at (runners/grid/tuning.py)
    optimizer: str
    schedule: str
    seed: int
    budget_free: bool
    max_epochs: int
    lr: dict | None  # {"value", "origin"} of its first run
    status: str  # ok | failed
    error: str | None
    epochs_to_target: int | None  # results/targets.py's one definition over its runs
    censored: bool  # ran without error, target never reached
    probes: list  # one entry per run of its search: budget, run_id, action, status, ...
    runs_trained: int
    trunk: dict | None  # a WSD cell's stable run (runners/grid/wsd.py)
    epochs_trained: int
    started: str
    ended: str
    wall_s: float

    def write(self, path: Path) -> None:
        write_json_atomic(path, asdict(self))

    @classmethod
    def from_mapping(cls, data: Any, where: Path | str) -> CellRecord:
        if not isinstance(data, dict):
            raise CorruptRecord(f"{where}: not a cell record (a JSON object)")
        missing = [f.name for f in fields(cls) if f.name not in data]
        if missing:
            raise CorruptRecord(f"{where}: a cell record without {', '.join(missing)} (an older version's: "
                                f"rerun its grid to rewrite it)")
        record = cls(**{f.name: data[f.name] for f in fields(cls)})
        if not isinstance(record.probes, list) or record.status not in ("ok", "failed"):
            raise CorruptRecord(f"{where}: a cell record with malformed probes or status")
        return record

    @classmethod
    def read(cls, path: Path) -> CellRecord:
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise CorruptRecord(f"{path}: unreadable ({type(exc).__name__})") from None
        return cls.from_mapping(data, path)

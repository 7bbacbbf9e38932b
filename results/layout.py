"""Where everything lives under a results directory: the one spelling of each path, for the runners that
write and the report that reads.

    runs/<suite>/<run_id>/            a run (records.py: config.yaml, metrics.jsonl, status.json, ...)
    runs/<suite>-tuning/, -trunks/    the runs a suite's tuning trials and WSD trunks make
    runs/pretrain/                    pre-training runs, shared by every suite
    grids/<suite>/cells/              a cell record per grid cell (its budget search)
    grids/<suite>/tuning/             a tuning outcome per study
    grids/<suite>/launches/<hash>/    a launch's cells, one file each, and its progress
    grids/.slots/                     joblib workers' device slots
    tuning/<suite>.db, .journal       the suite's Optuna storage; tuning/locks/ its workers' locks
    cache/                            task caches (decoded images, tokenised text); cache/lr_find/
    reports/<suite>/                  the report's page and exports
    rehearsal/data/                   `python -m suites.data fake`'s default root
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TUNING_SUFFIX = "-tuning"
TRUNKS_SUFFIX = "-trunks"
PRETRAIN_SUITE = "pretrain"


@dataclass(frozen=True)
class Layout:
    root: Path

    @classmethod
    def at(cls, results_dir: str | Path) -> Layout:
        return cls(Path(results_dir))

    def runs(self, suite: str) -> Path:
        return self.root / "runs" / suite

    def run(self, suite: str, run_id: str) -> Path:
        return self.runs(suite) / run_id

    def grid(self, suite: str) -> Path:
        return self.root / "grids" / suite

    def cells(self, suite: str) -> Path:
        return self.grid(suite) / "cells"

    def tuning_outcomes(self, suite: str) -> Path:
        return self.grid(suite) / "tuning"

    def launch(self, suite: str, digest: str) -> Path:
        return self.grid(suite) / "launches" / digest

    def worker_slots(self) -> Path:
        return self.root / "grids" / ".slots"

    def tuning(self) -> Path:
        return self.root / "tuning"

    def tuning_locks(self) -> Path:
        return self.tuning() / "locks"

    def cache(self) -> Path:
        return self.root / "cache"

    def lr_find_cache(self) -> Path:
        return self.cache() / "lr_find"

    def reports(self, suite: str) -> Path:
        return self.root / "reports" / suite

    def rehearsal_data(self) -> Path:
        return self.root / "rehearsal" / "data"

"""WSD's budget search from one stable run: every budget's WSD run shares its warm-up and stable prefix
(the LR before the cooldown start s(B) does not depend on B: runners/schedules.py wsd), so a cell trains
that prefix once — the "trunk", the cell's run with the cooldown removed — and each probe of the budget
search is a branch: the ordinary WSD run of budget B (its own config and run id), seeded under its lock
as a run interrupted at epoch s(B) with the trunk's first s(B) metrics rows and epoch-s(B) checkpoint,
then resumed by `execute`, which trains only its cooldown. The checkpoint holds the model, optimizer and
RNG states and data order depends on (seed, epoch) only (runners/engine.py), so a branch's records equal
a from-scratch run's (tests/test_wsd.py checks it on CPU).

The trunk is a resumable run extended on demand (RunConf.halt_after), keeping every epoch's checkpoint
(RunConf.keep_epoch_checkpoints): bisection branches from epochs it has already passed. It lives in the
suite `<suite>-trunks`, apart from the suite's runs, as pre-training runs do: the report counts a
suite's runs and a trunk is no cell's outcome.

Cost: trunk epochs up to the largest s(B) probed, plus each probe's cooldown (~cooldown_frac x B),
instead of the sum of the budgets. A cell's saving over independent runs therefore depends on the
search's probes (ladder start and factor, where the target falls) and on cooldown_frac: the smaller it
is, the more of each probe comes from the trunk.
"""
from __future__ import annotations

import datetime as dt
import shutil
import sys

from omegaconf import DictConfig, open_dict

from results import records
from results.layout import TRUNKS_SUFFIX

from ..run import execute
from ..run_lock import RunLock
from ..schedules import cooldown_start
from ..spec import RunSpec, resolve_run
from .cells import run_config, searches_budget

TRUNK_SUITE = "{suite}" + TRUNKS_SUFFIX


def branches(cfg: DictConfig) -> bool:
    """A WSD grid cell searched over budgets, without stages (a staged task restarts the schedule per
    stage, so its prefix is not shared): its probes branch from a trunk."""
    return searches_budget(cfg) and cfg.schedule.kind == "wsd" and not cfg.task.stages


def branch_epoch(cfg: DictConfig, budget: int) -> int:
    return max(0, cooldown_start(budget, float(cfg.schedule.cooldown_frac)))


def trunk_config(cfg: DictConfig) -> DictConfig:
    """The cell's run with the cooldown removed, at the task's maximum budget: a run id of its own."""
    run = run_config(cfg, epochs=int(cfg.task.epochs), keep_epoch_checkpoints=True,
                     suite=TRUNK_SUITE.format(suite=cfg.suite))
    with open_dict(run):
        run.schedule.stable_only = True
    if not sys.stderr.isatty():
        run.progress = False
    return run


def trunk_rows(path) -> int:
    """Epochs the trunk can be branched from: its metrics rows (a row without its checkpoint is retrained
    by the next extension)."""
    try:
        return len(records.read_metrics(path / records.METRICS_FILE))
    except records.CorruptRecord:
        return 0


class Trunk:
    """The cell's stable run, extended only as far as the probes need; remembers what it trained."""

    def __init__(self, cell: DictConfig):
        self.spec = resolve_run(trunk_config(cell))
        self.path = self.spec.path
        self.cell = cell
        self.epochs_trained = 0

    def can_branch(self, epoch: int) -> bool:
        return (trunk_rows(self.path) >= epoch
                and records.epoch_checkpoint_path(self.path, epoch).exists())

    def extend(self, epoch: int) -> bool:
        """Train the trunk through `epoch` (resuming it); False when it cannot get there (diverged)."""
        if self.can_branch(epoch):
            return True
        before = trunk_rows(self.path)
        try:
            execute(self.spec.with_output(halt_after=epoch))
        finally:
            self.epochs_trained += max(0, trunk_rows(self.path) - before)
        return self.can_branch(epoch)

    def seed(self, branch: RunSpec, budget: int) -> bool:
        """Seed the branch run of `budget` from the trunk, if its directory holds no run yet (no
        status.json: a run writes one before any epoch). False: it runs as it is (from scratch, or
        resumed: a branch killed during its cooldown resumes like any run)."""
        epoch = branch_epoch(self.cell, budget)
        path = branch.path
        if epoch < 1 or (path / records.STATUS_FILE).exists() or not self.extend(epoch):
            return False
        with RunLock(path):
            if (path / records.STATUS_FILE).exists():  # another writer got there first
                return False
            with RunLock(self.path):
                rows = records.read_metrics(self.path / records.METRICS_FILE)[:epoch]
                source = records.epoch_checkpoint_path(self.path, epoch)
                # Status last: a kill before it leaves no status, so the next attempt seeds again.
                records.write_text_atomic(path / records.CONFIG_FILE, branch.config_yaml())
                records.write_text_atomic(path / records.METRICS_FILE,
                                          "".join(records.jsonl_line(r) for r in rows))
                with source.open("rb") as src:
                    records.write_atomic(path / records.CHECKPOINT_FILE,
                                         lambda fh: shutil.copyfileobj(src, fh))
            started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            records.write_json_atomic(path / records.STATUS_FILE, {
                "status": "running", "run_id": path.name, "epochs_done": epoch, "started": started,
                "branched_from": {"run_id": self.path.name, "suite": self.spec.run.suite, "epoch": epoch},
                "message": f"branched from trunk {self.path.name} at epoch {epoch}"})
        return True

    def release(self) -> None:
        """Drop the per-epoch checkpoints once the cell's search has ended (a ResNet-50's are ~300 MB
        each); the trunk's records and last checkpoint stay. A later probe that needs an epoch no longer
        kept runs from scratch instead (`seed` returns False)."""
        shutil.rmtree(self.path / records.EPOCH_CHECKPOINTS_DIR, ignore_errors=True)

    def record(self) -> dict:
        return {"run_id": self.path.name, "suite": self.spec.run.suite, "epochs_done": trunk_rows(self.path),
                "epochs_trained": self.epochs_trained}


def planned_trunk(cell: DictConfig, needed: int) -> dict:
    """The plan's trunk: epochs it has, the most a planned branch needs, and the epochs left to train."""
    path = resolve_run(trunk_config(cell)).path
    done = trunk_rows(path)
    return {"run_id": path.name, "epochs_done": done, "needed": needed, "cost": max(0, needed - done)}

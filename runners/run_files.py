"""A run's directory and its files (runners/run.py owns the run; this, what it reads and writes):
config.yaml, metrics.jsonl, status.json, checkpoint.pt, resumes.jsonl."""
from __future__ import annotations

import datetime as dt
import os
import socket
from pathlib import Path

import torch

from results import records
from results.errors import UserError

from .checkpoint import load_checkpoint, save_checkpoint

BALLAST_BYTES = 256 * 2**10  # room for status.json and its temporary (RunFiles.ballast_path)
# Reading a record can fail below records' own checks: a file of non-UTF-8 bytes, a directory in a
# file's place. Such a run is as damaged as one with a bad line (records.CorruptRecord).
UNREADABLE = (records.CorruptRecord, OSError, UnicodeDecodeError)


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def damage(path: Path, exc: Exception) -> str:
    """One line for an unreadable record, naming its file (a decoding error does not)."""
    if isinstance(exc, UnicodeDecodeError):
        for name in (records.STATUS_FILE, records.METRICS_FILE):
            try:
                (path / name).read_text()
            except UnicodeDecodeError:
                return f"{path / name}: not UTF-8 text ({exc.reason} at byte {exc.start})"
            except OSError:
                continue
    text = " ".join(str(exc).split())
    return text if isinstance(exc, records.CorruptRecord) else f"{path}: unreadable records ({text})"


class RunFiles:
    """The run directory: config.yaml, metrics.jsonl, status.json, checkpoint.pt, and resumes.jsonl
    (when and where each resume happened: kept apart so the records of a resumed run are identical to
    an uninterrupted one's)."""

    def __init__(self, path: Path):
        self.path = path
        self.metrics_path = path / records.METRICS_FILE
        self.status_path = path / records.STATUS_FILE
        self.checkpoint_path = path / records.CHECKPOINT_FILE
        # Held while the run trains, freed when it fails, so that a full disk still has room to record
        # the failure in status.json (a disk filled by someone else is as full as one filled by us).
        self.ballast_path = path / ".ballast"
        self.rows: list[dict] = []
        self.keep_epoch_checkpoints = False  # RunConf.keep_epoch_checkpoints (a WSD trunk's)

    def read_state(self) -> dict | None:
        """Existing status (None for a new run); raises UserError when the old records are corrupt."""
        try:
            status, self.rows = records.read_run(self.path)
        except UNREADABLE as exc:
            raise UserError(f"{damage(self.path, exc)}. The run's files are kept as they are; rerun with "
                            f"force=true to move them aside and train this run again.") from None
        return status

    def is_orphaned(self) -> bool:
        """Metrics or a checkpoint without a status.json: never a run's own state (a run writes its status
        before its first epoch, and a WSD branch its status last), so a damaged one — a deleted status.
        Trained again, after its files are moved aside as force=true moves them: whatever they hold is
        kept, and nothing is resumed from files whose status cannot vouch for them."""
        return not os.path.lexists(self.status_path) and any(
            os.path.lexists(p) for p in (self.metrics_path, self.checkpoint_path))

    def load_checkpoint(self) -> dict | None:
        try:
            state = load_checkpoint(self.checkpoint_path)
        except Exception as exc:  # a truncated or foreign file: say so rather than mix runs
            raise UserError(f"{self.checkpoint_path}: unreadable checkpoint ({exc}); rerun with "
                            f"force=true to move the run aside and train it again") from None
        # Epochs recorded after the last checkpoint will be trained again: drop their rows (and a line
        # cut short by a kill), so that the next append starts on a line of its own.
        try:
            self.rows = records.keep_epochs(self.metrics_path, self.rows, state["epoch"] if state else 0)
        except UNREADABLE as exc:
            raise UserError(f"{damage(self.path, exc)}; rerun with force=true to move the run aside") from None
        return state

    def log_resume(self, status: dict) -> None:
        records.append_jsonl(self.path / records.RESUMES_FILE, {
            "at": now(), "after": status["status"], "epochs_done": len(self.rows),
            "host": socket.gethostname(), "pid": os.getpid(), "threads": torch.get_num_threads()})

    def epoch_done(self, row: dict, state: dict) -> None:
        records.append_jsonl(self.metrics_path, row)  # first the row, then the checkpoint covering it
        self.rows.append(row)
        if not self.keep_epoch_checkpoints:
            save_checkpoint(self.checkpoint_path, state)
            return
        # The epoch's own file first, then checkpoint.pt made a hard link to it (atomically): whenever
        # checkpoint.pt is at epoch e, checkpoints/epoch_<e>.pt exists. Every save makes a new file, so
        # a kept epoch is never overwritten in place.
        kept = records.epoch_checkpoint_path(self.path, state["epoch"])
        save_checkpoint(kept, state)
        link = self.path / f".{records.CHECKPOINT_FILE}.link"
        link.unlink(missing_ok=True)
        try:
            os.link(kept, link)
            os.replace(link, self.checkpoint_path)
        except OSError:  # a filesystem without hard links
            save_checkpoint(self.checkpoint_path, state)

    def write_status(self, status: dict) -> None:
        records.write_json_atomic(self.status_path, status)

    def hold_ballast(self) -> None:
        records.write_atomic(self.ballast_path, lambda fh: fh.write(bytes(BALLAST_BYTES)))

    def write_final_status(self, status: dict) -> None:
        self.ballast_path.unlink(missing_ok=True)
        self.write_status(status)

    def move_aside(self) -> Path:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        dest = self.path.with_name(f".{self.path.name}.replaced-{stamp}")
        self.path.rename(dest)
        return dest

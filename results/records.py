"""Run records on disk: `results/runs/<suite>/<run_id>/{config.yaml, metrics.jsonl, status.json}`.

Writes are never half-done: JSON files are replaced atomically and metrics are appended one complete
line at a time, so a run killed at any instant leaves records that are either old or new, not mixed.
"""
from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Mapping

from omegaconf import OmegaConf

from .errors import UserError
from .layout import TRUNKS_SUFFIX, TUNING_SUFFIX, Layout

# "halted": stopped after RunConf.halt_after epochs, to be resumed (a WSD trunk: runners/grid/wsd.py).
STATUSES = ("running", "completed", "diverged", "pruned", "failed", "halted")
# Rerunning these would repeat the same result. "pruned": a tuning trial stopped by the pruner.
FINAL_STATUSES = ("completed", "diverged", "pruned")
# Keys that change where or how a run reports, never what it computes: excluded from the run id.
OUTPUT_ONLY_KEYS = ("results_dir", "progress", "force", "suite", "keep_checkpoint", "threads", "hydra",
                    "tuning_trial", "halt_after", "keep_epoch_checkpoints")
# Keys added after runs were recorded, which change what a run computes when set: hashed only when not
# null, so a run that leaves them unset keeps the id it had before they existed.
HASHED_WHEN_SET = ("limit_batches",)
# What a finished run's status must say for the grid, the tuner and the report to count it
# (runners/run.py train_run writes them all).
FINISHED_KEYS = ("run_id", "task", "optimizer", "schedule", "seed", "epochs", "max_epochs", "budget_free",
                 "target", "epochs_done", "epochs_to_target", "target_met_at_end")
# A rehearsal's records (runners/grid/rehearsal.py) live under `<suite>-rehearsal`, never pooled with a
# real suite's: they trained on fabricated data.
REHEARSAL_SUFFIX = "-rehearsal"
EPOCH_CHECKPOINTS_DIR = "checkpoints"  # checkpoints/epoch_<e>.pt, with RunConf.keep_epoch_checkpoints

METRICS_FILE = "metrics.jsonl"
STATUS_FILE = "status.json"
CONFIG_FILE = "config.yaml"
CHECKPOINT_FILE = "checkpoint.pt"
RESUMES_FILE = "resumes.jsonl"


class CorruptRecord(Exception):
    """A record file exists but cannot be trusted (bad JSON, missing keys, out-of-order epochs, or a
    finished run whose files disagree with its status or its run id)."""


class DiskFull(UserError):
    """A record or checkpoint could not be written for lack of space; nothing partial was left."""

    def __init__(self, path: Path):
        free = shutil.disk_usage(path.parent).free if path.parent.exists() else 0
        super().__init__(f"no space left writing {path} ({free / 2**20:.1f} MiB free on its device); "
                         f"free some space and rerun")


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


NAME_RULE = "letters, digits, '_', '-' and '.', not starting with '.'"
_NAME = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*")


def name_problem(kind: str, value: object) -> str | None:
    """The one rule for names that become a path part (suite, task, optimizer, schedule, recipe): a
    problem line when `value` breaks it ('../x', 'a/b', '.hidden', ''), else None."""
    text = str(value)
    if _NAME.fullmatch(text):
        return None
    return f"{kind} {text!r} cannot name a directory: use {NAME_RULE}"


def run_id(config: Mapping[str, Any], exclude: tuple[str, ...] = OUTPUT_ONLY_KEYS) -> str:
    """Stable 12-hex-digit hash of a resolved config (a plain dict), ignoring output-only keys."""
    kept = {k: v for k, v in config.items()
            if k not in exclude and not (k in HASHED_WHEN_SET and v is None)}
    canonical = json.dumps(kept, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def epoch_checkpoint_path(path: Path, epoch: int) -> Path:
    """A run's checkpoint after `epoch`, kept when RunConf.keep_epoch_checkpoints (a WSD trunk's)."""
    return path / EPOCH_CHECKPOINTS_DIR / f"epoch_{epoch}.pt"


# The suites a suite's own runs beget: its tuning trials' (results/tuning.py trial_suite) and its WSD
# trunks' (runners/grid/wsd.py TRUNK_SUITE).
DERIVED_SUFFIXES = (TUNING_SUFFIX, TRUNKS_SUFFIX)


def is_rehearsal(suite: str) -> bool:
    """A rehearsal's suite, or one its runs beget (`<suite>-rehearsal-tuning`, `...-trunks`)."""
    base = str(suite)
    for suffix in DERIVED_SUFFIXES:
        base = base.removesuffix(suffix)
    return base.endswith(REHEARSAL_SUFFIX)


def run_dir(results_dir: str | os.PathLike, suite: str, rid: str) -> Path:
    return Layout.at(results_dir).run(suite, rid)


def _json_safe(value: Any) -> Any:
    """NaN and infinities are not JSON; records store them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _file_mode() -> int:
    """The mode an ordinary open() would give a new file: 0666 less the umask (which can only be read by
    setting it, so it is set back at once). mkstemp's 0600 would hide records from a group's readers."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """The one way a record, checkpoint or cache file is written: `write(fh)` fills a temporary file
    beside `path`, which is flushed to disk (fsync) and then renamed over `path`. A reader or a kill at
    any instant sees the old file or the new one, never a part; a failed write leaves no temporary, and
    a full disk raises DiskFull."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _file_mode())
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in NO_SPACE:
            raise DiskFull(path) from None
        raise


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, lambda fh: fh.write(text.encode()))


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    write_text_atomic(path, json.dumps(_json_safe(dict(data)), indent=2, sort_keys=True) + "\n")


def jsonl_line(row: Mapping[str, Any]) -> str:
    return json.dumps(_json_safe(dict(row)), sort_keys=True) + "\n"


def append_jsonl(path: Path, row: Mapping[str, Any]) -> None:
    """Append one complete line; a write that fails part-way (a full disk) is cut back off. Unbuffered,
    so that no buffered part is flushed again on close after the cut."""
    data = jsonl_line(row).encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, _file_mode())
    try:
        size = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as exc:
            os.ftruncate(fd, size)
            if exc.errno in NO_SPACE:
                raise DiskFull(path) from None
            raise
    finally:
        os.close(fd)


def read_metrics(path: Path) -> list[dict]:
    """Per-epoch rows of a metrics.jsonl. A last line without its newline (a write cut short by a kill)
    is dropped; any other unreadable line or a break in the epoch sequence raises CorruptRecord."""
    if not path.exists():
        return []
    text = _read_text(path)
    lines = text.split("\n")
    if lines and lines[-1] != "":
        lines = lines[:-1]  # partial tail from an interrupted append
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            epoch = int(row["epoch"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptRecord(f"{path}: line {number} is not a metrics record ({exc})") from None
        if epoch != len(rows) + 1:
            raise CorruptRecord(f"{path}: line {number} has epoch {epoch}, expected {len(rows) + 1}")
        rows.append(row)
    return rows


def keep_epochs(path: Path, rows: list[dict], last_epoch: int) -> list[dict]:
    """Make metrics.jsonl hold exactly the epochs up to `last_epoch` (those a checkpoint covers), also
    dropping a line cut short by a kill, so that a resumed run appends after a whole line."""
    if len(rows) < last_epoch:
        raise CorruptRecord(f"{path}: {len(rows)} rows, but the checkpoint is at epoch {last_epoch}")
    kept = rows[:last_epoch]
    text = "".join(jsonl_line(r) for r in kept)
    if not path.exists() or _read_text(path) != text:
        write_text_atomic(path, text)
    return kept


def _read_text(path: Path) -> str:
    """A record file's text; a file that is not UTF-8, or a directory in its place, is a damaged run."""
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CorruptRecord(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None


def read_status(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        status = json.loads(_read_text(path))
    except ValueError as exc:
        raise CorruptRecord(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(status, dict) or status.get("status") not in STATUSES:
        raise CorruptRecord(f"{path}: missing or unknown 'status' (expected one of {STATUSES})")
    return status


def check_finished(path: Path, status: dict, rows: list[dict]) -> None:
    """A finished run is counted only when its files agree: its status has every FINISHED_KEYS, its
    metrics hold one row per epoch done, and its config.yaml hashes to its run id (the directory's name).
    Raises CorruptRecord otherwise."""
    if status["status"] not in FINAL_STATUSES:
        return
    if missing := [k for k in FINISHED_KEYS if k not in status]:
        raise CorruptRecord(f"{path}: {status['status']} but its {STATUS_FILE} lacks {', '.join(missing)}")
    if not (path / METRICS_FILE).exists():
        raise CorruptRecord(f"{path}: {status['status']} but {METRICS_FILE} is missing")
    if len(rows) != status.get("epochs_done"):
        raise CorruptRecord(f"{path}: {status['status']} after {status.get('epochs_done')} epochs, but "
                            f"{METRICS_FILE} holds {len(rows)} whole rows")
    config = path / CONFIG_FILE
    if not config.exists():
        raise CorruptRecord(f"{path}: {status['status']} but {CONFIG_FILE} is missing")
    try:
        key = run_id(OmegaConf.to_container(OmegaConf.load(config), resolve=False))
    except Exception as exc:  # omegaconf's parse errors have no common base class
        raise CorruptRecord(f"{config}: unreadable ({type(exc).__name__})") from None
    if key != path.name:
        raise CorruptRecord(f"{config}: hashes to {key}, not to the run id {path.name}")


def read_run(path: Path) -> tuple[dict | None, list[dict]]:
    """A run directory's status (None: no run yet) and metrics rows, checked (check_finished)."""
    status = read_status(path / STATUS_FILE)
    rows = read_metrics(path / METRICS_FILE)
    if status is not None:
        check_finished(path, status, rows)
    return status, rows


@dataclass
class RunRecord:
    """Everything the report needs of one run, read without torch."""

    path: Path
    status: dict
    metrics: list[dict] = field(default_factory=list)
    config_text: str = ""


def load_run(path: Path) -> RunRecord:
    """Read one run directory; raises CorruptRecord when it cannot be trusted."""
    status, metrics = read_run(path)
    if status is None:
        raise CorruptRecord(f"{path}: no {STATUS_FILE}")
    config = path / CONFIG_FILE
    return RunRecord(path=path, status=status, metrics=metrics,
                     config_text=_read_text(config) if config.exists() else "")


def iter_run_dirs(results_dir: str | os.PathLike, suite: str) -> list[Path]:
    root = Layout.at(results_dir).runs(suite)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))

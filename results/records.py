"""Run records on disk: `results/runs/<suite>/<run_id>/{config.yaml, metrics.jsonl, status.json}`.

Writes are never half-done: JSON files are replaced atomically and metrics are appended one complete
line at a time, so a run killed at any instant leaves records that are either old or new, not mixed.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Mapping

STATUSES = ("running", "completed", "diverged", "failed")
FINAL_STATUSES = ("completed", "diverged")  # rerunning these would repeat the same result
# Keys that change where or how a run reports, never what it computes: excluded from the run id.
OUTPUT_ONLY_KEYS = ("results_dir", "progress", "force", "suite", "keep_checkpoint", "threads", "hydra")

METRICS_FILE = "metrics.jsonl"
STATUS_FILE = "status.json"
CONFIG_FILE = "config.yaml"
CHECKPOINT_FILE = "checkpoint.pt"


class CorruptRecord(Exception):
    """A record file exists but cannot be trusted (bad JSON, missing keys, out-of-order epochs)."""


def run_id(config: Mapping[str, Any], exclude: tuple[str, ...] = OUTPUT_ONLY_KEYS) -> str:
    """Stable 12-hex-digit hash of a resolved config (a plain dict), ignoring output-only keys."""
    kept = {k: v for k, v in config.items() if k not in exclude}
    canonical = json.dumps(kept, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def run_dir(results_dir: str | os.PathLike, suite: str, rid: str) -> Path:
    return Path(results_dir) / "runs" / suite / rid


def _json_safe(value: Any) -> Any:
    """NaN and infinities are not JSON; records store them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """The one way a record, checkpoint or cache file is written: `write(fh)` fills a temporary file
    beside `path`, which is flushed to disk (fsync) and then renamed over `path`. A reader or a kill at
    any instant sees the old file or the new one, never a part; a failed write leaves no temporary."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, lambda fh: fh.write(text.encode()))


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    write_text_atomic(path, json.dumps(_json_safe(dict(data)), indent=2, sort_keys=True) + "\n")


def append_jsonl(path: Path, row: Mapping[str, Any]) -> None:
    line = json.dumps(_json_safe(dict(row)), sort_keys=True) + "\n"
    with open(path, "a") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def read_metrics(path: Path) -> list[dict]:
    """Per-epoch rows of a metrics.jsonl. A last line without its newline (a write cut short by a kill)
    is dropped; any other unreadable line or a break in the epoch sequence raises CorruptRecord."""
    if not path.exists():
        return []
    text = path.read_text()
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
    """Rewrite metrics.jsonl with only the epochs up to `last_epoch` (those a checkpoint covers)."""
    kept = [r for r in rows if int(r["epoch"]) <= last_epoch]
    write_text_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
    return kept


def read_status(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        status = json.loads(path.read_text())
    except ValueError as exc:
        raise CorruptRecord(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(status, dict) or status.get("status") not in STATUSES:
        raise CorruptRecord(f"{path}: missing or unknown 'status' (expected one of {STATUSES})")
    return status


@dataclass
class RunRecord:
    """Everything the report needs of one run, read without torch."""

    path: Path
    status: dict
    metrics: list[dict] = field(default_factory=list)
    config_text: str = ""


def load_run(path: Path) -> RunRecord:
    """Read one run directory; raises CorruptRecord when it cannot be trusted."""
    status = read_status(path / STATUS_FILE)
    if status is None:
        raise CorruptRecord(f"{path}: no {STATUS_FILE}")
    metrics = read_metrics(path / METRICS_FILE)
    config = path / CONFIG_FILE
    return RunRecord(path=path, status=status, metrics=metrics,
                     config_text=config.read_text() if config.exists() else "")


def iter_run_dirs(results_dir: str | os.PathLike, suite: str) -> list[Path]:
    root = Path(results_dir) / "runs" / suite
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))

"""Run records out to TensorBoard (`python -m report export tensorboard`), for its run selector, charts
and HParams table.

Each run becomes `<out>/<task>/<optimizer>__<schedule>__<recipe|trialN|grid>__e<epochs>__s<seed>__<run_id>/`
holding one event file:

- `metrics/<key>` for every numeric key of each metrics.jsonl row, and `time/wall_s`, at step = epoch;
- `schedule/lr` and `schedule/momentum` (null momentum left out) from each row's `lr_trace`, at step =
  the optimizer step of the sample: the previous row's cumulative `step` plus the sample's fraction of
  its epoch times that epoch's steps, rounded, moved on by one where two samples would share a step (an
  epoch with fewer optimizer steps than samples, e.g. under gradient accumulation), so strictly ordered;
- `target/epochs_to_target` at that epoch, when the run reached its target;
- an HParams session: task, optimizer, schedule, recipe, seed, lr, weight decay, epochs, ..., whether it
  read fabricated data (a rehearsal's: not a measurement) and how the run ended. The plugin takes its
  metric columns from the scalars above (the last value of each).

Wall times are the run's own (`started` + the row's `wall_s`), so TensorBoard's "relative" axis is
training time, and the output depends on the records alone: an export repeated gives the same bytes.

Reads records only and writes with tensorboard's protos and record writer: no torch, no TensorFlow.
tensorboard is an optional extra, imported only when exporting.
"""
from __future__ import annotations

import importlib
import math
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import yaml

from results.errors import UserError
from results.records import STATUS_FILE, CorruptRecord, RunRecord, iter_run_dirs, load_run, write_atomic

from . import not_writable

INSTALL_HINT = "TensorBoard export needs the tensorboard package: pip install -e '.[tensorboard]'"
NOT_METRICS = ("epoch", "step", "wall_s", "lr", "momentum", "lr_trace")  # written under their own tags
EVENT_FILE = "events.out.tfevents.{:010d}.onecycle-bench"  # "tfevents" is what TensorBoard looks for
PENDING = ".pending-events"  # an event file being written, until it is complete


@dataclass
class Exported:
    """What an export did, for the CLI's summary line and warnings."""

    out: Path
    runs: int = 0
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # corrupt records: (run dir, why)


def require_tensorboard() -> None:
    """Fail before anything is read or written when the optional extra is missing."""
    try:
        importlib.import_module("tensorboard.plugins.hparams.summary_v2")
    except ImportError:
        raise UserError(INSTALL_HINT) from None


def export_tensorboard(suite: str, results_dir: str, out_dir: str | None = None) -> Exported:
    """Write every readable run of `suite` (default out: `<results_dir>/tensorboard/<suite>/`), each run's
    events replaced whole; corrupt records are skipped and listed, never half-exported."""
    require_tensorboard()
    done = Exported(Path(out_dir) if out_dir else Path(results_dir) / "tensorboard" / suite)
    for path in iter_run_dirs(results_dir, suite):
        try:
            record = load_run(path)
            name, events = run_name(record.status, path), run_events(record)
        except CorruptRecord as exc:
            done.skipped.append((path, str(exc)))
            continue
        except (KeyError, TypeError, ValueError, IndexError, OSError) as exc:  # a bad field or file
            done.skipped.append((path, f"unreadable: {type(exc).__name__}: {exc}"))
            continue
        try:
            _write_run(done.out / name, events)
        except OSError as exc:
            raise not_writable(done.out, exc, "make it writable, or give out_dir=DIR (a writable directory)"
                               ) from None
        done.runs += 1
    return done


def run_name(status: dict, path: Path) -> str:
    """`<task>/<optimizer>__<schedule>__<recipe|trialN|grid>__e<epochs>__s<seed>__<run_id>`: TensorBoard's
    run selector filters by regex, so a cell, a budget or a seed is one pattern away."""
    trial = status.get("trial")
    origin = status.get("recipe") or (f"trial{trial}" if trial is not None else "grid")
    parts = [status["optimizer"], status["schedule"], origin, f"e{int(status['epochs'])}",
             f"s{int(status['seed'])}", path.name]
    return f"{_safe(status['task'])}/{'__'.join(_safe(p) for p in parts)}"


def _safe(text) -> str:
    """One path component whatever a record holds (a slash would nest directories)."""
    return re.sub(r"[^\w.=+-]", "-", str(text)).lstrip(".") or "-"


def run_events(record: RunRecord) -> list:
    """Every event of one run, built before anything is written, so a bad field skips the run whole."""
    from tensorboard.compat.proto import event_pb2

    status, rows = record.status, record.metrics
    start = _seconds(status.get("started")) or (record.path / STATUS_FILE).stat().st_mtime
    events = [event_pb2.Event(wall_time=start, file_version="brain.Event:2"), _session_start(record, start)]
    for row in rows:
        epoch, wall = int(row["epoch"]), start + float(row["wall_s"])
        events.append(_scalar("time/wall_s", epoch, float(row["wall_s"]), wall))
        events += [_scalar(f"metrics/{key}", epoch, number, wall) for key, value in sorted(row.items())
                   if key not in NOT_METRICS and (number := _number(value)) is not None]
    events += _trace_events(rows, start)
    if (reached := status.get("epochs_to_target")) is not None and rows:
        wall = start + float(rows[min(int(reached), len(rows)) - 1]["wall_s"])
        events.append(_scalar("target/epochs_to_target", int(reached), float(reached), wall))
    if (ended := _seconds(status.get("ended"))) is not None:
        events.append(_session_end(status["status"], ended))
    return events


def _trace_events(rows: list[dict], start: float) -> list:
    """LR and momentum at the optimizer step of each sample (module docstring): the curves keep their
    within-epoch shape and stay in order across epochs. A row without a trace gives its end-of-epoch
    values."""
    events, last, prev_step, prev_wall = [], -1, 0, 0.0
    for row in rows:
        steps, wall = int(row["step"]) - prev_step, float(row["wall_s"]) - prev_wall
        for point in row.get("lr_trace") or [(row["epoch"], row.get("lr"), row.get("momentum"))]:
            fraction = min(max(float(point[0]) - (int(row["epoch"]) - 1), 0.0), 1.0)
            last = max(prev_step + round(fraction * steps), last + 1)
            at = start + prev_wall + fraction * wall
            for tag, value in (("schedule/lr", point[1]), ("schedule/momentum", point[2])):
                if (value := _number(value)) is not None:
                    events.append(_scalar(tag, last, value, at))
        prev_step, prev_wall = int(row["step"]), float(row["wall_s"])
    return events


def hparams(record: RunRecord) -> dict:
    """The run's settings as HParams values; missing ones left out (the plugin takes no null)."""
    status = record.status
    lr, target = status.get("lr") or {}, status.get("target") or {}
    values = {"task": status["task"], "optimizer": status["optimizer"], "schedule": status["schedule"],
              "recipe": status.get("recipe") or "none", "trial": status.get("trial"),
              "seed": int(status["seed"]), "lr": lr.get("value"), "lr_origin": lr.get("origin"),
              "weight_decay": _weight_decay(record), "epochs": int(status["epochs"]),
              "target_metric": target.get("metric"), "status": status["status"],
              # A rehearsal's mark (report/rehearsal.py), filterable in the HParams table; absent in old records.
              "fabricated_data": status["fabricated_data"] is True if "fabricated_data" in status else None}
    return {k: v if isinstance(v, (str, int, float)) else str(v) for k, v in values.items() if v is not None}


def _weight_decay(record: RunRecord):
    """status.json's, else config.yaml's: records written before the status carried it still have one."""
    if "weight_decay" in record.status:
        return record.status["weight_decay"]
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's: 20x faster on a run's config
    config = yaml.load(record.config_text, Loader=loader) if record.config_text else None
    optimizer = config.get("optimizer") if isinstance(config, dict) else None
    return optimizer.get("weight_decay") if isinstance(optimizer, dict) else None


def _session_start(record: RunRecord, start: float):
    from tensorboard.compat.proto import event_pb2
    from tensorboard.plugins.hparams import summary_v2

    summary = summary_v2.hparams_pb(hparams(record), trial_id=record.path.name, start_time_secs=start)
    return event_pb2.Event(wall_time=start, summary=summary)


def _session_end(state: str, ended: float):
    """How the run ended, as the HParams plugin's session status (it has no "pruned": unknown)."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    codes = {"completed": api_pb2.STATUS_SUCCESS, "diverged": api_pb2.STATUS_FAILURE,
             "failed": api_pb2.STATUS_FAILURE, "running": api_pb2.STATUS_RUNNING}
    code = codes.get(state, api_pb2.STATUS_UNKNOWN)
    data = plugin_data_pb2.HParamsPluginData(
        session_end_info=plugin_data_pb2.SessionEndInfo(status=code, end_time_secs=ended))
    value = summary_pb2.Summary.Value(tag=metadata.SESSION_END_INFO_TAG, tensor=metadata.NULL_TENSOR,
                                      metadata=metadata.create_summary_metadata(data))
    return event_pb2.Event(wall_time=ended, summary=summary_pb2.Summary(value=[value]))


def _scalar(tag: str, step: int, value: float, wall: float):
    from tensorboard.compat.proto import event_pb2, summary_pb2

    return event_pb2.Event(wall_time=wall, step=step, summary=summary_pb2.Summary(
        value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)]))


def _number(value) -> float | None:
    """A finite number of a record (bools and nulls, the records' NaN, are not metrics)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _seconds(stamp) -> float | None:
    """Epoch seconds of a record's ISO time (`started`, `ended`); None when it has none."""
    return datetime.fromisoformat(stamp).timestamp() if isinstance(stamp, str) and stamp else None


def _write_run(run: Path, events: list) -> None:
    """Give `run` exactly this one event file, so a repeated export never adds to the last one's points:
    written whole and fsynced under a name TensorBoard skips (no "tfevents"), renamed over the last
    export's, then any other event file removed (a run re-run with force=true has a new start time). A
    kill leaves the old events or the new ones, never a part. Not a staging directory renamed into place:
    TensorBoard lists hidden directories as runs, so a killed export's would show."""
    from tensorboard.summary.writer.record_writer import RecordWriter

    def write(fh) -> None:
        writer = RecordWriter(fh)
        for event in events:
            writer.write(event.SerializeToString())

    name = EVENT_FILE.format(int(events[0].wall_time))
    write_atomic(run / PENDING, write)
    os.replace(run / PENDING, run / name)
    for other in run.iterdir():
        if "tfevents" in other.name and other.name != name:
            other.unlink()

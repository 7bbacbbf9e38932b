"""After the multirun: each cell's record (the job writes one, failed or not) read back into the summary
the grid prints, and the failures that set its exit status."""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from results.cell import CellRecord
from results.records import CorruptRecord

from .cells import cell_name, cell_path


def read_cell(path: Path, since: float) -> CellRecord | None:
    """The cell's record, when written by this launch (at or after `since`); None otherwise."""
    if path.exists() and path.stat().st_mtime >= since:
        return CellRecord.read(path)
    return None


def summarise(cells: list[DictConfig], since: float = float("-inf")) -> tuple[list[str], list[str]]:
    """(summary lines, failure lines) from the cell records the jobs wrote (at or after `since`)."""
    lines, failures, probes, trained = [], [], 0, 0
    by_cell: dict[tuple, list] = {}
    for cfg in cells:
        try:
            record = read_cell(cell_path(cfg), since)
        except CorruptRecord as exc:
            failures.append(f"  {cell_name(cfg)}: {exc}")
            continue
        if record is None:
            failures.append(f"  {cell_name(cfg)}: no cell record (the job did not finish)")
            continue
        probes += len(record.probes)
        trained += record.runs_trained
        if record.error:
            failures.append(f"  {record.cell}: {record.error}")
        value = "fail" if record.error else (
            f">{record.max_epochs}" if record.censored else str(record.epochs_to_target))
        key = (cfg.task.name, cfg.get("recipe") or "", cfg.optimizer.name, cfg.schedule.name)
        by_cell.setdefault(key, []).append(value)
    for (task, recipe, optimizer, schedule), values in by_cell.items():
        what = f"+{recipe}" if recipe else f"{optimizer:<9} {schedule:<10}"
        lines.append(f"  {task:<16} {what:<20} epochs to target by seed: {', '.join(values)}")
    lines.append(f"cells: {len(cells)}, runs (probes): {probes}, trained or resumed this time: {trained}, "
                 f"failures: {len(failures)}")
    return lines, failures

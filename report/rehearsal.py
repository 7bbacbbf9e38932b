"""A rehearsal's page: every cell of a suite run at full model size on fabricated data, a few batches
each (runners/grid/rehearsal.py), recorded under `<suite>-rehearsal`. It proves that each cell runs and
profiles it; it measures nothing. Which records are a rehearsal's is read with them (report/problems.py);
this module marks every table of their page (and of a real suite holding a run that read fabricated
data), and tables the runs' profiles (status.json `profile`, runners/profile.py) with the epoch time they
predict on a named GPU beside the epoch time the grid's plan assumes (`grids/<suite>/rehearsal.json`).

Reads records only: no torch.
"""
from __future__ import annotations

import math
import os
import statistics

import pandas as pd

from results.cell import CellRecord
from results.layout import Layout
from results.records import CorruptRecord

from .load import SuiteRecords
from .table import Table

MARK = "rehearsal: fabricated data, not a measurement"
PROFILE_TABLE = "rehearsal_profile"

# The GPU a profile is turned into an epoch time on. Dense peaks (no sparsity; the datasheet's sparse
# figures are twice these, e.g. TF32 989) of the NVIDIA H100 Tensor Core GPU datasheet, SXM5 column.
GPU_NAME = "NVIDIA H100 SXM5"
GPU_SOURCE = "NVIDIA H100 Tensor Core GPU datasheet, SXM5, dense"
PEAK_TFLOPS = {"FP32": 67.0, "TF32": 495.0, "BF16": 989.0}
# The share of that peak a training step is assumed to sustain: an assumption, not a measurement (large
# convolutions and matmuls reach more, small layers and elementwise work less).
UTILISATION = 0.4
# An evaluation is a forward pass: about a third of a training step's forward + backward FLOPs.
EVAL_SHARE = 1 / 3
# A task's precision -> the peaks its prediction uses, fast end first: an fp32 task's matmuls may run as
# TF32 or not (torch's float32_matmul_precision), so it gets a range; bf16 autocast has one figure.
PRECISION_PEAKS = {"fp32": ("TF32", "FP32"), "bf16": ("BF16",)}


def page_mark(records: SuiteRecords) -> str:
    """MARK for a rehearsal's page and for a real suite holding a run that read fabricated data (its data
    setup reached fabricated data once, so nothing on the page is trusted until that is fixed); else ''."""
    return MARK if records.rehearsal or records.fabricated else ""


def banner(records: SuiteRecords) -> str:
    """The page's first line after the mark: what the records are, and why nothing below is a result."""
    if records.rehearsal:
        plan = records.plan or {}
        caps = plan.get("caps") if isinstance(plan.get("caps"), dict) else {}
        caps = ", ".join(f"{k} {v}" for k, v in caps.items())
        of = f" of suite {plan['suite']}" if plan.get("suite") else ""
        return (f"Every cell{of} ran at full model size on fabricated data for a few batches"
                f"{f' (caps: {caps})' if caps else ''}{_data_root(plan)}: the page shows that each cell runs "
                "and what it costs (Rehearsal profile). No number, verdict or figure on it is a result.")
    return (f"{len(records.fabricated)} run(s) of this suite read fabricated data, which only a rehearsal may: "
            "they are listed as not counted and left out of every number, but the suite's data setup is "
            "suspect. Remove them and rerun on real data before reading anything here.")


def _data_root(plan: dict) -> str:
    return f", data under {plan['data_root']}" if plan.get("data_root") else ""


def rehearsal_tables(analysis, tables: list[Table]) -> list[Table]:
    """The one place a page is marked: a rehearsal's page gains its profile table first, and every table
    of a marked page carries MARK (the HTML shows it above the table, the CSV in a column, the Markdown
    in a line)."""
    records = analysis.records
    if records.rehearsal:
        tables = [profile_table(records), *tables]
    mark = page_mark(records)
    for table in tables:
        table.mark = mark
    return tables


def _number(value) -> float | None:
    """A recorded number, or None where missing, not a number or not finite (a bad record's field)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _values(profiles: list[dict], key: str) -> list[float]:
    return [v for p in profiles if (v := _number(p.get(key))) is not None]


def flops_per_item(profiles: list[dict]) -> float | None:
    """Median over runs of one training step's FLOPs over the items (images, tokens) in its batch."""
    per_item = [f / i for p in profiles
                if (f := _number(p.get("flops_per_step"))) is not None and (i := _number(p.get("items_per_step")))]
    return statistics.median(per_item) if per_item else None


def predict_epoch_s(per_item: float, train_items: float, eval_items: float, peak_tflops: float) -> float:
    """Seconds of one epoch (its training items, then one evaluation of the eval items) at the peak times
    UTILISATION. FLOPs only: data loading and host overhead are not in it."""
    return per_item * (train_items + eval_items * EVAL_SHARE) / (peak_tflops * 1e12 * UTILISATION)


def predicted(per_item: float | None, spec: dict) -> list[tuple[str, float]]:
    """[(peak name, epoch seconds)], fast end first; [] where the FLOPs, the published train items or
    the precision's peak are unknown."""
    items = spec.get("published_items") or {}
    train, evals = _number(items.get("train")), _number(items.get("eval")) or 0.0
    peaks = PRECISION_PEAKS.get(str(spec.get("precision") or "fp32").lower(), ())
    if per_item is None or train is None:
        return []
    return [(name, predict_epoch_s(per_item, train, evals, PEAK_TFLOPS[name])) for name in peaks]


def plan_check(assumed: float | None, prediction: list[tuple[str, float]]) -> tuple[str, str]:
    """(assumed / predicted with the plan's flag, CSS class): 'plan optimistic' when the plan assumes a
    shorter epoch than even the fast end, 'plan pessimistic' when a longer one than the slow end."""
    if assumed is None or not prediction:
        return "—", ""
    fast, slow = prediction[0][1], prediction[-1][1]
    ratio = f"{assumed / fast:.2g}×" if len(prediction) == 1 else f"{assumed / slow:.2g}–{assumed / fast:.2g}×"
    if assumed < fast:
        return f"{ratio} plan optimistic", "bad"
    if assumed > slow:
        return f"{ratio} plan pessimistic", "bad"
    return f"{ratio} within the prediction", "good"


def _mib(values: list[float]) -> str:
    return f"{max(values) / 2**20:,.1f}" if values else "—"


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f} s" if value >= 100 else f"{value:.3g} s"


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _batch(profiles: list[dict], spec: dict) -> str:
    sizes = sorted({int(v) for v in _values(profiles, "batch_size")})
    full = f" (full {spec['full_batch_size']})" if spec.get("full_batch_size") else ""
    return f" at batch {', '.join(map(str, sizes))}{full}" if sizes else ""


def _device_memory(profiles: list[dict]) -> str:
    peaks = _values(profiles, "peak_device_bytes")
    on_cpu = profiles and all(str(p.get("device") or "").startswith("cpu") for p in profiles)
    return _mib(peaks) if peaks or not on_cpu else "n/a (CPU)"


def _prediction_text(prediction: list[tuple[str, float]], spec: dict) -> str:
    precision = str(spec.get("precision") or "fp32")
    if not prediction:
        known = spec.get("published_items") and precision.lower() not in PRECISION_PEAKS
        return f"— (no peak for precision {precision})" if known else "—"
    return f"{' – '.join(_seconds(s) for _, s in prediction)} ({'–'.join(n for n, _ in prediction)}, {precision})"


def profile_row(profiles: list[dict], runs: int, spec: dict) -> tuple[dict[str, str], str]:
    """One task's row (max of memory and checkpoint sizes, median of times and FLOPs per item over its
    runs), and the CSS class of its plan check."""
    per_item = flops_per_item(profiles)
    prediction = predicted(per_item, spec)
    assumed = _number(spec.get("assumed_epoch_s"))
    check, css = plan_check(assumed, prediction)
    unit = (spec.get("published_items") or {}).get("unit") or "item"
    step = _median(_values(profiles, "train_step_s"))
    return {
        "runs profiled": f"{len(profiles)} of {runs}",
        "peak host memory (MiB)": _mib(_values(profiles, "peak_host_bytes")),
        "peak device memory (MiB)": _device_memory(profiles),
        "time per training step": f"{_seconds(step)}{_batch(profiles, spec)}" if step is not None else "—",
        "time per evaluation": _seconds(_median(_values(profiles, "eval_s"))),
        "checkpoint (MiB)": _mib(_values(profiles, "checkpoint_bytes")),
        "FLOPs per item": f"{per_item / 1e9:.3g} GFLOP per {unit}" if per_item is not None else "—",
        f"predicted epoch on {GPU_NAME}": _prediction_text(prediction, spec),
        "plan assumes": _seconds(assumed),
        "plan / predicted": check,
        "plan's epochs, device hours (assumed; predicted)": plan_hours(_number(spec.get("planned_epochs")),
                                                                      assumed, prediction),
    }, css


def plan_hours(epochs: float | None, assumed: float | None, prediction: list[tuple[str, float]]) -> str:
    """The plan's epochs of the task (plan=true's walk of the full-size suite) priced at the epoch time
    the plan assumes and at the predicted one: the plan's GPU-hours checked against the model."""
    if not epochs:
        return "—"
    hours = lambda seconds: f"{epochs * seconds / 3600:,.1f} h"  # noqa: E731
    at_assumed = hours(assumed) if assumed is not None else "—"
    at_predicted = " – ".join(hours(s) for _, s in prediction) or "—"
    return f"{epochs:,.0f}: {at_assumed}; {at_predicted}"


def planned_tasks(records: SuiteRecords) -> dict[str, dict]:
    """The rehearsal plan's tasks (name -> spec); {} without a plan or with a malformed one."""
    tasks = (records.plan or {}).get("tasks")
    return {str(k): v for k, v in tasks.items()} if isinstance(tasks, dict) else {}


def profile_table(records: SuiteRecords) -> Table:
    specs = planned_tasks(records)
    runs = records.runs
    tasks = sorted(set(specs) | set(runs["task"]))
    rows, classes = {}, {}
    for task in tasks:
        mine = runs[runs["task"] == task]
        profiles = [p for p in mine["profile"] if isinstance(p, dict)]
        spec = specs.get(task) if isinstance(specs.get(task), dict) else {}
        rows[task], css = profile_row(profiles, len(mine), spec)
        classes[(task, "plan / predicted")] = css
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(profile_row([], 0, {})[0]))
    frame.index.name = "task"
    return Table(PROFILE_TABLE, "Rehearsal profile", _note(), frame, classes=classes)


def _note() -> str:
    peaks = ", ".join(f"{k} {v:g}" for k, v in PEAK_TFLOPS.items())
    return (
        "Each task's counted runs of this rehearsal, a few batches each on the rehearsal's device and batch "
        "size: peak host and device memory and checkpoint size, max over runs; time per training step "
        "(evaluation excluded) and per evaluation, median over runs. FLOPs per item: median over runs of one "
        "training step's forward + backward FLOPs (torch's FlopCounterMode) over the items of its batch. "
        f"Predicted epoch on {GPU_NAME} = FLOPs per item × (published training items + published evaluation "
        f"items / 3: an evaluation is a forward pass, about a third of a step) / (peak × {UTILISATION:g}). "
        f"Peaks, TFLOP/s: {peaks} ({GPU_SOURCE}); the utilisation {UTILISATION:g} is an assumption, not a "
        "measurement. An fp32 task gives a range, TF32 (fast end) to FP32 (slow end); bf16 one figure. Data "
        "loading and host overhead are not in it. Plan assumes: the epoch time the grid's plan=true assumes; "
        "plan / predicted flags a plan outside the predicted range (optimistic: shorter than the fast end; "
        "pessimistic: longer than the slow end). The plan's epochs: what plan=true prices for the full-size "
        "suite (its searches and seeds under grid.assumed_fraction, and its pending studies' trials), in "
        "device hours at the assumed and at the predicted epoch times.")


def failed_cells(results_dir: str | os.PathLike, suite: str) -> list[str]:
    """The grid's cell records (grids/<suite>/cells/*.json) that say their cell failed: one line each."""
    folder = Layout.at(results_dir).cells(suite)
    failed = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            record = CellRecord.read(path)
        except CorruptRecord as exc:
            failed.append(f"cell record {path.name}: {exc}")
            continue
        if record.status == "failed":
            failed.append(f"cell {record.cell}: failed: {record.error or 'no error message'}")
    return failed

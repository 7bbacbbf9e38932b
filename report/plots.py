"""The report's figures (matplotlib, Agg), each returned as an SVG data URI to embed in the page."""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import pandas as pd

from .analysis import Analysis, Cell
from .ett import coverage_text, median_ci
from .pyplot import plt
from .sensitivity import sensitivity
from .tuning_plot import TITLE, has_tuning, tuning_scatter

COLORS = {"sgd": "#1f77b4", "adam_l2": "#ff7f0e", "adamw": "#2ca02c", "amsgrad": "#d62728",
          "sf_adamw": "#9467bd", "lion": "#8c564b", "muon": "#e377c2"}
STYLES = {"reference": "--", "one_cycle": "-", "one_cycle_phases": "-."}


@dataclass
class Figure:
    task: str
    kind: str
    title: str
    uri: str  # data:image/svg+xml;base64,... ("" when the figure could not be drawn)
    error: str = ""


def _color(name: str) -> str:
    return COLORS.get(name, f"C{4 + sum(map(ord, name)) % 6}")


def _style(cell: Cell) -> dict:
    return {"color": _color(cell.optimizer), "linestyle": STYLES.get(cell.schedule, ":"), "label": cell.label}


def to_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def metric_curves(analysis: Analysis, task: str):
    """Target metric vs epoch: median over seeds (each seed's longest run), min–max band, target line."""
    target = analysis.targets[task]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for cell in analysis.task_cells(task):
        series = {seed: pd.Series({r["epoch"]: r.get(target.metric) for r in analysis.records.metrics[rid]},
                                  dtype=float)
                  for seed, rid in cell.full_runs.items()}
        frame = pd.DataFrame(series)
        if frame.empty:
            continue
        ax.plot(frame.index, frame.median(axis=1), **_style(cell))
        ax.fill_between(frame.index, frame.min(axis=1), frame.max(axis=1), color=_color(cell.optimizer),
                        alpha=0.12, linewidth=0)
    ax.axhline(target.value, color="black", linewidth=1, label=f"target {target.value:g}")
    ax.set(xlabel="epoch", ylabel=target.metric, title=f"{task}: {target.metric} per epoch (longest runs)")
    ax.legend(fontsize=7, ncol=2)
    return fig


def _trace(rows: list[dict]) -> pd.DataFrame:
    """Applied LR and momentum: the within-epoch samples when recorded, else one point per epoch."""
    points = [tuple(p) for r in rows for p in (r.get("lr_trace") or [])]
    if not points:
        points = [(r["epoch"], r.get("lr"), r.get("momentum")) for r in rows]
    return pd.DataFrame(points, columns=["epoch", "lr", "momentum"]).astype(float)


def lr_momentum(analysis: Analysis, task: str):
    """LR (top) and momentum (bottom) applied, one column per schedule, the first seed's longest run."""
    cells = analysis.task_cells(task)
    schedules = list(dict.fromkeys(c.schedule for c in cells))
    fig, axes = plt.subplots(2, len(schedules), figsize=(3.4 * len(schedules) + 0.6, 4.4), squeeze=False,
                             sharex="col")
    for col, schedule in enumerate(schedules):
        for cell in (c for c in cells if c.schedule == schedule):
            rid = next(iter(cell.full_runs.values()))
            trace = _trace(analysis.records.metrics[rid])
            axes[0][col].plot(trace["epoch"], trace["lr"], **_style(cell))
            axes[1][col].plot(trace["epoch"], trace["momentum"], **_style(cell))
        axes[0][col].set(title=schedule, yscale="log", ylabel="lr" if col == 0 else None)
        axes[1][col].set(xlabel="epoch", ylabel="momentum / beta1" if col == 0 else None)
        axes[0][col].legend(fontsize=6)
    fig.suptitle(f"{task}: LR and momentum applied (from the records)")
    return fig


def ett_bars(analysis: Analysis, task: str):
    """Median epochs-to-target per cell with its order-statistic interval (report/stats.py: up to 5 seeds
    the range, whose coverage the title states; none for one seed); hatched bars are censored ('> N')."""
    cells = analysis.task_cells(task)
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    for i, cell in enumerate(cells):
        s = cell.summary
        interval = median_ci(list(cell.seeds.values()))  # None with one seed: no error bar
        ax.bar(i, s.median_or_budget, color=_color(cell.optimizer), alpha=0.4 if s.median is None else 0.85,
               hatch="//" if s.median is None else None, edgecolor="black", linewidth=0.5)
        if interval:
            low, high = interval.low, interval.high
            ax.errorbar(i, s.median_or_budget, yerr=[[max(s.median_or_budget - low, 0)],
                                                     [max(high - s.median_or_budget, 0)]],
                        color="black", capsize=3, linewidth=1)
        label = f"> {s.budget}" if s.median is None else f"{s.median:g}"
        ax.annotate(f"{label}\n{s.reached}/{s.seeds}", (i, s.median_or_budget), ha="center", va="bottom",
                    fontsize=7, xytext=(0, 3), textcoords="offset points")
    ax.axhline(analysis.max_epochs[task], color="grey", linewidth=1, linestyle=":", label="max budget")
    ax.set_xticks(range(len(cells)), [c.label for c in cells], rotation=30, ha="right", fontsize=7)
    ax.set(ylabel="epochs to target", title=f"{task}: epochs to target (median, {_bar_label(cells)}, k/n reached)")
    ax.set_ylim(0, analysis.max_epochs[task] * 1.3)
    ax.legend(fontsize=7)
    return fig


def _bar_label(cells) -> str:
    """What the error bars are: the seeds' range with its coverage, or an interval with its coverage."""
    intervals = [i for i in (median_ci(list(c.seeds.values())) for c in cells) if i]
    if not intervals:
        return "no interval"
    return coverage_text(min(intervals, key=lambda i: i.coverage))


def sensitivity_plot(analysis: Analysis, task: str):
    """Median epochs-to-target as the target moves; undefined medians sit above the budget line."""
    values, curves = sensitivity(analysis, task)
    budget = analysis.max_epochs[task]
    fig, ax = plt.subplots(figsize=(7.4, 3.4))
    for cell in analysis.task_cells(task):
        ys = [budget + 1 if m is None else m for m in curves[cell.label]]
        ax.plot(range(len(values)), ys, marker="o", markersize=3, **_style(cell))
    target = analysis.targets[task]
    ax.axvline(values.index(target.value), color="black", linewidth=1, label=f"task target {target.value:g}")
    ax.axhspan(budget + 0.5, budget + 1.5, color="grey", alpha=0.15, label=f"> {budget}: not reached")
    step = max(1, len(values) // 7)
    ax.set_xticks(range(0, len(values), step), [f"{v:.4g}" for v in values[::step]], fontsize=7,
                  rotation=30, ha="right")
    ax.set(xlabel=f"target {target.metric} ({'higher' if target.mode == 'max' else 'lower'} = harder →)",
           ylabel="median epochs to target", title=f"{task}: does the ranking hold as the target moves?")
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1))  # outside: the lines fill the axes
    return fig


PLOTS = (("curves", "Metric per epoch", metric_curves), ("ett", "Epochs to target", ett_bars),
         ("sensitivity", "Target sensitivity", sensitivity_plot), ("lr", "LR and momentum applied", lr_momentum))


def draw(analysis: Analysis, task: str, kind: str, title: str, make) -> Figure:
    """One figure; odd values in a record cost that one figure (its error is shown in its place)."""
    try:
        return Figure(task, kind, title, to_uri(make(analysis, task)))
    except Exception as exc:  # noqa: BLE001 — any plotting failure is reported on the page
        plt.close("all")
        return Figure(task, kind, title, "", f"{type(exc).__name__}: {exc}")


def all_figures(analysis: Analysis) -> list[Figure]:
    """Every figure of every task, never failing the page; the tuning figure where the task was tuned."""
    figures = []
    for task in analysis.tasks:
        figures += [draw(analysis, task, kind, title, make) for kind, title, make in PLOTS]
        if has_tuning(analysis, task):
            figures.append(draw(analysis, task, "tuning", TITLE, tuning_scatter))
    return figures

"""The tuning figure of a task: every trial's log10 LR × log10 WD, one panel per optimizer — the question
of the AdamW paper (Loshchilov & Hutter 2019, Fig. 2): with the decay decoupled, is the best decay
independent of the LR? Here answered on this benchmark's own trials.

Colour: the trial's rank within its study (task, optimizer, schedule) by its recorded score, 0 = best ..
1 = worst, so studies of different tasks and metrics (accuracy up, perplexity down) share one scale. Marker:
the schedule. Hollow: a pruned trial (stopped early: its score is not comparable). Star: the recorded
selection (the tuning outcome's lr and weight decay). Dashed box: the search space.
"""
from __future__ import annotations

import math

from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from .analysis import OPTIMIZER_ORDER, Analysis, _order
from .pyplot import plt
from .tuning import Trial

TITLE = "LR × WD of every tuning trial"
CMAP = "viridis"
MARKERS = {"reference": "s", "one_cycle": "o", "one_cycle_phases": "^"}


def has_tuning(analysis: Analysis, task: str) -> bool:
    tuning = analysis.tuning
    return any(t.task == task for t in tuning.trials) or any(k[0] == task for k in tuning.outcomes)


def ranks(trials: list[Trial]) -> dict[int, float]:
    """Trial number -> its rank among the study's scored trials (0 = lowest score = best, 1 = worst)."""
    scored = sorted((t for t in trials if t.score is not None), key=lambda t: (t.score, t.trial))
    last = max(len(scored) - 1, 1)
    return {t.trial: i / last for i, t in enumerate(scored)}


class _WdAxis:
    """log10 WD, with a WD of 0 (decay not tuned) drawn on a row of its own below the rest."""

    def __init__(self, values):
        logs = [math.log10(v) for v in values if v and v > 0]
        self.zero = (min(logs) - 0.5) if logs else 0.0

    def __call__(self, wd: float | None) -> float:
        return math.log10(wd) if wd and wd > 0 else self.zero


def _space_box(ax, outcome: dict, y: _WdAxis) -> None:
    space = outcome.get("space") or {}
    lr, wd = space.get("lr"), space.get("weight_decay")
    if not lr or not wd or min(lr) <= 0:
        return
    x0, x1 = math.log10(lr[0]), math.log10(lr[1])
    y0, y1 = y(wd[0]), y(wd[1])
    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, linestyle="--", linewidth=0.6,
                           edgecolor="grey"))


def _study(ax, schedule: str, trials: list[Trial], outcome: dict | None, y: _WdAxis) -> None:
    marker = MARKERS.get(schedule, "D")
    rank = ranks(trials)
    drawn = [t for t in trials if t.lr and t.lr > 0]
    scored = [t for t in drawn if t.trial in rank]
    others = [t for t in drawn if t.trial not in rank]
    if scored:
        ax.scatter([math.log10(t.lr) for t in scored], [y(t.weight_decay) for t in scored],
                   c=[rank[t.trial] for t in scored], cmap=CMAP, vmin=0, vmax=1, marker=marker, s=28,
                   edgecolors="black", linewidths=0.3)
    if others:
        ax.scatter([math.log10(t.lr) for t in others], [y(t.weight_decay) for t in others], marker=marker,
                   s=28, facecolors="none", edgecolors="grey")
    if outcome and outcome.get("lr"):
        ax.scatter([math.log10(float(outcome["lr"]))], [y(outcome.get("weight_decay"))], marker="*", s=200,
                   facecolors="none", edgecolors="red", linewidths=1.2)
        _space_box(ax, outcome, y)


def tuning_scatter(analysis: Analysis, task: str):
    tuning = analysis.tuning
    keys = sorted({t.key for t in tuning.trials if t.task == task} | {k for k in tuning.outcomes if k[0] == task})
    optimizers = _order({k[1] for k in keys}, OPTIMIZER_ORDER)
    fig, axes = plt.subplots(1, len(optimizers), figsize=(3.4 * len(optimizers) + 1.2, 3.6), squeeze=False)
    for ax, optimizer in zip(axes[0], optimizers):
        mine = [k for k in keys if k[1] == optimizer]
        wds = [t.weight_decay for k in mine for t in tuning.study(k)]
        wds += [(tuning.outcomes.get(k) or {}).get("weight_decay") for k in mine]
        y = _WdAxis(wds)
        for key in mine:
            _study(ax, key[2], tuning.study(key), tuning.outcomes.get(key), y)
        if not any(w and w > 0 for w in wds):  # no decay searched at all: one row, named, no log scale
            ax.set_yticks([y.zero], ["WD = 0\n(not tuned)"])
        elif any(not w for w in wds if w is not None):
            ax.axhline(y.zero, color="grey", linewidth=0.5, linestyle=":")
            ax.annotate("WD = 0", (0.02, y.zero), xycoords=("axes fraction", "data"), fontsize=6,
                        va="bottom")
        ax.set(title=optimizer, xlabel="log10 LR", ylabel="log10 WD" if ax is axes[0][0] else None)
    fig.colorbar(ScalarMappable(norm=Normalize(0, 1), cmap=CMAP), ax=axes[0].tolist(),
                 label="rank in its study (0 = best, 1 = worst)")
    fig.legend(handles=_legend(sorted({k[2] for k in keys})), loc="lower center", ncol=4, fontsize=7,
               bbox_to_anchor=(0.45, -0.12))
    fig.suptitle(f"{task}: is the best decay independent of the LR when decoupled?\n"
                 "(the AdamW paper's Fig. 2 question, Loshchilov & Hutter 2019, on this benchmark's trials)",
                 fontsize=9, y=1.08)  # above the panel titles (the page's figures are cropped tight)
    return fig


def _legend(schedules: list[str]) -> list[Line2D]:
    # One legend for the figure, in grey: a point's colour is its rank, not its schedule.
    handles = [Line2D([], [], marker=MARKERS.get(s, "D"), linestyle="", color="grey", label=s)
               for s in schedules]
    return handles + [
        Line2D([], [], marker="o", linestyle="", markerfacecolor="none", markeredgecolor="grey",
               label="pruned / unscored"),
        Line2D([], [], marker="*", markersize=11, linestyle="", markerfacecolor="none", markeredgecolor="red",
               label="selected (recorded best)")]

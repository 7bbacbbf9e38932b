""""Still the fastest?" (the modern suites, conf/suite/modern*.yaml): per task, the grid cells of the
modern (optimizer, schedule) pairs ranked by median epochs-to-target, each median with its order-statistic
interval and its true coverage (ett.median_ci), censored seeds shown, the fastest marked
(tuned.speed_key, the one definition of "fastest"), and one verdict line: is the blog's AdamW + 1cycle
still the fastest? Shown only when a suite ran more than one of the pairs (never on the blog's suites).
"""
from __future__ import annotations

import re

import pandas as pd

from .analysis import CLAIM_CELL, Analysis, Cell
from .ett import coverage_text, fmt_epochs, median_ci, pairs
from .stats import ALPHA, fmt_rank_test, rank_test
from .table import Table
from .tuned import speed_key

# The blog's claim first, then the challengers (conf/suite/modern.yaml: grid.pairs).
MODERN_PAIRS = (CLAIM_CELL, ("sf_adamw", "warmup"), ("lion", "one_cycle"), ("muon", "one_cycle"),
                ("adamw", "cosine"), ("adamw", "wsd"))
PREFIX = "still_fastest_"  # the tables' names (their CSV / Markdown files), one per task

RULE = (
    "Per task, one row per (optimizer, schedule) pair of the modern suites that ran: the blog's AdamW + "
    "1cycle against Schedule-Free AdamW (warm-up, then constant), Lion and Muon on 1cycle, and AdamW on "
    "cosine and warmup-stable-decay schedules. Fastest: the lowest median epochs-to-target over seeds "
    "(Kaplan–Meier: a seed that missed the target is censored at its budget; the median is '> N', "
    "undefined, when fewer than half the seeds reached, and ranks after every defined one; where exactly "
    "half reached, the midpoint); equal medians tie. Each median's interval is distribution-free, from the "
    "seeds' order statistics, with its true coverage printed: up to 5 seeds it is the range of the seeds "
    "(75% at 3 seeds, 50% at 2). The verdict compares AdamW + 1cycle with the fastest other pair (or, when "
    "it is the fastest, with the runner-up) by an exact one-sided rank test that handles censored seeds "
    f"(Gehan's, every relabelling of the seeds enumerated): 'resolved' only when p ≤ {ALPHA:g}; with 2 vs 2 "
    "seeds the smallest possible p is 1/6 and the verdict says 'too few seeds to resolve'. Tuned: the cell "
    "ran at its study's tuned LR and WD (tuning table); else the task's sourced values."
)


def pair_label(cell: Cell) -> str:
    return f"{cell.optimizer} + {cell.schedule}"


def shows_section(analysis: Analysis) -> bool:
    """More than one modern pair among the suite's grid cells (a blog suite has only AdamW + 1cycle)."""
    return len({key[1:] for key in analysis.cells} & set(MODERN_PAIRS)) > 1


def modern_cells(analysis: Analysis, task: str) -> list[Cell]:
    """The task's cells of the modern pairs, fastest first (ties in pair order)."""
    cells = [analysis.cells[(task, *pair)] for pair in MODERN_PAIRS if (task, *pair) in analysis.cells]
    return sorted(cells, key=lambda c: (*speed_key(c), MODERN_PAIRS.index((c.optimizer, c.schedule))))


def fmt_interval(cell: Cell) -> str:
    ci = median_ci(list(cell.seeds.values()))
    if ci is None:
        return f"— ({cell.summary.seeds} seed: no interval)"
    censored = [s.value for s in cell.seeds.values() if s.censored]
    # An end at a censored seed's budget stands in for an undefined median: a lower bound.
    low, high = (f"≥{v:g}" if censored and v >= max(censored) else f"{v:g}" for v in (ci.low, ci.high))
    span = f"[{low}]" if low == high else f"[{low}–{high}]"
    return f"{span} {coverage_text(ci)}"


def censored_text(cell: Cell) -> str:
    missed = [(seed, s.budget) for seed, s in cell.seeds.items() if s.censored]
    if not missed:
        return "none"
    return f"{len(missed)} of {cell.summary.seeds}: " + ", ".join(f"seed {n} (> {b})" for n, b in missed)


def _marks(cells: list[Cell]) -> list[str]:
    """'1 ★ fastest' (or '★ tied fastest'), then the rank; equal keys share a rank."""
    out, rank = [], 0
    tied = sum(speed_key(c) == speed_key(cells[0]) for c in cells) > 1
    for i, cell in enumerate(cells):
        if i == 0 or speed_key(cell) != speed_key(cells[i - 1]):
            rank = i + 1
        fastest = cells[0].summary.median is not None and speed_key(cell) == speed_key(cells[0])
        out.append(f"{rank} ★ {'tied fastest' if tied else 'fastest'}" if fastest else str(rank))
    return out


def _median_text(cell: Cell) -> str:
    return fmt_epochs(cell.summary.median, cell.summary.budget)


def _censored_note(cells: list[Cell]) -> str:
    notes = [f"{pair_label(c)} {sum(s.censored for s in c.seeds.values())} of {c.summary.seeds} seeds "
             f"censored (> {c.summary.budget})" for c in cells if c.summary.reached < c.summary.seeds]
    return f"; not reached: {', '.join(notes)}" if notes else ""


def _separation(fast: Cell, slow: Cell) -> str:
    """'3 vs 3 seeds; p = 0.05, exact rank test (…): resolved' or '…: not resolved' or 'too few seeds'."""
    test = rank_test(pairs(fast.seeds.values()), pairs(slow.seeds.values()))
    if not test.can_pass:
        return f"{fmt_rank_test(test)}"
    return f"{fmt_rank_test(test)}: {'resolved' if test.passed else 'not resolved'}"


def verdict(cells: list[Cell]) -> str:
    """One line: is AdamW + 1cycle still the fastest of `cells` (fastest first)?"""
    if not cells:
        return "no modern pair ran"
    claim = next((c for c in cells if (c.optimizer, c.schedule) == CLAIM_CELL), None)
    if cells[0].summary.median is None:
        return ("no pair has a median: fewer than half the seeds reached the target in each"
                + _censored_note(cells))
    if claim is None:
        return (f"{pair_label(cells[0])} is the fastest (median {_median_text(cells[0])}); "
                f"{' + '.join(CLAIM_CELL)} did not run: nothing to compare it with")
    others = [c for c in cells if c is not claim]
    if not others:
        return f"only {pair_label(claim)} ran: nothing to compare it with"
    rival = others[0]
    if speed_key(rival) == speed_key(claim):
        ties = [pair_label(c) for c in others if speed_key(c) == speed_key(claim)]
        return (f"{pair_label(claim)} ties with {', '.join(ties)} for the fastest (median "
                f"{_median_text(claim)}; {_separation(claim, rival)})" + _censored_note([claim, rival]))
    if cells[0] is claim:
        return (f"{pair_label(claim)} is still the fastest (median {_median_text(claim)} vs "
                f"{pair_label(rival)} {_median_text(rival)}; {_separation(claim, rival)})"
                + _censored_note([claim, rival]))
    return (f"{pair_label(rival)} is faster than {pair_label(claim)}: median {_median_text(rival)} vs "
            f"{_median_text(claim)} epochs ({_separation(rival, claim)})" + _censored_note([rival, claim]))


def task_table(analysis: Analysis, task: str) -> Table:
    cells = modern_cells(analysis, task)
    marks = _marks(cells)
    frame = pd.DataFrame({
        "seeds (reached)": [f"{c.summary.seeds} ({c.summary.reached} reached)" for c in cells],
        "median epochs to target": [_median_text(c) for c in cells],
        "interval (coverage)": [fmt_interval(c) for c in cells],
        "per seed": [", ".join(f">{s.value}" if s.censored else str(s.value) for s in c.seeds.values())
                     for c in cells],
        "censored seeds": [censored_text(c) for c in cells],
        "tuned": ["yes" if (c.task, c.optimizer, c.schedule) in analysis.tuned else "no" for c in cells],
        "rank": marks,
    }, index=[pair_label(c) for c in cells])
    frame.index.name = "optimizer + schedule"
    classes = {(pair_label(c), "rank"): "good" for c, m in zip(cells, marks) if "★" in m}
    # A record's task name becomes a file name: anything but [A-Za-z0-9_.-] is replaced.
    name = PREFIX + re.sub(r"[^A-Za-z0-9_.-]", "_", task)
    return Table(name, f"Still the fastest? {task}", f"Verdict: {verdict(cells)}.", frame, classes=classes)


def modern_tables(analysis: Analysis) -> list[Table]:
    """One table per task with a modern pair, when the suite ran more than one pair; else none."""
    if not shows_section(analysis):
        return []
    return [task_table(analysis, t) for t in analysis.tasks if modern_cells(analysis, t)]

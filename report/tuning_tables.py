"""The tuning tables: the verdict against tuned baselines, the fastest tuned cell per task, the tuned
values and cost per cell with the protocol they were found by, and the tuning records not counted."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from .analysis import CLAIM_CELL, Analysis
from .claims import verdict_class
from .ett import fmt_cell
from .table import Table, column_label, run_links
from .tuned import fastest_answer, tuned_judged_text, tuned_rows, tuned_rule_text, tuned_task_cells
from .tuning import NOT_TUNED, TuningRecords


def tuned_claims_table(analysis: Analysis, out_dir: Path) -> Table:
    rows = tuned_rows(analysis)
    frame = pd.DataFrame({
        "claim": [f"{r.claim['title']}: {r.claim['text']}" for r in rows],
        "task": [f"{r.task} (mini twin)" if r.twin else str(r.task) for r in rows],
        "cells judged": [tuned_judged_text(r) for r in rows],
        "our measurement": [r.measurement for r in rows],
        "verdict": [r.verdict for r in rows],
        "why": [r.reasons for r in rows],
    }, index=[r.id for r in rows])
    frame.index.name = "id"
    classes = {(r.id, "verdict"): verdict_class(r.verdict) for r in rows}
    links = {(r.id, "cells judged"): run_links(r.judged, out_dir) for r in rows if r.judged}
    return Table("tuned_claims", "Against tuned baselines", tuned_rule_text(), frame, links=links,
                 classes=classes)


def fastest_table(analysis: Analysis) -> Table:
    claim = column_label(*CLAIM_CELL)
    data = {"tuned cells": [], "fastest": [], claim: [], f"is {claim} the fastest?": [], "ranking": []}
    for task in analysis.tasks:
        cells = tuned_task_cells(analysis, task)
        mine = next((c for c in cells if (c.optimizer, c.schedule) == CLAIM_CELL), None)
        data["tuned cells"].append(f"{len(cells)} of {len(analysis.task_cells(task))}")
        data["fastest"].append(f"{cells[0].label}: {fmt_cell(cells[0].summary)}" if cells else "—")
        data[claim].append(fmt_cell(mine.summary) if mine else "—")
        data[f"is {claim} the fastest?"].append(fastest_answer(cells))
        data["ranking"].append("; ".join(f"{i}. {c.label} {fmt_cell(c.summary)}"
                                         for i, c in enumerate(cells, start=1)) or "—")
    frame = pd.DataFrame(data, index=[str(t) for t in analysis.tasks])
    frame.index.name = "task"
    note = ("Per task, the tuned grid cells ordered by median epochs-to-target (fastest first; an undefined "
            "median, '> N', comes last): which is the fastest, and is it AdamW + 1cycle? A comparison of "
            "medians only; the verdict above carries the interval. 'k of n': tuned cells of the task's n.")
    return Table("fastest_tuned", "Fastest tuned cell", note, frame)


def _fmt_space(outcome: dict, name: str) -> str:
    bounds = (outcome.get("space") or {}).get(name)
    if not bounds or len(bounds) != 2:
        # A sourced WD of 0 is not searched (runners/grid/tuning.py search_space): say so, not "missing".
        return "not tuned (0)" if name == "weight_decay" and outcome.get(name) == 0 else "—"
    return f"[{float(bounds[0]):.3g}, {float(bounds[1]):.3g}]"


def _trial_counts(tuning: TuningRecords, key) -> str:
    counts = Counter(t.state for t in tuning.study(key))
    return " · ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "none"


def _num(value, spec: str = ".3g") -> str:
    return "—" if value is None else format(float(value), spec)


def tuning_table(analysis: Analysis) -> Table:
    tuning = analysis.tuning
    keys = sorted(tuning.outcomes)
    outs = [tuning.outcomes[k] for k in keys]
    frame = pd.DataFrame({
        "tuned LR": [_num(o.get("lr")) for o in outs],
        "tuned WD": [_num(o.get("weight_decay")) for o in outs],
        "trials run / pruned": [f"{o.get('trials', '—')} / {o.get('pruned', '—')}" for o in outs],
        "tuning cost (epochs)": [_num(o.get("cost_epochs"), "g") for o in outs],
        "trial budget (epochs)": [_num(o.get("budget"), "g") for o in outs],
        "LR space": [_fmt_space(o, "lr") for o in outs],
        "WD space": [_fmt_space(o, "weight_decay") for o in outs],
        "best trial (score)": [f"{o.get('best_trial', '—')} ({_num(o.get('best_score'), '.4g')})" for o in outs],
        "trial records": [_trial_counts(tuning, k) for k in keys],
    }, index=["/".join(k) for k in keys])
    frame.index.name = "study (task/optimizer/schedule)"
    return Table("tuning", "Tuned values and tuning cost", protocol_text(analysis.tuning), frame)


def protocol_text(tuning: TuningRecords) -> str:
    """The tuning protocol as the outcome files and trial records state it, and its total cost."""
    outs = list(tuning.outcomes.values())
    if not outs:
        return (f"{NOT_TUNED[0].upper()}{NOT_TUNED[1:]}: no tuning outcome is recorded for this suite; every "
                "grid cell ran at its task's sourced LR and weight decay.")
    splits = Counter(t.split for t in tuning.trials)
    cost = sum(float(o.get("cost_epochs") or 0) for o in outs)
    trials, pruned = sum(int(o.get("trials") or 0) for o in outs), sum(int(o.get("pruned") or 0) for o in outs)
    split_text = ", ".join(f"{s} ({n} trial records)" for s, n in splits.most_common()) or "no trial record"
    test = "test" in splits or any(o.get("split", "validation") != "validation" for o in outs)
    warn = " WARNING: some trials were scored on the test split." if test else ""
    return (f"Tuning protocol (read from {_plural(len(outs), 'tuning outcome file')} and the trial records): "
            f"LR and weight decay sampled log-uniformly within the bounds shown, centred on the task's sourced "
            f"values (a sourced WD of 0 stays 0); sampler: {_distinct(outs, 'sampler')}; trials per cell "
            f"(pruned ones included): {_counts(Counter(o.get('trials') for o in outs))}; pruning (budget-free "
            f"schedules only; every other trial runs to its end): {_distinct(outs, 'pruning')}; every trial "
            f"scored by its final validation metric at the trial budget, at seeds no cell runs; trial budget in epochs: {_counts(Counter(o.get('budget') for o in outs))}"
            f"; split the trials were scored on: {split_text} — the test set is never used to select; the "
            f"tuned values are the recorded best trial's (score: lower is better), then run on the full "
            f"training set and measured on the test target like every cell; storage: "
            f"{_distinct(outs, 'storage')}.{warn} Total tuning cost: {cost:g} epochs over "
            f"{_plural(len(outs), 'cell')} ({_plural(trials, 'trial')}, {pruned} of them pruned).")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _distinct(outcomes: list[dict], key: str) -> str:
    words = {True: "on", False: "off"}  # the outcome's `pruning` flag
    return "; ".join(sorted({str(words.get(v, v) if isinstance(v, bool) else v)
                             for v in (o.get(key, "not recorded") for o in outcomes)}))


def _counts(counter: Counter) -> str:
    return ", ".join(f"{value} ({_plural(n, 'cell')})" if len(counter) > 1 else str(value)
                     for value, n in sorted(counter.items(), key=lambda item: str(item[0])))


def tuning_problems_table(analysis: Analysis) -> Table:
    problems = analysis.tuning.problems
    frame = pd.DataFrame({"kind": [p.kind for p in problems], "detail": [p.detail for p in problems]},
                         index=[f"{p.path.parent.name}/{p.path.name}" for p in problems])
    frame.index.name = "record"
    note = ("Trial runs (runs/<suite>-tuning/), tuning outcome files and cell records that are corrupt, "
            "unfinished or failed: listed here, left out of the tuning table and the figures.")
    return Table("excluded_tuning", "Tuning records not counted", note, frame)


def tuning_tables(analysis: Analysis, out_dir: Path) -> list[Table]:
    return [tuned_claims_table(analysis, out_dir), fastest_table(analysis), tuning_table(analysis),
            tuning_problems_table(analysis)]

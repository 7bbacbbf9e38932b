"""Every table of the report as a DataFrame of display strings (this module's, and those of the sections
it gathers: modern.py, tuning_tables.py, rehearsal.py), plus CSV and Markdown export."""
from __future__ import annotations

import numbers
import re
from pathlib import Path

import pandas as pd

from .analysis import BASELINE, Analysis, mean_std
from .claims import claim_rows, judged_text, rule_text, verdict_class
from .ett import fmt_cell, fmt_speed_up
from .modern import modern_tables
from .rehearsal import rehearsal_tables
from .table import Table, column_label, run_links
from .tuning_tables import tuning_tables


def _grid(analysis: Analysis, fill) -> pd.DataFrame:
    """rows = tasks, columns = optimizer · schedule; `fill(cell)` gives the text ('' where no cell)."""
    data = {}
    for o, s in analysis.columns:
        data[column_label(o, s)] = [fill(c) if (c := analysis.cell(t, o, s)) else "" for t in analysis.tasks]
    frame = pd.DataFrame(data, index=[str(t) for t in analysis.tasks])
    frame.index.name = "task"
    return frame


def _cell_links(analysis: Analysis, out_dir: Path) -> dict[tuple[str, str], list[tuple[str, str]]]:
    return {(cell.task, column_label(cell.optimizer, cell.schedule)): run_links([cell], out_dir)
            for cell in analysis.cells.values()}


def ett_table(analysis: Analysis, out_dir: Path) -> Table:
    note = ("Median epochs-to-target over seeds (Kaplan–Meier: a seed that missed counts as censored at its "
            "budget; '> N' when fewer than half reached), [min–max] ('>N': a miss), k/n seeds that reached. "
            "1cycle cells: the smallest probed budget whose run met the target at its end.")
    return Table("epochs_to_target", "Epochs to target", note, _grid(analysis, lambda c: fmt_cell(c.summary)),
                 links=_cell_links(analysis, out_dir))


def probes_table(analysis: Analysis) -> Table:
    return Table("probes", "Runs per cell", "Runs (budgets probed × seeds) behind each cell.",
                 _grid(analysis, lambda c: f"{c.summary.probes} runs / {c.summary.seeds} seeds"))


def speedup_table(analysis: Analysis) -> Table:
    note = (f"Median epochs-to-target of {' + '.join(BASELINE)} over the cell's (> 1: fewer epochs), with the "
            "exact percentile bootstrap over seeds: with up to 3 seeds in a cell it is the range of the seeds' "
            "ratios and is labelled 'range' (a 95% interval it is not); from 4 seeds, '95% bootstrap'. '≥': the "
            "baseline's median is censored, a lower bound; '≤': the cell's is.")
    frame = _grid(analysis, lambda c: fmt_speed_up(c.speed_up) if c.speed_up else "no baseline")
    classes = {}
    for cell in analysis.cells.values():
        sp = cell.speed_up
        if sp and sp.low is not None and sp.ratio is not None:
            cls = "good" if sp.low > 1 and sp.bound != "<=" else ("bad" if sp.high < 1 and sp.bound != ">=" else "")
            classes[(cell.task, column_label(cell.optimizer, cell.schedule))] = cls
    return Table("speed_up", "Speed-up against SGD + reference", note, frame, classes=classes)


def _fmt_mean_std(values: list[float]) -> str:
    ms = mean_std(values)
    return "" if ms is None else f"{ms[0]:.4g} ± {ms[1]:.2g} (n={len(values)})"


def metric_table(analysis: Analysis, which: str) -> Table:
    frame = _grid(analysis, lambda c: _fmt_mean_std(getattr(c, which)))
    frame.index = [f"{t} ({analysis.targets[t].metric})" for t in analysis.tasks]
    frame.index.name = "task (metric)"
    return Table(f"{which}_metric", f"{which.capitalize()} target metric",
                 f"{which.capitalize()} value of each task's target metric in each seed's longest run, "
                 "mean ± std over seeds.", frame)


def claims_table(analysis: Analysis, out_dir: Path) -> Table:
    rows = claim_rows(analysis)
    frame = pd.DataFrame({
        "claim": [f"{r.claim['title']}: {r.claim['text']}" for r in rows],
        "published run": [f"{r.claim['blog']} — +recipe={r.published['recipe']} ({r.published['epochs']} epochs)"
                          if r.published else "—" for r in rows],
        "baseline": [f"{r.claim['previous']} — {r.claim['baseline']['label']}" for r in rows],
        "runs judged": [judged_text(r) for r in rows],
        "A: figure, margin": [r.fidelity or "—" for r in rows],
        "B, C: common target": [r.common or "—" for r in rows],
        "our measurement": [r.measurement for r in rows],
        "verdict": [r.verdict for r in rows],
        "why": [r.reasons for r in rows],
    }, index=[r.id for r in rows])
    frame.index.name = "id"
    classes = {(r.id, "verdict"): verdict_class(r.verdict) for r in rows}
    links = {(r.id, "runs judged"): run_links(r.judged, out_dir) for r in rows if r.judged}
    return Table("claims", "Claims as published", rule_text(), frame, links=links, classes=classes)


def recipes_table(analysis: Analysis) -> Table:
    """Every published run's cell: what it ran and what it measured (the claims table judges them)."""
    cells = sorted(analysis.recipes.values(), key=lambda c: (c.task, c.recipe))
    frame = pd.DataFrame({
        "task": [c.task for c in cells],
        "optimizer · schedule": [column_label(c.optimizer, c.schedule) for c in cells],
        "budget": [str(c.summary.budget) for c in cells],
        "target": [f"{c.target.metric} {'≥' if c.target.mode == 'max' else '≤'} {c.target.value:g}" for c in cells],
        "epochs to target": [fmt_cell(c.summary) for c in cells],
        "final target metric": [_fmt_mean_std(c.final) for c in cells],
    }, index=[f"+recipe={c.recipe}" for c in cells])
    frame.index.name = "recipe"
    note = ("The published runs (conf/recipe/): each seed one run at the recipe's budget, stopped at the "
            "target when its schedule is budget-free. Epochs to target as above; 1cycle runs count only "
            "when they end at the target.")
    return Table("published_runs", "Published runs", note, frame)


def seeds_table(analysis: Analysis) -> Table:
    rows = [{"task": c.task, "optimizer": c.optimizer, "schedule": c.schedule, "seed": seed,
             "epochs_to_target": s.value, "censored": s.censored, "runs": s.probes,
             "non_monotone": s.non_monotone}
            for c in analysis.cells.values() for seed, s in c.seeds.items()]
    frame = pd.DataFrame(rows, columns=["task", "optimizer", "schedule", "seed", "epochs_to_target",
                                        "censored", "runs", "non_monotone"]).astype(str)
    frame.index = [str(i + 1) for i in range(len(frame))]
    frame.index.name = "#"
    note = ("One row per seed. censored: the target was not reached; epochs_to_target is then the budget. "
            "non_monotone: a larger 1cycle budget missed a target a smaller one met.")
    return Table("seeds", "Per-seed epochs to target", note, frame)


def problems_table(analysis: Analysis) -> Table:
    problems = analysis.records.problems
    frame = pd.DataFrame({"kind": [p.kind for p in problems], "detail": [p.detail for p in problems]},
                         index=[p.path.name for p in problems])
    frame.index.name = "run"
    note = ("Corrupt, incomplete, failed or inconsistent records, and (outside a rehearsal) runs that read "
            "fabricated data: listed here, left out of every number above.")
    return Table("excluded_runs", "Runs not counted", note, frame)


def all_tables(analysis: Analysis, out_dir: Path) -> list[Table]:
    tables = [claims_table(analysis, out_dir), *tuning_tables(analysis, out_dir), *modern_tables(analysis),
              recipes_table(analysis),
              ett_table(analysis, out_dir), speedup_table(analysis), metric_table(analysis, "final"),
              metric_table(analysis, "best"), probes_table(analysis), seeds_table(analysis), problems_table(analysis)]
    return rehearsal_tables(analysis, tables)  # a rehearsal's profile table, and every table's mark


# Markdown line breaks and the characters that make markup; `&`, `<` and `>` become entities so that no
# tag (a `<script>` from a record) survives as text a renderer could pass through as HTML.
_LINE_BREAKS = re.compile(r"[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+")
_ESCAPES = {"\\": "\\\\", "&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "\\|", "`": "\\`", "*": "\\*",
            "[": "\\[", "]": "\\]", "_": "\\_"}


def md_escape(value) -> str:
    """A Markdown table cell of `value`: the one escape every Markdown export uses. Numbers pass as they
    are. `_` inside a word (digits_resnet) and brackets in a text without `](` or `][` ("[6–7]") stay,
    as CommonMark reads neither as markup: intraword `_` never emphasises, and with no `](` / `][` no
    link can form (these files hold no link definitions). The backslash is escaped too, else `\\|`
    would leave the pipe bare and split the row."""
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        return str(value)
    text = _LINE_BREAKS.sub(" ", str(value))
    brackets = "](" in text or "][" in text
    out = []
    for i, ch in enumerate(text):
        intraword = 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum()
        if (ch == "_" and intraword) or (ch in "[]" and not brackets):
            out.append(ch)
        else:
            out.append(_ESCAPES.get(ch, ch))
    return "".join(out)


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no tabulate dependency); every label and value through
    md_escape, so a record's string can neither split a row nor add markup."""
    header = [frame.index.name or ""] + list(frame.columns)
    lines = ["| " + " | ".join(md_escape(h) for h in header) + " |", "|" + "---|" * len(header)]
    for label, row in frame.iterrows():
        lines.append("| " + " | ".join(md_escape(v) for v in [label, *row.tolist()]) + " |")
    return "\n".join(lines) + "\n"


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what spreadsheets read as the start of a formula


def csv_safe(value):
    """A cell a spreadsheet opens as text, never as a formula (OWASP "CSV Injection": prefix a cell that
    starts with = + - @ tab or CR by a single quote); numbers, including negative ones, stay numbers."""
    if not isinstance(value, str) or not value.startswith(FORMULA_START):
        return value
    try:
        float(value)
        return value
    except ValueError:
        return "'" + value


def exports(tables: list[Table]) -> dict[str, str]:
    """File name -> text of every table's CSV and Markdown export (written by the caller)."""
    files = {}
    for table in tables:
        frame = table.frame.map(csv_safe)
        frame.index = [csv_safe(v) for v in frame.index]
        frame.index.name = table.frame.index.name
        if table.mark:  # a column, not a comment line: every row carries it, and CSV readers still parse
            frame = frame.assign(rehearsal=table.mark)
        files[f"{table.name}.csv"] = frame.to_csv()
        # The note too: some carry record text (the tuning protocol's sampler and storage).
        mark = f"**{md_escape(table.mark)}**\n\n" if table.mark else ""
        files[f"{table.name}.md"] = (f"### {md_escape(table.title)}\n\n{mark}{md_escape(table.note)}\n\n"
                                     f"{to_markdown(table.frame)}")
    return files


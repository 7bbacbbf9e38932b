"""The second verdict per claim, "against tuned baselines": tuned AdamW + 1cycle against the claim's own
baseline optimizer and schedule tuned alike (claims.yaml `tuned_baseline`: SGD + the reference schedule
for the vision claims, SGD + NT-ASGD for the language models), two grid cells of the claim's task (or of
each mini twin) whose cell records say they ran tuned — judged by tests (B) and (C) of report/claims.py
on the same epochs-to-target machinery, with an (A) of their own (a grid cell has no run at the
published budget to compare with the published figure). Plus, per task, which tuned cell is the fastest.

Only the runs the tuned cell records name are read (Analysis.tuned), so an older untuned run of the same
cell never enters. A twin IS judged here: both cells had the same tuning, so the comparison is fair.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from .analysis import CLAIM_CELL, Analysis, Cell
from .claims import ClaimRow, as_much_faster, cells_text, faster_check, load_claims, verdict_of
from .ett import fmt_cell, fmt_epochs, fmt_speed_up, speed_up
from .stats import ALPHA
from .tuning import NOT_TUNED

# Worst to best (the gate ranks them).
TUNED_VERDICTS = (NOT_TUNED, "not run", "not reproduced", "faster, misses the figure",
                  "reaches the figure, not faster", "reaches the figure, faster by less than claimed",
                  "reproduced")

TUNED_RULE = (
    "Against tuned baselines: each row compares two grid cells of the task, each tuned by the same "
    "protocol (the tuning table below: the same search space rule, number of trials, sampler, budget and "
    "trial score per cell, on the validation split, with seeds apart from the verdict's) and then run on "
    "the full training set at its tuned LR and weight decay, seeds and budget search as every grid cell: "
    "AdamW + 1cycle against the claim's baseline optimizer and schedule (SGD + the reference schedule for "
    "the vision claims; SGD + NT-ASGD, awd-lstm-lm's, for the language models). (A) reaches the target "
    "within the budget: AdamW + 1cycle's censoring-aware median epochs-to-target is at most the claim's "
    "published epochs (a mini twin, which has no published figure: its task's budget). (B) faster: an "
    f"exact one-sided rank test that handles censored seeds (Gehan's), p ≤ {ALPHA:g}; with 2 vs 2 seeds "
    "the smallest p is 1/6: 'too few seeds to resolve'. (C) as much faster: the speed-up (tuned baseline's "
    "median epochs-to-target ÷ tuned AdamW + 1cycle's) is at least the claimed one (the published "
    "baseline's epochs ÷ the blog's); not judged where the claim has no published baseline, and 'not "
    "testable at this budget' where the tuned baseline never reached the target within the grid's budget, "
    "shorter than the published baseline's (the language models: 90 of 750 epochs). Verdicts as above. A "
    "mini twin is judged here (both cells tuned alike: a fair comparison), its row marked 'mini twin'. '"
    + NOT_TUNED + "': the grid ran no tuning, its cells use the task's sourced LR and WD, so there is no "
    "tuned baseline to judge against."
)


@dataclass
class TunedRow(ClaimRow):
    budget: int = 0  # the budget (A) is judged within

    @property
    def id(self) -> str:
        return f"tuned/{self.claim['id']}" + (f"/{self.task}" if self.twin else "")


def _tuned_values(analysis: Analysis, cell: Cell) -> str:
    outcome = analysis.tuning.outcomes.get((cell.task, cell.optimizer, cell.schedule)) or {}
    if "lr" not in outcome:
        return ""
    return f" (lr {float(outcome['lr']):.3g}, wd {float(outcome['weight_decay']):.3g})"


def within_budget(cell: Cell, budget: int) -> tuple[bool, str]:
    """The tuned (A): the cell's median epochs-to-target is at most `budget`."""
    median = cell.summary.median
    ok = median is not None and median <= budget
    return ok, (f"(A) within {budget} epochs: median {fmt_epochs(median, cell.summary.budget)} "
                f"({cell.summary.reached}/{cell.summary.seeds} seeds reached): {'yes' if ok else 'no'}")


def _judge_tuned(claim: dict, analysis: Analysis, task: str, twin: bool) -> TunedRow:
    baseline = tuple(claim.get("tuned_baseline", ("sgd", "reference")))
    cell, base = analysis.tuned.get((task, *CLAIM_CELL)), analysis.tuned.get((task, *baseline))
    published_epochs = int(claim["published"][0]["epochs"])
    budget = analysis.max_epochs.get(task, published_epochs) if twin else published_epochs
    where = f"measured on {task}, a mini twin of claim {claim['id']}: " if twin else ""
    row = partial(TunedRow, claim, None, task, twin, budget=budget)
    if not any(key[0] == task for key in analysis.tuning.tuned_keys()):
        return row(NOT_TUNED, f"{where}no cell of {task} ran tuned (its cells use the sourced LR and WD)",
                   "no tuned baseline to judge against")
    if cell is None or base is None:
        names = [" · ".join(k) for k, c in ((CLAIM_CELL, cell), (baseline, base)) if c is None]
        return row("not run", f"{where}no counted tuned run of {' and '.join(names)}",
                   "needs counted tuned runs of both cells", [c for c in (cell, base) if c])
    sp = speed_up(list(cell.seeds.values()), list(base.seeds.values()))
    base_epochs = int(claim["baseline"]["epochs"])
    a, a_text = within_budget(cell, budget)
    b, b_text = faster_check(sp)
    c, c_text = as_much_faster(sp, base_epochs / published_epochs, bool(claim["baseline"].get("published", True)),
                               base.summary.budget, base_epochs)
    parts = [f"tuned {cell.label}{_tuned_values(analysis, cell)}: {fmt_cell(cell.summary)}",
             f"tuned {base.label}{_tuned_values(analysis, base)}: {fmt_cell(base.summary)}",
             f"speed-up {fmt_speed_up(sp)}"]
    return row(verdict_of(a, b, c), where + " | ".join(parts), "; ".join((a_text, b_text, c_text)), [cell, base])


def tuned_rows(analysis: Analysis, claims: dict | None = None) -> list[TunedRow]:
    """One row per claim measured on its full task, one per mini twin that ran; 'not run' when neither."""
    claims = claims or load_claims()
    rows = []
    for claim in claims["claims"]:
        tasks = [(claim["task"], False)] + [(t, True) for t in claim.get("twins", [])]
        ran = [(t, twin) for t, twin in tasks if analysis.task_cells(t)]
        if not ran:
            rows.append(TunedRow(claim, None, claim["task"], False, "not run",
                                 "no grid cell of the task or of a twin counted", "needs counted grid runs"))
        rows += [_judge_tuned(claim, analysis, task, twin) for task, twin in ran]
    return rows


def tuned_judged_text(row: TunedRow) -> str:
    return cells_text(row.judged, tag="tuned ") if row.judged else "none"


def tuned_rule_text() -> str:
    return TUNED_RULE


def speed_key(cell: Cell) -> tuple:
    """The report's one definition of "fastest" (here and in "Still the fastest?", report/modern.py): the
    lowest Kaplan–Meier median epochs-to-target over seeds; an undefined median (fewer than half the
    seeds reached) is slower than any defined one; equal keys tie."""
    return (cell.summary.median is None, cell.summary.median_or_budget)


def fastest_answer(cells: list[Cell]) -> str:
    """Is AdamW + 1cycle the fastest of the tuned cells (`cells`, fastest first)?"""
    if not cells:
        return NOT_TUNED
    claim = next((c for c in cells if (c.optimizer, c.schedule) == CLAIM_CELL), None)
    if claim is None:
        return f"no counted tuned {' · '.join(CLAIM_CELL)} cell"
    if cells[0].summary.median is None:
        return "no tuned cell has a median (fewer than half the seeds reached the target in each)"
    ties = [c.label for c in cells if c is not claim and speed_key(c) == speed_key(claim)]
    if speed_key(claim) != speed_key(cells[0]):
        return f"no: {cells[0].label} is faster"
    return "yes" + (f", tied with {', '.join(ties)}" if ties else "")


def tuned_task_cells(analysis: Analysis, task: str) -> list[Cell]:
    """The task's tuned cells, fastest (lowest median epochs-to-target) first."""
    cells = [c for key, c in analysis.tuned.items() if key[0] == task]
    return sorted(cells, key=lambda c: (*speed_key(c), c.label))

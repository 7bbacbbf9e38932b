"""The blog's claims as published: each run the blog published, judged against the claim's published
baseline run, with a verdict decided by one stated rule (RULE, printed on the page).

Both sides are recipe cells (conf/recipe/, `+recipe=NAME`): the blog's run with its model, loss,
optimizer, schedule and budget, and the baseline's. A claim with no published baseline (Stanford Cars'
"600 epochs") is compared with our stand-in, labelled as ours, and test (C) is not judged. The grid's
cells (optimizers x schedules on one model) are not judged here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .analysis import Analysis, Cell, mean_std
from .ett import SpeedUp, fmt_cell, fmt_speed_up, speed_up

CLAIMS_FILE = Path(__file__).with_name("claims.yaml")
# Worst to best (the gate ranks them). A twin suite has no run the blog published: nothing to judge.
VERDICTS = ("no published recipe", "not run", "not reproduced", "partly", "reproduced")

RULE = (
    "As published: each row is one run the blog published (its recipe: model, loss, optimizer, schedule, "
    "budget and evaluation as its scripts ran them; one run per seed at the published budget), judged "
    "against the claim's published baseline run (also a recipe, run to its own budget, stopped at the "
    "target). Epochs-to-target: the blog run's budget when it ends at the target; the baseline's first "
    "epoch at the target. (A) within budget: at least {share:.0%} of the blog run's seeds end at the "
    "target. (B) faster: the 95% interval of the speed-up (baseline's censoring-aware median "
    "epochs-to-target ÷ the blog run's; exact bootstrap, enumerating every resample of the seeds) lies "
    "above 1 — an interval needs at least 2 seeds in each cell. (C) as much faster: the speed-up (a lower "
    "bound when the baseline never got there) is at least the claimed one (previous ÷ blog epochs); not "
    "judged where the claim has no published baseline. Reproduced: all that apply hold. Partly: (A) or "
    "(B) holds. Not reproduced: neither. Not run: either side has no counted run. A mini twin has no "
    "run the blog published, so it gets no verdict here ('no published recipe'): its grid tables "
    "compare optimizers and schedules on the twin."
)


@dataclass
class ClaimRow:
    claim: dict
    published: dict | None  # the claim's published run (claims.yaml `published` entry); None: twin row
    task: str | None  # the task measured; None when nothing of the claim was run
    twin: bool
    verdict: str
    measurement: str
    reasons: str
    judged: list[Cell] = field(default_factory=list)  # the cells this verdict read

    @property
    def id(self) -> str:
        return f"{self.claim['id']}/{self.published['recipe']}" if self.published else self.claim["id"]


def load_claims(path: Path = CLAIMS_FILE) -> dict:
    return yaml.safe_load(path.read_text())


def decide(cell, epochs: int, share: float, claimed: float | None, sp: SpeedUp | None,
           published_baseline: bool = True) -> tuple[str, str]:
    """The verdict and the reasons behind it (A, B, C of RULE) for a blog run's cell and its speed-up
    `sp` over the baseline; `claimed` None skips (C)."""
    within = sum(1 for s in cell.seeds.values() if not s.censored and s.value <= epochs)
    need = math.ceil(share * len(cell.seeds) - 1e-9)
    a = within >= need
    has_interval = bool(sp and sp.low is not None)
    b = bool(has_interval and sp.ratio is not None and sp.bound != "<=" and sp.low > 1)
    checks = [f"(A) {within}/{len(cell.seeds)} seeds at the target within {epochs} epochs (need {need}): "
              f"{'yes' if a else 'no'}",
              f"(B) speed-up interval above 1: {'yes' if b else 'no'}"
              + ("" if has_interval or not sp else f" ({sp.seeds[0]} vs {sp.seeds[1]} seeds: no interval)")]
    c = True
    if not published_baseline:
        checks.append("(C) no published baseline: not judged")
    elif claimed is not None:
        c = bool(sp and sp.ratio is not None and sp.bound != "<=" and sp.ratio >= claimed)
        checks.append(f"(C) speed-up ≥ claimed {claimed:.1f}×: {'yes' if c else 'no'}")
    verdict = "reproduced" if a and b and c else ("partly" if a or b else "not reproduced")
    return verdict, "; ".join(checks)


def baseline_cell(claim: dict, analysis: Analysis, task: str) -> Cell | None:
    base = claim["baseline"]
    if base.get("recipe"):
        return analysis.recipe(task, base["recipe"])
    return analysis.cell(task, *base["cell"])


def _claim_ran(claim: dict, analysis: Analysis, task: str) -> bool:
    recipes = [p["recipe"] for p in claim["published"]] + [claim["baseline"].get("recipe")]
    return (any(analysis.recipe(task, r) for r in recipes if r)
            or any(t == task for t, _, _ in analysis.cells))


def figures_text(claim_pub: dict, cell: Cell) -> str:
    """The blog's published figures beside ours (mean ± sd of each seed's final value, with n)."""
    parts = []
    for fig in claim_pub.get("figures", []):
        values = cell.final_values(fig["metric"])
        ms = mean_std(values)
        ours = "not recorded" if ms is None else f"{ms[0]:.4g} ± {ms[1]:.2g} ({len(values)} seeds)"
        parts.append(f"{fig['metric']}: blog {fig['value']:g}, ours {ours}")
    return "; ".join(parts)


def _judge(claim: dict, pub: dict, analysis: Analysis, task: str, share: float) -> ClaimRow:
    cell, base = analysis.recipe(task, pub["recipe"]), baseline_cell(claim, analysis, task)
    base_label = claim["baseline"]["label"]
    if cell is None or base is None:
        missing = [name for name, c in ((f"+recipe={pub['recipe']}", cell), (base_label, base)) if c is None]
        return ClaimRow(claim, pub, task, False, "not run", f"no counted run of {' and '.join(missing)}",
                        "needs counted runs of the blog's run and of its baseline",
                        [c for c in (cell, base) if c])
    sp = speed_up(list(cell.seeds.values()), list(base.seeds.values()))
    published = bool(claim["baseline"].get("published", True))
    claimed = float(claim["previous_epochs"]) / float(pub["epochs"])
    verdict, reasons = decide(cell, int(pub["epochs"]), share, claimed, sp, published)
    parts = [f"blog run: {fmt_cell(cell.summary)}", f"{base_label}: {fmt_cell(base.summary)}",
             f"speed-up {fmt_speed_up(sp)}"]
    if figures := figures_text(pub, cell):
        parts.append(figures)
    return ClaimRow(claim, pub, task, False, verdict, " | ".join(parts), reasons, [cell, base])


def claim_rows(analysis: Analysis, claims: dict | None = None) -> list[ClaimRow]:
    claims = claims or load_claims()
    share = float(claims.get("seeds_share", 0.66))
    rows = []
    for claim in claims["claims"]:
        task = claim["task"]
        twin = next((t for t in claim.get("twins", []) if analysis.task_cells(t)), None)
        if not _claim_ran(claim, analysis, task) and twin:
            rows.append(ClaimRow(claim, None, twin, True, "no published recipe",
                                 f"measured on {twin}, a mini twin of claim {claim['id']}",
                                 "the blog published no run of a twin: its optimizers and schedules are "
                                 "compared in the tables below, not judged as published"))
            continue
        rows += [_judge(claim, pub, analysis, task, share) for pub in claim["published"]]
    return rows


def judged_text(row: ClaimRow) -> str:
    """Which runs the verdict read: each cell, its seeds and runs."""
    if row.twin:
        return f"none: {row.task} is a mini twin (claim's shape, not its figure)"
    if not row.judged:
        return "none counted"
    return cells_text(row.judged)


def cells_text(cells, tag: str = "") -> str:
    """The cells a verdict read, each with its seeds and runs: 'task [tag ]label (n seeds, m runs) vs …'."""
    return " vs ".join(f"{c.task} {tag}{c.label} ({c.summary.seeds} seeds, {c.summary.probes} runs)"
                       for c in cells)


def rule_text(claims: dict | None = None) -> str:
    claims = claims or load_claims()
    return RULE.format(share=float(claims.get("seeds_share", 0.66)))

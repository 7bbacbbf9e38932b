"""The blog's claims as published: each run the blog published, judged against the claim's published
baseline run, with a verdict decided by three stated tests (RULE, printed on the page) whose operating
characteristics are known (report/stats.py; simulated in tests/test_report_rules.py).

Both sides are recipe cells (conf/recipe/, `+recipe=NAME`): the blog's run with its model, loss,
optimizer, schedule and budget, and the baseline's. A claim with no published baseline (Stanford Cars'
"600 epochs") is compared with our stand-in, labelled as ours, and test (C) is not judged. The grid's
cells (optimizers x schedules on one model) are not judged here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from results.targets import Target

from .analysis import Analysis, Cell, mean_std
from .ett import SpeedUp, fmt_cell, fmt_speed_up, speed_up, summarise_cell
from .stats import ALPHA, fmt_rank_test, noninferior, pass_rates

CLAIMS_FILE = Path(__file__).with_name("claims.yaml")
# Worst to best (the gate ranks them). A twin suite has no run the blog published: nothing to judge.
VERDICTS = ("no published recipe", "not run", "not reproduced", "faster, misses the figure",
            "reaches the figure, not faster", "reaches the figure, faster by less than claimed", "reproduced")

RULE = (
    "As published: each row is one run the blog published (its recipe: model, loss, optimizer, schedule, "
    "budget and evaluation as its scripts ran them; one run per seed at the published budget), judged "
    "against the claim's published baseline run (also a recipe, run to its own published budget, stopped "
    "at the target). (A) reaches the figure: a non-inferiority test on the blog's own metric — the mean "
    "of the seeds' final values is within the claim's stated margin of the blog's published figure (the "
    "'A: figure, margin' column gives both, with the rule's pass rates for a faithful reproduction and "
    "for one two margins worse, simulated at the claim's stated seed-to-seed spread). (B) faster: "
    "epochs-to-target of both runs at one common target on one metric both record every epoch (the "
    "looser of the two published figures; 'B, C: common target' column; the blog run's is its budget "
    "when it ends there), compared by an exact one-sided rank test that handles seeds that never reached "
    f"it (Gehan's): p ≤ {ALPHA:g}. With 3 vs 3 seeds this is in effect asking that every blog seed beat "
    "every baseline seed (the smallest p is 1/20); with fewer it cannot pass and says 'too few seeds'. "
    "(C) as much faster: the speed-up (baseline's censoring-aware median epochs-to-target ÷ the blog "
    "run's; a lower bound when the baseline never got there) is at least the claimed one — the "
    "baseline's published epochs ÷ the blog run's, for every claim; not judged where the claim has no "
    "published baseline, and 'not testable at this budget' where the baseline never reached the target "
    "and its budget is shorter than its published one. Verdict: reproduced when (A), (B) and (C) hold "
    "(or (C) is not judged); 'reaches the figure, faster by less than claimed' when (C) fails; 'reaches "
    "the figure, not faster' when only (A) holds; 'faster, misses the figure' when only (B) does; not "
    "reproduced when neither. Not run: either side has no counted run. A mini twin has no run the blog "
    "published, so it gets no verdict here ('no published recipe'): its grid tables compare optimizers and "
    "schedules on the twin."
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
    fidelity: str = ""  # (A)'s figure, margin and pass rates
    common: str = ""  # (B, C)'s common target

    @property
    def id(self) -> str:
        return f"{self.claim['id']}/{self.published['recipe']}" if self.published else self.claim["id"]


def load_claims(path: Path = CLAIMS_FILE) -> dict:
    return yaml.safe_load(path.read_text())


def verdict_of(a: bool, b: bool, c: bool | None) -> str:
    """(A) reaches the figure, (B) faster, (C) as much faster (None: not judged or not testable)."""
    if a and b:
        return "reaches the figure, faster by less than claimed" if c is False else "reproduced"
    if a:
        return "reaches the figure, not faster"
    return "faster, misses the figure" if b else "not reproduced"


def faster_check(sp: SpeedUp | None) -> tuple[bool, str]:
    """(B): the exact rank test of 'the blog's run reaches the common target in fewer epochs'."""
    if sp is None or sp.test is None:
        return False, "(B) faster: no seeds to compare: no"
    passed = sp.test.passed
    return passed, f"(B) faster: {fmt_rank_test(sp.test)}: {'yes' if passed else 'no'}"


def as_much_faster(sp: SpeedUp | None, claimed: float, published: bool, base_budget: int | None = None,
                   base_epochs: int | None = None) -> tuple[bool | None, str]:
    """(C): the speed-up is at least `claimed`. A baseline that never reached the target within a budget
    shorter than its published `base_epochs` cannot show it: not testable (None), unless its lower bound
    already does."""
    if not published:
        return None, "(C) no published baseline: not judged"
    if sp is None or sp.ratio is None:
        return False, f"(C) speed-up ≥ claimed {claimed:.1f}×: no speed-up measured: no"
    ok = sp.bound != "<=" and sp.ratio >= claimed
    short = base_budget is not None and base_epochs is not None and base_budget < base_epochs
    if sp.bound == ">=" and short and not ok:
        return None, (f"(C) speed-up ≥ claimed {claimed:.1f}×: not testable at this budget (the baseline "
                      f"never reached the target in {base_budget} epochs; the claim is about its {base_epochs})")
    return ok, f"(C) speed-up ≥ claimed {claimed:.1f}×: {'yes' if ok else 'no'}"


@dataclass(frozen=True)
class Fidelity:
    """Rule (A) of one published run: its first figure, the claim's margin and seed-to-seed spread."""

    metric: str
    figure: float
    margin: float
    spread: float
    mode: str

    @classmethod
    def of(cls, claim: dict, pub: dict) -> "Fidelity":
        fig = pub["figures"][0]
        return cls(fig["metric"], float(fig["value"]), float(claim["fidelity"]["margin"]),
                   float(claim["fidelity"]["spread"]), claim["mode"])

    def rates(self, seeds: int) -> tuple[float, float]:
        return pass_rates(self.figure, self.margin, self.spread, self.mode, seeds)

    def text(self, seeds: int) -> str:
        faithful, worse = self.rates(seeds)
        sign = "−" if self.mode == "max" else "+"
        return (f"{self.metric} {self.figure:g} {sign} {self.margin:g} (sd {self.spread:g} assumed); with "
                f"{seeds} seeds a faithful run passes {faithful:.1%}, one 2 margins worse fails {worse:.1%}")

    def check(self, cell: Cell) -> tuple[bool, str]:
        values = cell.final_values(self.metric)
        if not values:
            return False, f"(A) reaches the figure: {self.metric} not recorded: no"
        ok = noninferior(values, self.figure, self.margin, self.mode)
        mean, sd = mean_std(values)
        bound = self.figure - self.margin if self.mode == "max" else self.figure + self.margin
        return ok, (f"(A) reaches the figure: mean {self.metric} {mean:.4g} over {len(values)} seeds "
                    f"(sd {sd:.2g}) {'≥' if self.mode == 'max' else '≤'} {bound:.4g}: {'yes' if ok else 'no'}")


def common_target(claim: dict, pub: dict) -> Target:
    return Target(pub["common"]["metric"], float(pub["common"]["value"]), claim["mode"])


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


def _judge(claim: dict, pub: dict, analysis: Analysis, task: str, seeds: int) -> ClaimRow:
    cell, base = analysis.recipe(task, pub["recipe"]), baseline_cell(claim, analysis, task)
    base_label = claim["baseline"]["label"]
    fidelity, target = Fidelity.of(claim, pub), common_target(claim, pub)
    common = f"{target.metric} {'≥' if target.mode == 'max' else '≤'} {target.value:g}"
    if cell is None or base is None:
        missing = [name for name, c in ((f"+recipe={pub['recipe']}", cell), (base_label, base)) if c is None]
        return ClaimRow(claim, pub, task, False, "not run", f"no counted run of {' and '.join(missing)}",
                        "needs counted runs of the blog's run and of its baseline",
                        [c for c in (cell, base) if c], fidelity.text(seeds), common)
    ours, theirs = cell.seeds_at(target), base.seeds_at(target)
    sp = speed_up(ours, theirs)
    base_epochs = int(claim["baseline"]["epochs"])
    a, a_text = fidelity.check(cell)
    b, b_text = faster_check(sp)
    c, c_text = as_much_faster(sp, base_epochs / float(pub["epochs"]),
                               bool(claim["baseline"].get("published", True)))
    parts = [f"blog run: {fmt_cell(summarise_cell(ours))}", f"{base_label}: {fmt_cell(summarise_cell(theirs))}",
             f"speed-up {fmt_speed_up(sp)}"]
    if figures := figures_text(pub, cell):
        parts.append(figures)
    return ClaimRow(claim, pub, task, False, verdict_of(a, b, c), " | ".join(parts),
                    "; ".join((a_text, b_text, c_text)), [cell, base], fidelity.text(len(ours)), common)


def claim_rows(analysis: Analysis, claims: dict | None = None) -> list[ClaimRow]:
    claims = claims or load_claims()
    seeds = int(claims.get("seeds", 3))
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
        rows += [_judge(claim, pub, analysis, task, seeds) for pub in claim["published"]]
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


def rule_text() -> str:
    return RULE


def verdict_class(verdict: str) -> str:
    """The CSS class of a verdict cell: 'verdict-' and its words joined by '-' ('reaches-the-figure-…')."""
    return "verdict-" + "-".join(re.findall(r"[a-z]+", verdict.split(" (")[0].lower()))

"""The blog's claims beside our measurement, with a verdict decided by one stated rule."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from .analysis import BASELINE, CLAIM_CELL, Analysis, Cell
from .ett import fmt_cell, fmt_speed_up, speed_up

CLAIMS_FILE = Path(__file__).with_name("claims.yaml")
VERDICTS = ("not run", "not reproduced", "partly", "reproduced")  # worst to best (the gate ranks them)
MIN_SEEDS_FOR_CI = 2  # a bootstrap over one seed is no interval

RULE = (
    "Cells compared: AdamW + 1cycle against the claim's baseline on the same task: SGD + the task's "
    "reference schedule, or the baseline the claim names (WikiText-2: awd-lstm-lm's NT-ASGD run) where "
    "that was run. "
    "(A) within budget: at least {share:.0%} of AdamW + 1cycle seeds reach the target within the claim's "
    "epochs (the blog's figure on the full task; the twin task's maximum budget on a mini twin). "
    "(B) faster: the 95% bootstrap CI of the speed-up (ratio of censoring-aware median epochs-to-target) "
    "lies above 1, with at least {min_seeds} seeds in each cell. (C) as much faster: the speed-up (a lower bound when SGD never got there) is at least "
    "the claim's (previous epochs / blog epochs); a mini twin skips (C) — its budget cannot show the "
    "figure. Reproduced: all that apply hold. Partly: (A) or (B) holds. Not reproduced: neither. "
    "Not run: either cell has no counted run."
)


@dataclass
class ClaimRow:
    claim: dict
    task: str | None  # the task measured (the claim's own or a twin); None when not run
    twin: bool
    verdict: str
    measurement: str
    reasons: str
    claim_cell: Cell | None = None


def load_claims(path: Path = CLAIMS_FILE) -> dict:
    return yaml.safe_load(path.read_text())


def _measured_task(claim: dict, analysis: Analysis) -> tuple[str | None, bool]:
    for task, twin in [(claim["task"], False)] + [(t, True) for t in claim.get("twins", [])]:
        if analysis.cell(task, *CLAIM_CELL) or analysis.cell(task, *BASELINE):
            return task, twin
    return None, False


def decide(cell: Cell, epochs: int, share: float, claimed: float | None,
           baseline_seeds: int | None = None, sp=None) -> tuple[str, str]:
    """The verdict and the reasons behind it (A, B, C of RULE); `sp` is the speed-up against the
    claim's baseline (default: the cell's, against SGD + reference)."""
    within = sum(1 for s in cell.seeds.values() if not s.censored and s.value <= epochs)
    need = math.ceil(share * len(cell.seeds) - 1e-9)
    a = within >= need
    sp = sp or cell.speed_up
    enough = min(len(cell.seeds), baseline_seeds or len(cell.seeds)) >= MIN_SEEDS_FOR_CI
    b = bool(enough and sp and sp.ratio is not None and sp.bound != "<=" and sp.low is not None
             and sp.low > 1)
    checks = [f"(A) {within}/{len(cell.seeds)} seeds within {epochs} epochs (need {need}): "
              f"{'yes' if a else 'no'}",
              f"(B) speed-up CI above 1: {'yes' if b else 'no'}"
              + ("" if enough else f" (fewer than {MIN_SEEDS_FOR_CI} seeds: no interval)")]
    c = True
    if claimed is not None:
        c = bool(sp and sp.ratio is not None and sp.bound != "<=" and sp.ratio >= claimed)
        checks.append(f"(C) speed-up ≥ claimed {claimed:.1f}×: {'yes' if c else 'no'}")
    verdict = "reproduced" if a and b and c else ("partly" if a or b else "not reproduced")
    return verdict, "; ".join(checks)


def _baseline(claim: dict, analysis: Analysis, task: str) -> Cell | None:
    """The claim's own baseline cell when it was run, else SGD + reference."""
    named = claim.get("baseline")
    return (named and analysis.cell(task, *named)) or analysis.cell(task, *BASELINE)


def _measurement(cell: Cell | None, base: Cell | None, script: Cell | None, sp) -> str:
    label = f"{base.optimizer} + {base.schedule}" if base else "SGD + reference"
    parts = [f"AdamW + 1cycle: {fmt_cell(cell.summary) if cell else 'no runs'}",
             f"{label}: {fmt_cell(base.summary) if base else 'no runs'}"]
    if cell and sp:
        parts.append(f"speed-up {fmt_speed_up(sp)}")
    if script:
        parts.append(f"as the blog's script ran it ({script.optimizer} + 1cycle): {fmt_cell(script.summary)}")
    return " | ".join(parts)


def claim_rows(analysis: Analysis, claims: dict | None = None) -> list[ClaimRow]:
    claims = claims or load_claims()
    share = float(claims.get("seeds_share", 0.66))
    rows = []
    for claim in claims["claims"]:
        task, twin = _measured_task(claim, analysis)
        cell = analysis.cell(task, *CLAIM_CELL) if task else None
        base = _baseline(claim, analysis, task) if task else None
        sp = (speed_up(list(cell.seeds.values()), list(base.seeds.values()))
              if cell and base and (base.optimizer, base.schedule) != BASELINE else (cell and cell.speed_up))
        script_opt = claim.get("script_optimizer")
        script = analysis.cell(task, script_opt, CLAIM_CELL[1]) if task and script_opt else None
        measurement = _measurement(cell, base, script, sp) if task else "no runs of the task or its twins"
        if cell is None or base is None:
            rows.append(ClaimRow(claim, task, twin, "not run", measurement,
                                 "needs both the AdamW + 1cycle and the baseline cells", cell))
            continue
        epochs = analysis.max_epochs[task] if twin else int(claim["blog_epochs"])
        claimed = None if twin else float(claim["previous_epochs"]) / float(claim["blog_epochs"])
        verdict, reasons = decide(cell, epochs, share, claimed, len(base.seeds), sp)
        rows.append(ClaimRow(claim, task, twin, verdict, measurement, reasons, cell))
    return rows


def twin_label(row: ClaimRow) -> str:
    if row.task is None:
        return ""
    if row.twin:
        return f"measured on {row.task} — mini twin of claim {row.claim['id']}: the claim's shape, not its figure"
    return f"measured on {row.task}"


def rule_text(claims: dict | None = None) -> str:
    claims = claims or load_claims()
    return RULE.format(share=float(claims.get("seeds_share", 0.66)), min_seeds=MIN_SEEDS_FOR_CI)

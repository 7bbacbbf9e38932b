"""Learning-rate and momentum schedules as small pure functions of training progress.

Every schedule maps a position `pos` in [0, 1] (fraction of the run done) to `(lr_mult, momentum)`:
the multiplier on the optimizer's base LR and the momentum (SGD momentum or Adam's beta1) to set, or
None to leave momentum alone. `build_schedule` turns a config into a function of epochs done.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

Anneal = Callable[[float], float]
Schedule = Callable[[float], tuple[float, float | None]]


def annealing_linear(start: float, end: float) -> Anneal:
    return lambda pos: start + pos * (end - start)


def annealing_cos(start: float, end: float) -> Anneal:
    """fastai's cosine piece: start at pos 0, end at pos 1, flat at both ends."""
    return lambda pos: start + (1 + math.cos(math.pi * (1 - pos))) * (end - start) / 2


def combine(pcts: Sequence[float], pieces: Sequence[Anneal]) -> Anneal:
    """Chain pieces, piece i covering fraction pcts[i] of the run (pcts sum to 1)."""
    bounds = [0.0]
    for pct in pcts:
        bounds.append(bounds[-1] + pct)

    def scheduled(pos: float) -> float:
        pos = min(max(pos, 0.0), 1.0)
        for i, piece in enumerate(pieces):
            if pos <= bounds[i + 1] or i == len(pieces) - 1:
                width = bounds[i + 1] - bounds[i]
                return piece((pos - bounds[i]) / width if width > 0 else 1.0)
        raise AssertionError("unreachable")

    return scheduled


def combined_cos(pct: float, start: float, middle: float, end: float) -> Anneal:
    """Cosine start -> middle over the first `pct`, cosine middle -> end over the rest (fastai)."""
    return combine([pct, 1 - pct], [annealing_cos(start, middle), annealing_cos(middle, end)])


def one_cycle(pct_start: float = 0.25, div: float = 25.0, div_final: float = 1e5,
              moms: Sequence[float] = (0.95, 0.85, 0.95)) -> Schedule:
    """fastai v2 `fit_one_cycle`: LR lr_max/div -> lr_max -> lr_max/div_final, momentum opposite."""
    lr = combined_cos(pct_start, 1 / div, 1.0, 1 / div_final)
    mom = combined_cos(pct_start, *moms)
    return lambda pos: (lr(pos), mom(pos))


def one_cycle_phases(warmup: float, flat: float, down: float, final: float, div: float = 10.0,
                     moms: Sequence[float] = (0.95, 0.85), final_shape: str = "linear",
                     lin_end_div: float = 100.0) -> Schedule:
    """The blog's 2018 scripts (fastai 0.7 phases), lengths in any unit (normalised here):
    LR linear lr/div -> lr (momentum hi -> lo), optional flat at lr (momentum lo), linear lr -> lr/div
    (momentum lo -> hi), then a final phase at momentum hi: linear lr/div -> lr/(lin_end_div*div), or
    cosine lr/div -> 0."""
    hi, lo = moms
    total = warmup + flat + down + final
    pcts = [warmup / total, flat / total, down / total, final / total]
    last = (annealing_linear(1 / div, 1 / (lin_end_div * div)) if final_shape == "linear"
            else annealing_cos(1 / div, 0.0))
    lr = combine(pcts, [annealing_linear(1 / div, 1.0), annealing_linear(1.0, 1.0),
                        annealing_linear(1.0, 1 / div), last])
    mom = combine(pcts, [annealing_linear(hi, lo), annealing_linear(lo, lo),
                         annealing_linear(lo, hi), annealing_linear(hi, hi)])
    return lambda pos: (lr(pos), mom(pos))


def constant(momentum: float | None = None) -> Schedule:
    return lambda pos: (1.0, momentum)


def exponential(start: float, end: float) -> Schedule:
    """LR multiplier start -> end geometrically, momentum untouched: the LR range test's ramp (fastai
    SchedExp). Not a training schedule, so not in `build_schedule`."""
    return lambda pos: (start * (end / start) ** pos, None)


def step(milestones: Sequence[float], gamma: float, total_epochs: float,
         momentum: float | None = None) -> Schedule:
    """LR times gamma at each milestone, milestones in epochs (so the LR at an epoch does not depend
    on the budget: a step schedule is budget-free)."""
    marks = sorted(milestones)

    def scheduled(pos: float) -> tuple[float, float | None]:
        epoch = pos * total_epochs
        return gamma ** sum(epoch >= m for m in marks), momentum

    return scheduled


def warmup(warmup_epochs: float) -> Callable[[float], tuple[float, None]]:
    """LR multiplier 0 -> 1 linearly over `warmup_epochs`, then 1; momentum untouched. A function of
    epochs (not pos), so budget-free: Schedule-Free AdamW needs warm-up only (Defazio et al. 2024)."""
    return lambda epoch: (min(1.0, epoch / warmup_epochs) if warmup_epochs > 0 else 1.0, None)


def cosine(warmup_pct: float = 0.0, final: float = 0.0) -> Schedule:
    """Linear warm-up 0 -> 1 over `warmup_pct` of the run, then half a cosine 1 -> `final` (SGDR without
    restarts, Loshchilov & Hutter 2017, eq. 5 with T_i the run)."""
    def scheduled(pos: float) -> tuple[float, None]:
        pos = min(max(pos, 0.0), 1.0)
        if pos < warmup_pct:
            return pos / warmup_pct, None
        t = (pos - warmup_pct) / (1 - warmup_pct)
        return final + (1 - final) * (1 + math.cos(math.pi * t)) / 2, None

    return scheduled


def cooldown_start(budget: int, cooldown_frac: float) -> int:
    """s(B): the whole epoch where WSD's cooldown starts — the last max(1, round(frac * B)) epochs of
    the budget decay. The one definition: the schedule and the grid's branch search both use it."""
    return budget - max(1, round(cooldown_frac * budget))


COOLDOWN_SHAPES = {"linear": lambda t: 1 - t, "sqrt": lambda t: 1 - math.sqrt(t)}  # "1-sqrt": Hägele


def wsd(total_epochs: int, warmup_epochs: float = 1.0, cooldown_frac: float = 0.2, final: float = 0.0,
        cooldown_shape: str = "linear", stable_only: bool = False) -> Callable[[float], tuple]:
    """Warm-up-stable-decay (Hu et al. 2024 MiniCPM; Hägele et al. 2024, arXiv:2405.18392): the warm-up
    above, stable at 1, then from epoch s(B) a cooldown to `final` over the rest of the budget B. A
    function of epochs: before s(B) the LR does not depend on B, bit for bit (runners/grid/wsd.py
    branches every budget's run from one stable run). `stable_only`: no cooldown — that stable run."""
    warm, shape = warmup(warmup_epochs), COOLDOWN_SHAPES[cooldown_shape]
    start = total_epochs if stable_only else cooldown_start(total_epochs, cooldown_frac)

    def scheduled(epoch: float) -> tuple[float, None]:
        lr = warm(epoch)[0]
        if epoch <= start:  # a cooldown starting inside the warm-up (tiny B) scales it down
            return lr, None
        t = min(1.0, (epoch - start) / (total_epochs - start))
        return lr * (final + (1 - final) * shape(t)), None

    return scheduled


@dataclass(frozen=True)
class BuiltSchedule:
    """A schedule bound to a run length: call with epochs done (a float, stepped per batch)."""

    fn: Schedule
    total_epochs: float
    budget_free: bool  # True when the LR at epoch e does not depend on the total budget
    # fn takes epochs done, not pos: a schedule defined in epochs (warmup, wsd) then sees the same float
    # at an epoch whatever the budget ((e / B) * B need not be e), so a WSD branch repeats its trunk exactly.
    in_epochs: bool = False

    def __call__(self, epochs_done: float) -> tuple[float, float | None]:
        return self.fn(epochs_done if self.in_epochs else epochs_done / self.total_epochs)


# wsd: budget-dependent, though its LR before s(B) is not (the grid's branch search relies on that).
BUDGET_FREE = {"constant": True, "step": True, "warmup": True, "one_cycle": False,
               "one_cycle_phases": False, "cosine": False, "wsd": False}


def build_schedule(cfg: dict, total_epochs: float) -> BuiltSchedule:
    """`cfg` is a plain dict with `kind` plus that kind's parameters (see conf/schedule/)."""
    params = {k: v for k, v in cfg.items() if k not in ("kind", "name")}
    kind = cfg["kind"]
    if kind == "one_cycle":
        fn = one_cycle(**params)
    elif kind == "one_cycle_phases":
        fn = one_cycle_phases(**params)
    elif kind == "constant":
        fn = constant(**params)
    elif kind == "step":
        fn = step(total_epochs=total_epochs, **params)
    elif kind == "cosine":
        fn = cosine(**params)
    elif kind == "warmup":
        fn = warmup(**params)
    elif kind == "wsd":
        fn = wsd(total_epochs=int(total_epochs), **params)
    else:
        raise ValueError(f"unknown schedule kind {kind!r}; known: {sorted(BUDGET_FREE)}")
    return BuiltSchedule(fn=fn, total_epochs=float(total_epochs), budget_free=BUDGET_FREE[kind],
                         in_epochs=kind in ("warmup", "wsd"))

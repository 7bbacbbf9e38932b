"""`plan=true`: the cells' budget searches walked dry (job.DryRunner) — what each would run, what is
done, what is left in epochs and, priced by measured or configured epoch times, in device hours."""
from __future__ import annotations

import random
import statistics
from typing import Mapping

from omegaconf import DictConfig

from results import records

from ..lr_find import cached_lr
from ..spec import RunSpec
from .cells import cell_name, is_budget_free
from .search import DryRunner, is_tuned, search_cell
from .tuning import read_outcome, trial_budget, tuned
from .wsd import branches, planned_trunk


def planned_lr(spec: RunSpec) -> tuple[float | None, str]:
    """The LR a run would use, without running an LR range test (None: the test is still to run)."""
    if spec.lr:
        return spec.lr.value, spec.lr.origin
    lr = cached_lr(spec)
    return lr, "lr_find (cached)" if lr is not None else "lr_find (to run)"


def plan_cell(cfg: DictConfig) -> dict:
    """The runs this cell will make and what is left, in epochs. A tuned cell's runs are known once its
    study has an outcome its runs vouch for; until then they are all to do."""
    pending = False
    if is_tuned(cfg):
        outcome = read_outcome(cfg)
        pending = outcome is None
        if not pending:
            cfg = tuned(cfg, outcome)
    runner = DryRunner(cfg)
    search_cell(cfg, runner)
    lr, origin = (None, "tuning (to run)") if pending else planned_lr(runner.spec)  # its search resolved it
    probes = [{k: v for k, v in r.items() if k != "status_dict"} for r in runner.runs]
    # A WSD cell: its branches' cooldowns (the probes' cost) plus the stable trunk they start from.
    trunk = planned_trunk(cfg, runner.trunk_needed) if branches(cfg) else None
    return {"cell": cell_name(cfg), "task": cfg.task.name, "lr": lr, "lr_origin": origin, "probes": probes,
            "trunk": trunk, "cost": sum(p["cost"] for p in probes) + (trunk or {}).get("cost", 0)}


def epoch_seconds(task: str, configured: Mapping[str, float],
                  measured: Mapping[str, list[float]]) -> tuple[float | None, str]:
    """Seconds per epoch of this task: measured from its completed runs in this suite, else configured
    (grid.epoch_seconds)."""
    times = measured.get(task, [])
    if times:
        return statistics.median(times), f"measured, median of {len(times)} runs"
    seconds = configured.get(task)
    return (float(seconds), "grid.epoch_seconds") if seconds else (None, "")


def run_epoch_seconds(status: dict, metrics: list[dict]) -> float | None:
    """One run's seconds per epoch, when it completed (the measure of measured_epoch_seconds)."""
    if status.get("status") == "completed" and metrics:
        return metrics[-1]["wall_s"] / len(metrics)
    return None


def measured_epoch_seconds(results_dir: str, suite: str) -> dict[str, list[float]]:
    """Seconds per epoch of every completed run of the suite, by task (one pass over the records)."""
    times: dict[str, list[float]] = {}
    for path in records.iter_run_dirs(results_dir, suite):
        try:
            run = records.load_run(path)
        except records.CorruptRecord:
            continue
        seconds = run_epoch_seconds(run.status, run.metrics)
        if seconds is not None:
            times.setdefault(run.status.get("task"), []).append(seconds)
    return times


def format_plan(cells: list[DictConfig]) -> list[str]:
    lines, totals, by_task = [], {"done": 0, "resume": 0, "todo": 0}, {}
    measured = measured_epoch_seconds(cells[0].results_dir, cells[0].suite) if cells else {}
    for cfg in cells:
        plan = plan_cell(cfg)
        for p in plan["probes"]:
            totals[p["state"]] += 1
        by_task.setdefault(cfg.task.name, [cfg, 0])[1] += plan["cost"]
        lr = f"{plan['lr']:.3g}" if plan["lr"] is not None else "?"
        runs = " ".join(f"{p['budget']}:{p['state']}" for p in plan["probes"])
        if plan["trunk"]:  # the stable run the WSD branches start from, to epoch `needed`
            runs = f"trunk:{plan['trunk']['needed']} " + runs
        lines.append(f"  {plan['cell']:<44} lr {lr:<8} {plan['lr_origin']:<26} runs {runs:<40} "
                     f"~{plan['cost']} epochs")
    hours, unpriced = 0.0, []
    for task, (cfg, cost) in by_task.items():
        seconds, source = epoch_seconds(task, cfg.grid.epoch_seconds, measured)
        if seconds:
            hours += cost * seconds / 3600
            lines.append(f"  {task}: ~{cost} epochs x {seconds:.1f} s ({source}) = {cost * seconds / 3600:.2f} h")
        else:
            unpriced.append(task)
    if not cells:
        return lines + ["nothing to run"]
    lines.append(f"runs: {totals['done']} done, {totals['resume']} to resume, {totals['todo']} to do; "
                 f"~{sum(c for _, c in by_task.values())} epochs left (searches assume the target at "
                 f"{cells[0].grid.assumed_fraction:.0%} of the max budget)")
    if hours:
        priced = f" (no epoch time for {', '.join(unpriced)})" if unpriced else ""
        lines.append(f"estimated device time: {hours:.2f} h{priced}")
    return lines + format_tuning(cells, sum(c for _, c in by_task.values()))


def halving_epochs(budget: int, trials: int, min_resource: int, factor: int, orders: int = 500) -> float:
    """Expected epochs of a study of `trials` sequential trials under Optuna's successive halving: at a rung
    (min_resource x factor^k epochs) a trial goes on iff it ranks within the best max(1, n // factor) of
    the n trials that have reached that rung so far. Trial quality is taken as a fixed random rank (the
    same at every rung), averaged over `orders` seeded arrival orders: not the ideal 1-in-`factor`, which
    small studies never reach (their first trials always go on)."""
    rungs = []
    while min_resource * factor ** len(rungs) < budget:
        rungs.append(min_resource * factor ** len(rungs))
    rng, total = random.Random(0), 0
    for _ in range(orders):
        ranks, reached = rng.sample(range(trials), trials), [[] for _ in rungs]
        for rank in ranks:
            stop = budget
            for level, epoch in enumerate(rungs):
                reached[level].append(rank)
                keep = max(1, len(reached[level]) // factor)
                if sorted(reached[level]).index(rank) >= keep:
                    stop = epoch
                    break
            total += stop
    return total / orders


def studies(cells: list[DictConfig]) -> dict[tuple[str, str, str], int]:
    """The tuning studies of these cells, one per tuned (task, optimizer, schedule), each with the index
    of its first cell (its seeds share it)."""
    first: dict[tuple[str, str, str], int] = {}
    for i, cfg in enumerate(cells):
        if is_tuned(cfg):
            first.setdefault((cfg.task.name, cfg.optimizer.name, cfg.schedule.name), i)
    return first


def study_epochs(cfg: DictConfig) -> tuple[float, float]:
    """Epochs left to the cell's study, (without pruning, with successive halving): its trials, each at
    the tuning budget (halving: only where the study may prune, runners/grid/tuning.py prunes); 0 once it has
    an outcome its runs vouch for."""
    if read_outcome(cfg) is not None:
        return 0.0, 0.0
    settings, budget = cfg.grid.tuning, trial_budget(cfg)
    plain = float(settings.trials * budget)
    if not is_budget_free(cfg):  # never pruned: a decaying schedule's mid-run metric misleads
        return plain, plain
    return plain, halving_epochs(budget, settings.trials, settings.min_resource, settings.reduction_factor)


def format_tuning(cells: list[DictConfig], search_epochs: int) -> list[str]:
    """The tuning's price, apart from the searches and seeds, with and without successive halving."""
    first = [cells[i] for i in studies(cells).values()]
    if not first:
        return ["tuning: off (grid.tuning.trials=0): every cell at the task's sourced LR and WD"]
    costs = [study_epochs(cfg) for cfg in first]
    plain, halved = sum(c[0] for c in costs), sum(c[1] for c in costs)
    pruning = first[0].grid.tuning.pruning
    chosen = halved if pruning else plain
    share = f", +{chosen / search_epochs:.0%} on the searches and seeds" if search_epochs else ""
    return [f"tuning: {len(first)} studies x {first[0].grid.tuning.trials} trials: "
            f"~{round(chosen)} epochs left ({'with' if pruning else 'without'} pruning{share}); "
            f"~{round(plain)} without pruning, ~{round(halved)} with successive halving"]

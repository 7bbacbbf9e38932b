"""`plan=true`: the cells' budget searches walked dry (job.DryRunner) — what each would run, what is
done, what is left in epochs and, priced by measured or configured epoch times, in device hours."""
from __future__ import annotations

import statistics

from omegaconf import DictConfig

from results import records

from ..config import configured_lr
from .cells import cell_name, run_config
from .job import DryRunner, search_cell


def planned_lr(run_cfg: DictConfig) -> tuple[float | None, str]:
    """The LR a run would use, without running an LR range test (None: the test is still to run)."""
    configured = configured_lr(run_cfg)
    if configured:
        return configured
    from ..lr_find import cached_lr

    lr = cached_lr(run_cfg)
    return lr, "lr_find (cached)" if lr is not None else "lr_find (to run)"


def plan_cell(cfg: DictConfig) -> dict:
    """The runs this cell will make and what is left, in epochs."""
    runner = DryRunner(cfg)
    search_cell(cfg, runner)
    lr, origin = planned_lr(run_config(cfg))
    probes = [{k: v for k, v in r.items() if k != "status_dict"} for r in runner.runs]
    return {"cell": cell_name(cfg), "task": cfg.task.name, "lr": lr, "lr_origin": origin,
            "probes": probes, "cost": sum(p["cost"] for p in probes)}


def epoch_seconds(cfg: DictConfig, measured: dict[str, list[float]]) -> tuple[float | None, str]:
    """Seconds per epoch of this task: measured from its completed runs in this suite, else configured."""
    times = measured.get(cfg.task.name, [])
    if times:
        return statistics.median(times), f"measured, median of {len(times)} runs"
    configured = cfg.grid.epoch_seconds.get(cfg.task.name)
    return (float(configured), "grid.epoch_seconds") if configured else (None, "")


def measured_epoch_seconds(results_dir: str, suite: str) -> dict[str, list[float]]:
    """Seconds per epoch of every completed run of the suite, by task (one pass over the records)."""
    times: dict[str, list[float]] = {}
    for path in records.iter_run_dirs(results_dir, suite):
        try:
            run = records.load_run(path)
        except records.CorruptRecord:
            continue
        if run.status.get("status") == "completed" and run.metrics:
            times.setdefault(run.status.get("task"), []).append(run.metrics[-1]["wall_s"] / len(run.metrics))
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
        lines.append(f"  {plan['cell']:<44} lr {lr:<8} {plan['lr_origin']:<26} runs {runs:<40} "
                     f"~{plan['cost']} epochs")
    hours, unpriced = 0.0, []
    for task, (cfg, cost) in by_task.items():
        seconds, source = epoch_seconds(cfg, measured)
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
    return lines

"""The grid before and after it runs: expand a suite's declared sweep into its cells exactly as Hydra's
basic sweeper does, say what each cell has left to do (plan mode) and summarise the cell records."""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from results import records

from .budget import search_budget
from .config import resolve_lr, resolve_schedule, validate
from .errors import UserError
from .grid_job import (cell_name, cell_path, is_budget_free, planned_run_dir, register_grid_configs, run_config,
                       searches_budget)

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
RECIPE_FIXED = ("task", "optimizer", "schedule")  # a recipe overlay picks these itself


def compose_grid(overrides: list[str], with_hydra: bool = False) -> DictConfig:
    return compose_many([overrides], with_hydra)[0]


def compose_many(override_lists: list[list[str]], with_hydra: bool = False) -> list[DictConfig]:
    """Compose configs of conf/grid.yaml (one Hydra initialisation for all: it is the slow part)."""
    register_grid_configs()
    GlobalHydra.instance().clear()
    out = []
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for overrides in override_lists:
            try:
                out.append(compose("grid", overrides=list(overrides), return_hydra_config=with_hydra))
            except (HydraException, OmegaConfBaseException) as exc:
                raise UserError(f"{' '.join(overrides)}: {exc}".splitlines()[0]) from None
    return out


def override_values(override: str) -> list[str]:
    """'task=a,b' -> ['a', 'b'] (any Hydra sweep syntax; a plain value gives one)."""
    parsed = OverridesParser.create().parse_override(override)
    if parsed.is_sweep_override():
        return [str(v) for v in parsed.sweep_string_iterator()]
    return [parsed.get_value_element_as_str()]


@dataclass
class Launch:
    """One Hydra multirun: one task's cells (so each task can carry its own overrides), or one recipe's."""

    task: str
    arguments: list[str]  # the command line handed to Hydra
    sweep: list[str]  # the suite's declared sweep, as overrides (Hydra adds them to `arguments`)
    cells: list[DictConfig] = field(default_factory=list)


def fixed_args(args: list[str]) -> list[str]:
    """The overrides that are not sweeps (those can be composed directly)."""
    parser = OverridesParser.create()
    return [a for a in args if not parser.parse_override(a).is_sweep_override()]


def split_user_args(args: list[str]) -> tuple[str | None, list[str]]:
    """(the user's task override value or None, the other overrides)."""
    tasks = [a for a in args if a.split("=", 1)[0] == "task"]
    return (tasks[-1].split("=", 1)[1] if tasks else None), [a for a in args if a.split("=", 1)[0] != "task"]


def expand(suite: str, user_args: list[str], extra_args: list[str] = ()) -> tuple[list[Launch], list[str]]:
    """The suite's launches — per task present: its optimizer x schedule x seed sweep, then one launch
    per published recipe of the task (the recipe fixes optimizer and schedule; seeds are swept; each
    seed is one run at the recipe's own budget, as published) — and the
    declared tasks that do not exist here."""
    task_spec, other_args = split_user_args(user_args)
    base = compose_grid([f"suite={suite}", *fixed_args(other_args)], with_hydra=True)
    params = {k: str(v) for k, v in (base.hydra.sweeper.params or {}).items()}
    declared = override_values(f"task={task_spec or params.get('task', base.task.name)}")
    present = [t for t in declared if (CONF_DIR / "task" / f"{t}.yaml").exists()]
    launches = []
    for task in present:
        common = [f"suite={suite}", f"task={task}"]
        per_task = list(base.grid.per_task.get(task, []))
        launches.append(Launch(task, [*common, *per_task, *other_args, *extra_args],
                               [f"{k}={v}" for k, v in params.items()]))
        recipe_args = [a for a in other_args if a.split("=", 1)[0] not in ("optimizer", "schedule")]
        unswept = [f"~hydra.sweeper.params.{k}" for k in params if k in RECIPE_FIXED[1:]]
        for recipe in base.grid.recipes.get(task, []):
            launches.append(Launch(task, [*common, f"+recipe={recipe}", "grid.budget_search=false", *unswept,
                                          *recipe_args, *extra_args],
                                   [f"{k}={v}" for k, v in params.items() if k not in RECIPE_FIXED]))
    for launch in launches:
        overrides = OverridesParser.create().parse_overrides(launch.sweep + launch.arguments)
        jobs = BasicSweeper.split_arguments(overrides, None)[0]
        launch.cells = compose_many([list(job) for job in jobs])
    return launches, [t for t in declared if t not in present]


def check_cells(launches: list[Launch]) -> None:
    """Bad input fails here, before anything trains (UserError names the cell and the key)."""
    for launch in launches:
        for cfg in launch.cells:
            run_cfg = run_config(cfg)
            lr, _ = planned_lr(run_cfg)
            try:
                validate(run_cfg, resolve_schedule(run_cfg), lr or 1.0)
            except UserError as exc:
                raise UserError(f"{cell_name(cfg)}: {exc}") from None


def planned_lr(run_cfg: DictConfig) -> tuple[float | None, str]:
    """The LR a run would use, without running an LR range test (None: the test is still to run)."""
    keys = (f"{run_cfg.optimizer.name}/{run_cfg.schedule.name}", run_cfg.optimizer.name)
    if run_cfg.optimizer.lr is not None or any(k in run_cfg.task.lr for k in keys):
        return resolve_lr(run_cfg)
    from .lr_find import cached_lr

    lr = cached_lr(run_cfg)
    return lr, "lr_find (cached)" if lr is not None else "lr_find (to run)"


def run_state(cfg: DictConfig, budget: int, stop_at_target: bool) -> tuple[str, dict | None]:
    """'done' | 'resume' | 'todo', and the run's status dict when it has one."""
    path = planned_run_dir(run_config(cfg, epochs=budget, stop_at_target=stop_at_target))
    try:
        status = records.read_status(path / records.STATUS_FILE)
    except records.CorruptRecord:
        return "resume", None
    if status is None:
        return "todo", None
    return ("done" if status["status"] in records.FINAL_STATUSES else "resume"), status


def plan_cell(cfg: DictConfig) -> dict:
    """The runs this cell will make and what is left, in epochs. For a search the outcomes not yet
    recorded are assumed: a budget hits iff it is >= grid.assumed_fraction x the maximum."""
    max_epochs, probes = int(cfg.task.epochs), []

    def visit(budget: int, stop: bool) -> bool:
        state, status = run_state(cfg, budget, stop)
        done_epochs = int((status or {}).get("epochs_done") or 0)
        probes.append({"budget": budget, "state": state,
                       "cost": 0 if state == "done" else budget - done_epochs})
        if state == "done":
            return status["status"] == "completed" and bool(status.get("target_met_at_end"))
        return budget >= cfg.grid.assumed_fraction * max_epochs

    if not searches_budget(cfg):
        visit(max_epochs, is_budget_free(cfg))  # budget-free: an upper bound, the run stops at the target
    else:
        start = max(int(cfg.grid.ladder_start), len(cfg.task.stages), 1)
        search_budget(lambda b: visit(b, bool(cfg.stop_at_target)), max_epochs, start,
                      float(cfg.grid.ladder_factor))
    lr, origin = planned_lr(run_config(cfg))
    return {"cell": cell_name(cfg), "task": cfg.task.name, "lr": lr, "lr_origin": origin,
            "probes": probes, "cost": sum(p["cost"] for p in probes)}


def epoch_seconds(cfg: DictConfig) -> tuple[float | None, str]:
    """Seconds per epoch of this task: measured from its completed runs in this suite, else configured."""
    times = []
    for path in records.iter_run_dirs(cfg.results_dir, cfg.suite):
        try:
            run = records.load_run(path)
        except records.CorruptRecord:
            continue
        if run.status.get("task") == cfg.task.name and run.status.get("status") == "completed" and run.metrics:
            times.append(run.metrics[-1]["wall_s"] / len(run.metrics))
    if times:
        return statistics.median(times), f"measured, median of {len(times)} runs"
    configured = cfg.grid.epoch_seconds.get(cfg.task.name)
    return (float(configured), "grid.epoch_seconds") if configured else (None, "")


def format_plan(launches: list[Launch]) -> list[str]:
    lines, totals, hours = [], {"done": 0, "resume": 0, "todo": 0}, 0.0
    epochs_left, unpriced = 0, set()
    for launch in launches:
        seconds, source = epoch_seconds(launch.cells[0]) if launch.cells else (None, "")
        task_cost = 0
        for cfg in launch.cells:
            plan = plan_cell(cfg)
            for p in plan["probes"]:
                totals[p["state"]] += 1
            task_cost += plan["cost"]
            lr = f"{plan['lr']:.3g}" if plan["lr"] is not None else "?"
            runs = " ".join(f"{p['budget']}:{p['state']}" for p in plan["probes"])
            lines.append(f"  {plan['cell']:<44} lr {lr:<8} {plan['lr_origin']:<26} runs {runs:<40} "
                         f"~{plan['cost']} epochs")
        epochs_left += task_cost
        if seconds:
            hours += task_cost * seconds / 3600
            lines.append(f"  {launch.task}: ~{task_cost} epochs x {seconds:.1f} s ({source}) = "
                         f"{task_cost * seconds / 3600:.2f} h")
        else:
            unpriced.add(launch.task)
    lines.append(f"runs: {totals['done']} done, {totals['resume']} to resume, {totals['todo']} to do; "
                 f"~{epochs_left} epochs left (searches assume the target at "
                 f"{launches[0].cells[0].grid.assumed_fraction:.0%} of the max budget)" if launches else
                 "nothing to run")
    if hours:
        priced = "" if not unpriced else f" (no epoch time for {', '.join(sorted(unpriced))})"
        lines.append(f"estimated device time: {hours:.2f} h{priced}")
    return lines


def read_cell(path: Path, since: float) -> dict | None:
    """The cell's record; failing that, the newest record of the same cell written since `since` (a
    config file edited while the grid ran changes the cell's hash between plan and job)."""
    if path.exists():
        return json.loads(path.read_text())
    prefix = path.name.rsplit("__", 1)[0] + "__"
    fresh = [p for p in path.parent.glob(f"{prefix}*.json") if p.stat().st_mtime >= since]
    return json.loads(max(fresh, key=lambda p: p.stat().st_mtime).read_text()) if fresh else None


def summarise(launches: list[Launch], since: float = float("inf")) -> tuple[list[str], list[str]]:
    """(summary lines, failure lines) from the cell records the jobs wrote (at or after `since`)."""
    lines, failures, probes, trained = [], [], 0, 0
    by_cell: dict[tuple, list] = {}
    for launch in launches:
        for cfg in launch.cells:
            record = read_cell(cell_path(cfg), since)
            key = (cfg.task.name, cfg.get("recipe") or "", cfg.optimizer.name, cfg.schedule.name)
            if record is None:
                failures.append(f"  {cell_name(cfg)}: no cell record (the job did not finish)")
                continue
            probes += len(record["probes"])
            trained += record["runs_trained"]
            if record["error"]:
                failures.append(f"  {record['cell']}: {record['error']}")
            value = "fail" if record["error"] else (
                f">{record['max_epochs']}" if record["censored"] else str(record["epochs_to_target"]))
            by_cell.setdefault(key, []).append(value)
    for (task, recipe, optimizer, schedule), values in by_cell.items():
        what = f"+{recipe}" if recipe else f"{optimizer:<9} {schedule:<10}"
        lines.append(f"  {task:<16} {what:<20} epochs to target by seed: {', '.join(values)}")
    lines.append(f"cells: {sum(len(l.cells) for l in launches)}, runs (probes): {probes}, "
                 f"trained or resumed this time: {trained}, failures: {len(failures)}")
    return lines, failures
